// The cache's public surface: every cache byte is owned by the actor behind this handle.
import { CacheActor, type CacheOptions } from './actor.js';

export { CacheActor } from './actor.js';
export type { CacheOptions } from './actor.js';
export { imageKey, textKey } from './keys.js';
export type { CacheSource, CacheStats, CachedVector, ComputeMisses, Computed, ResolvedVector } from './protocol.js';

export function createCache(options: CacheOptions): CacheActor {
  return new CacheActor(options);
}
export { decodeBf16, encodeBf16 } from './bf16.js';
export type { Endianness } from './bf16.js';
