// The cache actor's boundary: what callers send it, what it answers per item, and what it reports
// to an observer (metrics) about its tiers.

export interface CachedVector {
  /** Full-length vector as the model produced it (normalised when the key says n1). */
  readonly vector: Float32Array;
  /** Tokens the input counted when it was computed; null when the tier that answered does not keep it (Redis). */
  readonly tokens: number | null;
}

/**
 * l1: served from memory; redis: served from Redis (decoded from BF16, so within BF16 precision of
 * the computed vector, and promoted into L1); computed: this call computed it; joined: shared an
 * identical computation already in flight.
 */
export type CacheSource = 'l1' | 'redis' | 'computed' | 'joined';

/** How long a computed item waited for its batch, and how long the model call that carried it took. */
export interface ComputeTiming {
  readonly queueMs: number;
  readonly inferenceMs: number;
}

export interface ResolvedVector extends CachedVector {
  readonly source: CacheSource;
  /** Computed and joined items: the computation's timing (cache hits took none). */
  readonly timing?: ComputeTiming | undefined;
}

/**
 * One computed item: its vector, the error that only this item failed with, or `dropped`: it was not
 * computed because no request waited for it any more when its batch was formed.
 */
export type Computed =
  | { readonly ok: true; readonly value: CachedVector; readonly timing?: ComputeTiming | undefined }
  | { readonly ok: false; readonly error: unknown }
  | { readonly ok: false; readonly dropped: true };

/** Why nobody waits for an item any more: its requests were cancelled, or their deadlines passed. */
export type Unwanted = 'cancelled' | 'deadline';

/** What the actor tells a computation about the misses it handed over. */
export interface ComputeControl {
  /** null while misses[k] still has a request waiting for it; else why it has none. */
  unwanted(k: number): Unwanted | null;
}

/**
 * Computes the given item indices (the misses): one promise per index, in order, each settling as
 * soon as that item is done. A rejected promise fails that item for every request waiting on it (the
 * lane refused the request: all of them reject); a per-item failure fails only that item, so a
 * request that joined a healthy item never inherits another request's bad input.
 */
export type ComputeMisses = (indices: readonly number[], control: ComputeControl) => readonly Promise<Computed>[];

/** A request's cancellation: its client went away, or its deadline passed (src/cancel.ts). */
export interface Cancellation {
  /** Why the request is no longer wanted; null while it is. */
  readonly cancelled: Unwanted | null;
  /** Calls `listener` once when the request is cancelled (never when it already is); returns what removes it. */
  onCancel(listener: (why: Unwanted) => void): () => void;
}

export interface ResolveOptions {
  /** The model's dims: a Redis value of any other length is corrupt (deleted, counted, recomputed). */
  readonly dims?: number | undefined;
  /**
   * Cancelling it cancels the request: its pending items reject at once with a RequestCancelledError
   * saying why, and items nobody else waits for are dropped before they reach a lane. Listened to
   * only when an item waits on work, so a request answered from L1 never starts a deadline's timer.
   */
  readonly cancellation?: Cancellation | undefined;
  /** The caller just looked these keys up (peek): skip Redis and go from L1 and in-flight work to compute. */
  readonly skipRedis?: boolean | undefined;
}

/** A request's item after the request was cancelled: nobody reads it, and it may never be computed. */
export class RequestCancelledError extends Error {
  /** Whether the client went away (or cancelled) or the request's deadline passed. */
  readonly why: Unwanted;

  constructor(why: Unwanted = 'cancelled') {
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(why === 'deadline' ? "The request's deadline passed." : 'The request was cancelled.');
    this.why = why;
    Error.stackTraceLimit = stackTraceLimit;
    this.name = 'RequestCancelledError';
  }
}

export type CacheTier = 'l1' | 'redis';
/** skipped: Redis was not asked (circuit open); error: asked, but it failed or timed out. */
export type LookupResult = 'hit' | 'miss' | 'error' | 'skipped';
/** timeout: no answer within the per-call budget; unavailable: not connected; command: Redis answered with an error. */
export type CacheErrorReason = 'timeout' | 'unavailable' | 'command';
/** Why a stored value was refused (and deleted). */
export type CorruptReason = 'empty' | 'odd_length' | 'wrong_dims' | 'not_finite';
/** breaker_open: the circuit is open; backlog: too many writes already waiting on Redis; error: the write failed. */
export type WriteDropReason = 'breaker_open' | 'backlog' | 'error';
export type BreakerState = 'closed' | 'half-open' | 'open';
/** disabled: no Redis configured; up: connected, circuit closed; down: not connected; open: circuit open or probing. */
export type RedisState = 'disabled' | 'up' | 'down' | 'open';

/** What the cache reports, as events, for metrics. Every method must be cheap and must not throw. */
export interface CacheObserver {
  /** `count` lookups in `tier` ended with `result`. */
  onCacheLookups(tier: CacheTier, result: LookupResult, count: number): void;
  /** One failed call to a tier (a lookup, a write pipeline or a probe). */
  onCacheError(tier: CacheTier, reason: CacheErrorReason): void;
  /** A stored value that did not decode; it has been deleted and treated as a miss. */
  onCacheCorrupt(reason: CorruptReason): void;
  /** `count` vectors that were not written to Redis. */
  onCacheWriteDropped(reason: WriteDropReason, count: number): void;
  onBreakerState(state: BreakerState): void;
  /** The Redis tier's state changed (also reported once at start when Redis is configured). */
  onRedisState(state: RedisState): void;
}

export interface CacheStats {
  readonly l1Entries: number;
  readonly l1Bytes: number;
  readonly inFlight: number;
  /** Redis writes sent and not yet answered. */
  readonly pendingWrites: number;
}

export interface CacheStatus {
  readonly l1: 'up' | 'disabled';
  readonly redis: RedisState;
  /** null when no Redis is configured. */
  readonly breaker: BreakerState | null;
}
