// The one module that owns the Prometheus registry. Every metric is declared here, named with its
// unit, with its buckets chosen here, so /metrics reads the same whoever added a counter.
import client from 'prom-client';
import { Tally, TallyHistogram } from './tally.js';
import {
  PRIORITIES,
  type BatchInfo,
  type DropReason,
  type LaneName,
  type LaneObserver,
  type LaneStats,
  type RejectReason,
} from '../lanes/index.js';
import type { BatchObserver, BatchStatus } from '../batch/index.js';
import type { AuthFailure } from './auth.js';
import type { RateLimitObserver, RateStore } from './rate-limit.js';
import type {
  BreakerState,
  CacheErrorReason,
  CacheObserver,
  CacheSource,
  CacheStats,
  CacheTier,
  CorruptReason,
  LookupResult,
  RedisState,
  WriteDropReason,
} from '../cache/index.js';

export const METRIC = Object.freeze({
  requests: 'twinlane_http_requests_total',
  requestDuration: 'twinlane_http_request_duration_seconds',
  errors: 'twinlane_http_errors_total',
  queueTime: 'twinlane_lane_queue_seconds',
  batchTime: 'twinlane_lane_batch_seconds',
  prepareTime: 'twinlane_worker_prepare_seconds',
  modelTime: 'twinlane_model_run_seconds',
  batchSize: 'twinlane_lane_batch_size',
  batchTokens: 'twinlane_lane_batch_tokens',
  batchPaddedCost: 'twinlane_lane_batch_padded_tokens',
  computedItems: 'twinlane_lane_items_computed_total',
  modelBatches: 'twinlane_model_batches_total',
  modelCalls: 'twinlane_model_calls_total',
  modelItems: 'twinlane_model_items_computed_total',
  queueDepth: 'twinlane_lane_queue_depth',
  queueCapacity: 'twinlane_lane_queue_capacity',
  inFlight: 'twinlane_lane_in_flight',
  laneRejections: 'twinlane_lane_rejections_total',
  droppedItems: 'twinlane_lane_items_dropped_total',
  workerDeaths: 'twinlane_lane_worker_deaths_total',
  workerRestarts: 'twinlane_lane_worker_restarts_total',
  workers: 'twinlane_lane_workers',
  cacheItems: 'twinlane_cache_items_total',
  fallbacks: 'twinlane_fallbacks_total',
  authFailures: 'twinlane_auth_failures_total',
  rateDecisions: 'twinlane_rate_limit_decisions_total',
  l1Bytes: 'twinlane_cache_l1_bytes',
  l1Entries: 'twinlane_cache_l1_entries',
  // cache tiers (cache/ reports them through CacheObserver)
  cacheLookups: 'twinlane_cache_tier_lookups_total',
  cacheErrors: 'twinlane_cache_errors_total',
  cacheCorrupt: 'twinlane_cache_corrupt_values_total',
  cacheWritesDropped: 'twinlane_cache_writes_dropped_total',
  redisUp: 'twinlane_cache_redis_up',
  redisConfigured: 'twinlane_cache_redis_configured',
  // WebSocket streaming (server/ws)
  wsConnections: 'twinlane_ws_connections',
  wsMessages: 'twinlane_ws_messages_total',
  wsItems: 'twinlane_ws_items_total',
  wsRefused: 'twinlane_ws_requests_refused_total',
  wsRequests: 'twinlane_ws_requests_total',
  wsPauses: 'twinlane_ws_backpressure_pauses_total',
  wsClosed: 'twinlane_ws_closed_total',
  breakerState: 'twinlane_cache_breaker_state',
  // bulk jobs (batch/)
  batches: 'twinlane_batches_total',
  batchLines: 'twinlane_batch_lines_total',
  batchChunkRetries: 'twinlane_batch_chunk_retries_total',
  batchQueue: 'twinlane_batch_chunks_queued',
});

// Latency buckets from 0.5 ms (an L1 hit) to 10 s (a long batch under overload).
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// Inside a worker, from a short text's tokenising (≈ 0.1 ms) to a large batch of big images.
const WORKER_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const TOKEN_BUCKETS = [16, 64, 256, 1024, 4096, 16384, 65536];

/** The lane label of an HTTP request: `mixed` for /v1/embeddings lists of texts and images. */
export type RequestLane = LaneName | 'mixed' | 'none';

export interface MetricsSources {
  lanes(): readonly { readonly name: LaneName; readonly stats: LaneStats }[];
  cache(): CacheStats;
  /** Batch chunks waiting or running (across instances with Redis). */
  batchQueue?(): Promise<number>;
}

export class Metrics implements LaneObserver, CacheObserver, RateLimitObserver, BatchObserver {
  readonly registry = new client.Registry();
  readonly #requests: Tally<'route' | 'lane' | 'status'>;
  readonly #duration: TallyHistogram<'route' | 'lane'>;
  readonly #errors: client.Counter<'route' | 'code'>;
  readonly #queueTime: client.Histogram<'lane' | 'priority'>;
  readonly #batchTime: client.Histogram<'lane'>;
  readonly #prepareTime: client.Histogram<'lane' | 'model'>;
  readonly #modelTime: client.Histogram<'lane' | 'model'>;
  readonly #batchSize: client.Histogram<'lane'>;
  readonly #batchTokens: client.Histogram<'lane'>;
  readonly #batchCost: client.Histogram<'lane'>;
  readonly #computed: client.Counter<'lane'>;
  readonly #modelBatches: client.Counter<'lane' | 'model'>;
  readonly #modelCalls: client.Counter<'lane' | 'model'>;
  readonly #modelItems: client.Counter<'lane' | 'model'>;
  readonly #rejections: client.Counter<'lane' | 'reason'>;
  readonly #dropped: client.Counter<'lane' | 'reason'>;
  readonly #workerDeaths: client.Counter<'lane'>;
  readonly #workerRestarts: client.Counter<'lane'>;
  readonly #cacheItems: Tally<'lane' | 'result'>;
  readonly #fallbacks: client.Counter<'reason'>;
  readonly #authFailures: client.Counter<'reason'>;
  readonly #rateDecisions: client.Counter<'store' | 'result'>;
  // cache tiers
  readonly #cacheLookups: Tally<'tier' | 'result'>;
  readonly #cacheErrors: client.Counter<'tier' | 'reason'>;
  readonly #cacheCorrupt: client.Counter<'reason'>;
  readonly #cacheWritesDropped: client.Counter<'reason'>;
  readonly #redisUp: client.Gauge;
  readonly #redisConfigured: client.Gauge;
  readonly #breakerState: client.Gauge;
  // WebSocket streaming
  readonly #wsConnections: client.Gauge;
  readonly #wsMessages: client.Counter<'direction' | 'kind'>;
  readonly #wsItems: client.Counter<'lane' | 'result'>;
  readonly #wsRefused: client.Counter<'code'>;
  readonly #wsRequests: client.Counter<'end'>;
  readonly #wsPauses: client.Counter;
  readonly #wsClosed: client.Counter<'reason'>;
  readonly #batches: client.Counter<'status'>;
  readonly #batchLines: client.Counter<'outcome'>;
  readonly #batchRetries: client.Counter;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, prefix: 'twinlane_' });
    // prom-client names these three gauges `_total`, which Prometheus keeps for counters (promtool
    // check metrics refuses them); their `type`-labelled twins without the suffix carry the same counts.
    for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total'])
      this.registry.removeSingleMetric(`twinlane_nodejs_${name}`);
    this.#requests = new Tally({
      name: METRIC.requests,
      help: 'HTTP requests (and /ws upgrades) by route, lane (text, image, mixed, none) and status.',
      labelNames: ['route', 'lane', 'status'],
      registers,
    });
    this.#duration = new TallyHistogram({
      name: METRIC.requestDuration,
      help: 'Time from request start to the last byte of the answer, by route and lane (text, image, mixed, none).',
      labelNames: ['route', 'lane'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#errors = new client.Counter({
      name: METRIC.errors,
      help: 'Error answers by route and error code (every rejection, with its reason).',
      labelNames: ['route', 'code'],
      registers,
    });
    this.#queueTime = new client.Histogram({
      name: METRIC.queueTime,
      help: "Longest wait of a batch's items of each priority before the batch started.",
      labelNames: ['lane', 'priority'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#batchTime = new client.Histogram({
      name: METRIC.batchTime,
      help: "A batch's round trip seen from the main thread: handed to its worker until its vectors came back (worker time plus messaging).",
      labelNames: ['lane'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#prepareTime = new client.Histogram({
      name: METRIC.prepareTime,
      help: "A batch's preparation inside its worker: tokenising (text) or decoding and preprocessing (images).",
      labelNames: ['lane', 'model'],
      buckets: WORKER_BUCKETS,
      registers,
    });
    this.#modelTime = new client.Histogram({
      name: METRIC.modelTime,
      help: "A batch's time inside the model runtime (ONNX Runtime run calls; a text batch's calls summed).",
      labelNames: ['lane', 'model'],
      buckets: WORKER_BUCKETS,
      registers,
    });
    this.#batchSize = new client.Histogram({
      name: METRIC.batchSize,
      help: 'Items per model call.',
      labelNames: ['lane'],
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.#batchTokens = new client.Histogram({
      name: METRIC.batchTokens,
      help: "Real tokens per text batch, special tokens included, as the worker's tokenizer counted them (no padding).",
      labelNames: ['lane'],
      buckets: TOKEN_BUCKETS,
      registers,
    });
    this.#batchCost = new client.Histogram({
      name: METRIC.batchPaddedCost,
      help: 'Positions a model call ran over: text, the padded tokens the worker fed its ONNX calls; images, the images.',
      labelNames: ['lane'],
      buckets: TOKEN_BUCKETS,
      registers,
    });
    this.#computed = new client.Counter({
      name: METRIC.computedItems,
      help: 'Items a lane computed (each model run of an item counts once).',
      labelNames: ['lane'],
      registers,
    });
    this.#modelBatches = new client.Counter({
      name: METRIC.modelBatches,
      help: "Batches by lane and model; a batch holds one model's items (its run calls: model_calls_total).",
      labelNames: ['lane', 'model'],
      registers,
    });
    this.#modelCalls = new client.Counter({
      name: METRIC.modelCalls,
      help: 'Model runtime run calls by lane and model: a text batch on a CPU runs as the calls its length plan gives, an image batch as one.',
      labelNames: ['lane', 'model'],
      registers,
    });
    this.#modelItems = new client.Counter({
      name: METRIC.modelItems,
      help: 'Items computed by lane and model.',
      labelNames: ['lane', 'model'],
      registers,
    });
    this.#rejections = new client.Counter({
      name: METRIC.laneRejections,
      help: "Requests a lane refused, by reason: queue_full (its priority's share of the queue bound), deadline (the backlog could not meet it), closed (draining), shed (refused before its body was read while the lane was stormed).",
      labelNames: ['lane', 'reason'],
      registers,
    });
    this.#dropped = new client.Counter({
      name: METRIC.droppedItems,
      help: 'Items dropped from a lane queue before reaching a worker, by reason (cancelled: every request waiting for it was cancelled or its client went away).',
      labelNames: ['lane', 'reason'],
      registers,
    });
    this.#workerDeaths = new client.Counter({
      name: METRIC.workerDeaths,
      help: 'Lane workers that died (an uncaught error, the thread exiting, its heap limit); each failed only its batch.',
      labelNames: ['lane'],
      registers,
    });
    this.#workerRestarts = new client.Counter({
      name: METRIC.workerRestarts,
      help: 'Replacement workers that loaded their models and serve (after a death).',
      labelNames: ['lane'],
      registers,
    });
    new client.Gauge({
      name: METRIC.workers,
      help: 'Live workers per lane (a replacement counts once it has loaded its models); below the configured threads the lane is degraded.',
      labelNames: ['lane'],
      registers,
      collect() {
        for (const lane of sources.lanes()) this.set({ lane: lane.name }, lane.stats.workers.live);
      },
    });
    this.#fallbacks = new client.Counter({
      name: METRIC.fallbacks,
      help: 'Times a slower path stood in for the usual one, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.#authFailures = new client.Counter({
      name: METRIC.authFailures,
      help: 'Requests refused for their API key, by reason (missing, malformed, wrong). Keys themselves are never labels.',
      labelNames: ['reason'],
      registers,
    });
    this.#rateDecisions = new client.Counter({
      name: METRIC.rateDecisions,
      help: 'Rate-limit decisions by the store that made them (redis, local) and result (allowed, limited).',
      labelNames: ['store', 'result'],
      registers,
    });
    this.#cacheItems = new Tally({
      name: METRIC.cacheItems,
      help: 'Items by how they were answered: a cache tier hit, joined an identical computation, computed, or bypass (computed around the cache because it could not answer truthfully).',
      labelNames: ['lane', 'result'],
      registers,
    });
    new client.Gauge({
      name: METRIC.queueDepth,
      help: 'Items waiting for a batch, by priority.',
      labelNames: ['lane', 'priority'],
      registers,
      collect() {
        for (const lane of sources.lanes())
          for (const priority of PRIORITIES)
            this.set({ lane: lane.name, priority }, lane.stats.queuedByPriority[priority]);
      },
    });
    new client.Gauge({
      name: METRIC.queueCapacity,
      help: "Items a lane's queue holds at most (TWINLANE_*_MAX_QUEUE; each priority may use its share of it).",
      labelNames: ['lane'],
      registers,
      collect() {
        for (const lane of sources.lanes()) this.set({ lane: lane.name }, lane.stats.maxQueue);
      },
    });
    new client.Gauge({
      name: METRIC.inFlight,
      help: 'Items inside running batches.',
      labelNames: ['lane'],
      registers,
      collect() {
        for (const lane of sources.lanes()) this.set({ lane: lane.name }, lane.stats.running);
      },
    });
    new client.Gauge({
      name: METRIC.l1Bytes,
      help: 'Bytes held by the in-process cache.',
      registers,
      collect() {
        this.set(sources.cache().l1Bytes);
      },
    });
    new client.Gauge({
      name: METRIC.l1Entries,
      help: 'Entries in the in-process cache.',
      registers,
      collect() {
        this.set(sources.cache().l1Entries);
      },
    });
    // cache tiers
    this.#cacheLookups = new Tally({
      name: METRIC.cacheLookups,
      help: 'Cache lookups by tier (l1, redis) and result (hit, miss, error: Redis failed or timed out, skipped: circuit open).',
      labelNames: ['tier', 'result'],
      registers,
    });
    this.#cacheErrors = new client.Counter({
      name: METRIC.cacheErrors,
      help: 'Failed calls to a cache tier by reason (timeout, unavailable, command).',
      labelNames: ['tier', 'reason'],
      registers,
    });
    this.#cacheCorrupt = new client.Counter({
      name: METRIC.cacheCorrupt,
      help: 'Stored values that did not decode, deleted and treated as misses, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.#cacheWritesDropped = new client.Counter({
      name: METRIC.cacheWritesDropped,
      help: 'Vectors not written to Redis, by reason (breaker_open, backlog, error).',
      labelNames: ['reason'],
      registers,
    });
    this.#redisUp = new client.Gauge({
      name: METRIC.redisUp,
      help: '1 while the Redis cache tier is connected and its circuit closed; 0 otherwise (also when no Redis is configured).',
      registers,
    });
    this.#redisConfigured = new client.Gauge({
      name: METRIC.redisConfigured,
      help: '1 when a Redis cache tier is configured (TWINLANE_REDIS_URL), so that redis_up 0 means it is away.',
      registers,
    });
    this.#breakerState = new client.Gauge({
      name: METRIC.breakerState,
      help: 'Redis circuit breaker: 0 closed, 1 half-open (probing), 2 open.',
      registers,
    });
    this.#wsConnections = new client.Gauge({ name: METRIC.wsConnections, help: 'Open /ws sockets.', registers });
    this.#wsMessages = new client.Counter({
      name: METRIC.wsMessages,
      help: '/ws messages by direction (in, out) and kind (text, binary).',
      labelNames: ['direction', 'kind'],
      registers,
    });
    this.#wsItems = new client.Counter({
      name: METRIC.wsItems,
      help: 'Items answered over /ws by lane and result (cached: a cache tier; computed; failed: answered with an error).',
      labelNames: ['lane', 'result'],
      registers,
    });
    this.#wsRefused = new client.Counter({
      name: METRIC.wsRefused,
      help: '/ws requests or frames refused as a whole, by error code (too_many_in_flight, rate_limited, invalid_json, …).',
      labelNames: ['code'],
      registers,
    });
    this.#wsRequests = new client.Counter({
      name: METRIC.wsRequests,
      help: '/ws requests that ended, by how (complete, cancelled by the client or its socket closing, refused part-way).',
      labelNames: ['end'],
      registers,
    });
    this.#wsPauses = new client.Counter({
      name: METRIC.wsPauses,
      help: 'Times a /ws socket went over its high-water mark and stopped dispatching until the client read.',
      registers,
    });
    this.#wsClosed = new client.Counter({
      name: METRIC.wsClosed,
      help: '/ws sockets closed, by reason (client, slow_reader, shutdown, abnormal: lost, idle timeout or the hard backpressure bound).',
      labelNames: ['reason'],
      registers,
    });
    this.#batches = new client.Counter({
      name: METRIC.batches,
      help: 'Batches that reached a status here (in_progress when created; failed, completed, cancelled, expired when finalised).',
      labelNames: ['status'],
      registers,
    });
    this.#batchLines = new client.Counter({
      name: METRIC.batchLines,
      help: 'Batch lines computed on this instance, by outcome (completed: a 2xx answer; failed: an error answer).',
      labelNames: ['outcome'],
      registers,
    });
    this.#batchRetries = new client.Counter({
      name: METRIC.batchChunkRetries,
      help: 'Batch lines or chunks tried again: a transient refusal (live traffic first, a worker being replaced) or a failed chunk.',
      registers,
    });
    new client.Gauge({
      name: METRIC.batchQueue,
      help: 'Batch chunks waiting or running (every instance on one Redis sees the same queue).',
      registers,
      async collect() {
        this.set((await sources.batchQueue?.().catch(() => 0)) ?? 0);
      },
    });
  }

  onBatchStatus(status: BatchStatus): void {
    this.#batches.inc({ status });
  }

  onBatchLines(outcome: 'completed' | 'failed', count: number): void {
    this.#batchLines.inc({ outcome }, count);
  }

  onChunkRetry(): void {
    this.#batchRetries.inc();
  }

  /** `lane`: the lane the request was for, once known (`none`: refused before that, or a route without one). */
  request(route: string, lane: RequestLane, status: number, seconds: number): void {
    this.#requests.add(route, lane, status, () => ({ route, lane, status: String(status) }));
    this.#duration.observe(route, lane, '', () => ({ route, lane }), seconds);
  }

  error(route: string, code: string): void {
    this.#errors.inc({ route, code });
  }

  fallback(reason: 'tokens_counted_on_main_thread' | 'rate_limit_decided_locally', count = 1): void {
    this.#fallbacks.inc({ reason }, count);
  }

  authFailure(reason: AuthFailure): void {
    this.#authFailures.inc({ reason });
  }

  // RateLimitObserver
  onRateDecision(store: RateStore, allowed: boolean): void {
    this.#rateDecisions.inc({ store, result: allowed ? 'allowed' : 'limited' });
  }

  onRateFallback(): void {
    this.fallback('rate_limit_decided_locally');
  }

  cacheItems(lane: LaneName, result: CacheSource | 'bypass', count = 1): void {
    this.#cacheItems.add(lane, result, '', () => ({ lane, result }), count);
  }

  onBatch(lane: LaneName, model: string, info: BatchInfo): void {
    for (const priority of PRIORITIES) {
      const ms = info.queueMs[priority];
      if (ms !== undefined) this.#queueTime.observe({ lane, priority }, ms / 1000);
    }
    this.#batchTime.observe({ lane }, info.runMs / 1000);
    this.#batchSize.observe({ lane }, info.size);
    if (info.worker) {
      this.#prepareTime.observe({ lane, model }, info.worker.prepareMs / 1000);
      this.#modelTime.observe({ lane, model }, info.worker.modelMs / 1000);
      this.#modelCalls.inc({ lane, model }, info.worker.calls);
      if (lane === 'text') this.#batchTokens.observe({ lane }, info.worker.tokens);
    }
    this.#batchCost.observe({ lane }, info.paddedCost);
    this.#computed.inc({ lane }, info.size);
    this.#modelBatches.inc({ lane, model });
    this.#modelItems.inc({ lane, model }, info.size);
  }

  onWorkerDeath(lane: LaneName): void {
    this.#workerDeaths.inc({ lane });
  }

  onWorkerRestart(lane: LaneName): void {
    this.#workerRestarts.inc({ lane });
  }

  /**
   * A lane refused a request (its admission), or the server refused one of a stormed lane: before
   * reading its body (`shed`), or, answering it from L1 only, for an item not there (`uncached`).
   */
  onRejected(lane: LaneName, reason: RejectReason | 'shed' | 'uncached'): void {
    this.#rejections.inc({ lane, reason });
  }

  onDropped(lane: LaneName, reason: DropReason, count: number): void {
    this.#dropped.inc({ lane, reason }, count);
  }

  // CacheObserver
  onCacheLookups(tier: CacheTier, result: LookupResult, count: number): void {
    this.#cacheLookups.add(tier, result, '', () => ({ tier, result }), count);
  }

  onCacheError(tier: CacheTier, reason: CacheErrorReason): void {
    this.#cacheErrors.inc({ tier, reason });
  }

  onCacheCorrupt(reason: CorruptReason): void {
    this.#cacheCorrupt.inc({ reason });
  }

  onCacheWriteDropped(reason: WriteDropReason, count: number): void {
    this.#cacheWritesDropped.inc({ reason }, count);
  }

  onBreakerState(state: BreakerState): void {
    this.#breakerState.set(state === 'closed' ? 0 : state === 'half-open' ? 1 : 2);
  }

  onRedisState(state: RedisState): void {
    this.#redisUp.set(state === 'up' ? 1 : 0);
    this.#redisConfigured.set(state === 'disabled' ? 0 : 1);
  }

  // WebSocket streaming
  wsConnection(delta: 1 | -1): void {
    this.#wsConnections.inc(delta);
  }

  wsMessage(direction: 'in' | 'out', kind: 'text' | 'binary'): void {
    this.#wsMessages.inc({ direction, kind });
  }

  wsItems(lane: LaneName, result: 'cached' | 'computed' | 'failed', count: number): void {
    this.#wsItems.inc({ lane, result }, count);
  }

  wsRefused(code: string): void {
    this.#wsRefused.inc({ code });
  }

  wsRequestEnded(end: 'complete' | 'cancelled' | 'refused'): void {
    this.#wsRequests.inc({ end });
  }

  wsBackpressurePause(): void {
    this.#wsPauses.inc();
  }

  wsClosed(reason: 'client' | 'slow_reader' | 'shutdown' | 'abnormal'): void {
    this.#wsClosed.inc({ reason });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
