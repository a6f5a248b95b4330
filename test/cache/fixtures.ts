// Shared pieces of the cache tests: deterministic vectors, a recording compute, a recording observer.
import { createHash } from 'node:crypto';
import type {
  BreakerState,
  CacheObserver,
  CacheTier,
  CacheErrorReason,
  Computed,
  ComputeMisses,
  CorruptReason,
  LookupResult,
  RedisState,
  WriteDropReason,
} from '../../cache/index.js';

/** A deterministic vector for a key: finite, non-zero, different per key. */
export function vectorOf(key: string, dims = 8): Float32Array {
  const seed = createHash('sha256').update(key).digest();
  const out = new Float32Array(dims);
  for (let i = 0; i < dims; i++)
    out[i] = ((seed[i % seed.length]! + 1) / 257) * (i % 2 === 0 ? 1 : -1) * (1 + i / dims);
  return out;
}

export interface ComputeOptions {
  readonly dims?: number;
  /** Keys whose item fails (per-item error). */
  readonly failKeys?: ReadonlySet<string>;
  /** Makes the whole call throw this. */
  readonly throwAll?: Error;
  readonly delayMs?: number;
}

/** A compute for `keys` that records the indices of every call; its items settle together, after `delayMs`. */
export function recordingCompute(keys: readonly string[], options: ComputeOptions = {}) {
  const calls: number[][] = [];
  const compute: ComputeMisses = (indices) => {
    calls.push([...indices]);
    const all = (async (): Promise<Computed[]> => {
      if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
      if (options.throwAll) throw options.throwAll;
      return indices.map((i) => {
        const key = keys[i]!;
        if (options.failKeys?.has(key)) return { ok: false, error: new Error(`bad item ${key}`) };
        return { ok: true, value: { vector: vectorOf(key, options.dims), tokens: 7 } };
      });
    })();
    return indices.map((_, k) => all.then((items) => items[k]!));
  };
  return { compute, calls, computedItems: () => calls.reduce((n, c) => n + c.length, 0) };
}

export class RecordingObserver implements CacheObserver {
  readonly lookups = new Map<string, number>();
  readonly errors = new Map<string, number>();
  readonly corrupt = new Map<CorruptReason, number>();
  readonly dropped = new Map<WriteDropReason, number>();
  readonly breaker: BreakerState[] = [];
  readonly redis: RedisState[] = [];

  onCacheLookups(tier: CacheTier, result: LookupResult, count: number): void {
    const k = `${tier}:${result}`;
    this.lookups.set(k, (this.lookups.get(k) ?? 0) + count);
  }
  onCacheError(tier: CacheTier, reason: CacheErrorReason): void {
    const k = `${tier}:${reason}`;
    this.errors.set(k, (this.errors.get(k) ?? 0) + 1);
  }
  onCacheCorrupt(reason: CorruptReason): void {
    this.corrupt.set(reason, (this.corrupt.get(reason) ?? 0) + 1);
  }
  onCacheWriteDropped(reason: WriteDropReason, count: number): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + count);
  }
  onBreakerState(state: BreakerState): void {
    this.breaker.push(state);
  }
  onRedisState(state: RedisState): void {
    this.redis.push(state);
  }
  lookup(tier: CacheTier, result: LookupResult): number {
    return this.lookups.get(`${tier}:${result}`) ?? 0;
  }
  droppedTotal(): number {
    let n = 0;
    for (const v of this.dropped.values()) n += v;
    return n;
  }
}
