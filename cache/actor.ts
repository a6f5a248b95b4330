// The cache actor: the single owner of every cache tier (L1 in memory, Redis when configured) and of
// the in-flight table. Callers hand it a request's keys and a way to compute misses; it answers each
// item from a tier, from an identical lookup or computation already in flight (single flight across
// tiers: a key is registered in flight before Redis is asked), or by computing it once and storing
// the result in both tiers. A key kept hot in L1 still has its Redis TTL pushed back, at most once
// per refresh interval, so other instances sharing the Redis keep finding it.
import { decodeStoredVector, encodeBf16 } from './bf16.js';
import { MemoryTier } from './memory-tier.js';
import { RedisTier, type RedisTierOptions } from './redis-tier.js';
import type { CachedVector, CacheObserver, CacheStats, CacheStatus, ComputeMisses, ResolveOptions, ResolvedVector } from './protocol.js';

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
 * that join it get a derived promise.
 */
interface Flight {
  readonly promise: Promise<ResolvedVector>;
  resolve(value: ResolvedVector): void;
  reject(error: unknown): void;
}

function flight(): Flight {
  let resolve!: (value: ResolvedVector) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<ResolvedVector>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Sharing a Redis hit is a cache hit; sharing a computation is a join. */
const asJoined = (v: ResolvedVector): ResolvedVector => (v.source === 'redis' ? v : { vector: v.vector, tokens: v.tokens, source: 'joined' });

export class CacheActor {
  readonly #l1: MemoryTier<L1Entry>;
  readonly #l1Enabled: boolean;
  readonly #redis: RedisTier | null;
  readonly #observer: CacheObserver | null;
  readonly #inFlight = new Map<string, Flight>();
  readonly #now: () => number;
  readonly #refreshMs: number;

  constructor(options: CacheOptions) {
    this.#l1 = new MemoryTier<L1Entry>(options.l1Bytes);
    this.#l1Enabled = options.l1Bytes > 0;
    this.#observer = options.observer ?? null;
    this.#redis = options.redis ? new RedisTier(options.redis, this.#observer) : null;
    this.#now = options.now ?? (() => performance.now());
    this.#refreshMs = options.redis ? l1RefreshIntervalMs(options.redis.ttlSeconds) : Number.POSITIVE_INFINITY;
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
    let l1Hits = 0;
    let stale: string[] | null = null;
    // One clock read per call, and none without Redis.
    const now = this.#redis ? this.#now() : 0;
    for (let index = 0; index < keys.length; index++) {
      const key = keys[index]!;
      const hit = this.#l1.get(key);
      if (hit) {
        l1Hits++;
        // Sliding expiry for keys that never reach Redis's MGET while they stay in L1. Marked as
        // refreshed when queued: a refresh dropped (breaker open) waits for the next interval.
        if (now - hit.redisAt >= this.#refreshMs) {
          hit.redisAt = now;
          (stale ??= []).push(key);
        }
        results[index] = Promise.resolve({ vector: hit.vector, tokens: hit.tokens, source: 'l1' });
        continue;
      }
      const running = this.#inFlight.get(key);
      if (running) {
        results[index] = running.promise.then(asJoined);
        continue;
      }
      const mine = flight();
      this.#inFlight.set(key, mine);
      misses.push(index);
      owned.push(mine);
      results[index] = mine.promise;
    }
    if (this.#l1Enabled && this.#observer) {
      if (l1Hits > 0) this.#observer.onCacheLookups('l1', 'hit', l1Hits);
      if (keys.length > l1Hits) this.#observer.onCacheLookups('l1', 'miss', keys.length - l1Hits);
    }
    if (stale) this.#redis!.refresh(stale);
    if (misses.length > 0) {
      if (this.#redis) void this.#lookup(keys, misses, owned, compute, options.dims).catch((error: unknown) => this.#abandon(keys, misses, owned, error));
      else void this.#compute(keys, misses, owned, compute);
    }
    return results;
  }

  /** Last resort for a bug in the lookup path: no caller may wait for ever. */
  #abandon(keys: readonly string[], misses: readonly number[], owned: readonly Flight[], error: unknown): void {
    misses.forEach((index, k) => {
      const key = keys[index]!;
      if (this.#inFlight.get(key) === owned[k]) this.#inFlight.delete(key);
      owned[k]!.reject(error);
    });
  }

  async #lookup(keys: readonly string[], misses: readonly number[], owned: readonly Flight[], compute: ComputeMisses, dims: number | undefined): Promise<void> {
    const redis = this.#redis!;
    const missKeys = misses.map((i) => keys[i]!);
    const values = await redis.lookup(missKeys);
    if (values === null) {
      await this.#compute(keys, misses, owned, compute);
      return;
    }
    const stillMissing: number[] = [];
    const stillOwned: Flight[] = [];
    const hitKeys: string[] = [];
    let corruptKeys: string[] | null = null;
    const now = this.#now();
    for (let k = 0; k < misses.length; k++) {
      const key = missKeys[k]!;
      const raw = values[k];
      if (raw) {
        const stored = decodeStoredVector(raw, dims);
        if (stored.ok) {
          hitKeys.push(key);
          this.#l1.set(key, { vector: stored.vector, tokens: null, redisAt: now });
          this.#inFlight.delete(key);
          owned[k]!.resolve({ vector: stored.vector, tokens: null, source: 'redis' });
          continue;
        }
        (corruptKeys ??= []).push(key);
        this.#observer?.onCacheCorrupt(stored.reason);
      }
      stillMissing.push(misses[k]!);
      stillOwned.push(owned[k]!);
    }
    if (this.#observer) {
      if (hitKeys.length > 0) this.#observer.onCacheLookups('redis', 'hit', hitKeys.length);
      if (stillMissing.length > 0) this.#observer.onCacheLookups('redis', 'miss', stillMissing.length);
    }
    if (hitKeys.length > 0) redis.refresh(hitKeys);
    if (corruptKeys) redis.remove(corruptKeys);
    if (stillMissing.length > 0) await this.#compute(keys, stillMissing, stillOwned, compute);
  }

  async #compute(keys: readonly string[], misses: readonly number[], owned: readonly Flight[], compute: ComputeMisses): Promise<void> {
    try {
      const computed = await compute(misses);
      if (computed.length !== misses.length) throw new Error(`compute returned ${computed.length} results for ${misses.length} misses. This is a bug.`);
      const stored: [string, Buffer][] = [];
      const now = this.#redis ? this.#now() : 0;
      for (let k = 0; k < misses.length; k++) {
        const key = keys[misses[k]!]!;
        const result = computed[k]!;
        this.#inFlight.delete(key);
        if (result.ok) {
          const { vector, tokens } = result.value;
          this.#l1.set(key, { vector, tokens, redisAt: now });
          if (this.#redis) stored.push([key, encodeBf16(vector, 'big')]);
          owned[k]!.resolve({ vector, tokens, source: 'computed' });
        } else {
          owned[k]!.reject(result.error);
        }
      }
      if (stored.length > 0) this.#redis!.store(stored);
    } catch (error) {
      misses.forEach((index, k) => {
        this.#inFlight.delete(keys[index]!);
        owned[k]!.reject(error);
      });
    }
  }

  stats(): CacheStats {
    return { l1Entries: this.#l1.entries, l1Bytes: this.#l1.bytes, inFlight: this.#inFlight.size, pendingWrites: this.#redis?.pendingWrites ?? 0 };
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
    await this.#redis?.flush();
  }

  /** Sends queued writes (briefly bounded) and quits Redis. L1 lives and dies with the process. */
  async close(): Promise<void> {
    await this.#redis?.close();
  }
}
