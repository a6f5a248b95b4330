#!/usr/bin/env node
// Entry point: load config → resolve models → create cache, lanes, orchestrator → start the server
// → warm up both lanes → ready. SIGTERM/SIGINT drain in-flight requests, close the lanes and exit 0.
import { readFileSync } from 'node:fs';
import { createCache, rateLimitKeyPrefix, SharedBuckets } from '../cache/index.js';
import { createImageLane, createTextLane, createTokenCounter } from '../lanes/index.js';
import { assertNativeUws, startServer } from '../server/index.js';
import { ApiKeys } from './auth.js';
import { ConfigError, helpText, loadConfig, type Config } from './config.js';
import { ImageFetcher } from './image-fetch.js';
import { log } from './log.js';
import { Metrics } from './metrics.js';
import { resolveModel } from './models.js';
import { Orchestrator } from './orchestrator.js';
import { RateLimiter } from './rate-limit.js';

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function configOrExit(): Readonly<Config> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText());
    process.exit(0);
  }
  try {
    return loadConfig(argv, process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`twinlane: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

async function main(): Promise<void> {
  const config = configOrExit();
  assertNativeUws();
  const resolveOptions = { modelsDir: config.modelsDir, hubUrl: config.hubUrl, offline: config.offline };
  const textModel = await resolveModel(config.textModel, 'text', resolveOptions);
  if (textModel.kind !== 'text') throw new Error(`resolveModel returned a ${textModel.kind} model for the text lane. This is a bug.`);
  const imageModel = config.imageModel === null ? null : await resolveModel(config.imageModel, 'image', resolveOptions);
  if (imageModel && imageModel.kind !== 'image') throw new Error(`resolveModel returned a ${imageModel.kind} model for the image lane. This is a bug.`);

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
  const textLane = createTextLane({
    model: textModel,
    threads: config.textThreads,
    intraOpThreads: config.textIntraOpThreads,
    maxQueue: config.textMaxQueue,
    maxBatchItems: config.textMaxBatchItems,
    maxBatchTokens: config.textMaxBatchTokens,
    provider: config.executionProvider,
    observer: metrics,
  });
  const imageLane = imageModel && createImageLane({
    model: imageModel,
    threads: config.imageThreads,
    intraOpThreads: config.imageIntraOpThreads,
    maxQueue: config.imageMaxQueue,
    maxBatchItems: config.imageMaxBatchItems,
    maxPixels: config.maxImagePixels,
    nice: config.imageNice,
    provider: config.executionProvider,
    observer: metrics,
  });
  const fetcher = new ImageFetcher({
    allowlist: config.imageFetchAllowlist,
    connectTimeoutMs: config.imageFetchConnectTimeoutMs,
    totalTimeoutMs: config.imageFetchTimeoutMs,
    maxBytes: config.maxImageBytes,
    maxRedirects: config.imageFetchMaxRedirects,
  });
  const orchestrator: Orchestrator = new Orchestrator({
    text: {
      model: { id: textModel.id, lane: 'text', dims: textModel.dims, maxTokens: textModel.maxTokens },
      lane: textLane,
      tokens: createTokenCounter(textModel.dir, textModel.maxTokens),
    },
    image: imageModel && imageLane ? { model: { id: imageModel.id, lane: 'image', dims: imageModel.dims, maxTokens: null }, lane: imageLane, fetcher, maxImageBytes: config.maxImageBytes } : null,
    cache,
    cachePrefix: config.cachePrefix,
    l1Enabled: config.l1Bytes > 0,
    limits: { maxInputs: config.maxInputs, maxChars: config.maxChars },
    metrics,
  });

  const limiter = config.rateLimit === null ? null : new RateLimiter({
    rate: config.rateLimit,
    burst: config.rateBurst ?? config.rateLimit,
    // With a Redis, every instance draws from one bucket per client; without, each keeps its own.
    shared: config.redisUrl === null ? null : new SharedBuckets({
      url: config.redisUrl,
      keyPrefix: rateLimitKeyPrefix(config.cachePrefix),
      rate: config.rateLimit,
      burst: config.rateBurst ?? config.rateLimit,
      timeoutMs: config.redisTimeoutMs,
      failureThreshold: config.redisFailureThreshold,
      coolDownMs: config.redisCoolDownMs,
    }),
    observer: metrics,
  });

  const server = await startServer(
    {
      orchestrator,
      metrics,
      version,
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
    },
    config.host,
    config.port,
  );
  log.info(`listening on http://${config.host}:${server.port}`, {
    version,
    textModel: textModel.id,
    text: { threads: config.textThreads, intraOpThreads: config.textIntraOpThreads, maxQueue: config.textMaxQueue },
    ...(imageModel ? { imageModel: imageModel.id, image: { threads: config.imageThreads, intraOpThreads: config.imageIntraOpThreads, maxQueue: config.imageMaxQueue } } : {}),
  });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('draining', { signal });
    server.stopAccepting();
    const drained = await server.drained(config.shutdownTimeoutMs);
    if (!drained) log.warn('shutdown timeout reached with requests still in flight', { timeoutMs: config.shutdownTimeoutMs });
    await Promise.all([orchestrator.close(), limiter?.close()]);
    log.info('stopped');
    process.exit(drained ? 0 : 1);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  await Promise.all([textLane.warmup(), imageLane?.warmup()]);
  log.info('ready', { lanes: imageLane ? ['text', 'image'] : ['text'] });
}

main().catch((error: unknown) => {
  log.error('start-up failed', { error: error instanceof Error ? error.message : String(error) });
  process.exit(1);
});
