// A lane's workers as they live and die. piscina replaces a worker that died (an uncaught error, the
// thread exiting, its heap limit) at once, and fails the task it was running; this counts the live
// workers (a replacement counts once it has loaded its models), the deaths and the restarts, and
// after consecutive deaths holds the lane's next batch back with exponential back-off, so a batch
// that kills every worker it reaches cannot turn the lane into a loop of reloading models.
import type { EventEmitter } from 'node:events';

/** The first death costs nothing; each further one without a good batch between doubles the wait, up to MAX. */
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 10_000;

export interface WorkerHealthEvents {
  onDeath(): void;
  onRestart(): void;
}

export class WorkerHealth {
  readonly configured: number;
  readonly #events: WorkerHealthEvents;
  #live = 0;
  #deaths = 0;
  #restarts = 0;
  #consecutive = 0;
  #started = false;
  #closing = false;
  #lastDeathAt = 0;

  constructor(pool: EventEmitter, configured: number, events: WorkerHealthEvents) {
    this.configured = configured;
    this.#events = events;
    pool.on('workerCreate', () => {
      this.#live++;
      if (!this.#started) return;
      this.#restarts++;
      this.#events.onRestart();
    });
    pool.on('workerDestroy', () => {
      this.#live--;
      if (this.#closing) return;
      this.#deaths++;
      this.#consecutive++;
      this.#lastDeathAt = performance.now();
      this.#events.onDeath();
    });
    // A worker that dies between tasks is reported here; without a listener the EventEmitter would
    // throw it on the main thread. Its replacement is already on the way.
    pool.on('error', () => undefined);
  }

  /** Deaths so far; a batch whose run saw this grow lost its worker. */
  get deaths(): number {
    return this.#deaths;
  }

  get live(): number {
    return this.#live;
  }

  get restarts(): number {
    return this.#restarts;
  }

  /** Fewer live workers than configured: a replacement is loading, or piscina gave up on one. */
  get degraded(): boolean {
    return this.#started && !this.#closing && this.#live < this.configured;
  }

  /** Warm-up is over: workers created from now on are restarts. */
  started(): void {
    this.#started = true;
  }

  closing(): void {
    this.#closing = true;
  }

  /** A batch came back: the lane is healthy again. */
  succeeded(): void {
    this.#consecutive = 0;
  }

  /** Milliseconds the next batch waits: 0 after at most one death in a row. */
  backoffMs(): number {
    if (this.#consecutive < 2) return 0;
    const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (this.#consecutive - 2));
    return Math.max(0, this.#lastDeathAt + wait - performance.now());
  }

  /** Seconds a client should wait before retrying a batch that lost its worker. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.backoffMs() / 1000));
  }
}
