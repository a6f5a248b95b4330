// One HTTP request/response pair. uWS invalidates the request object at the first await and frees
// an aborted response, so everything from the request is copied here synchronously and every write
// checks `aborted` first. This is the only object that writes to a uWS response.
import type { Cancellation, Unwanted } from '../cache/index.js';
import { CancelSource, type Metrics, type RequestLane } from '../src/index.js';
import type { HttpRequest, HttpResponse, us_socket_context_t } from './uws.js';
import { NAMES, STATUS_LINE, type HeaderLines } from './wire.js';

export interface ExchangeTracker {
  readonly metrics: Metrics;
  /** While the server drains, every answer closes its connection so the client reconnects elsewhere. */
  readonly draining: boolean;
  opened(): void;
  /** The answer went out (or the client went away, status 499) after `seconds`. */
  closed(ex: Exchange, status: number, seconds: number): void;
}

/** A client's x-request-id is echoed only when it is a short run of visible ASCII (no header injection, no log noise). */
const CLIENT_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

// Request ids made here are UUID-shaped: this process's random first four groups and a counter as the
// fifth, unique across instances and restarts for all practical purposes, at a fraction of
// randomUUID's cost on the hot path.
const ID_PREFIX = crypto.randomUUID().slice(0, 24);
let idCounter = 0;
const nextRequestId = () => `${ID_PREFIX}${(++idCounter).toString(16).padStart(12, '0')}`;

/** The request id an answer carries: the client's when usable, else a fresh one. */
export function requestIdOf(given: string | undefined): string {
  return given !== undefined && given !== '' && CLIENT_REQUEST_ID.test(given) ? given : nextRequestId();
}

/**
 * The request headers any route reads; copying only these keeps the hot path short. One object
 * literal with every name present, so every exchange's headers have one shape: stored by computed
 * names, only those present, they had many, and V8's log showed their loads and stores megamorphic.
 */
function readHeaders(req: HttpRequest) {
  const value = (name: Buffer) => req.getHeader(name) || undefined;
  return {
    'content-type': value(NAMES.contentType),
    'content-length': value(NAMES.contentLength),
    'transfer-encoding': value(NAMES.transferEncoding),
    accept: value(NAMES.accept),
    authorization: value(NAMES.authorization),
    'x-request-id': value(NAMES.requestId),
    'x-priority': value(NAMES.priority),
    'x-request-timeout-ms': value(NAMES.requestTimeout),
    'sec-websocket-key': undefined as string | undefined,
    'sec-websocket-protocol': undefined as string | undefined,
    'sec-websocket-extensions': undefined as string | undefined,
  };
}

type CopiedHeaders = ReturnType<typeof readHeaders>;
type HeaderName = keyof CopiedHeaders;

/** What a WebSocket upgrade also needs. */
export const UPGRADE_HEADERS = ['sec-websocket-key', 'sec-websocket-protocol', 'sec-websocket-extensions'] as const;

const NO_HEADERS: Readonly<Record<string, string>> = {};

export class Exchange implements Cancellation {
  readonly started = performance.now();
  readonly method: string;
  readonly url: string;
  readonly #headers: CopiedHeaders;
  readonly #rawQuery: string;
  /** The client's x-request-id when it sent a usable one, else one made here: on every answer and in every log line of the request. */
  readonly requestId: string;
  aborted = false;
  /** The verified API key's client id, when keys are configured (server/guard.ts sets it). */
  client: string | null = null;
  /** The client's rate-limit budget was charged for this request (server/guard.ts). */
  charged = false;
  /** The lane the request is for, set by its route once known; its metrics carry it. */
  lane: RequestLane = 'none';
  /** Its lane is stormed: it is answered from L1 only, else refused as shed (server/front-gate.ts). */
  cachedOnly = false;
  #finished = false;
  /** Headers every answer of this exchange carries, whatever its status (rate-limit budget). */
  #extraHeaders: Readonly<Record<string, string>> | null = null;
  readonly #onAbort: (() => void)[] = [];
  #cancel: CancelSource | null = null;
  #bodyDone: (() => void) | null = null;

  constructor(
    readonly res: HttpResponse,
    req: HttpRequest,
    readonly route: string,
    readonly tracker: ExchangeTracker,
    extraHeaders: readonly (typeof UPGRADE_HEADERS)[number][] = [],
  ) {
    res.onAborted(() => {
      this.aborted = true;
      this.#cancel?.cancel();
      for (const callback of this.#onAbort.splice(0)) callback();
      this.#finish(499);
    });
    this.method = req.getMethod().toUpperCase();
    this.url = req.getUrl();
    this.#rawQuery = req.getQuery() ?? '';
    const headers = readHeaders(req);
    for (const name of extraHeaders) headers[name] = req.getHeader(name) || undefined;
    this.#headers = headers;
    this.requestId = requestIdOf(headers['x-request-id']);
    tracker.opened();
  }

  get query(): URLSearchParams {
    return new URLSearchParams(this.#rawQuery);
  }

  /** The exchange is the request's Cancellation: cancelled when the client goes away before the answer is written. */
  get cancelled(): Unwanted | null {
    return this.aborted ? 'cancelled' : null;
  }

  onCancel(listener: (why: Unwanted) => void): () => void {
    // Made on the first listener only: a request answered without waiting (a cache hit) never needs one.
    if (this.aborted) return () => {};
    return (this.#cancel ??= new CancelSource()).onCancel(listener);
  }

  /** Runs `callback` if the client goes away before the answer is written. */
  onAbort(callback: () => void): void {
    this.#onAbort.push(callback);
  }

  /** Runs `callback` once: when the body has been read, or when the exchange ends without reading it. */
  afterBody(callback: () => void): void {
    this.#bodyDone = callback;
  }

  /** The body has been read (or will not be): runs the afterBody callback. */
  bodyRead(): void {
    const done = this.#bodyDone;
    this.#bodyDone = null;
    done?.();
  }

  header(name: HeaderName): string | undefined {
    return this.#headers[name];
  }

  /** The peer's IP address; read from the socket on demand, since only rate limiting needs it. */
  get remoteAddress(): string {
    if (this.aborted) return 'gone';
    return Buffer.from(this.res.getRemoteAddressAsText()).toString('latin1');
  }

  setHeaders(headers: Readonly<Record<string, string>>): void {
    this.#extraHeaders = headers;
  }

  get hasHeaders(): boolean {
    return this.#extraHeaders !== null;
  }

  /** Writes status, headers and body in one corked syscall; a no-op once the client is gone. */
  send(status: number, headers: Readonly<Record<string, string>>, body: string | Uint8Array): void {
    this.#write(status, this.requestId, null, headers, body);
  }

  /**
   * send() for an answer whose fixed headers were made into `lines` once (a hot answer), with its
   * x-total-time: written after the request id in one header call (the id is visible ASCII, whether
   * the client's or made here), one string conversion instead of four.
   */
  sendLines(status: number, lines: HeaderLines, body: Uint8Array): void {
    const total = (performance.now() - this.started).toFixed(2);
    this.#write(status, `${this.requestId}\r\nx-total-time: ${total}`, lines, NO_HEADERS, body);
  }

  #write(
    status: number,
    requestIdLines: string,
    lines: HeaderLines | null,
    headers: Readonly<Record<string, string>>,
    body: string | Uint8Array,
  ): void {
    if (this.aborted || this.#finished) return;
    this.res.cork(() => {
      this.res.writeStatus(STATUS_LINE[status] ?? String(status));
      this.res.writeHeader(NAMES.requestId, requestIdLines);
      if (lines !== null) this.res.writeHeader(lines.name, lines.rest);
      // for…in, not Object.entries: no array per header on every answer (8 % of a cache hit's garbage).
      for (const key in headers) this.res.writeHeader(key, headers[key]!);
      const extra = this.#extraHeaders;
      if (extra !== null) for (const key in extra) this.res.writeHeader(key, extra[key]!);
      this.res.end(body, this.tracker.draining);
    });
    this.#finish(status);
  }

  /** Switches the connection to a WebSocket (status 101) carrying `userData`; a no-op once the client is gone. */
  upgrade<T>(userData: T, protocol: string, context: us_socket_context_t): void {
    if (this.aborted || this.#finished) return;
    this.res.cork(() =>
      this.res.upgrade(
        userData,
        this.header('sec-websocket-key') ?? '',
        protocol,
        this.header('sec-websocket-extensions') ?? '',
        context,
      ),
    );
    this.#finish(101);
  }

  #finish(status: number): void {
    if (this.#finished) return;
    this.#finished = true;
    this.bodyRead();
    const seconds = (performance.now() - this.started) / 1000;
    this.tracker.metrics.request(this.route, this.lane, status, seconds);
    this.tracker.closed(this, status, seconds);
  }
}
