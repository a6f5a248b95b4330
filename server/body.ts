// Reading request bodies from uWS: bounded while streaming (413 as soon as the limit is crossed,
// without buffering the rest), copied out of uWS's reused chunk buffers, and released on abort.
import { TwinlaneError } from '../src/index.js';
import type { Exchange } from './exchange.js';

/**
 * Bodies that announce their length up to this size are read into one buffer of that size (one copy,
 * one allocation per body, instead of a copy per chunk and a concatenation); larger ones grow with
 * what arrives, so a client announcing a large body cannot make the server allocate it before sending it.
 */
const PREALLOCATE_MAX_BYTES = 1 << 20;

export function readBody(ex: Exchange, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => receiveBody(ex, limit, resolve, reject));
}

/**
 * readBody's callback form: `resolve` runs within the uWS callback that delivers the last bytes, so
 * a route can answer from there with no promise in between (server/hot-answers.ts); `reject` at
 * most once instead, when the body is over `limit` or the client goes away.
 */
export function receiveBody(
  ex: Exchange,
  limit: number,
  resolve: (body: Buffer) => void,
  reject: (error: Error) => void,
): void {
  const declared = Number(ex.header('content-length') ?? Number.NaN);
  if (declared > limit) {
    ex.bodyRead();
    reject(new TwinlaneError('payload_too_large', `The body has ${declared} bytes; the limit is ${limit}.`));
    return;
  }
  const whole = Number.isSafeInteger(declared) && declared > 0 && declared <= PREALLOCATE_MAX_BYTES;
  let buffer = whole ? Buffer.allocUnsafe(declared) : null;
  const chunks: Buffer[] = [];
  let size = 0;
  let done = false;
  const finish = () => {
    done = true;
    ex.bodyRead();
  };
  ex.onAbort(() => {
    finish();
    reject(new Error('client aborted'));
  });
  ex.res.onData((chunk, isLast) => {
    if (done) return;
    const bytes = new Uint8Array(chunk);
    if (size + bytes.byteLength > limit) {
      finish();
      reject(new TwinlaneError('payload_too_large', `The body is over the limit of ${limit} bytes.`));
      return;
    }
    // uWS reuses `chunk` after this callback returns: copy it. (uWS frames the body by its
    // Content-Length, so the preallocated buffer should never be overrun; if it were, the bytes
    // so far become the first chunk.)
    if (buffer && size + bytes.byteLength > buffer.length) {
      chunks.push(buffer.subarray(0, size));
      buffer = null;
    }
    if (buffer) buffer.set(bytes, size);
    else chunks.push(Buffer.from(bytes));
    size += bytes.byteLength;
    if (isLast) {
      finish();
      if (buffer) resolve(size === buffer.length ? buffer : buffer.subarray(0, size));
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    }
  });
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Strict UTF-8 then JSON; both failures are the client's `invalid_json`. */
export function parseJson(body: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new TwinlaneError('invalid_json', 'The body is not valid UTF-8.');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new TwinlaneError('invalid_json', `The body is not valid JSON: ${(error as Error).message}`);
  }
}

/** JSON routes take `application/json` (any charset, or a `+json` type) or no content type at all. */
export function requireJson(ex: Exchange): void {
  const type = ex.header('content-type');
  if (type === undefined || type === 'application/json') return;
  const media = type.split(';')[0]!.trim().toLowerCase();
  if (media === 'application/json' || /^application\/[a-z0-9.+-]*\+json$/.test(media)) return;
  throw new TwinlaneError(
    'unsupported_media_type',
    `Content-Type ${media} is not accepted here; send application/json.`,
  );
}
