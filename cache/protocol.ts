// The cache actor's boundary: what callers send it and what it answers, per item.

export interface CachedVector {
  /** Full-length vector as the model produced it (normalised when the key says n1). */
  readonly vector: Float32Array;
  /** Tokens the input counted when it was computed; null when the tier that answered does not keep it. */
  readonly tokens: number | null;
}

export type CacheSource = 'l1' | 'computed' | 'joined';

export interface ResolvedVector extends CachedVector {
  /** l1: served from memory; computed: this call computed it; joined: shared an identical computation already in flight. */
  readonly source: CacheSource;
}

/** One computed item: its vector, or the error that only this item failed with. */
export type Computed = { readonly ok: true; readonly value: CachedVector } | { readonly ok: false; readonly error: unknown };

/**
 * Computes the given item indices (the misses), in that order. Throwing fails them all (the lane
 * refused the request); a per-item failure fails only that item, so a request that joined a healthy
 * item never inherits another request's bad input.
 */
export type ComputeMisses = (indices: readonly number[]) => Promise<readonly Computed[]>;

export interface CacheStats {
  readonly l1Entries: number;
  readonly l1Bytes: number;
  readonly inFlight: number;
}
