// The cache actor: the single owner of every cache tier and of the in-flight table. Callers hand it
// a request's keys and a way to compute misses; it answers each item from a tier, from an identical
// computation already in flight (single flight), or by computing it once and storing the result.
import { MemoryTier } from './memory-tier.js';
import type { CacheStats, CachedVector, ComputeMisses, ResolvedVector } from './protocol.js';

export interface CacheOptions {
  readonly l1Bytes: number;
}

interface Deferred {
  readonly promise: Promise<CachedVector>;
  resolve(value: CachedVector): void;
  reject(error: unknown): void;
}

function deferred(): Deferred {
  let resolve!: (value: CachedVector) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<CachedVector>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A computation nobody else joined still has its owner's handler; this one only keeps Node from
  // reporting the shared promise itself as unhandled.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

export class CacheActor {
  readonly #l1: MemoryTier;
  readonly #inFlight = new Map<string, Deferred>();

  constructor(options: CacheOptions) {
    this.#l1 = new MemoryTier(options.l1Bytes);
  }

  /**
   * One promise per key, in order. Hits resolve at once; keys already being computed (by this or
   * another request) join that computation; the rest go to `compute` in one call, so a request's
   * misses reach the lane together and are admitted or refused together.
   */
  resolve(keys: readonly string[], compute: ComputeMisses): Promise<ResolvedVector>[] {
    const results: Promise<ResolvedVector>[] = [];
    const misses: number[] = [];
    const owned: Deferred[] = [];
    keys.forEach((key, index) => {
      const hit = this.#l1.get(key);
      if (hit) {
        results.push(Promise.resolve({ ...hit, source: 'l1' }));
        return;
      }
      const running = this.#inFlight.get(key);
      if (running) {
        results.push(running.promise.then((v) => ({ ...v, source: 'joined' })));
        return;
      }
      const mine = deferred();
      this.#inFlight.set(key, mine);
      misses.push(index);
      owned.push(mine);
      results.push(mine.promise.then((v) => ({ ...v, source: 'computed' })));
    });
    if (misses.length > 0) void this.#compute(keys, misses, owned, compute);
    return results;
  }

  async #compute(keys: readonly string[], misses: readonly number[], owned: readonly Deferred[], compute: ComputeMisses): Promise<void> {
    try {
      const computed = await compute(misses);
      if (computed.length !== misses.length) throw new Error(`compute returned ${computed.length} results for ${misses.length} misses. This is a bug.`);
      misses.forEach((index, k) => {
        const key = keys[index]!;
        const result = computed[k]!;
        this.#inFlight.delete(key);
        if (result.ok) {
          this.#l1.set(key, result.value);
          owned[k]!.resolve(result.value);
        } else {
          owned[k]!.reject(result.error);
        }
      });
    } catch (error) {
      misses.forEach((index, k) => {
        this.#inFlight.delete(keys[index]!);
        owned[k]!.reject(error);
      });
    }
  }

  stats(): CacheStats {
    return { l1Entries: this.#l1.entries, l1Bytes: this.#l1.bytes, inFlight: this.#inFlight.size };
  }

  async close(): Promise<void> {
    // Nothing to flush yet: L1 lives and dies with the process.
  }
}
