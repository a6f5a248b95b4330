// The cache actor: the single owner of every cache tier (L1 in memory, Redis when configured) and of
// the in-flight table. Callers hand it a request's keys and a way to compute misses; it answers each
// item from a tier, from an identical lookup or computation already in flight (single flight across
// tiers: a key is registered in flight before Redis is asked), or by computing it once and storing
// the result in both tiers. A key kept hot in L1 still has its Redis TTL pushed back, at most once
// per refresh interval, so other instances sharing the Redis keep finding it. A request can be
// cancelled (its Cancellation): its pending items reject at once, and an item nobody else waits for
// is dropped by the lane before it is computed.
import { decodeStoredVector, encodeBf16 } from './bf16.js';
import { MemoryTier } from './memory-tier.js';
import { RedisTier, type RedisTierOptions } from './redis-tier.js';
import {
  RequestCancelledError,
  type CachedVector,
  type Cancellation,
  type CacheObserver,
  type CacheStats,
  type CacheStatus,
  type Computed,
  type ComputeMisses,
  type ResolveOptions,
  type ResolvedVector,
  type Unwanted,
} from './protocol.js';

export interface CacheOptions {
  /** Bound of the in-process LRU in bytes; 0 disables it. */
  readonly l1Bytes: number;
  /** The shared Redis tier; null or absent: L1 only (the embedded default). */
  readonly redis?: RedisTierOptions | null | undefined;
  /** Receives tier events (lookups, errors, corrupt values, dropped writes, breaker and Redis state). */
  readonly observer?: CacheObserver | undefined;
  /** Clock in milliseconds for the L1 hits' Redis refresh interval; tests move it by hand. */
  readonly now?: (() => number) | undefined;
}

/** An L1 entry, with when its key was last written or refreshed in Redis by this instance. */
interface L1Entry extends CachedVector {
  redisAt: number;
}

/**
 * How long after its last write or refresh an L1 hit refreshes a key in Redis: a tenth of the TTL, so a
 * hot key's Redis copy never drops below 90 % of its lifetime, and a hot key costs Redis at most ten
 * EXPIREs per TTL however often it is hit. Not more than once a second, unless the TTL is so short
 * that waiting a second would let the key lapse.
 */
export function l1RefreshIntervalMs(ttlSeconds: number): number {
  const ttlMs = ttlSeconds * 1000;
  return Math.max(ttlMs / 10, Math.min(1000, ttlMs / 2));
}

/**
 * One in-flight key. Its promise is the owner's own result (source redis or computed); requests
 * that join it get a derived promise. `waiters` counts the requests still waiting for it: once
 * cancellations take it to 0, the lane drops the item if its batch has not started.
 */
interface Flight {
  readonly promise: Promise<ResolvedVector>;
  resolve(value: ResolvedVector): void;
  reject(error: unknown): void;
  waiters: number;
  /** Why the last waiter left, once none is left. */
  left: Unwanted;
}

function flight(): Flight {
  let resolve!: (value: ResolvedVector) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<ResolvedVector>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A flight may settle with nobody listening (all its requests were cancelled).
  promise.catch(() => undefined);
  return { promise, resolve, reject, waiters: 1, left: 'cancelled' };
}

/** Sharing a Redis hit is a cache hit; sharing a computation is a join. */
const asJoined = (v: ResolvedVector): ResolvedVector => (v.source === 'redis' ? v : { ...v, source: 'joined' });

/** A peeked key: its vector and tier, or null when neither tier holds it. */
export type Peeked = (CachedVector & { readonly source: 'l1' | 'redis' }) | null;

/** A request's result that waits on a flight (an owned miss or a joined one). */
interface Wait {
  readonly index: number;
  readonly flight: Flight;
}

export class CacheActor {
  readonly #l1: MemoryTier<L1Entry>;
  readonly #l1Enabled: boolean;
  readonly #redis: RedisTier | null;
  readonly #observer: CacheObserver | null;
  readonly #inFlight = new Map<string, Flight>();
  readonly #now: () => number;
  readonly #refreshMs: number;
  /** Computed vectors for the next Redis pipeline: the items of one batch settle in one tick. */
  #pendingStores: [string, Buffer][] = [];

  constructor(options: CacheOptions) {
    this.#l1 = new MemoryTier<L1Entry>(options.l1Bytes);
    this.#l1Enabled = options.l1Bytes > 0;
    this.#observer = options.observer ?? null;
    this.#redis = options.redis ? new RedisTier(options.redis, this.#observer) : null;
    this.#now = options.now ?? (() => performance.now());
    this.#refreshMs = options.redis ? l1RefreshIntervalMs(options.redis.ttlSeconds) : Number.POSITIVE_INFINITY;
  }

  /** An L1 hit, or undefined; a hit whose Redis copy is due a refresh is added to `stale`. */
  #l1Hit(key: string, now: number, stale: string[]): L1Entry | undefined {
    const hit = this.#l1.get(key);
    // Sliding expiry for keys that never reach Redis's MGET while they stay in L1. Marked as
    // refreshed when queued: a refresh dropped (breaker open) waits for the next interval.
    if (hit && now - hit.redisAt >= this.#refreshMs) {
      hit.redisAt = now;
      stale.push(key);
    }
    return hit;
  }

  #countL1(hits: number, total: number): void {
    if (!this.#l1Enabled || !this.#observer) return;
    if (hits > 0) this.#observer.onCacheLookups('l1', 'hit', hits);
    if (total > hits) this.#observer.onCacheLookups('l1', 'miss', total - hits);
  }

  /**
   * One promise per key, in order. L1 hits resolve at once; keys already being looked up or computed
   * (by this or another request) join that work; the rest are looked up in Redis with one MGET, and
   * what Redis does not hold goes to `compute` in one call, so a request's misses reach the lane
   * together and are admitted or refused together. Redis trouble only ever turns a lookup into a
   * miss: it never fails an item.
   */
  resolve(keys: readonly string[], compute: ComputeMisses, options: ResolveOptions = {}): Promise<ResolvedVector>[] {
    const results: Promise<ResolvedVector>[] = new Array(keys.length);
    const misses: number[] = [];
    const owned: Flight[] = [];
    const waits: Wait[] = [];
    let l1Hits = 0;
    const stale: string[] = [];
    // One clock read per call, and none without Redis.
    const now = this.#redis ? this.#now() : 0;
    for (let index = 0; index < keys.length; index++) {
      const key = keys[index]!;
      const hit = this.#l1Hit(key, now, stale);
      if (hit) {
        l1Hits++;
        results[index] = Promise.resolve({ vector: hit.vector, tokens: hit.tokens, source: 'l1' });
        continue;
      }
      let wait = this.#inFlight.get(key);
      if (wait) {
        wait.waiters++;
        results[index] = wait.promise.then(asJoined);
      } else {
        wait = flight();
        this.#inFlight.set(key, wait);
        misses.push(index);
        owned.push(wait);
        results[index] = wait.promise;
      }
      waits.push({ index, flight: wait });
    }
    this.#countL1(l1Hits, keys.length);
    if (stale.length > 0) this.#redis!.refresh(stale);
    if (options.cancellation && waits.length > 0) this.#cancellable(results, waits, options.cancellation);
    if (misses.length > 0) {
      if (this.#redis && !options.skipRedis)
        void this.#lookup(keys, misses, owned, compute, options.dims).catch((error: unknown) =>
          this.#abandon(keys, misses, owned, error),
        );
      else this.#compute(keys, misses, owned, compute);
    }
    return results;
  }

  /** True when every key is in L1 now; counts and touches nothing (resolve then answers them all from L1). */
  inL1(keys: readonly string[]): boolean {
    return this.#l1Enabled && keys.every((key) => this.#l1.has(key));
  }

  /**
   * True when every key is in L1 (each then counts as an L1 hit, is marked recently used, and has its
   * Redis TTL pushed back when due); false, counting nothing, when any is not. For a caller that kept
   * an encoded answer of these keys and may send it again only while all of them are still cached.
   */
  touch(keys: readonly string[]): boolean {
    if (!this.inL1(keys)) return false;
    const stale: string[] = [];
    const now = this.#redis ? this.#now() : 0;
    for (const key of keys) this.#l1Hit(key, now, stale);
    this.#countL1(keys.length, keys.length);
    if (stale.length > 0) this.#redis!.refresh(stale);
    return true;
  }

  /**
   * L1, then one Redis MGET for the rest, without joining or starting any computation: what a
   * streaming request answers at once before it sends its misses (with `skipRedis`) to `resolve`.
   */
  async peek(keys: readonly string[], dims?: number): Promise<Peeked[]> {
    const found: Peeked[] = new Array<Peeked>(keys.length).fill(null);
    const rest: number[] = [];
    const stale: string[] = [];
    const now = this.#redis ? this.#now() : 0;
    keys.forEach((key, index) => {
      const hit = this.#l1Hit(key, now, stale);
      if (hit) found[index] = { vector: hit.vector, tokens: hit.tokens, source: 'l1' };
      else rest.push(index);
    });
    this.#countL1(keys.length - rest.length, keys.length);
    if (stale.length > 0) this.#redis!.refresh(stale);
    if (rest.length === 0 || !this.#redis) return found;
    const values = await this.#redis.lookup(rest.map((i) => keys[i]!));
    if (values === null) return found;
    const hits = this.#takeRedisValues(
      rest.map((i) => keys[i]!),
      values,
      dims,
    );
    rest.forEach((index, k) => {
      const vector = hits[k];
      if (vector) found[index] = { vector, tokens: null, source: 'redis' };
    });
    return found;
  }

  /**
   * Decodes MGET answers: hits go into L1 and get their TTL pushed back, corrupt values are deleted
   * and counted. Returns the vector per key, or null for a miss.
   */
  #takeRedisValues(
    keys: readonly string[],
    values: readonly (Buffer | null)[],
    dims: number | undefined,
  ): (Float32Array | null)[] {
    const redis = this.#redis!;
    const hitKeys: string[] = [];
    let corruptKeys: string[] | null = null;
    const now = this.#now();
    const vectors = keys.map((key, k) => {
      const raw = values[k];
      if (!raw) return null;
      const stored = decodeStoredVector(raw, dims);
      if (stored.ok) {
        hitKeys.push(key);
        this.#l1.set(key, { vector: stored.vector, tokens: null, redisAt: now });
        return stored.vector;
      }
      (corruptKeys ??= []).push(key);
      this.#observer?.onCacheCorrupt(stored.reason);
      return null;
    });
    if (this.#observer) {
      if (hitKeys.length > 0) this.#observer.onCacheLookups('redis', 'hit', hitKeys.length);
      if (keys.length > hitKeys.length) this.#observer.onCacheLookups('redis', 'miss', keys.length - hitKeys.length);
    }
    if (hitKeys.length > 0) redis.refresh(hitKeys);
    if (corruptKeys) redis.remove(corruptKeys);
    return vectors;
  }

  /**
   * Lets `cancellation` cancel a request: each of its results still waiting on a flight rejects at
   * once with a RequestCancelledError saying why, and stops counting as one of that flight's waiters.
   */
  #cancellable(results: Promise<ResolvedVector>[], waits: readonly Wait[], cancellation: Cancellation): void {
    const pending = new Map<number, { flight: Flight; reject: (error: unknown) => void }>();
    // Once every result has settled the listener goes: a listener left on a cancellation that lives
    // on (a socket) would keep this request's closures alive (bench:soak found it).
    let stopListening = (): void => {};
    const settled = (index: number) => {
      pending.delete(index);
      if (pending.size === 0) stopListening();
    };
    for (const { index, flight: owner } of waits) {
      const source = results[index]!;
      results[index] = new Promise<ResolvedVector>((resolve, reject) => {
        pending.set(index, { flight: owner, reject });
        source.then(resolve, reject).finally(() => settled(index));
      });
    }
    const cancel = (why: Unwanted) => {
      const error = new RequestCancelledError(why);
      for (const { flight: owner, reject } of pending.values()) {
        if (--owner.waiters === 0) owner.left = why;
        reject(error);
      }
      pending.clear();
    };
    const already = cancellation.cancelled;
    if (already !== null) cancel(already);
    else stopListening = cancellation.onCancel(cancel);
  }

  /** Last resort for a bug in the lookup path: no caller may wait for ever. */
  #abandon(keys: readonly string[], misses: readonly number[], owned: readonly Flight[], error: unknown): void {
    misses.forEach((index, k) => {
      const key = keys[index]!;
      if (this.#inFlight.get(key) === owned[k]) this.#inFlight.delete(key);
      owned[k]!.reject(error);
    });
  }

  async #lookup(
    keys: readonly string[],
    misses: readonly number[],
    owned: readonly Flight[],
    compute: ComputeMisses,
    dims: number | undefined,
  ): Promise<void> {
    const missKeys = misses.map((i) => keys[i]!);
    const values = await this.#redis!.lookup(missKeys);
    if (values === null) {
      this.#compute(keys, misses, owned, compute);
      return;
    }
    const vectors = this.#takeRedisValues(missKeys, values, dims);
    const stillMissing: number[] = [];
    const stillOwned: Flight[] = [];
    vectors.forEach((vector, k) => {
      if (vector) {
        this.#inFlight.delete(missKeys[k]!);
        owned[k]!.resolve({ vector, tokens: null, source: 'redis' });
        return;
      }
      stillMissing.push(misses[k]!);
      stillOwned.push(owned[k]!);
    });
    if (stillMissing.length > 0) this.#compute(keys, stillMissing, stillOwned, compute);
  }

  /** Hands the misses to `compute` and settles each flight as its item is done. */
  #compute(keys: readonly string[], misses: readonly number[], owned: readonly Flight[], compute: ComputeMisses): void {
    let promises: readonly Promise<Computed>[];
    try {
      promises = compute(misses, { unwanted: (k) => (owned[k]!.waiters > 0 ? null : owned[k]!.left) });
      if (promises.length !== misses.length)
        throw new Error(`compute returned ${promises.length} results for ${misses.length} misses. This is a bug.`);
    } catch (error) {
      promises = misses.map(() => Promise.reject(error));
    }
    promises.forEach((promise, k) => {
      const index = misses[k]!;
      promise.then(
        (result) => this.#settle(keys, index, owned[k]!, result, compute),
        (error: unknown) => {
          this.#inFlight.delete(keys[index]!);
          owned[k]!.reject(error);
        },
      );
    });
  }

  #settle(keys: readonly string[], index: number, owner: Flight, result: Computed, compute: ComputeMisses): void {
    const key = keys[index]!;
    if (result.ok) {
      this.#inFlight.delete(key);
      const { vector, tokens } = result.value;
      this.#l1.set(key, { vector, tokens, redisAt: this.#redis ? this.#now() : 0 });
      if (this.#redis) this.#store(key, vector);
      owner.resolve({ vector, tokens, source: 'computed', timing: result.timing });
    } else if ('error' in result) {
      this.#inFlight.delete(key);
      owner.reject(result.error);
    } else if (owner.waiters > 0) {
      // Dropped as unwanted, but a request joined it since: compute it again for that request.
      this.#compute(keys, [index], [owner], compute);
    } else {
      this.#inFlight.delete(key);
      owner.reject(new RequestCancelledError());
    }
  }

  /** Queues a computed vector for Redis; everything queued in this tick goes in one pipeline. */
  #store(key: string, vector: Float32Array): void {
    if (this.#pendingStores.length === 0) {
      queueMicrotask(() => {
        const entries = this.#pendingStores;
        this.#pendingStores = [];
        if (entries.length > 0) this.#redis!.store(entries);
      });
    }
    this.#pendingStores.push([key, encodeBf16(vector, 'big')]);
  }

  stats(): CacheStats {
    return {
      l1Entries: this.#l1.entries,
      l1Bytes: this.#l1.bytes,
      inFlight: this.#inFlight.size,
      pendingWrites: this.#redis?.pendingWrites ?? 0,
    };
  }

  /** Tier states for /ready: Redis being down never makes the server unready; it is only reported. */
  status(): CacheStatus {
    return {
      l1: this.#l1Enabled ? 'up' : 'disabled',
      redis: this.#redis?.state() ?? 'disabled',
      breaker: this.#redis?.breakerState ?? null,
    };
  }

  /** Resolves when every Redis write queued so far has been answered, failed or dropped. */
  async flush(): Promise<void> {
    if (this.#pendingStores.length > 0) {
      this.#redis!.store(this.#pendingStores);
      this.#pendingStores = [];
    }
    await this.#redis?.flush();
  }

  /** Sends queued writes (briefly bounded) and quits Redis. L1 lives and dies with the process. */
  async close(): Promise<void> {
    await this.#redis?.close();
  }
}
