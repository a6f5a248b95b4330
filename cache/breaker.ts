// Circuit breaker for the Redis tier. closed: requests use Redis; after `failureThreshold`
// consecutive failures or timeouts it opens: no request waits on Redis. After `coolDownMs` one probe
// runs (half-open; requests still skip Redis): success closes the circuit, so caching resumes by
// itself; failure opens it for another cool-down. The probe runs on a timer, not on traffic, so an
// idle server also finds Redis again.
import type { BreakerState } from './protocol.js';

export interface BreakerOptions {
  /** Consecutive failures that open the circuit. */
  readonly failureThreshold: number;
  /** How long the circuit stays open before a probe. */
  readonly coolDownMs: number;
  /** Resolves when Redis is usable again; rejects (or times out inside) otherwise. */
  readonly probe: () => Promise<void>;
  readonly onStateChange?: (state: BreakerState) => void;
}

export class CircuitBreaker {
  readonly #options: BreakerOptions;
  #state: BreakerState = 'closed';
  #failures = 0;
  #timer: NodeJS.Timeout | null = null;
  #disposed = false;

  constructor(options: BreakerOptions) {
    if (!(options.failureThreshold >= 1))
      throw new RangeError(`failureThreshold must be at least 1 (got ${options.failureThreshold}).`);
    this.#options = options;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** Whether a request may use Redis now (only when closed: a probe is the only call while open). */
  get closed(): boolean {
    return this.#state === 'closed';
  }

  success(): void {
    if (this.#state === 'closed') this.#failures = 0;
  }

  failure(): void {
    if (this.#state !== 'closed' || this.#disposed) return;
    this.#failures++;
    if (this.#failures >= this.#options.failureThreshold) this.#open();
  }

  dispose(): void {
    this.#disposed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #set(state: BreakerState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#options.onStateChange?.(state);
  }

  #open(): void {
    this.#set('open');
    if (this.#disposed) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#probe();
    }, this.#options.coolDownMs);
    // A pending probe must not keep the process alive.
    this.#timer.unref();
  }

  async #probe(): Promise<void> {
    if (this.#disposed) return;
    this.#set('half-open');
    let ok = false;
    try {
      await this.#options.probe();
      ok = true;
    } catch {
      ok = false;
    }
    if (this.#disposed) return;
    if (ok) {
      this.#failures = 0;
      this.#set('closed');
    } else {
      this.#open();
    }
  }
}
