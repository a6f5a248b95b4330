// The error codes of SPEC.md §4, each defined once with its HTTP status and OpenAI error `type`.
// The `code` strings are a contract with clients: add new ones only for new cases, never rename.
// server/reply.ts is the one place that turns a TwinlaneError into an HTTP answer.
import type { LaneName } from '../lanes/index.js';

export type OpenAiErrorType =
  'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'rate_limit_error' | 'server_error';

interface ErrorSpec {
  readonly status: number;
  readonly type: OpenAiErrorType;
  readonly when: string;
}

export const ERROR_CODES = Object.freeze({
  invalid_json: { status: 400, type: 'invalid_request_error', when: 'body is not JSON, or not valid UTF-8' },
  invalid_request: {
    status: 400,
    type: 'invalid_request_error',
    when: 'wrong type or missing field (`param` names it)',
  },
  invalid_api_key: {
    status: 401,
    type: 'authentication_error',
    when: 'key missing or wrong (when keys are configured)',
  },
  model_not_found: { status: 404, type: 'not_found_error', when: 'unknown model id' },
  file_not_found: { status: 404, type: 'not_found_error', when: 'Files API: no file with that id (or it expired)' },
  batch_not_found: { status: 404, type: 'not_found_error', when: 'Batches API: no batch with that id' },
  batch_not_cancellable: {
    status: 409,
    type: 'invalid_request_error',
    when: 'Batches API: the batch is already finalising or finished',
  },
  invalid_file: {
    status: 422,
    type: 'invalid_request_error',
    when: 'Files API: an empty file, or a batch file that is not JSONL',
  },
  not_found: { status: 404, type: 'not_found_error', when: 'unknown path' },
  method_not_allowed: { status: 405, type: 'invalid_request_error', when: 'wrong method for the path' },
  upgrade_required: { status: 426, type: 'invalid_request_error', when: 'GET /ws without a WebSocket upgrade' },
  payload_too_large: { status: 413, type: 'invalid_request_error', when: 'body over the byte limit' },
  unsupported_media_type: {
    status: 415,
    type: 'invalid_request_error',
    when: 'content type not accepted by the route',
  },
  unsupported_image: {
    status: 415,
    type: 'invalid_request_error',
    when: 'image bytes that do not decode, are truncated, or are not a raster format',
  },
  empty_input: { status: 422, type: 'invalid_request_error', when: 'no items, or an empty string' },
  too_many_inputs: { status: 422, type: 'invalid_request_error', when: 'more items than the per-request limit' },
  input_too_long: {
    status: 422,
    type: 'invalid_request_error',
    when: "text over the character limit, or over the model's max tokens with `truncate:false`",
  },
  invalid_dimensions: { status: 422, type: 'invalid_request_error', when: "`dimensions` < 1 or > the model's dims" },
  image_too_large: {
    status: 422,
    type: 'invalid_request_error',
    when: 'image over the pixel limit (refused before decoding pixels)',
  },
  image_fetch_forbidden: {
    status: 422,
    type: 'invalid_request_error',
    when: 'URL scheme not http(s), or its address is refused (SSRF guard)',
  },
  image_fetch_failed: {
    status: 422,
    type: 'invalid_request_error',
    when: 'URL answered non-2xx, wrong content type, too many redirects, over the byte cap',
  },
  image_fetch_timeout: {
    status: 422,
    type: 'invalid_request_error',
    when: 'URL did not answer within the fetch timeout',
  },
  lane_overloaded: {
    status: 429,
    type: 'rate_limit_error',
    when: "the lane's queue/in-flight cap is full (`Retry-After` set)",
  },
  rate_limited: { status: 429, type: 'rate_limit_error', when: "the client's budget is spent (`Retry-After` set)" },
  too_many_in_flight: {
    status: 429,
    type: 'rate_limit_error',
    when: 'WebSocket: the socket already has its bound of items or bytes in flight (`retry_after` set); wait for answers',
  },
  not_ready: { status: 503, type: 'server_error', when: 'models not loaded yet' },
  lane_failed: {
    status: 503,
    type: 'server_error',
    when: 'the lane worker computing the batch died (its items fail, nothing is cached); retry after `Retry-After`',
  },
  shutting_down: { status: 503, type: 'server_error', when: 'the server is draining' },
  too_many_connections: {
    status: 503,
    type: 'server_error',
    when: 'WebSocket upgrade: the server holds its bound of open sockets (`Retry-After` set)',
  },
  deadline_exceeded: {
    status: 504,
    type: 'server_error',
    when: "the request's deadline (`x-request-timeout-ms`, or the lane's queue timeout) passed before its items were computed, or its place in the backlog could not meet it",
  },
  internal_error: { status: 500, type: 'server_error', when: 'a bug; logged with a request id' },
} satisfies Record<string, ErrorSpec>);

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorOptions {
  /** The request field at fault, reported as OpenAI's `param`. */
  readonly param?: string | null;
  /** Seconds a client should wait before retrying (sent as `Retry-After`). */
  readonly retryAfterSeconds?: number;
  readonly cause?: unknown;
}

export class TwinlaneError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: OpenAiErrorType;
  readonly param: string | null;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    // A client error is an answer, not a bug: nobody reads its stack, and capturing one costs more
    // than the rest of a rejection (which matters when a flood of requests is being refused).
    const stackTraceLimit = Error.stackTraceLimit;
    if (ERROR_CODES[code].status < 500) Error.stackTraceLimit = 0;
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    Error.stackTraceLimit = stackTraceLimit;
    this.name = 'TwinlaneError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.type = ERROR_CODES[code].type;
    this.param = options.param ?? null;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/**
 * A request of a stormed lane refused without being computed (server/front-gate.ts decides the
 * storm): shed from its headers, after its body was read, or because an item of a request answered
 * from L1 only was not there. The same 429 `lane_overloaded` as a full queue's, named as a flood's.
 */
export class LaneStormedError extends TwinlaneError {
  constructor(
    readonly lane: LaneName,
    retryAfterSeconds: number,
  ) {
    super(
      'lane_overloaded',
      `The ${lane} lane is at capacity and refusing a flood of requests; retry after ${retryAfterSeconds} s.`,
      { retryAfterSeconds },
    );
    this.name = 'LaneStormedError';
  }
}

/** Anything thrown that is not a TwinlaneError is a bug; it becomes a 500 with the original kept as cause. */
export function asTwinlaneError(error: unknown): TwinlaneError {
  if (error instanceof TwinlaneError) return error;
  return new TwinlaneError('internal_error', 'Internal error.', { cause: error });
}
