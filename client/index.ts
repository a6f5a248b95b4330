// twinlane/client: a TypeScript client for the /ws streaming route. `embed()` sends one request and
// resolves with its vectors in input order; `stream()` takes an (async) iterable of any length and
// yields results as they arrive, keeping at most `maxInFlight` items unanswered: it waits instead of
// being refused, and a request the server refuses for load (lane_overloaded, too_many_in_flight,
// rate_limited) is sent again after the server's retry hint. Vectors travel as binary frames by
// default, so no float is ever parsed from JSON. It never reconnects: a closed socket fails what was
// pending with a TwinlaneStreamError naming the close code.
import {
  decodeVectorFrame,
  encodeImageFrame,
  WS_BEARER_PREFIX,
  WS_SUBPROTOCOL,
  type AnswerFormat,
  type BinaryDtype,
  type ErrorBody,
  type ImageInputJson,
  type Lane,
  type ServerMessage,
} from '../server/ws/protocol.js';

export type { AnswerFormat, BinaryDtype, ErrorBody, ImageInputJson, Lane } from '../server/ws/protocol.js';
export { decodeVectorFrame, encodeImageFrame } from '../server/ws/protocol.js';

/** The subset of the WHATWG WebSocket (browsers, Node 22) and of the `ws` package this client uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(
    type: 'open' | 'message' | 'close' | 'error',
    listener: (event: { data?: unknown; code?: number; reason?: string; message?: string }) => void,
  ): void;
}

export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
  options?: { headers?: Record<string, string> },
) => WebSocketLike;

export interface ConnectOptions {
  /** `ws://host:port/ws`; an `http(s)://host:port` base URL works too. */
  readonly url: string;
  readonly apiKey?: string;
  /** Defaults to the global WebSocket when there is one, else the `ws` package. */
  readonly WebSocket?: WebSocketConstructor;
}

/** A text, or an image: its bytes (sent as binary frames), a URL, a data URI, `{url}` or `{b64}`. */
export type StreamInput = string | Uint8Array | ImageInputJson;

export interface EmbedOptions {
  readonly lane?: Lane;
  readonly model?: string;
  readonly normalize?: boolean;
  readonly truncate?: boolean;
  readonly dimensions?: number;
  /** How vectors travel: binary frames (default), JSON numbers or base64. */
  readonly format?: AnswerFormat;
  readonly dtype?: BinaryDtype;
}

export interface StreamOptions extends EmbedOptions {
  /** Items unanswered at once (the client waits beyond it). Keep it under the server's TWINLANE_WS_MAX_IN_FLIGHT_ITEMS. */
  readonly maxInFlight?: number;
  /** Items per request sent to the server. */
  readonly requestSize?: number;
  /** Times a request refused for load is sent again (after the server's retry hint). */
  readonly retries?: number;
  readonly onProgress?: (progress: {
    readonly sent: number;
    readonly answered: number;
    readonly failed: number;
  }) => void;
}

export type StreamResult =
  | { readonly ok: true; readonly index: number; readonly embedding: Float32Array; readonly cached: boolean }
  | { readonly ok: false; readonly index: number; readonly error: ErrorBody };

export class TwinlaneStreamError extends Error {
  constructor(
    message: string,
    /** The server's error code, or `socket_closed`. */
    readonly code: string,
    readonly body: ErrorBody | null = null,
    readonly closeCode: number | null = null,
  ) {
    super(message);
    this.name = 'TwinlaneStreamError';
  }
}

const RETRYABLE = new Set(['lane_overloaded', 'too_many_in_flight', 'rate_limited']);

interface Pending {
  readonly count: number;
  item(index: number, result: StreamResult): void;
  failed(error: TwinlaneStreamError, retryAfter: number | undefined): void;
  done(): void;
}

async function defaultWebSocket(): Promise<WebSocketConstructor> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global) return global;
  const module = (await import('ws')) as unknown as { default: WebSocketConstructor };
  return module.default;
}

function decodeBase64(text: string): Float32Array {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer, 0, bytes.length / 4);
}

function toBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError('unexpected binary message type');
}

function encodeBase64(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

export class TwinlaneStream {
  readonly #socket: WebSocketLike;
  readonly #pending = new Map<string, Pending>();
  #nextId = 1;
  #closed: TwinlaneStreamError | null = null;

  private constructor(socket: WebSocketLike) {
    this.#socket = socket;
    socket.binaryType = 'arraybuffer';
    socket.addEventListener('message', (event) => this.#message(event.data));
    socket.addEventListener('close', (event) =>
      this.#fail(
        new TwinlaneStreamError(
          `The socket closed (${event.code ?? 'no code'}${event.reason ? `: ${event.reason}` : ''}).`,
          'socket_closed',
          null,
          event.code ?? null,
        ),
      ),
    );
  }

  /**
   * Opens a socket to the server's /ws route. The API key goes in an Authorization header where the
   * WebSocket implementation can send headers (the `ws` package), else (browsers) as a
   * `bearer.<key>` subprotocol.
   */
  static async connect(options: ConnectOptions): Promise<TwinlaneStream> {
    const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const Impl = options.WebSocket ?? (await defaultWebSocket());
    const url = new URL(options.url.replace(/^http/, 'ws'));
    if (!url.pathname.endsWith('/ws')) url.pathname = `${url.pathname.replace(/\/$/, '')}/ws`;
    const headersAllowed = Impl !== global;
    const key = options.apiKey;
    const protocols = [WS_SUBPROTOCOL, ...(key && !headersAllowed ? [`${WS_BEARER_PREFIX}${key}`] : [])];
    const socket = new Impl(
      url.toString(),
      protocols,
      key && headersAllowed ? { headers: { authorization: `Bearer ${key}` } } : undefined,
    );
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener('open', () => resolve());
      socket.addEventListener('error', (event) =>
        reject(
          new TwinlaneStreamError(`Could not open ${url}: ${event.message ?? 'connection failed'}.`, 'socket_closed'),
        ),
      );
      socket.addEventListener('close', (event) =>
        reject(
          new TwinlaneStreamError(
            `The server closed ${url} (${event.code ?? 'no code'}).`,
            'socket_closed',
            null,
            event.code ?? null,
          ),
        ),
      );
    });
    return new TwinlaneStream(socket);
  }

  #message(data: unknown): void {
    if (typeof data !== 'string') {
      const frame = decodeVectorFrame(toBytes(data));
      this.#pending
        .get(frame.id)
        ?.item(frame.index, { ok: true, index: frame.index, embedding: frame.vector, cached: frame.cached });
      return;
    }
    const message = JSON.parse(data) as ServerMessage;
    const pending = 'id' in message && message.id !== undefined ? this.#pending.get(String(message.id)) : undefined;
    if (!pending) return;
    if ('done' in message) pending.done();
    else if ('index' in message && 'embedding' in message) {
      const embedding =
        typeof message.embedding === 'string' ? decodeBase64(message.embedding) : Float32Array.from(message.embedding);
      pending.item(message.index, { ok: true, index: message.index, embedding, cached: message.cached });
    } else if ('index' in message)
      pending.item(message.index, { ok: false, index: message.index, error: message.error });
    else
      pending.failed(
        new TwinlaneStreamError(message.error.message, message.error.code, message.error),
        message.retry_after,
      );
  }

  #fail(error: TwinlaneStreamError): void {
    this.#closed ??= error;
    for (const pending of [...this.#pending.values()]) pending.failed(error, undefined);
    this.#pending.clear();
  }

  /** Sends one request; its answers go to `pending`. Uint8Array inputs travel as binary frames. */
  #send(inputs: readonly StreamInput[], options: EmbedOptions, pending: Pending): void {
    if (this.#closed) throw this.#closed;
    const id = this.#nextId++;
    this.#pending.set(String(id), {
      ...pending,
      done: () => {
        this.#pending.delete(String(id));
        pending.done();
      },
      failed: (error, retryAfter) => {
        this.#pending.delete(String(id));
        pending.failed(error, retryAfter);
      },
    });
    const lane = options.lane ?? (typeof inputs[0] === 'string' ? 'text' : 'image');
    const fields = {
      lane,
      model: options.model,
      normalize: options.normalize,
      truncate: options.truncate,
      dimensions: options.dimensions,
      format: options.format ?? 'binary',
      dtype: options.dtype,
    };
    const binary = lane === 'image' && inputs.every((i) => i instanceof Uint8Array);
    if (binary) {
      this.#socket.send(JSON.stringify({ id, ...fields, binary_inputs: inputs.length }));
      inputs.forEach((bytes, index) =>
        this.#socket.send(encodeImageFrame(id, index, inputs.length, bytes as Uint8Array)),
      );
    } else {
      const json = inputs.map((i) => (i instanceof Uint8Array ? { b64: encodeBase64(i) } : i));
      this.#socket.send(JSON.stringify({ id, ...fields, inputs: json }));
    }
  }

  /** One request: resolves with every vector in input order, or rejects naming the first item that failed. */
  embed(inputs: readonly StreamInput[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    return new Promise((resolve, reject) => {
      const vectors = new Array<Float32Array | undefined>(inputs.length);
      let firstError: StreamResult | null = null;
      this.#send(inputs, options, {
        count: inputs.length,
        item: (index, result) => {
          if (result.ok) vectors[index] = result.embedding;
          else firstError ??= result;
        },
        failed: (error) => reject(error),
        done: () => {
          if (firstError && !firstError.ok)
            reject(
              new TwinlaneStreamError(
                `Item ${firstError.index}: ${firstError.error.message}`,
                firstError.error.code,
                firstError.error,
              ),
            );
          else if (vectors.some((v) => v === undefined))
            reject(new TwinlaneStreamError('The request ended before every item was answered.', 'incomplete'));
          else resolve(vectors as Float32Array[]);
        },
      });
    });
  }

  /**
   * Streams `source` in requests of `requestSize`, with at most `maxInFlight` items unanswered, and
   * yields each result once, as it arrives (indices count from 0 over the whole source).
   */
  async *stream(
    source: Iterable<StreamInput> | AsyncIterable<StreamInput>,
    options: StreamOptions = {},
  ): AsyncGenerator<StreamResult> {
    const maxInFlight = options.maxInFlight ?? 1024;
    const requestSize = Math.max(1, Math.min(options.requestSize ?? 64, maxInFlight));
    const progress = { sent: 0, answered: 0, failed: 0 };
    const ready: StreamResult[] = [];
    let wake: (() => void) | null = null;
    let failure: TwinlaneStreamError | null = null;
    let inFlight = 0;
    const notify = () => {
      wake?.();
      wake = null;
    };
    /** Sends `items` (source index and input); a request refused for load is sent again, minus what it answered. */
    const send = (items: readonly (readonly [number, StreamInput])[], attempt: number) => {
      const answered = new Set<number>();
      this.#send(
        items.map(([, input]) => input),
        options,
        {
          count: items.length,
          item: (k, result) => {
            if (answered.has(k)) return;
            answered.add(k);
            if (result.ok) progress.answered++;
            else progress.failed++;
            inFlight--;
            ready.push({ ...result, index: items[k]![0] });
            options.onProgress?.(progress);
            notify();
          },
          failed: (error, retryAfter) => {
            const rest = items.filter((_, k) => !answered.has(k));
            if (!RETRYABLE.has(error.code) || attempt >= (options.retries ?? 5)) {
              failure = error;
              notify();
              return;
            }
            setTimeout(
              () => {
                try {
                  if (rest.length > 0) send(rest, attempt + 1);
                } catch (sendError) {
                  failure = sendError as TwinlaneStreamError;
                  notify();
                }
              },
              (retryAfter ?? 1) * 1000,
            );
          },
          done: notify,
        },
      );
    };
    const iterator = (Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]()) as
      AsyncIterator<StreamInput> | Iterator<StreamInput>;
    let exhausted = false;
    while (!exhausted || inFlight > 0 || ready.length > 0) {
      while (ready.length > 0) yield ready.shift()!;
      if (failure) throw failure;
      if (!exhausted && inFlight + requestSize <= maxInFlight) {
        const chunk: [number, StreamInput][] = [];
        while (chunk.length < requestSize) {
          const next = await iterator.next();
          if (next.done) {
            exhausted = true;
            break;
          }
          chunk.push([progress.sent + chunk.length, next.value]);
        }
        if (chunk.length > 0) {
          inFlight += chunk.length;
          progress.sent += chunk.length;
          send(chunk, 0);
        }
        continue;
      }
      if (inFlight > 0 && ready.length === 0 && !failure) await new Promise<void>((resolve) => (wake = resolve));
    }
  }

  /** Closes the socket; what was still pending fails with `socket_closed`. */
  close(): Promise<void> {
    if (this.#socket.readyState >= 2) return Promise.resolve();
    return new Promise((resolve) => {
      this.#socket.addEventListener('close', () => resolve());
      this.#socket.close(1000, 'client done');
    });
  }
}
