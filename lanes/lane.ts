// One lane: a piscina pool whose workers each own a model session, the micro-batcher in front of it,
// and admission. A full lane rejects at once (never parks a request), with a Retry-After estimated
// from its queue depth and its recent throughput.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import {
  Batcher,
  PRIORITIES,
  type BatchInfo,
  type BatchOutcome,
  type DropReason,
  type ItemOutcome,
  type Priority,
  type SubmitOptions,
  type SubmitOutcome,
} from './batcher.js';
import type { ItemError, LaneResult, LaneTask } from './protocol.js';
import { WorkerHealth } from './worker-health.js';
import type { FaultSpec } from './faults.js';

export type LaneName = 'text' | 'image';
/** queue_full: over the queue bound of the request's priority; deadline: it could not be computed in time; closed: draining. */
export type RejectReason = 'queue_full' | 'deadline' | 'closed';

/**
 * The share of the queue bound each priority may fill: low is refused first, at half the bound, and
 * high may go past it, so a full lane still takes what matters most.
 */
const QUEUE_SHARE: Readonly<Record<Priority, number>> = { high: 1.5, normal: 1, low: 0.5 };

/** How fast recently refused items stop counting toward Retry-After. */
const REFUSED_HALF_LIFE_MS = 2000;

/** What every worker of a lane is held to. */
export interface WorkerLimits {
  /** V8 heap limit per worker in MiB (piscina's resourceLimits); 0: Node's default. */
  readonly maxHeapMb: number;
  readonly faults: readonly FaultSpec[];
}

/** Lanes report what happens to them; the owner (src/metrics) decides how it is counted. */
export interface LaneObserver {
  /** A batch ran; `model` is the id of every one of its items' model. */
  onBatch(lane: LaneName, model: string, info: BatchInfo): void;
  onRejected(lane: LaneName, reason: RejectReason): void;
  /** `count` items were dropped from the queue before reaching a worker (nobody waited for them any more). */
  onDropped(lane: LaneName, reason: DropReason, count: number): void;
  /** A worker died (its batch failed); piscina is replacing it. */
  onWorkerDeath(lane: LaneName): void;
  /** A replacement worker loaded its models and serves. */
  onWorkerRestart(lane: LaneName): void;
}

/** The worker running a batch died: the batch's items fail, the lane goes on with a replacement. */
export class LaneFailedError extends Error {
  readonly lane: LaneName;
  readonly retryAfterSeconds: number;

  constructor(lane: LaneName, retryAfterSeconds: number, cause: unknown) {
    super(`A ${lane} lane worker died while computing this request's batch; retry after ${retryAfterSeconds} s.`, {
      cause,
    });
    this.name = 'LaneFailedError';
    this.lane = lane;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export class LaneRejectedError extends Error {
  readonly lane: LaneName;
  readonly reason: RejectReason;
  readonly retryAfterSeconds: number;

  constructor(lane: LaneName, reason: RejectReason, retryAfterSeconds: number) {
    // Refusing is the lane working as designed, often thousands of times a second under a flood:
    // a stack trace would cost more than the refusal itself and nobody reads it.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(
      reason === 'closed'
        ? `The ${lane} lane is shutting down.`
        : reason === 'deadline'
          ? `The ${lane} lane's backlog would take longer than the request's deadline; retry later or allow more time.`
          : `The ${lane} lane is at capacity; retry after ${retryAfterSeconds} s.`,
    );
    Error.stackTraceLimit = stackTraceLimit;
    this.name = 'LaneRejectedError';
    this.lane = lane;
    this.reason = reason;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface LaneStats {
  readonly queued: number;
  readonly queuedByPriority: Readonly<Record<Priority, number>>;
  readonly running: number;
  readonly maxQueue: number;
  readonly ready: boolean;
  /** Fewer live workers than configured (a replacement is loading). */
  readonly degraded: boolean;
  readonly workers: {
    readonly live: number;
    readonly configured: number;
    readonly restarts: number;
    /** How long the next batch waits after consecutive worker deaths (0 when healthy). */
    readonly backoffMs: number;
  };
}

/** What a request asks of admission besides its items: its priority and its deadline. */
export interface LaneRequest<E> extends SubmitOptions<E> {
  /** performance.now() by which the items must have been computed; refused at once if the backlog says it cannot be. */
  readonly deadline?: number | undefined;
}

/** What owners need of any lane, whatever its item type: identity, readiness, gauges, shutdown. */
export interface LaneHandle {
  readonly name: LaneName;
  readonly ready: boolean;
  /** True while a new normal-priority item would be refused (queue at its bound, or closing). */
  readonly refusing: boolean;
  /** Normal-priority items the queue takes before it refuses. */
  readonly room: number;
  /** Requests refused by admission so far. */
  readonly rejections: number;
  retryAfterSeconds(priority?: Priority): number;
  /** A request for the lane was refused before reaching it (shed by the server): it will be back too. */
  noteShed(items: number): void;
  stats(): LaneStats;
  close(): Promise<void>;
}

export interface LaneSettings<I> {
  readonly name: LaneName;
  readonly workerFile: string;
  readonly workerData: object;
  readonly threads: number;
  /** V8 heap limit of each worker (piscina's resourceLimits); 0: Node's default. */
  readonly maxHeapMb: number;
  readonly maxQueue: number;
  readonly maxBatchItems: number;
  readonly maxBatchCost: number;
  /** The share of the workers bulk (low-priority) batches may hold while live traffic is about. */
  readonly bulkShare?: number;
  readonly cost: (item: I) => number;
  /** The lane's model ids; an item names its model by position (`model(item)`), and a batch holds one model's items. */
  readonly models: readonly string[];
  readonly model: (item: I) => number;
  readonly task: (batchId: number, items: readonly I[]) => LaneTask;
  readonly observer?: LaneObserver;
}

/** Worker threads load plain JavaScript. Under vitest this module runs from its TypeScript source,
 * so it points at the compiled copy that `npm test` builds first. */
export function workerPath(name: string): string {
  const here = fileURLToPath(import.meta.url);
  const dir = here.endsWith('.ts') ? path.resolve(path.dirname(here), '../dist/lanes') : path.dirname(here);
  return path.join(dir, `${name}.js`);
}

function toOutcomes(result: LaneResult, batchId: number, size: number): BatchOutcome<ItemError> {
  if (result.type !== 'batch-result' || result.batchId !== batchId) {
    throw new Error(`batch ${batchId} got a ${result.type} for batch ${result.batchId}. This is a bug.`);
  }
  const failed = new Map(result.errors.map((e) => [e.index, e]));
  const items: ItemOutcome<ItemError>[] = [];
  for (let i = 0; i < size; i++) {
    const error = failed.get(i);
    items.push(
      error
        ? { ok: false, error }
        : { ok: true, vector: result.vectors.slice(i * result.dims, (i + 1) * result.dims), tokens: result.tokens[i]! },
    );
  }
  let tokens = 0;
  for (const n of result.tokens) tokens += n;
  return {
    items,
    inferenceMs: result.inferenceMs,
    paddedCost: result.paddedTokens,
    worker: { prepareMs: result.prepareMs, modelMs: result.modelMs, tokens, calls: result.calls },
  };
}

export class Lane<I> implements LaneHandle {
  readonly name: LaneName;
  readonly #settings: LaneSettings<I>;
  readonly #pool: Piscina<LaneTask, LaneResult>;
  readonly #batcher: Batcher<I, ItemError>;
  readonly #health: WorkerHealth;
  #nextBatchId = 1;
  #ready = false;
  #closed = false;
  /** Items per second the lane has recently sustained (EWMA), for Retry-After. */
  #throughput = 0;

  constructor(settings: LaneSettings<I>) {
    this.name = settings.name;
    this.#settings = settings;
    this.#pool = new Piscina<LaneTask, LaneResult>({
      filename: settings.workerFile,
      workerData: settings.workerData,
      minThreads: settings.threads,
      maxThreads: settings.threads,
      // The batcher keeps at most one batch per worker in flight, so piscina's own queue never
      // holds more than this; waiting happens in the batcher, where items can still be coalesced.
      maxQueue: settings.threads,
      concurrentTasksPerWorker: 1,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      ...(settings.maxHeapMb > 0 ? { resourceLimits: { maxOldGenerationSizeMb: settings.maxHeapMb } } : {}),
    });
    this.#health = new WorkerHealth(this.#pool, settings.threads, {
      onDeath: () => settings.observer?.onWorkerDeath(this.name),
      onRestart: () => settings.observer?.onWorkerRestart(this.name),
    });
    this.#batcher = new Batcher<I, ItemError>({
      maxItems: settings.maxBatchItems,
      maxCost: settings.maxBatchCost,
      concurrency: settings.threads,
      ...(settings.bulkShare === undefined ? {} : { bulkShare: settings.bulkShare }),
      cost: settings.cost,
      group: settings.model,
      run: (items) => this.#run(items),
      onBatch: (info) => {
        const rate = (info.size / Math.max(info.runMs, 0.001)) * 1000 * settings.threads;
        this.#throughput = this.#throughput === 0 ? rate : this.#throughput * 0.8 + rate * 0.2;
        settings.observer?.onBatch(this.name, settings.models[info.group] ?? String(info.group), info);
      },
      onDropped: (count, reason) => settings.observer?.onDropped(this.name, reason, count),
    });
  }

  async #run(items: readonly I[]): Promise<BatchOutcome<ItemError>> {
    const wait = this.#health.backoffMs();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const batchId = this.#nextBatchId++;
    const deaths = this.#health.deaths;
    let result: LaneResult;
    try {
      result = await this.#pool.run(this.#settings.task(batchId, items));
    } catch (error) {
      // piscina removes a dead worker before failing its task, so the count has grown by now.
      if (this.#health.deaths > deaths) throw new LaneFailedError(this.name, this.#health.retryAfterSeconds(), error);
      throw error;
    }
    this.#health.succeeded();
    return toOutcomes(result, batchId, items.length);
  }

  get ready(): boolean {
    return this.#ready;
  }

  stats(): LaneStats {
    const queuedByPriority = Object.fromEntries(PRIORITIES.map((p) => [p, this.#batcher.queuedAt(p)])) as Record<
      Priority,
      number
    >;
    return {
      queued: this.#batcher.queued,
      queuedByPriority,
      running: this.#batcher.running,
      maxQueue: this.#settings.maxQueue,
      ready: this.#ready,
      degraded: this.#health.degraded,
      workers: {
        live: this.#health.live,
        configured: this.#health.configured,
        restarts: this.#health.restarts,
        backoffMs: Math.round(this.#health.backoffMs()),
      },
    };
  }

  /** True while a new normal-priority item would be refused: the queue is at its bound (or the lane is closing). */
  get refusing(): boolean {
    return this.#closed || this.#batcher.queued >= this.#settings.maxQueue;
  }

  get room(): number {
    return this.#closed ? 0 : Math.max(0, this.#settings.maxQueue - this.#batcher.queued);
  }

  /** Items refused recently that will come back: a count decaying with a half-life of REFUSED_HALF_LIFE_MS. */
  #refused = 0;
  #refusedAt = 0;

  #recentlyRefused(now: number): number {
    this.#refused *= 0.5 ** ((now - this.#refusedAt) / REFUSED_HALF_LIFE_MS);
    this.#refusedAt = now;
    return this.#refused;
  }

  /**
   * Seconds until what a new `priority` request would wait behind clears at the recent rate: its
   * priority and above, queued or running, plus the items refused recently, which are on their way
   * back (so clients refused together are told to come back at different times instead of all at
   * once). At least 1, so a client that honours it is not back before anything changed.
   */
  retryAfterSeconds(priority: Priority = 'normal'): number {
    if (this.#throughput <= 0) return 1;
    const waiting = this.#batcher.ahead(priority) + this.#recentlyRefused(performance.now());
    return Math.max(1, Math.ceil(waiting / this.#throughput));
  }

  #rejections = 0;

  get rejections(): number {
    return this.#rejections;
  }

  noteShed(items: number): void {
    this.#refused = this.#recentlyRefused(performance.now()) + items;
  }

  #refuse(reason: RejectReason, priority: Priority, items: number): Promise<never> {
    this.#rejections++;
    this.#refused = this.#recentlyRefused(performance.now()) + items;
    this.#settings.observer?.onRejected(this.name, reason);
    return Promise.reject(new LaneRejectedError(this.name, reason, this.retryAfterSeconds(priority)));
  }

  /**
   * All of a request's items are admitted together or none is: no partial answers. An empty queue
   * takes any request, so one larger than the queue bound (but within the per-request limit) is
   * served when the lane is free instead of being refused forever. Each priority fills its share of
   * the bound (QUEUE_SHARE); a request with a deadline its place in the backlog cannot meet, at the
   * rate the lane has recently sustained, is refused now rather than queued to fail later.
   */
  embed(items: readonly I[], request: LaneRequest<ItemError> = {}): Promise<SubmitOutcome<ItemError>> {
    const priority = request.priority ?? 'normal';
    if (this.#closed) return this.#refuse('closed', priority, items.length);
    const queued = this.#batcher.queued;
    if (queued > 0 && queued + items.length > this.#settings.maxQueue * QUEUE_SHARE[priority])
      return this.#refuse('queue_full', priority, items.length);
    if (request.deadline !== undefined && this.#throughput > 0) {
      const doneAt = performance.now() + ((this.#batcher.ahead(priority) + items.length) / this.#throughput) * 1000;
      if (doneAt > request.deadline) return this.#refuse('deadline', priority, items.length);
    }
    return this.#batcher.submit(items, request);
  }

  /** Runs one warm-up per worker (each runs all of its models) so the first real request does not pay for lazy initialisation. */
  async warmup(): Promise<void> {
    await Promise.all(
      Array.from({ length: this.#settings.threads }, async () => {
        const batchId = this.#nextBatchId++;
        const result = await this.#pool.run({ type: 'warmup', batchId });
        if (result.type !== 'warmup-result' || result.batchId !== batchId)
          throw new Error(`warm-up got ${result.type}. This is a bug.`);
      }),
    );
    this.#health.started();
    this.#ready = true;
  }

  /** Stops admitting, lets everything admitted finish, then ends the workers. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#ready = false;
    await this.#batcher.drained();
    this.#health.closing();
    await this.#pool.destroy();
  }
}
