// The micro-batcher: the single owner of a lane's waiting items. Concurrent requests' items are
// coalesced into one model call, bounded by items and by padded cost (items × the largest item's
// cost, i.e. padded tokens for text). A batch is formed the moment a worker is free, so a lone
// request never waits for company, and while batches run the next ones fill up from new arrivals.
// Items wait in one queue per priority and group (a lane's models: a batch never mixes them), and a
// batch is filled from the highest priority first, so a lower-priority item never delays a higher one
// by more than the batch already running; among groups, the one whose head has waited longest goes. An item is
// asked whether it is still wanted as it is about to join a batch: one whose requests all went away
// (cancelled, client gone, deadline passed) is dropped there and never reaches a worker.

export type Priority = 'high' | 'normal' | 'low';
export const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low'];

/** How long after a live item bulk work keeps to its share of the workers. */
const LIVE_WINDOW_MS = 1000;
/** Bulk work's default share of the workers while live traffic is about. */
export const DEFAULT_BULK_SHARE = 0.5;

/** cancelled: every request waiting for it was cancelled or went away; deadline: their deadlines passed. */
export type DropReason = 'cancelled' | 'deadline';

export type ItemOutcome<E> =
  | { readonly ok: true; readonly vector: Float32Array; readonly tokens: number }
  | { readonly ok: false; readonly error: E }
  | { readonly ok: false; readonly dropped: DropReason };

export interface BatchOutcome<E> {
  /** One outcome per item of the batch: a vector or that item's own error (never `dropped`). */
  readonly items: readonly ItemOutcome<E>[];
  readonly inferenceMs: number;
  /** The padded cost the worker really ran (its own tokenisation); absent: the batcher's estimate stands. */
  readonly paddedCost?: number;
  /** How the worker spent its time and what it really ran, when it reports them. */
  readonly worker?: WorkerReport;
}

/** A worker's own account of one batch. */
export interface WorkerReport {
  /** Text: tokenising. Images: decoding and preprocessing. */
  readonly prepareMs: number;
  /** Inside the model runtime. */
  readonly modelMs: number;
  /** Text: real tokens over the batch's items, special tokens included; images: 0. */
  readonly tokens: number;
  /** Model runtime run calls the batch took. */
  readonly calls: number;
}

export interface BatchInfo {
  /** The group (model) of every item of the batch. */
  readonly group: number;
  readonly size: number;
  /** Padded cost of the model call: the worker's count when it gave one, else items × the largest estimated cost. */
  readonly paddedCost: number;
  /** Longest wait of the batch's items, per priority present in the batch. */
  readonly queueMs: Readonly<Partial<Record<Priority, number>>>;
  /** Seen from the main thread: the batch handed to its worker until its result came back. */
  readonly runMs: number;
  readonly worker?: WorkerReport | undefined;
}

export interface BatcherOptions<I, E> {
  readonly maxItems: number;
  readonly maxCost: number;
  /** Batches allowed to run at once: one per worker, so a batch never waits inside the pool. */
  readonly concurrency: number;
  /**
   * The share of `concurrency` low-priority (bulk) batches may hold while live traffic is about, in
   * (0, 1]; at least one worker. Default DEFAULT_BULK_SHARE.
   */
  readonly bulkShare?: number;
  readonly cost: (item: I) => number;
  /** Items of different groups never share a batch (a lane's models); absent: one group. */
  readonly group?: (item: I) => number;
  readonly run: (items: readonly I[]) => Promise<BatchOutcome<E>>;
  readonly onBatch?: (info: BatchInfo) => void;
  /** `count` items were dropped before reaching a worker. */
  readonly onDropped?: (count: number, reason: DropReason) => void;
}

export interface ItemTiming {
  /** Between submit and the item's batch starting. */
  readonly queueMs: number;
  /** The model call that carried the item (0 when dropped). */
  readonly inferenceMs: number;
}

export interface SubmitOptions<E> {
  readonly priority?: Priority;
  /** Asked as the item is about to join a batch: a reason drops it there (outcome `dropped`), null keeps it. */
  readonly unwanted?: (index: number) => DropReason | null;
  /** Told as each item settles (its batch finished, or it was dropped), before the request as a whole. */
  readonly onItem?: (index: number, outcome: ItemOutcome<E>, timing: ItemTiming) => void;
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

  /** Why the item should not join a batch (null: it should). A failed request's items are dropped silently. */
  unwanted(index: number): DropReason | null {
    if (this.failed) return 'cancelled';
    return this.#options.unwanted?.(index) ?? null;
  }

  settle(index: number, outcome: ItemOutcome<E>, queueMs: number, inferenceMs: number): void {
    if (this.failed) return;
    if (this.outcomes[index] !== undefined) throw new Error(`item ${index} settled twice. This is a bug.`);
    this.outcomes[index] = outcome;
    this.#queueMs = Math.max(this.#queueMs, queueMs);
    this.#inferenceMs = Math.max(this.#inferenceMs, inferenceMs);
    this.#options.onItem?.(index, outcome, { queueMs, inferenceMs });
    if (--this.#pending === 0) {
      this.#resolve({
        items: this.outcomes as ItemOutcome<E>[],
        queueMs: this.#queueMs,
        inferenceMs: this.#inferenceMs,
      });
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
  readonly group: number;
  readonly priority: Priority;
  readonly slot: RequestSlot<E>;
  readonly enqueuedAt: number;
}

/** One priority's FIFO: an array with a moving head, compacted as it is consumed. */
class Fifo<T> {
  #items: T[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  peek(): T | undefined {
    return this.#items[this.#head];
  }

  shift(): void {
    this.#head++;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }
}

type Queues<I, E> = Readonly<Record<Priority, Fifo<Entry<I, E>>>>;

export class Batcher<I, E> {
  readonly #options: BatcherOptions<I, E>;
  /** Per group, one FIFO per priority; groups are a lane's models, so there are few and they stay. */
  readonly #groups = new Map<number, Queues<I, E>>();
  readonly #queuedAt: Record<Priority, number> = { high: 0, normal: 0, low: 0 };
  #running = 0;
  #runningItems = 0;
  /** Batches of low-priority (bulk) items running, and when a live item last arrived. */
  #runningLow = 0;
  #liveAt = Number.NEGATIVE_INFINITY;
  #lowTimer: NodeJS.Timeout | null = null;
  /** Low-priority batches allowed to run while live traffic is about. */
  readonly #bulkWorkers: number;
  #idle: (() => void)[] = [];

  constructor(options: BatcherOptions<I, E>) {
    this.#options = options;
    const share = options.bulkShare ?? DEFAULT_BULK_SHARE;
    if (!(share > 0 && share <= 1)) throw new Error(`bulkShare must be in (0, 1] (got ${share}). This is a bug.`);
    this.#bulkWorkers = Math.max(1, Math.floor(options.concurrency * share));
  }

  /** Items waiting for a batch. */
  get queued(): number {
    return this.#queuedAt.high + this.#queuedAt.normal + this.#queuedAt.low;
  }

  /** Items waiting at `priority`. */
  queuedAt(priority: Priority): number {
    return this.#queuedAt[priority];
  }

  /** Items a new `priority` item waits behind: those of its priority and above, queued or running. */
  ahead(priority: Priority): number {
    let n = this.#runningItems;
    for (const p of PRIORITIES) {
      n += this.#queuedAt[p];
      if (p === priority) break;
    }
    return n;
  }

  /** Items inside batches that are running. */
  get running(): number {
    return this.#runningItems;
  }

  submit(items: readonly I[], options: SubmitOptions<E> = {}): Promise<SubmitOutcome<E>> {
    if (items.length === 0) throw new Error('submit() with no items. This is a bug.');
    const slot = new RequestSlot<E>(items.length, options);
    const priority = options.priority ?? 'normal';
    const now = performance.now();
    if (priority !== 'low') this.#liveAt = now;
    const { cost, group } = this.#options;
    items.forEach((item, index) => {
      const g = group?.(item) ?? 0;
      this.#queuesOf(g)[priority].push({
        item,
        index,
        cost: Math.max(1, cost(item)),
        group: g,
        priority,
        slot,
        enqueuedAt: now,
      });
    });
    this.#queuedAt[priority] += items.length;
    this.#pump();
    return slot.promise;
  }

  #queuesOf(group: number): Queues<I, E> {
    let queues = this.#groups.get(group);
    if (!queues) {
      queues = { high: new Fifo(), normal: new Fifo(), low: new Fifo() };
      this.#groups.set(group, queues);
    }
    return queues;
  }

  /** Resolves once nothing is queued or running. */
  drained(): Promise<void> {
    if (this.queued === 0 && this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Bulk work's share while live traffic is about (a live item within LIVE_WINDOW_MS): at most
   * `bulkShare` of the workers (at least one) run low-priority batches, so a live item that arrives
   * finds a worker free soon instead of waiting behind bulk batches on every worker. Alone, bulk work
   * uses them all.
   */
  #lowBlocked(): boolean {
    if (this.#queuedAt.high + this.#queuedAt.normal > 0) return false;
    const sinceLive = performance.now() - this.#liveAt;
    if (sinceLive >= LIVE_WINDOW_MS || this.#runningLow < this.#bulkWorkers) return false;
    // Try again once the live window has passed, if nothing else wakes the pump first.
    if (this.#lowTimer === null)
      this.#lowTimer = setTimeout(() => {
        this.#lowTimer = null;
        this.#pump();
      }, LIVE_WINDOW_MS - sinceLive).unref();
    return true;
  }

  #pump(): void {
    while (this.#running < this.#options.concurrency && this.queued > 0 && !this.#lowBlocked()) {
      const batch = this.#take();
      if (batch.length > 0) void this.#dispatch(batch);
    }
    if (this.queued === 0 && this.#running === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  /**
   * The next batch: the group whose head at the highest waiting priority has waited longest, filled
   * from that group's queues, highest priority first. Unwanted items met on the way are dropped.
   */
  #take(): Entry<I, E>[] {
    const dropped: Record<DropReason, number> = { cancelled: 0, deadline: 0 };
    const queues = this.#nextGroup(dropped);
    const batch = queues ? this.#fill(queues, dropped) : [];
    for (const reason of ['cancelled', 'deadline'] as const)
      if (dropped[reason] > 0) this.#options.onDropped?.(dropped[reason], reason);
    return batch;
  }

  #nextGroup(dropped: Record<DropReason, number>): Queues<I, E> | undefined {
    for (const priority of PRIORITIES) {
      if (this.#queuedAt[priority] === 0) continue;
      let best: { queues: Queues<I, E>; since: number } | undefined;
      for (const queues of this.#groups.values()) {
        const head = this.#wantedHead(queues[priority], dropped);
        if (head && (!best || head.enqueuedAt < best.since)) best = { queues, since: head.enqueuedAt };
      }
      if (best) return best.queues;
    }
    return undefined;
  }

  /** The queue's first item still wanted; those before it are dropped (settled as `dropped`). */
  #wantedHead(queue: Fifo<Entry<I, E>>, dropped: Record<DropReason, number>): Entry<I, E> | undefined {
    let entry: Entry<I, E> | undefined;
    while ((entry = queue.peek()) !== undefined) {
      const reason = entry.slot.unwanted(entry.index);
      if (reason === null) return entry;
      this.#shift(queue, entry);
      if (!entry.slot.failed) {
        dropped[reason]++;
        entry.slot.settle(entry.index, { ok: false, dropped: reason }, 0, 0);
      }
    }
    return undefined;
  }

  #shift(queue: Fifo<Entry<I, E>>, entry: Entry<I, E>): void {
    queue.shift();
    this.#queuedAt[entry.priority]--;
  }

  /** One group's batch, bounded by items and by padded cost. */
  #fill(queues: Queues<I, E>, dropped: Record<DropReason, number>): Entry<I, E>[] {
    const { maxItems, maxCost } = this.#options;
    const batch: Entry<I, E>[] = [];
    let widest = 0;
    for (const priority of PRIORITIES) {
      // Low-priority items (bulk jobs) never ride along with live ones: they would make the live
      // batch longer. They run in batches of their own, when nothing live is waiting.
      if (priority === 'low' && batch.length > 0) break;
      const queue = queues[priority];
      let entry: Entry<I, E> | undefined;
      while (batch.length < maxItems && (entry = this.#wantedHead(queue, dropped)) !== undefined) {
        const nextWidest = Math.max(widest, entry.cost);
        if (batch.length > 0 && (batch.length + 1) * nextWidest > maxCost) return batch;
        batch.push(entry);
        widest = nextWidest;
        this.#shift(queue, entry);
      }
      if (batch.length >= maxItems) break;
    }
    return batch;
  }

  async #dispatch(batch: Entry<I, E>[]): Promise<void> {
    this.#running++;
    this.#runningItems += batch.length;
    const low = batch[0]!.priority === 'low';
    if (low) this.#runningLow++;
    const started = performance.now();
    try {
      const outcome = await this.#options.run(batch.map((e) => e.item));
      if (outcome.items.length !== batch.length) {
        throw new Error(`batch of ${batch.length} items returned ${outcome.items.length} outcomes. This is a bug.`);
      }
      const queueMs: Partial<Record<Priority, number>> = {};
      for (const e of batch) queueMs[e.priority] = Math.max(queueMs[e.priority] ?? 0, started - e.enqueuedAt);
      this.#options.onBatch?.({
        group: batch[0]!.group,
        size: batch.length,
        paddedCost: outcome.paddedCost ?? batch.length * Math.max(...batch.map((e) => e.cost)),
        queueMs,
        runMs: performance.now() - started,
        worker: outcome.worker,
      });
      batch.forEach((entry, k) =>
        entry.slot.settle(entry.index, outcome.items[k]!, started - entry.enqueuedAt, outcome.inferenceMs),
      );
    } catch (error) {
      for (const entry of batch) entry.slot.fail(error);
    } finally {
      this.#running--;
      this.#runningItems -= batch.length;
      if (low) this.#runningLow--;
      this.#pump();
    }
  }
}
