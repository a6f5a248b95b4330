// The micro-batcher: the single owner of a lane's waiting items. Concurrent requests' items are
// coalesced into one model call, bounded by items and by padded cost (items × the largest item's
// cost, i.e. padded tokens for text). A batch is formed the moment a worker is free, so a lone
// request never waits for company, and while batches run the next ones fill up from new arrivals.
// An item is asked whether it is still wanted as it is about to join a batch: one whose requests
// all went away (cancelled stream, aborted HTTP client) is dropped there and never reaches a worker.

export type DropReason = 'cancelled';

export type ItemOutcome<E> =
  | { readonly ok: true; readonly vector: Float32Array; readonly tokens: number }
  | { readonly ok: false; readonly error: E }
  | { readonly ok: false; readonly dropped: DropReason };

export interface BatchOutcome<E> {
  /** One outcome per item of the batch: a vector or that item's own error (never `dropped`). */
  readonly items: readonly ItemOutcome<E>[];
  readonly inferenceMs: number;
}

export interface BatchInfo {
  readonly size: number;
  readonly paddedCost: number;
  readonly queueMs: number;
  readonly runMs: number;
}

export interface BatcherOptions<I, E> {
  readonly maxItems: number;
  readonly maxCost: number;
  /** Batches allowed to run at once: one per worker, so a batch never waits inside the pool. */
  readonly concurrency: number;
  readonly cost: (item: I) => number;
  readonly run: (items: readonly I[]) => Promise<BatchOutcome<E>>;
  readonly onBatch?: (info: BatchInfo) => void;
  /** `count` items were dropped before reaching a worker. */
  readonly onDropped?: (count: number, reason: DropReason) => void;
}

export interface SubmitOptions<E> {
  /** Asked as the item is about to join a batch; false drops it there (outcome `dropped: 'cancelled'`). */
  readonly wanted?: (index: number) => boolean;
  /** Told as each item settles (its batch finished, or it was dropped), before the request as a whole. */
  readonly onItem?: (index: number, outcome: ItemOutcome<E>, timing: ItemTiming) => void;
}

export interface ItemTiming {
  /** Between submit and the item's batch starting. */
  readonly queueMs: number;
  /** The model call that carried the item (0 when dropped). */
  readonly inferenceMs: number;
}

export interface SubmitOutcome<E> {
  readonly items: readonly ItemOutcome<E>[];
  /** Longest wait of any of the request's items between submit and its batch starting. */
  readonly queueMs: number;
  /** Longest model call that carried any of the request's items. */
  readonly inferenceMs: number;
}

class RequestSlot<E> {
  readonly outcomes: (ItemOutcome<E> | undefined)[];
  readonly #options: SubmitOptions<E>;
  #pending: number;
  #queueMs = 0;
  #inferenceMs = 0;
  failed = false;
  readonly promise: Promise<SubmitOutcome<E>>;
  #resolve!: (value: SubmitOutcome<E>) => void;
  #reject!: (error: unknown) => void;

  constructor(size: number, options: SubmitOptions<E>) {
    this.outcomes = new Array<ItemOutcome<E> | undefined>(size);
    this.#options = options;
    this.#pending = size;
    this.promise = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  wanted(index: number): boolean {
    return !this.failed && (this.#options.wanted?.(index) ?? true);
  }

  settle(index: number, outcome: ItemOutcome<E>, queueMs: number, inferenceMs: number): void {
    if (this.failed) return;
    if (this.outcomes[index] !== undefined) throw new Error(`item ${index} settled twice. This is a bug.`);
    this.outcomes[index] = outcome;
    this.#queueMs = Math.max(this.#queueMs, queueMs);
    this.#inferenceMs = Math.max(this.#inferenceMs, inferenceMs);
    this.#options.onItem?.(index, outcome, { queueMs, inferenceMs });
    if (--this.#pending === 0) {
      this.#resolve({ items: this.outcomes as ItemOutcome<E>[], queueMs: this.#queueMs, inferenceMs: this.#inferenceMs });
    }
  }

  fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.#reject(error);
  }
}

interface Entry<I, E> {
  readonly item: I;
  readonly index: number;
  readonly cost: number;
  readonly slot: RequestSlot<E>;
  readonly enqueuedAt: number;
}

export class Batcher<I, E> {
  readonly #options: BatcherOptions<I, E>;
  #queue: Entry<I, E>[] = [];
  #head = 0;
  /** Entries in the queue not yet taken or skipped. */
  #queued = 0;
  #running = 0;
  #runningItems = 0;
  #idle: (() => void)[] = [];

  constructor(options: BatcherOptions<I, E>) {
    this.#options = options;
  }

  /** Items waiting for a batch. */
  get queued(): number {
    return this.#queued;
  }

  /** Items inside batches that are running. */
  get running(): number {
    return this.#runningItems;
  }

  submit(items: readonly I[], options: SubmitOptions<E> = {}): Promise<SubmitOutcome<E>> {
    if (items.length === 0) throw new Error('submit() with no items. This is a bug.');
    const slot = new RequestSlot<E>(items.length, options);
    const now = performance.now();
    items.forEach((item, index) => {
      this.#queue.push({ item, index, cost: Math.max(1, this.#options.cost(item)), slot, enqueuedAt: now });
    });
    this.#queued += items.length;
    this.#pump();
    return slot.promise;
  }

  /** Resolves once nothing is queued or running. */
  drained(): Promise<void> {
    if (this.queued === 0 && this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    while (this.#running < this.#options.concurrency && this.queued > 0) {
      const batch = this.#take();
      if (batch.length > 0) void this.#dispatch(batch);
    }
    if (this.queued === 0 && this.#running === 0) {
      // The queue array only ever grows at the tail; reset it when empty so it never leaks.
      this.#queue = [];
      this.#head = 0;
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  /** The next batch from the head of the queue; unwanted items met on the way are dropped. */
  #take(): Entry<I, E>[] {
    const { maxItems, maxCost } = this.#options;
    const batch: Entry<I, E>[] = [];
    let widest = 0;
    let dropped = 0;
    while (this.#head < this.#queue.length && batch.length < maxItems) {
      const entry = this.#queue[this.#head]!;
      if (!entry.slot.wanted(entry.index)) {
        this.#head++;
        this.#queued--;
        if (!entry.slot.failed) {
          dropped++;
          entry.slot.settle(entry.index, { ok: false, dropped: 'cancelled' }, 0, 0);
        }
        continue;
      }
      const nextWidest = Math.max(widest, entry.cost);
      if (batch.length > 0 && (batch.length + 1) * nextWidest > maxCost) break;
      batch.push(entry);
      widest = nextWidest;
      this.#head++;
      this.#queued--;
    }
    if (dropped > 0) this.#options.onDropped?.(dropped, 'cancelled');
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return batch;
  }

  async #dispatch(batch: Entry<I, E>[]): Promise<void> {
    this.#running++;
    this.#runningItems += batch.length;
    const started = performance.now();
    try {
      const outcome = await this.#options.run(batch.map((e) => e.item));
      if (outcome.items.length !== batch.length) {
        throw new Error(`batch of ${batch.length} items returned ${outcome.items.length} outcomes. This is a bug.`);
      }
      const runMs = performance.now() - started;
      this.#options.onBatch?.({
        size: batch.length,
        paddedCost: batch.length * Math.max(...batch.map((e) => e.cost)),
        queueMs: Math.max(...batch.map((e) => started - e.enqueuedAt)),
        runMs,
      });
      batch.forEach((entry, k) => entry.slot.settle(entry.index, outcome.items[k]!, started - entry.enqueuedAt, outcome.inferenceMs));
    } catch (error) {
      for (const entry of batch) entry.slot.fail(error);
    } finally {
      this.#running--;
      this.#runningItems -= batch.length;
      this.#pump();
    }
  }
}
