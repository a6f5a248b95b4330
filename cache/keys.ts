// Cache keys of SPEC.md §6. A key changes whenever the stored vector would: the model id and the
// normalisation flag are part of it, and the content is hashed, so keys stay short and opaque.
import { hash } from 'node:crypto';

/** One-shot hashing: a third of createHash().update().digest()'s cost (bench/micro/hit-path.bench.ts). */
function sha256(content: string | Uint8Array): string {
  return hash('sha256', content, 'hex');
}

const norm = (normalize: boolean): string => (normalize ? 'n1' : 'n0');

/** `{prefix}:{modelId}:{n0|n1}:{sha256(text)}` (the text hashed as UTF-8). */
export function textKey(prefix: string, modelId: string, normalize: boolean, text: string): string {
  return `${prefix}:${modelId}:${norm(normalize)}:${sha256(text)}`;
}

/** `{prefix}:{modelId}:image:{n0|n1}:{sha256(image bytes)}`. */
export function imageKey(prefix: string, modelId: string, normalize: boolean, bytes: Uint8Array): string {
  return `${prefix}:${modelId}:image:${norm(normalize)}:${sha256(bytes)}`;
}

/**
 * The rate limiter's buckets share the prefix (`{prefix}:ratelimit:{client}`, cache/shared-buckets.ts)
 * so one Redis namespace holds one deployment; this segment is therefore never a model id, and the
 * CLI keeps it apart from cache keys.
 */
export const RATE_LIMIT_SEGMENT = 'ratelimit';

/** `{prefix}:ratelimit:`, which a client id completes. */
export function rateLimitKeyPrefix(prefix: string): string {
  return `${prefix}:${RATE_LIMIT_SEGMENT}:`;
}
