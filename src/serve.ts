// Serving, in named steps: resolve models and check the execution provider → build the parts
// (metrics, cache, lanes, orchestrator, rate limiter) → listen → install the signal handlers → warm
// up both lanes → ready. main.ts loads this only once the runtime and the config are known good, so
// --help and a refused start never load native modules.
import { createCache, rateLimitKeyPrefix, SharedBuckets } from '../cache/index.js';
import { checkProvider, createImageLane, createTextLane, createTokenCounter, type ImageLane, type TextLane } from '../lanes/index.js';
import { assertNativeUws, startServer, type RunningServer } from '../server/index.js';
import { ApiKeys } from './auth.js';
import { configWarnings, type Config } from './config.js';
import { ImageFetcher } from './image-fetch.js';
import { log } from './log.js';
import { Metrics } from './metrics.js';
import { resolveModel, type ImageModelInfo, type TextModelInfo } from './models.js';
import { Orchestrator } from './orchestrator.js';
import { RateLimiter } from './rate-limit.js';
import type { PackageInfo } from './runtime.js';

interface Models {
  readonly text: TextModelInfo;
  readonly image: ImageModelInfo | null;
}

async function resolveModels(config: Readonly<Config>): Promise<Models> {
  const options = { modelsDir: config.modelsDir, hubUrl: config.hubUrl, offline: config.offline };
  const text = await resolveModel(config.textModel, 'text', options);
  if (text.kind !== 'text') throw new Error(`resolveModel returned a ${text.kind} model for the text lane. This is a bug.`);
  const image = config.imageModel === null ? null : await resolveModel(config.imageModel, 'image', options);
  if (image && image.kind !== 'image') throw new Error(`resolveModel returned a ${image.kind} model for the image lane. This is a bug.`);
  return { text, image };
}

interface Parts {
  readonly metrics: Metrics;
  readonly orchestrator: Orchestrator;
  readonly textLane: TextLane;
  readonly imageLane: ImageLane | null;
  readonly limiter: RateLimiter | null;
}

function createLanes(config: Readonly<Config>, models: Models, metrics: Metrics): { textLane: TextLane; imageLane: ImageLane | null } {
  const textLane = createTextLane({
    model: models.text,
    threads: config.textThreads,
    intraOpThreads: config.textIntraOpThreads,
    maxQueue: config.textMaxQueue,
    maxBatchItems: config.textMaxBatchItems,
    maxBatchTokens: config.textMaxBatchTokens,
    nice: config.textNice,
    provider: config.executionProvider,
    observer: metrics,
  });
  const imageLane = models.image && createImageLane({
    model: models.image,
    threads: config.imageThreads,
    intraOpThreads: config.imageIntraOpThreads,
    maxQueue: config.imageMaxQueue,
    maxBatchItems: config.imageMaxBatchItems,
    maxPixels: config.maxImagePixels,
    nice: config.imageNice,
    provider: config.executionProvider,
    observer: metrics,
  });
  return { textLane, imageLane };
}

function createRateLimiter(config: Readonly<Config>, metrics: Metrics): RateLimiter | null {
  if (config.rateLimit === null) return null;
  const burst = config.rateBurst ?? config.rateLimit;
  return new RateLimiter({
    rate: config.rateLimit,
    burst,
    // With a Redis, every instance draws from one bucket per client; without, each keeps its own.
    shared: config.redisUrl === null ? null : new SharedBuckets({
      url: config.redisUrl,
      keyPrefix: rateLimitKeyPrefix(config.cachePrefix),
      rate: config.rateLimit,
      burst,
      timeoutMs: config.redisTimeoutMs,
      failureThreshold: config.redisFailureThreshold,
      coolDownMs: config.redisCoolDownMs,
    }),
    observer: metrics,
  });
}

function createParts(config: Readonly<Config>, models: Models): Parts {
  // Metrics read lane gauges at scrape time; the orchestrator that answers exists by then.
  const metrics = new Metrics({ lanes: () => orchestrator.laneStats(), cache: () => cache.stats() });
  // Redis down at start-up is not an error: the cache serves from L1 and finds Redis when it comes.
  const cache = createCache({
    l1Bytes: config.l1Bytes,
    redis: config.redisUrl === null ? null : {
      url: config.redisUrl,
      ttlSeconds: config.cacheTtlSeconds,
      timeoutMs: config.redisTimeoutMs,
      failureThreshold: config.redisFailureThreshold,
      coolDownMs: config.redisCoolDownMs,
    },
    observer: metrics,
  });
  const { textLane, imageLane } = createLanes(config, models, metrics);
  const fetcher = new ImageFetcher({
    allowlist: config.imageFetchAllowlist,
    connectTimeoutMs: config.imageFetchConnectTimeoutMs,
    totalTimeoutMs: config.imageFetchTimeoutMs,
    maxBytes: config.maxImageBytes,
    maxRedirects: config.imageFetchMaxRedirects,
  });
  const { text, image } = models;
  const orchestrator: Orchestrator = new Orchestrator({
    text: { model: { id: text.id, lane: 'text', dims: text.dims, maxTokens: text.maxTokens }, lane: textLane, tokens: createTokenCounter(text.dir, text.maxTokens), queueTimeoutMs: config.textQueueTimeoutMs },
    image: image && imageLane ? { model: { id: image.id, lane: 'image', dims: image.dims, maxTokens: null }, lane: imageLane, fetcher, maxImageBytes: config.maxImageBytes, queueTimeoutMs: config.imageQueueTimeoutMs } : null,
    cache,
    cachePrefix: config.cachePrefix,
    l1Enabled: config.l1Bytes > 0,
    limits: { maxInputs: config.maxInputs, maxChars: config.maxChars },
    metrics,
  });
  return { metrics, orchestrator, textLane, imageLane, limiter: createRateLimiter(config, metrics) };
}

function listen(config: Readonly<Config>, parts: Parts, pkg: PackageInfo): Promise<RunningServer> {
  const { orchestrator, metrics, imageLane, limiter } = parts;
  return startServer(
    {
      orchestrator,
      metrics,
      version: pkg.version,
      maxBodyBytes: config.maxBodyBytes,
      maxImageBodyBytes: config.maxImageBodyBytes,
      limits: {
        maxInputs: config.maxInputs,
        maxChars: config.maxChars,
        maxBodyBytes: config.maxBodyBytes,
        text: { maxBatchItems: config.textMaxBatchItems, maxBatchTokens: config.textMaxBatchTokens },
        image: imageLane ? { maxBatchItems: config.imageMaxBatchItems, maxBodyBytes: config.maxImageBodyBytes, maxImageBytes: config.maxImageBytes, maxImagePixels: config.maxImagePixels } : null,
      },
      access: { apiKeys: config.apiKeys.length > 0 ? new ApiKeys(config.apiKeys) : null, limiter, authOps: config.authOps },
      accessLog: config.accessLog,
      hotAnswerBytes: config.hotAnswerBytes,
      frontGate: { stormRefusalsPerSecond: config.shedAfterRefusalsPerSecond, probesPerSecond: config.shedProbesPerSecond },
      ws: {
        limits: {
          maxInputs: config.maxInputs,
          maxTextFrameBytes: config.maxBodyBytes,
          maxInFlightItems: config.wsMaxInFlightItems,
          maxQueuedBytes: config.wsMaxQueuedBytes,
          windowItems: { text: config.wsWindowBatches * config.textMaxBatchItems, image: config.wsWindowBatches * config.imageMaxBatchItems },
          highWaterBytes: config.wsHighWaterBytes,
          chunkItems: { text: config.textMaxBatchItems, image: config.imageMaxBatchItems },
        },
        maxFrameBytes: config.wsMaxFrameBytes,
        maxBackpressureBytes: config.wsMaxBackpressureBytes,
        slowReaderMs: config.wsSlowReaderMs,
        idleTimeoutSeconds: config.wsIdleTimeoutSeconds,
        maxConnections: config.wsMaxConnections,
      },
    },
    { host: config.host, port: config.port, reusePort: config.reusePort },
  );
}

/**
 * SIGTERM/SIGINT: /ready turns 503 at once while everything is still served for the drain delay (a
 * balancer's health check sees it and stops routing here), then the port closes, in-flight requests
 * finish, the lanes and Redis close, and the process exits 0 (1 if the shutdown timeout cut it short).
 * A second signal during the drain is ignored; SIGKILL is the way to stop at once.
 */
function installSignalHandlers(config: Readonly<Config>, server: RunningServer, parts: Parts): void {
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('draining', { signal, drainDelayMs: config.drainDelayMs });
    server.beginDrain();
    if (config.drainDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, config.drainDelayMs));
    server.stopAccepting();
    const drained = await server.drained(config.shutdownTimeoutMs);
    if (!drained) log.warn('shutdown timeout reached with requests still in flight', { timeoutMs: config.shutdownTimeoutMs });
    server.closeSockets();
    await Promise.all([parts.orchestrator.close(), parts.limiter?.close()]);
    log.info('stopped');
    process.exit(drained ? 0 : 1);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

export async function serve(config: Readonly<Config>, pkg: PackageInfo): Promise<void> {
  assertNativeUws();
  for (const warning of configWarnings(config)) log.warn(warning);
  const models = await resolveModels(config);
  await checkProvider(config.executionProvider, models.text.onnxPath);
  const parts = createParts(config, models);
  const server = await listen(config, parts, pkg);
  log.info(`listening on http://${config.host}:${server.port}`, {
    version: pkg.version,
    pid: process.pid,
    textModel: models.text.id,
    text: { threads: config.textThreads, intraOpThreads: config.textIntraOpThreads, maxQueue: config.textMaxQueue },
    ...(models.image ? { imageModel: models.image.id, image: { threads: config.imageThreads, intraOpThreads: config.imageIntraOpThreads, maxQueue: config.imageMaxQueue } } : {}),
    reusePort: config.reusePort,
  });
  installSignalHandlers(config, server, parts);
  await Promise.all([parts.textLane.warmup(), parts.imageLane?.warmup()]);
  log.info('ready', { lanes: parts.imageLane ? ['text', 'image'] : ['text'] });
}
