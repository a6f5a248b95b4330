// One lane: a piscina pool whose workers each own a model session, the micro-batcher in front of it,
// and admission. A full lane rejects at once (never parks a request), with a Retry-After estimated
// from its queue depth and its recent throughput.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { Batcher, type BatchInfo, type BatchOutcome, type DropReason, type ItemOutcome, type SubmitOptions, type SubmitOutcome } from './batcher.js';
import type { ItemError, LaneResult, LaneTask } from './protocol.js';

export type LaneName = 'text' | 'image';
export type RejectReason = 'queue_full' | 'closed';

/** Lanes report what happens to them; the owner (src/metrics) decides how it is counted. */
export interface LaneObserver {
  onBatch(lane: LaneName, info: BatchInfo): void;
  onRejected(lane: LaneName, reason: RejectReason): void;
  /** `count` items were dropped from the queue before reaching a worker (nobody waited for them any more). */
  onDropped(lane: LaneName, reason: DropReason, count: number): void;
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
    super(reason === 'closed' ? `The ${lane} lane is shutting down.` : `The ${lane} lane is at capacity; retry after ${retryAfterSeconds} s.`);
    Error.stackTraceLimit = stackTraceLimit;
    this.name = 'LaneRejectedError';
    this.lane = lane;
    this.reason = reason;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface LaneStats {
  readonly queued: number;
  readonly running: number;
  readonly maxQueue: number;
  readonly ready: boolean;
}

/** What owners need of any lane, whatever its item type: identity, readiness, gauges, shutdown. */
export interface LaneHandle {
  readonly name: LaneName;
  readonly ready: boolean;
  stats(): LaneStats;
  close(): Promise<void>;
}

export interface LaneSettings<I> {
  readonly name: LaneName;
  readonly workerFile: string;
  readonly workerData: object;
  readonly threads: number;
  readonly maxQueue: number;
  readonly maxBatchItems: number;
  readonly maxBatchCost: number;
  readonly cost: (item: I) => number;
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
  return { items, inferenceMs: result.inferenceMs };
}

export class Lane<I> implements LaneHandle {
  readonly name: LaneName;
  readonly #settings: LaneSettings<I>;
  readonly #pool: Piscina<LaneTask, LaneResult>;
  readonly #batcher: Batcher<I, ItemError>;
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
    });
    this.#batcher = new Batcher<I, ItemError>({
      maxItems: settings.maxBatchItems,
      maxCost: settings.maxBatchCost,
      concurrency: settings.threads,
      cost: settings.cost,
      run: (items) => this.#run(items),
      onBatch: (info) => {
        const rate = (info.size / Math.max(info.runMs, 0.001)) * 1000 * settings.threads;
        this.#throughput = this.#throughput === 0 ? rate : this.#throughput * 0.8 + rate * 0.2;
        settings.observer?.onBatch(this.name, info);
      },
      onDropped: (count, reason) => settings.observer?.onDropped(this.name, reason, count),
    });
  }

  async #run(items: readonly I[]): Promise<BatchOutcome<ItemError>> {
    const batchId = this.#nextBatchId++;
    const result = await this.#pool.run(this.#settings.task(batchId, items));
    return toOutcomes(result, batchId, items.length);
  }

  get ready(): boolean {
    return this.#ready;
  }

  stats(): LaneStats {
    return { queued: this.#batcher.queued, running: this.#batcher.running, maxQueue: this.#settings.maxQueue, ready: this.#ready };
  }

  /** Seconds until the current backlog would clear at the recent rate (at least 1). */
  retryAfterSeconds(): number {
    const backlog = this.#batcher.queued + this.#batcher.running;
    if (this.#throughput <= 0) return 1;
    return Math.max(1, Math.ceil(backlog / this.#throughput));
  }

  /**
   * All of a request's items are admitted together or none is: no partial answers. An empty queue
   * takes any request, so one larger than the queue bound (but within the per-request limit) is
   * served when the lane is free instead of being refused forever.
   */
  embed(items: readonly I[], options: SubmitOptions<ItemError> = {}): Promise<SubmitOutcome<ItemError>> {
    const queued = this.#batcher.queued;
    const full = queued > 0 && queued + items.length > this.#settings.maxQueue;
    const reason: RejectReason | null = this.#closed ? 'closed' : full ? 'queue_full' : null;
    if (reason) {
      this.#settings.observer?.onRejected(this.name, reason);
      return Promise.reject(new LaneRejectedError(this.name, reason, this.retryAfterSeconds()));
    }
    return this.#batcher.submit(items, options);
  }

  /** Runs one warm-up per worker so the first real request does not pay for lazy initialisation. */
  async warmup(): Promise<void> {
    await Promise.all(
      Array.from({ length: this.#settings.threads }, async () => {
        const batchId = this.#nextBatchId++;
        const result = await this.#pool.run({ type: 'warmup', batchId });
        if (result.type !== 'warmup-result' || result.batchId !== batchId) throw new Error(`warm-up got ${result.type}. This is a bug.`);
      }),
    );
    this.#ready = true;
  }

  /** Stops admitting, lets everything admitted finish, then ends the workers. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#ready = false;
    await this.#batcher.drained();
    await this.#pool.destroy();
  }
}
