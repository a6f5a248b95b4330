// One request on a /ws socket: its answer format, its item accounting, and its end. Every item is
// answered exactly once (a vector or an error) unless the request is cancelled or refused part-way,
// and `done` follows the last answer. Answers are encoded here once per item, in the request's format.
import { encodeBf16 } from '../../cache/index.js';
import { CancelSource, type TwinlaneError } from '../../src/index.js';
import { quantizedMembers } from '../quantize.js';
import { float32Bytes, jsonVector } from '../reply.js';
import type { RequestOptions } from './parse.js';
import { encodeVectorFrame, type RequestId } from './protocol.js';

/** What a request writes to: its socket's sender (which watches backpressure). */
export interface AnswerSender {
  text(message: string): void;
  binary(frame: Uint8Array): void;
}

function errorBody(error: TwinlaneError): string {
  return JSON.stringify({ message: error.message, type: error.type, code: error.code, param: error.param });
}

/** `{"id", "error", "retry_after"?}`: a request (or a frame) refused as a whole. */
export function requestErrorMessage(id: RequestId | undefined, error: TwinlaneError): string {
  const idPart = id === undefined ? '' : `"id":${JSON.stringify(id)},`;
  const retry = error.retryAfterSeconds === undefined ? '' : `,"retry_after":${error.retryAfterSeconds}`;
  return `{${idPart}"error":${errorBody(error)}${retry}}`;
}

export type RequestEnd = 'complete' | 'cancelled' | 'refused';

export interface RequestHooks {
  /** The request was cancelled or refused: its work still queued can be let go. */
  aborted(request: StreamRequest): void;
  /** `done` was sent (or the socket closed): the request no longer counts against the socket. */
  ended(request: StreamRequest): void;
}

export class StreamRequest {
  readonly options: RequestOptions;
  /** The id as it appears in JSON answers, encoded once. */
  readonly #idJson: string;
  readonly count: number;
  /** Input bytes held for this request (counted against the socket's queued-bytes bound). */
  readonly bytes: number;
  /** Cancelled when the client cancels, the server refuses the rest, or the socket closes: its queued work is let go. */
  readonly cancellation = new CancelSource();
  readonly #sender: AnswerSender;
  readonly #hooks: RequestHooks;
  #answered = 0;
  #failed = 0;
  /** Chunks computing in a lane, or units still reading the cache. */
  #busy = 0;
  #end: RequestEnd | null = null;
  /** Refused part-way by the server (as opposed to cancelled by the client). */
  #refused = false;
  /** 1 for every index answered (vector or error); binary requests also mark 2 for frames received. */
  readonly #state: Uint8Array;

  constructor(options: RequestOptions, count: number, bytes: number, sender: AnswerSender, hooks: RequestHooks) {
    this.options = options;
    this.#idJson = JSON.stringify(options.id);
    this.count = count;
    this.bytes = bytes;
    this.#sender = sender;
    this.#hooks = hooks;
    this.#state = new Uint8Array(count);
  }

  get ended(): boolean {
    return this.#end !== null;
  }

  /** Items not answered yet (what the socket's in-flight bound counts). */
  get outstanding(): number {
    return this.#end === null ? this.count - this.#answered - this.#failed : 0;
  }

  get #cancelled(): boolean {
    return this.cancellation.cancelled !== null;
  }

  /** Marks work on the request's behalf (a cache read, a chunk in a lane) until `idle()` is called. */
  busy(): void {
    this.#busy++;
  }

  idle(): void {
    this.#busy--;
    this.#maybeEnd();
  }

  #claim(index: number): boolean {
    if (this.#end !== null || this.#cancelled || this.#state[index] === 1) return false;
    this.#state[index] = 1;
    return true;
  }

  /** Binary requests: records that the frame for `index` arrived; false if it had already. */
  received(index: number): boolean {
    if (this.#state[index] !== 0) return false;
    this.#state[index] = 2;
    return true;
  }

  vector(index: number, vector: Float32Array, cached: boolean): void {
    if (!this.#claim(index)) return;
    this.#answered++;
    const { format, dtype, id, encoding } = this.options;
    if (encoding !== 'float') {
      this.#sender.text(
        `{"id":${this.#idJson},"index":${index},${quantizedMembers(vector, encoding)},"cached":${cached}}`,
      );
    } else if (format === 'binary') {
      const values =
        dtype === 'f32' ? new Uint8Array(float32Bytes([vector], vector.length)) : encodeBf16(vector, 'little');
      this.#sender.binary(encodeVectorFrame(id, index, vector.length, dtype, cached, values));
    } else {
      const embedding =
        format === 'base64' ? `"${float32Bytes([vector], vector.length).toString('base64')}"` : jsonVector(vector);
      this.#sender.text(`{"id":${this.#idJson},"index":${index},"embedding":${embedding},"cached":${cached}}`);
    }
    this.#maybeEnd();
  }

  error(index: number, error: TwinlaneError): void {
    if (!this.#claim(index)) return;
    this.#failed++;
    this.#sender.text(`{"id":${this.#idJson},"index":${index},"error":${errorBody(error)}}`);
    this.#maybeEnd();
  }

  /** The client cancelled: nothing more is answered; `done` follows once in-flight work has let go. */
  cancel(): void {
    if (this.#end !== null || this.#cancelled) return;
    this.cancellation.cancel();
    this.#hooks.aborted(this);
    this.#maybeEnd();
  }

  /** A request-level failure part-way (a lane refused a chunk, the server is draining): one error, then `done`. */
  refuse(error: TwinlaneError): void {
    if (this.#end !== null || this.#cancelled) return;
    this.#sender.text(requestErrorMessage(this.options.id, error));
    this.#refused = true;
    this.cancellation.cancel();
    this.#hooks.aborted(this);
    this.#maybeEnd();
  }

  /** Ends without a word (the socket closed). */
  abandon(): void {
    if (this.#end !== null) return;
    this.cancellation.cancel();
    this.#finish('cancelled');
  }

  #maybeEnd(): void {
    if (this.#end !== null || this.#busy > 0) return;
    const aborted = this.#cancelled;
    if (!aborted && this.#answered + this.#failed < this.count) return;
    const dropped = this.count - this.#answered - this.#failed;
    const cancelled = aborted && !this.#refused;
    const extra = dropped > 0 || aborted ? `${cancelled ? ',"cancelled":true' : ''},"dropped":${dropped}` : '';
    this.#sender.text(`{"id":${this.#idJson},"done":true,"count":${this.count},"failed":${this.#failed}${extra}}`);
    this.#finish(cancelled ? 'cancelled' : this.#refused ? 'refused' : 'complete');
  }

  #finish(end: RequestEnd): void {
    this.#end = end;
    this.#hooks.ended(this);
  }

  get end(): RequestEnd | null {
    return this.#end;
  }
}
