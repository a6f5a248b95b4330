// Every answer leaves through here: JSON, binary vectors, and errors in OpenAI's shape. This file is
// the one place that maps a TwinlaneError to HTTP (status, Retry-After, connection handling).
import os from 'node:os';
import { encodeBf16 } from '../cache/index.js';
import { asTwinlaneError, type EmbedResult } from '../src/index.js';
import { log } from '../src/index.js';
import type { Exchange } from './exchange.js';
import { quantize, type Quantization } from './quantize.js';

if (os.endianness() !== 'LE')
  throw new Error('twinlane writes float32 vectors straight from memory and needs a little-endian CPU.');

const JSON_TYPE = { 'content-type': 'application/json' };

export function replyJson(
  ex: Exchange,
  status: number,
  value: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  ex.send(status, { ...JSON_TYPE, ...headers }, JSON.stringify(value));
}

export function replyError(ex: Exchange, thrown: unknown): void {
  if (ex.aborted) return;
  const error = asTwinlaneError(thrown);
  ex.tracker.metrics.error(ex.route, error.code);
  if (error.code === 'internal_error') {
    log.error('internal error', {
      requestId: ex.requestId,
      route: ex.route,
      error: error.cause instanceof Error ? (error.cause.stack ?? error.cause.message) : String(error.cause),
    });
  }
  const headers: Record<string, string> = { ...JSON_TYPE };
  if (error.retryAfterSeconds !== undefined) headers['retry-after'] = String(error.retryAfterSeconds);
  // RFC 9110: a 401 names the scheme the client should use.
  if (error.code === 'invalid_api_key') headers['www-authenticate'] = 'Bearer realm="twinlane"';
  const requestId = ex.requestId;
  const body = JSON.stringify({
    error: {
      message: error.code === 'internal_error' ? `Internal error (request ${requestId}).` : error.message,
      type: error.type,
      code: error.code,
      param: error.param,
    },
  });
  // Even an answer sent before the body was read whole (a 413, a 415) keeps the connection: uWS
  // still parses and drops the rest of that body, and closing early would make clients that are
  // still uploading see a reset instead of the answer.
  ex.send(error.status, headers, body);
}

/** The timing headers SPEC.md §4 puts on every embedding answer. */
export function timingHeaders(ex: Exchange, result: EmbedResult): Record<string, string> {
  return {
    'x-queue-time': result.queueMs.toFixed(2),
    'x-inference-time': result.inferenceMs.toFixed(2),
    'x-total-time': (performance.now() - ex.started).toFixed(2),
    'x-cache-hits': String(result.cacheHits),
  };
}

/** Little-endian float32 bytes of each vector, back to back (what OpenAI's base64 format carries). */
export function float32Bytes(vectors: readonly Float32Array[], dims: number): Buffer {
  if (vectors.length === 1) return Buffer.from(vectors[0]!.buffer, vectors[0]!.byteOffset, dims * 4);
  const out = Buffer.allocUnsafe(vectors.length * dims * 4);
  vectors.forEach((v, i) => out.set(new Uint8Array(v.buffer, v.byteOffset, dims * 4), i * dims * 4));
  return out;
}

/**
 * A vector as a JSON array. Float32Array#join prints each value exactly as JSON.stringify would
 * print the same number, without building an intermediate array; non-finite values (which JSON
 * cannot carry) take the slow path and become null, as JSON.stringify makes them.
 */
export function jsonVector(vector: Float32Array): string {
  for (let i = 0; i < vector.length; i++) {
    if (!Number.isFinite(vector[i]!)) return JSON.stringify(Array.from(vector));
  }
  return `[${vector.join(',')}]`;
}

export type VectorFormat = 'json' | 'f32' | 'bf16';

/** Native routes answer JSON unless the client asks for raw little-endian float32 or BF16. */
export function negotiateFormat(ex: Exchange): VectorFormat {
  const accept = ex.header('accept') ?? '';
  if (accept.includes('application/octet-stream')) return 'f32';
  if (accept.includes('application/x-bfloat16')) return 'bf16';
  return 'json';
}

export interface EncodedVectors {
  readonly contentType: string;
  /** Headers of the answer's shape (binary formats: dims and count). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | Buffer;
}

/**
 * The native routes' answer body in `format`: a JSON matrix, or raw little-endian float32 / BF16 rows;
 * with a quantized `encoding` (JSON only), `{"encoding", "embeddings": [[…]], "scales": […]}` (scales
 * for int8 and uint8; server/quantize.ts says what the integers mean).
 */
export function encodeVectors(
  result: EmbedResult,
  format: VectorFormat,
  encoding: 'float' | Quantization = 'float',
): EncodedVectors {
  if (encoding !== 'float') {
    const quantized = result.vectors.map((v) => quantize(v, encoding));
    const scales = quantized[0]?.scale === null ? '' : `,"scales":[${quantized.map((q) => q.scale).join(',')}]`;
    return {
      contentType: JSON_TYPE['content-type'],
      headers: {},
      body: `{"encoding":"${encoding}","embeddings":[${quantized.map((q) => `[${q.values.join(',')}]`).join(',')}]${scales}}`,
    };
  }
  if (format === 'json')
    return {
      contentType: JSON_TYPE['content-type'],
      headers: {},
      body: `[${result.vectors.map(jsonVector).join(',')}]`,
    };
  return {
    contentType: format === 'f32' ? 'application/octet-stream' : 'application/x-bfloat16',
    headers: { 'x-embedding-dims': String(result.dims), 'x-embedding-count': String(result.vectors.length) },
    body:
      format === 'f32'
        ? float32Bytes(result.vectors, result.dims)
        : Buffer.concat(result.vectors.map((v) => encodeBf16(v, 'little'))),
  };
}

export function replyVectors(ex: Exchange, result: EmbedResult, encoded: EncodedVectors): void {
  ex.send(200, { 'content-type': encoded.contentType, ...encoded.headers, ...timingHeaders(ex, result) }, encoded.body);
}
