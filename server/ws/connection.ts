// One /ws socket: its requests, its flow control and its bounds. Cached items are answered the moment
// a request arrives; misses wait in this socket's dispatch queue and go to the lanes a chunk at a
// time, at most `windowItems` in the lanes at once, and not at all while the socket's outgoing
// buffer is over the high-water mark (a slow reader stops costing the lanes; dispatch resumes on
// drain). A new request that would take the socket over its in-flight items or queued bytes is
// refused at once (429-equivalent, `too_many_in_flight`), so memory per socket is bounded whatever
// the client does. Closing the socket cancels everything it had queued.
import {
  TwinlaneError,
  type EmbedStream,
  type ImageInput,
  type Metrics,
  type Orchestrator,
  type RateDecision,
  type StreamSink,
} from '../../src/index.js';
import {
  binaryDefaults,
  FrameError,
  parseFrame,
  type ImageSlot,
  type ParsedFrame,
  type RequestOptions,
} from './parse.js';
import { readBinaryHeader, type Lane } from './protocol.js';
import { requestErrorMessage, StreamRequest, type AnswerSender } from './request.js';

export interface WsLimits {
  readonly maxInputs: number;
  /** JSON requests for the text lane over this many bytes get payload_too_large (as HTTP's body limit). */
  readonly maxTextFrameBytes: number;
  readonly maxInFlightItems: number;
  readonly maxQueuedBytes: number;
  /** Items of one socket in each lane at once. */
  readonly windowItems: Readonly<Record<Lane, number>>;
  /** Outgoing bytes above which dispatch pauses. */
  readonly highWaterBytes: number;
  /** Items per chunk sent to a lane (its batch size). */
  readonly chunkItems: Readonly<Record<Lane, number>>;
}

/** What a connection needs of its uWS socket. */
export interface SocketPort {
  send(message: string | Uint8Array, binary: boolean): void;
  bufferedAmount(): number;
}

export interface ConnectionDeps {
  readonly orchestrator: Orchestrator;
  /** Takes `items` from the client's rate-limit budget; null when no limit is configured. */
  readonly spend: (items: number) => Promise<RateDecision> | null;
  readonly metrics: Metrics;
  readonly limits: WsLimits;
  /** The server's drain: refusing once the listen socket is closed; counts requests in flight. */
  readonly drain: { readonly refusing: boolean; opened(): void; closed(): void };
  readonly socket: SocketPort;
}

interface Chunk {
  readonly request: StreamRequest;
  readonly stream: EmbedStream;
  readonly indices: readonly number[];
}

/** A request's items as a stream sink, with its item indices offset (a binary frame is its own one-item stream). */
function sinkFor(request: StreamRequest, offset: number, metrics: Metrics): StreamSink {
  const lane = request.options.lane;
  return {
    vector: (index, vector, cached) => {
      metrics.wsItems(lane, cached ? 'cached' : 'computed', 1);
      request.vector(index + offset, vector, cached);
    },
    error: (index, error) => {
      // A lane that refuses, or a server that drains, fails the request, not each of its items.
      if (error.code === 'lane_overloaded' || error.code === 'shutting_down' || error.code === 'not_ready') {
        request.refuse(error);
        return;
      }
      metrics.wsItems(lane, 'failed', 1);
      request.error(index + offset, error);
    },
  };
}

function inputBytes(frame: ParsedFrame): number {
  if (frame.kind === 'texts') return frame.texts.reduce((n, t) => n + t.length * 2, 0);
  if (frame.kind === 'images') return frame.images.reduce((n, i) => n + ('bytes' in i ? i.bytes.length : 0), 0);
  return 0;
}

export class StreamConnection {
  readonly #deps: ConnectionDeps;
  readonly #requests = new Map<string, StreamRequest>();
  readonly #queue: Chunk[] = [];
  readonly #inLanes: Record<Lane, number> = { text: 0, image: 0 };
  #outstanding = 0;
  #queuedBytes = 0;
  #paused = false;
  /** performance.now() when the outgoing buffer went over the high-water mark; null while under it. */
  pausedSince: number | null = null;
  #closed = false;
  readonly #sender: AnswerSender;

  constructor(deps: ConnectionDeps) {
    this.#deps = deps;
    this.#sender = {
      text: (message) => this.#send(message, false, 'text'),
      binary: (frame) => this.#send(frame, true, 'binary'),
    };
  }

  #send(message: string | Uint8Array, binary: boolean, kind: 'text' | 'binary'): void {
    if (this.#closed) return;
    const { socket, limits, metrics } = this.#deps;
    socket.send(message, binary);
    metrics.wsMessage('out', kind);
    if (!this.#paused && socket.bufferedAmount() > limits.highWaterBytes) {
      this.#paused = true;
      this.pausedSince = performance.now();
      metrics.wsBackpressurePause();
    }
  }

  /** uWS drain: the reader caught up below the high-water mark, so dispatch resumes. */
  drained(): void {
    if (!this.#paused || this.#deps.socket.bufferedAmount() > this.#deps.limits.highWaterBytes) return;
    this.#paused = false;
    this.pausedSince = null;
    this.#pump();
  }

  /** The socket is gone: every request ends, queued work is dropped and in-flight items are cancelled. */
  close(): void {
    this.#closed = true;
    this.#queue.length = 0;
    for (const request of [...this.#requests.values()]) request.abandon();
  }

  /** Requests not yet done. */
  get openRequests(): number {
    return this.#requests.size;
  }

  text(bytes: Buffer): void {
    this.#deps.metrics.wsMessage('in', 'text');
    let frame: ParsedFrame;
    try {
      frame = parseFrame(bytes);
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      this.#deps.metrics.wsRefused(error.error.code);
      this.#sender.text(requestErrorMessage(error.id, error.error));
      return;
    }
    if (frame.kind === 'cancel') {
      const request = this.#requests.get(String(frame.id));
      if (request) request.cancel();
      else
        this.#refuseRequest(
          { ...binaryDefaults(frame.id) },
          new TwinlaneError(
            'invalid_request',
            `No request with id ${JSON.stringify(frame.id)} is in flight on this socket.`,
            { param: 'id' },
          ),
        );
      return;
    }
    if (frame.kind === 'texts' && bytes.length > this.#deps.limits.maxTextFrameBytes) {
      this.#refuseRequest(
        frame.options,
        new TwinlaneError(
          'payload_too_large',
          `The request has ${bytes.length} bytes; the limit for text is ${this.#deps.limits.maxTextFrameBytes}.`,
        ),
      );
      return;
    }
    const count =
      frame.kind === 'texts' ? frame.texts.length : frame.kind === 'images' ? frame.images.length : frame.count;
    const request = this.#admit(frame.options, count, inputBytes(frame));
    if (!request) return;
    void this.#start(request, frame);
  }

  binary(bytes: Buffer): void {
    this.#deps.metrics.wsMessage('in', 'binary');
    let header;
    try {
      header = readBinaryHeader(bytes);
    } catch (error) {
      this.#refuseRequest(undefined, new TwinlaneError('invalid_request', `Binary frame: ${(error as Error).message}`));
      return;
    }
    const image = bytes.subarray(header.payloadOffset);
    let request = this.#requests.get(header.id);
    if (!request) {
      request = this.#admit(binaryDefaults(header.id), header.second, 0) ?? undefined;
      if (!request) return;
      void this.#start(request, { kind: 'binary', options: request.options, count: header.second });
    }
    if (header.index >= request.count || !request.received(header.index)) {
      const why =
        header.index >= request.count
          ? `index ${header.index} is outside the request's ${request.count} items`
          : `index ${header.index} was already sent`;
      this.#deps.metrics.wsRefused('invalid_request');
      this.#sender.text(
        requestErrorMessage(
          request.options.id,
          new TwinlaneError('invalid_request', `Binary frame for request ${header.id}: ${why}.`, { param: 'index' }),
        ),
      );
      return;
    }
    if (this.#queuedBytes + image.length > this.#deps.limits.maxQueuedBytes && this.#queuedBytes > 0) {
      this.#deps.metrics.wsItems('image', 'failed', 1);
      request.error(
        header.index,
        new TwinlaneError(
          'too_many_in_flight',
          `This socket holds ${this.#queuedBytes} bytes of images in flight; this one would pass its bound of ${this.#deps.limits.maxQueuedBytes} bytes.`,
          { param: 'index', retryAfterSeconds: 1 },
        ),
      );
      return;
    }
    this.#queuedBytes += image.length;
    this.#streamImages(request, [{ bytes: Buffer.from(image) }], header.index, image.length);
  }

  #refuseRequest(options: RequestOptions | undefined, error: TwinlaneError): void {
    this.#deps.metrics.wsRefused(error.code);
    this.#sender.text(requestErrorMessage(options?.id, error));
  }

  /** Registers a request, or refuses it (duplicate id, draining, over the socket's bounds). */
  #admit(options: RequestOptions, count: number, bytes: number): StreamRequest | null {
    const { limits, drain } = this.#deps;
    const key = String(options.id);
    const refuse = (error: TwinlaneError) => {
      this.#refuseRequest(options, error);
      return null;
    };
    if (this.#requests.has(key))
      return refuse(
        new TwinlaneError(
          'invalid_request',
          `A request with id ${JSON.stringify(options.id)} is still in flight on this socket; ids must be unique while in flight.`,
          { param: 'id' },
        ),
      );
    if (drain.refusing)
      return refuse(
        new TwinlaneError('shutting_down', 'The server is shutting down; open a new socket to another instance.'),
      );
    if (count === 0)
      return refuse(new TwinlaneError('empty_input', "'inputs' must contain at least one item.", { param: 'inputs' }));
    if (count > limits.maxInputs)
      return refuse(
        new TwinlaneError('too_many_inputs', `The request has ${count} items; the limit is ${limits.maxInputs}.`, {
          param: 'inputs',
        }),
      );
    const busy = this.#outstanding > 0;
    if (
      busy &&
      (this.#outstanding + count > limits.maxInFlightItems || this.#queuedBytes + bytes > limits.maxQueuedBytes)
    ) {
      return refuse(
        new TwinlaneError(
          'too_many_in_flight',
          `This socket has ${this.#outstanding} items (${this.#queuedBytes} bytes) in flight; ${count} more would pass its bound of ${limits.maxInFlightItems} items or ${limits.maxQueuedBytes} bytes. Wait for answers, then retry.`,
          { retryAfterSeconds: 1 },
        ),
      );
    }
    const request = new StreamRequest(options, count, bytes, this.#sender, {
      ended: (ended) => this.#ended(ended),
      aborted: () => this.#sweep(),
    });
    this.#requests.set(key, request);
    this.#outstanding += count;
    this.#queuedBytes += bytes;
    drain.opened();
    return request;
  }

  #ended(request: StreamRequest): void {
    this.#requests.delete(String(request.options.id));
    this.#outstanding -= request.count;
    this.#queuedBytes -= request.bytes;
    this.#deps.drain.closed();
    this.#deps.metrics.wsRequestEnded(request.end ?? 'complete');
  }

  /** Spends the client's budget, then answers cached items and queues the rest. */
  async #start(request: StreamRequest, frame: ParsedFrame): Promise<void> {
    request.busy();
    try {
      const decision = await this.#deps.spend(request.count);
      if (decision && !decision.allowed) {
        request.refuse(
          new TwinlaneError(
            'rate_limited',
            `This client's budget of ${decision.limit} items cannot cover ${request.count} item(s) now; retry after ${decision.retryAfterSeconds} s.`,
            { retryAfterSeconds: decision.retryAfterSeconds },
          ),
        );
        return;
      }
      if (frame.kind === 'texts') await this.#streamTexts(request, frame.texts);
      else if (frame.kind === 'images') this.#streamImageSlots(request, frame.images);
    } catch (error) {
      request.refuse(
        error instanceof TwinlaneError
          ? error
          : new TwinlaneError('internal_error', 'Internal error.', { cause: error }),
      );
    } finally {
      request.idle();
    }
  }

  async #streamTexts(request: StreamRequest, texts: readonly string[]): Promise<void> {
    const { model, normalize, truncate, dimensions } = request.options;
    const stream = this.#deps.orchestrator.streamText(
      { model, inputs: texts, normalize, truncate, dimensions, param: 'inputs' },
      sinkFor(request, 0, this.#deps.metrics),
    );
    await this.#queueMisses(request, stream);
  }

  /** JSON image items: the ones that failed to parse are answered with their error, the rest streamed as one request. */
  #streamImageSlots(request: StreamRequest, slots: readonly ImageSlot[]): void {
    const inputs: ImageInput[] = [];
    const positions: number[] = [];
    slots.forEach((slot, index) => {
      if (slot instanceof TwinlaneError) {
        this.#deps.metrics.wsItems('image', 'failed', 1);
        request.error(index, slot);
      } else {
        inputs.push(slot);
        positions.push(index);
      }
    });
    if (inputs.length === 0) return;
    // Contiguous positions stream as one unit; otherwise each keeps its own offset.
    if (positions.every((p, k) => p === positions[0]! + k)) this.#streamImages(request, inputs, positions[0]!, 0);
    else positions.forEach((p, k) => this.#streamImages(request, [inputs[k]!], p, 0));
  }

  #streamImages(request: StreamRequest, inputs: readonly ImageInput[], offset: number, bytes: number): void {
    const { model, normalize, dimensions } = request.options;
    request.busy();
    void (async () => {
      try {
        const stream = this.#deps.orchestrator.streamImages(
          { model, inputs, normalize, dimensions, param: 'inputs' },
          sinkFor(request, offset, this.#deps.metrics),
        );
        await this.#queueMisses(request, stream);
      } catch (error) {
        request.refuse(
          error instanceof TwinlaneError
            ? error
            : new TwinlaneError('internal_error', 'Internal error.', { cause: error }),
        );
      } finally {
        this.#queuedBytes -= bytes;
        request.idle();
      }
    })();
  }

  /** Cached items are answered by answerCached; the misses join this socket's dispatch queue in chunks. */
  async #queueMisses(request: StreamRequest, stream: EmbedStream): Promise<void> {
    const misses = await stream.answerCached();
    if (request.cancellation.cancelled !== null || this.#closed) return;
    const size = this.#deps.limits.chunkItems[request.options.lane];
    for (let i = 0; i < misses.length; i += size) {
      request.busy();
      this.#queue.push({ request, stream, indices: misses.slice(i, i + size) });
    }
    this.#pump();
  }

  /** Sends queued chunks to the lanes while the window has room and the reader keeps up. */
  #pump(): void {
    const { windowItems } = this.#deps.limits;
    while (!this.#paused && this.#queue.length > 0) {
      const next = this.#queue[0]!;
      const lane = next.request.options.lane;
      if (this.#inLanes[lane] > 0 && this.#inLanes[lane] + next.indices.length > windowItems[lane]) return;
      this.#queue.shift();
      this.#inLanes[lane] += next.indices.length;
      void next.stream
        .compute(next.indices, next.request.cancellation)
        .catch((error: unknown) =>
          next.request.refuse(
            error instanceof TwinlaneError
              ? error
              : new TwinlaneError('internal_error', 'Internal error.', { cause: error }),
          ),
        )
        .finally(() => {
          this.#inLanes[lane] -= next.indices.length;
          next.request.idle();
          this.#pump();
        });
    }
  }

  /** Lets go of queued chunks of cancelled or refused requests at once, so their `done` is not held up by the queue. */
  #sweep(): void {
    for (let i = this.#queue.length - 1; i >= 0; i--) {
      const chunk = this.#queue[i]!;
      if (chunk.request.cancellation.cancelled === null) continue;
      this.#queue.splice(i, 1);
      chunk.request.idle();
    }
  }
}
