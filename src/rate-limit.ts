// Per-client rate limits (SPEC.md §7): a token bucket per client (its API key, else its address),
// costed in items, not requests. Buckets live in memory for one instance, or in Redis when one is
// configured so that instances share a budget; when Redis cannot answer in time the local bucket
// decides, so a Redis outage never fails or stalls a request. The local bucket also mirrors the
// last shared reading, which keeps the fallback close to the shared state and lets answers that
// never spent anything (a 401, a malformed body) report the client's budget without a Redis call.
import { LRUCache } from 'lru-cache';
import type { BucketReading } from '../cache/index.js';

export interface RateDecision {
  readonly allowed: boolean;
  /** Bucket size in items (`X-RateLimit-Limit`). */
  readonly limit: number;
  /** Whole items left now (`X-RateLimit-Remaining`). */
  readonly remaining: number;
  /** Seconds until the bucket is full again (`X-RateLimit-Reset`). */
  readonly resetSeconds: number;
  /** Refused: seconds until this request's cost is available (`Retry-After`); 0 when allowed. */
  readonly retryAfterSeconds: number;
}

/** Where buckets shared between instances live (cache/'s SharedBuckets); null answers mean "decide locally". */
export interface SharedBucketStore {
  take(client: string, cost: number): Promise<BucketReading | null>;
  close(): Promise<void>;
}

export type RateStore = 'redis' | 'local';

export interface RateLimitObserver {
  onRateDecision(store: RateStore, allowed: boolean): void;
  /** The shared store was configured but could not decide; the local bucket did. */
  onRateFallback(): void;
}

export interface RateLimiterOptions {
  /** Items per second per client. */
  readonly rate: number;
  /** Bucket size in items. */
  readonly burst: number;
  readonly shared?: SharedBucketStore | null | undefined;
  readonly observer?: RateLimitObserver | undefined;
  /** Clock in milliseconds; tests move it by hand. */
  readonly now?: (() => number) | undefined;
  /** Most clients whose local buckets are kept; the least recently seen are forgotten (their bucket refills). */
  readonly maxClients?: number | undefined;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #shared: SharedBucketStore | null;
  readonly #observer: RateLimitObserver | null;
  readonly #now: () => number;
  readonly #local: LRUCache<string, Bucket>;

  constructor(options: RateLimiterOptions) {
    if (!(options.rate > 0) || !(options.burst > 0))
      throw new RangeError(`rate and burst must be positive (got ${options.rate}, ${options.burst}).`);
    this.#rate = options.rate;
    this.#burst = options.burst;
    this.#shared = options.shared ?? null;
    this.#observer = options.observer ?? null;
    this.#now = options.now ?? (() => performance.now());
    this.#local = new LRUCache({ max: options.maxClients ?? 100_000 });
  }

  /** Takes `cost` items from `client`'s budget, or refuses without taking anything. */
  async spend(client: string, cost: number): Promise<RateDecision> {
    if (!(cost >= 1)) throw new Error(`spend() with cost ${cost}. This is a bug.`);
    if (this.#shared) {
      const reading = await this.#shared.take(client, cost);
      if (reading) {
        this.#local.set(client, { tokens: reading.tokens, at: this.#now() });
        this.#observer?.onRateDecision('redis', reading.allowed);
        return this.#decision(reading.allowed, reading.tokens, cost);
      }
      this.#observer?.onRateFallback();
    }
    const bucket = this.#refilled(client);
    const allowed = bucket.tokens >= Math.min(cost, this.#burst);
    if (allowed) bucket.tokens -= cost;
    this.#local.set(client, bucket);
    this.#observer?.onRateDecision('local', allowed);
    return this.#decision(allowed, bucket.tokens, cost);
  }

  /** The client's budget as last known here, without spending (for answers that cost nothing). */
  peek(client: string): RateDecision {
    return this.#decision(true, this.#refilled(client).tokens, 0);
  }

  async close(): Promise<void> {
    await this.#shared?.close();
  }

  #refilled(client: string): Bucket {
    const now = this.#now();
    const bucket = this.#local.get(client);
    if (!bucket) return { tokens: this.#burst, at: now };
    return { tokens: Math.min(this.#burst, bucket.tokens + ((now - bucket.at) / 1000) * this.#rate), at: now };
  }

  #decision(allowed: boolean, tokens: number, cost: number): RateDecision {
    const need = Math.min(cost, this.#burst);
    return {
      allowed,
      limit: this.#burst,
      remaining: Math.max(0, Math.floor(tokens)),
      resetSeconds: Math.ceil(Math.max(0, this.#burst - tokens) / this.#rate),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((need - tokens) / this.#rate)),
    };
  }
}
