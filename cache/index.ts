// The cache's public surface: every cache byte is owned by the actor behind this handle.
import { CacheActor, type CacheOptions } from './actor.js';

export { CacheActor } from './actor.js';
export type { CacheOptions } from './actor.js';
export type { RedisTierOptions } from './redis-tier.js';
export { imageKey, RATE_LIMIT_SEGMENT, rateLimitKeyPrefix, textKey } from './keys.js';
export type { ParsedKey } from './keys.js';
export { SharedBuckets } from './shared-buckets.js';
export type { BucketReading, SharedBucketsOptions } from './shared-buckets.js';
export { RequestCancelledError } from './protocol.js';
export type {
  BreakerState,
  CacheErrorReason,
  CacheObserver,
  CacheSource,
  CacheStats,
  CacheStatus,
  CacheTier,
  CachedVector,
  Cancellation,
  ComputeControl,
  ComputeMisses,
  ComputeTiming,
  Computed,
  CorruptReason,
  Unwanted,
  LookupResult,
  RedisState,
  ResolveOptions,
  ResolvedVector,
  WriteDropReason,
} from './protocol.js';

/** The cache actor: L1 alone, or L1 in front of Redis when `options.redis` is set. Never fails because Redis is down. */
export function createCache(options: CacheOptions): CacheActor {
  return new CacheActor(options);
}
export { decodeBf16, decodeStoredVector, encodeBf16 } from './bf16.js';
export type { Endianness, StoredVector } from './bf16.js';
