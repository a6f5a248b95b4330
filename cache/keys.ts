// Cache keys of SPEC.md §6. A key changes whenever the stored vector would: the model id and the
// normalisation flag are part of it, and the content is hashed, so keys stay short and opaque.
import { hash } from 'node:crypto';

/** One-shot hashing: a third of createHash().update().digest()'s cost (bench/micro/hit-path.bench.ts). */
function sha256(content: string | Uint8Array): string {
  return hash('sha256', content, 'hex');
}

const norm = (normalize: boolean): string => (normalize ? 'n1' : 'n0');

/**
 * `modelId` is the model's cache segment: its id, with `@q8` for quantized weights (src/registry.ts),
 * so vectors of different weights never share a key.
 */

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

/** What a key under a prefix is: a cached vector (of a model segment, kind and normalisation), a rate-limit bucket, or something else. */
export type ParsedKey =
  | { readonly type: 'vector'; readonly model: string; readonly kind: 'text' | 'image'; readonly norm: 'n0' | 'n1' }
  | { readonly type: 'rate-limit' }
  | { readonly type: 'other' };

/**
 * The inverse of textKey / imageKey, for tools that read a Redis (cache/cli.ts). Rate-limit buckets
 * are hashes whose client id (`ip:…`, `key:…`) could take any shape, so they are recognised by their
 * segment before any cache-key parsing.
 */
export function parseKey(key: string, prefix: string): ParsedKey {
  if (key.startsWith(rateLimitKeyPrefix(prefix))) return { type: 'rate-limit' };
  if (!key.startsWith(prefix + ':')) return { type: 'other' };
  const parts = key.slice(prefix.length + 1).split(':');
  const normOf = (s: string | undefined) => (s === 'n0' || s === 'n1' ? s : null);
  const textNorm = parts.length === 3 ? normOf(parts[1]) : null;
  if (textNorm) return { type: 'vector', model: parts[0]!, kind: 'text', norm: textNorm };
  const imageNorm = parts.length === 4 && parts[1] === 'image' ? normOf(parts[2]) : null;
  if (imageNorm) return { type: 'vector', model: parts[0]!, kind: 'image', norm: imageNorm };
  return { type: 'other' };
}
