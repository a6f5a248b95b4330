// Serving, in named steps: resolve models and check the execution provider → build the parts
// (metrics, cache, lanes, orchestrator, rate limiter) → listen → install the signal handlers → warm
// up both lanes → ready. main.ts loads this only once the runtime and the config are known good, so
// --help and a refused start never load native modules.
import { createCache, rateLimitKeyPrefix, SharedBuckets } from '../cache/index.js';
import { checkProvider, createImageLane, createTextLane, type ImageLane, type TextLane } from '../lanes/index.js';
import { BatchService, BatchState, BullQueue, FileStore, LocalQueue, type ChunkQueue } from '../batch/index.js';
import { assertNativeUws, embeddingsForBatch, startServer, type RunningServer } from '../server/index.js';
import { ApiKeys } from './auth.js';
import { configWarnings, type Config } from './config.js';
import { ImageBytes } from './image-bytes.js';
import { ImageFetcher } from './image-fetch.js';
import { log } from './log.js';
import { Metrics } from './metrics.js';
import { Orchestrator } from './orchestrator.js';
import { RateLimiter } from './rate-limit.js';
import { ModelRegistry } from './registry.js';
import { Tokenizers } from './tokenize.js';
import { Usage } from './usage.js';
import type { PackageInfo } from './runtime.js';

export function resolveModels(config: Readonly<Config>): Promise<ModelRegistry> {
  return ModelRegistry.resolve(config, { modelsDir: config.modelsDir, hubUrl: config.hubUrl, offline: config.offline });
}

export interface Parts {
  readonly metrics: Metrics;
  readonly batch: BatchParts;
  readonly orchestrator: Orchestrator;
  readonly textLane: TextLane;
  readonly imageLane: ImageLane | null;
  readonly limiter: RateLimiter | null;
}

function createLanes(
  config: Readonly<Config>,
  registry: ModelRegistry,
  metrics: Metrics,
): { textLane: TextLane; imageLane: ImageLane | null } {
  const textLane = createTextLane({
    models: registry.textTowers().map((t) => ({
      id: t.id,
      modelDir: t.dir,
      onnxPath: t.onnxPath,
      dims: t.dims,
      maxTokens: t.maxTokens,
      pooling: t.pooling,
      tokenBound: t.tokenBound,
    })),
    threads: config.textThreads,
    intraOpThreads: config.textIntraOpThreads,
    maxQueue: config.textMaxQueue,
    maxBatchItems: config.textMaxBatchItems,
    maxBatchTokens: config.textMaxBatchTokens,
    nice: config.textNice,
    bulkShare: config.batchLaneShare,
    worker: { maxHeapMb: config.workerMaxHeapMb, faults: config.testWorkerFaults },
    provider: config.executionProvider,
    observer: metrics,
  });
  const imageTowers = registry.imageTowers();
  const imageLane =
    imageTowers.length === 0
      ? null
      : createImageLane({
          models: imageTowers.map((t) => ({ id: t.id, onnxPath: t.onnxPath, dims: t.dims, preprocess: t.preprocess })),
          threads: config.imageThreads,
          intraOpThreads: config.imageIntraOpThreads,
          maxQueue: config.imageMaxQueue,
          maxBatchItems: config.imageMaxBatchItems,
          maxPixels: config.maxImagePixels,
          nice: config.imageNice,
          bulkShare: config.batchLaneShare,
          worker: { maxHeapMb: config.workerMaxHeapMb, faults: config.testWorkerFaults },
          provider: config.executionProvider,
          observer: metrics,
        });
  return { textLane, imageLane };
}

interface BatchParts {
  readonly service: BatchService;
  readonly files: FileStore;
  readonly queue: ChunkQueue;
}

/** The Files and Batches API: lines are embedded by the server's own /v1/embeddings code at low priority. */
function createBatch(config: Readonly<Config>, orchestrator: Orchestrator, metrics: Metrics): BatchParts {
  const files = new FileStore({ dir: config.filesDir, ttlSeconds: config.filesTtlSeconds });
  const knownModel = (id: string | undefined) => {
    try {
      orchestrator.registry.find(id, 'text');
      return true;
    } catch {
      return false;
    }
  };
  const service = new BatchService({
    files,
    state: new BatchState(config.filesDir),
    execute: (body) => embeddingsForBatch(body, orchestrator),
    limits: {
      maxInputs: config.maxInputs,
      maxLineBytes: config.maxBodyBytes,
      maxLines: config.batchMaxLines,
      knownModel,
    },
    chunkLines: config.batchChunkLines,
    lineConcurrency: config.batchLineConcurrency,
    observer: metrics,
  });
  const run = (batchId: string, chunk: number) => service.processChunk(batchId, chunk);
  const onRetry = () => metrics.onChunkRetry();
  const queue =
    config.redisUrl === null
      ? new LocalQueue(run, config.batchConcurrency, onRetry)
      : new BullQueue(
          {
            redisUrl: config.redisUrl,
            prefix: `${config.cachePrefix}:bull`,
            worker: config.batchWorker,
            concurrency: config.batchConcurrency,
            lockMs: config.batchLockMs,
          },
          run,
          onRetry,
        );
  service.attach(queue);
  return { service, files, queue };
}

function createRateLimiter(config: Readonly<Config>, metrics: Metrics): RateLimiter | null {
  if (config.rateLimit === null) return null;
  const burst = config.rateBurst ?? config.rateLimit;
  return new RateLimiter({
    rate: config.rateLimit,
    burst,
    // With a Redis, every instance draws from one bucket per client; without, each keeps its own.
    shared:
      config.redisUrl === null
        ? null
        : new SharedBuckets({
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

/** Everything a server is made of but its sockets; tests build an orchestrator with it as serving does. */
export function createParts(config: Readonly<Config>, registry: ModelRegistry): Parts {
  // Metrics read lane gauges at scrape time; the orchestrator that answers exists by then.
  const metrics = new Metrics({
    lanes: () => orchestrator.laneStats(),
    cache: () => cache.stats(),
    batchQueue: () => batch.queue.depth(),
  });
  // Redis down at start-up is not an error: the cache serves from L1 and finds Redis when it comes.
  const cache = createCache({
    l1Bytes: config.l1Bytes,
    redis:
      config.redisUrl === null
        ? null
        : {
            url: config.redisUrl,
            ttlSeconds: config.cacheTtlSeconds,
            timeoutMs: config.redisTimeoutMs,
            failureThreshold: config.redisFailureThreshold,
            coolDownMs: config.redisCoolDownMs,
          },
    observer: metrics,
  });
  const { textLane, imageLane } = createLanes(config, registry, metrics);
  const fetcher = new ImageFetcher({
    allowlist: config.imageFetchAllowlist,
    connectTimeoutMs: config.imageFetchConnectTimeoutMs,
    totalTimeoutMs: config.imageFetchTimeoutMs,
    maxBytes: config.maxImageBytes,
    maxRedirects: config.imageFetchMaxRedirects,
  });
  const orchestrator: Orchestrator = new Orchestrator({
    registry,
    text: { lane: textLane, queueTimeoutMs: config.textQueueTimeoutMs },
    image: imageLane && { lane: imageLane, queueTimeoutMs: config.imageQueueTimeoutMs },
    images: new ImageBytes(fetcher, config.maxImageBytes),
    usage: new Usage(metrics),
    tokenizers: new Tokenizers(),
    cache,
    cachePrefix: config.cachePrefix,
    l1Enabled: config.l1Bytes > 0,
    limits: { maxInputs: config.maxInputs, maxChars: config.maxChars },
    metrics,
  });
  const batch = createBatch(config, orchestrator, metrics);
  return { metrics, orchestrator, textLane, imageLane, limiter: createRateLimiter(config, metrics), batch };
}

function listen(config: Readonly<Config>, parts: Parts, pkg: PackageInfo): Promise<RunningServer> {
  const { orchestrator, metrics, imageLane, limiter, batch } = parts;
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
        image: imageLane
          ? {
              maxBatchItems: config.imageMaxBatchItems,
              maxBodyBytes: config.maxImageBodyBytes,
              maxImageBytes: config.maxImageBytes,
              maxImagePixels: config.maxImagePixels,
            }
          : null,
      },
      access: {
        apiKeys: config.apiKeys.length > 0 ? new ApiKeys(config.apiKeys) : null,
        limiter,
        authOps: config.authOps,
      },
      accessLog: config.accessLog,
      hotAnswerBytes: config.hotAnswerBytes,
      ui: config.ui,
      batch: { service: batch.service, files: batch.files, maxFileBytes: config.filesMaxBytes },
      frontGate: {
        stormRefusalsPerSecond: config.shedAfterRefusalsPerSecond,
        probesPerSecond: config.shedProbesPerSecond,
        holdMs: config.shedHoldMs,
        readMaxBytes: config.shedReadMaxBytes,
      },
      ws: {
        limits: {
          maxInputs: config.maxInputs,
          maxTextFrameBytes: config.maxBodyBytes,
          maxInFlightItems: config.wsMaxInFlightItems,
          maxQueuedBytes: config.wsMaxQueuedBytes,
          windowItems: {
            text: config.wsWindowBatches * config.textMaxBatchItems,
            image: config.wsWindowBatches * config.imageMaxBatchItems,
          },
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
    if (!drained)
      log.warn('shutdown timeout reached with requests still in flight', { timeoutMs: config.shutdownTimeoutMs });
    server.closeSockets();
    // Chunks running here finish first; those queued stay queued (Redis) or on disk, for a restart.
    await parts.batch.queue.close();
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
  const registry = await resolveModels(config);
  await checkProvider(config.executionProvider, registry.textTowers()[0]!.onnxPath);
  const parts = createParts(config, registry);
  const server = await listen(config, parts, pkg);
  const imageModels = registry.imageTowers().map((t) => t.cacheId);
  log.info(`listening on http://${config.host}:${server.port}`, {
    version: pkg.version,
    pid: process.pid,
    textModels: registry.textTowers().map((t) => t.cacheId),
    text: { threads: config.textThreads, intraOpThreads: config.textIntraOpThreads, maxQueue: config.textMaxQueue },
    ...(imageModels.length > 0
      ? {
          imageModels,
          image: {
            threads: config.imageThreads,
            intraOpThreads: config.imageIntraOpThreads,
            maxQueue: config.imageMaxQueue,
          },
        }
      : {}),
    reusePort: config.reusePort,
  });
  installSignalHandlers(config, server, parts);
  await Promise.all([parts.textLane.warmup(), parts.imageLane?.warmup()]);
  log.info('ready', { lanes: parts.imageLane ? ['text', 'image'] : ['text'] });
  const resumed = await parts.batch.service.resume();
  if (resumed > 0) log.info('batch chunks resumed', { chunks: resumed });
}
