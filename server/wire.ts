// What the front hands uWebSockets.js as bytes: header names, status lines and header lines encoded
// once. uWS converts a string argument to UTF-8 in a malloc'd copy on every call (perf of a cache hit:
// those conversions were ≈ 5 % of its main-thread time) and reads a Uint8Array's bytes where they are.
// Every writer of a uWS response (the Exchange, the shed 429s of server/front-gate.ts) uses these.

export const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

/** The request headers the front reads, and the one header every answer writes first. */
export const NAMES = {
  contentType: bytes('content-type'),
  contentLength: bytes('content-length'),
  transferEncoding: bytes('transfer-encoding'),
  accept: bytes('accept'),
  authorization: bytes('authorization'),
  requestId: bytes('x-request-id'),
  priority: bytes('x-priority'),
  requestTimeout: bytes('x-request-timeout-ms'),
};

export const STATUS_LINE: Readonly<Record<number, Buffer>> = Object.fromEntries(
  Object.entries({
    200: 'OK',
    400: 'Bad Request',
    401: 'Unauthorized',
    404: 'Not Found',
    405: 'Method Not Allowed',
    413: 'Payload Too Large',
    415: 'Unsupported Media Type',
    422: 'Unprocessable Entity',
    426: 'Upgrade Required',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    503: 'Service Unavailable',
    504: 'Gateway Timeout',
  }).map(([code, text]) => [code, bytes(`${code} ${text}`)]),
);

/**
 * Header lines encoded once, written with one writeHeader call: uWS writes `name: value\r\n` as
 * given, so a value that carries the other lines after CRLFs writes them all. Each writeHeader is a
 * call into C++ that converts both its strings to UTF-8 (a malloc each); a hot answer wrote six
 * (perf: those conversions alone 1 µs of a hit's 25). Only lines made by headerLines are written so.
 */
export interface HeaderLines {
  readonly name: Buffer;
  readonly rest: Buffer;
}

const HEADER_TEXT = /^[\x20-\x7e]*$/;

/** The lines of `headers`; null when there are none or one has a character a header line cannot carry (CR, LF, …). */
export function headerLines(headers: Readonly<Record<string, string>>): HeaderLines | null {
  const entries = Object.entries(headers);
  if (entries.length === 0 || entries.some(([name, value]) => !HEADER_TEXT.test(name) || !HEADER_TEXT.test(value)))
    return null;
  const [first, ...others] = entries;
  const rest = [first![1], ...others.map(([name, value]) => `${name}: ${value}`)].join('\r\n');
  return { name: bytes(first![0]), rest: bytes(rest) };
}
