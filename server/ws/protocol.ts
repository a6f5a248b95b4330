// The /ws wire protocol, shared by the server (server/ws/) and the TypeScript client (client/): the
// JSON messages both ways and the layout of the two binary frames. Pure: no imports, no I/O.
//
// Binary frames carry a 4-byte-aligned header, so a client can view the values in place:
//   byte 0        version (1)
//   byte 1        image request: 0;             vector answer: dtype (0 = float32, 1 = bfloat16)
//   byte 2        image request: 0;             vector answer: flags (bit 0 = cached)
//   byte 3        L, the byte length of the request id (UTF-8; a numeric id as its decimal text), 1–255
//   bytes 4…      the id, then zero bytes up to the next multiple of 4
//   next 4 bytes  uint32 little-endian: the item's index in its request
//   next 4 bytes  uint32 little-endian: image request: the request's total item count; answer: dims
//   the rest      image request: the encoded image; answer: dims values, little-endian

const WS_PROTOCOL_VERSION = 1;
/** Offered by browser clients in Sec-WebSocket-Protocol, with `bearer.<api key>` when keys are on. */
export const WS_SUBPROTOCOL = 'twinlane';
export const WS_BEARER_PREFIX = 'bearer.';

export type RequestId = string | number;
export type Lane = 'text' | 'image';
/** How vectors come back: JSON numbers, base64 of little-endian float32, or one binary frame each. */
export type AnswerFormat = 'float' | 'base64' | 'binary';
export type BinaryDtype = 'f32' | 'bf16';

/** An image input as JSON may carry it: a URL, a data URI, or `{url}` / `{b64}`. */
export type ImageInputJson = string | { readonly url: string } | { readonly b64: string };

export interface EmbedRequestMessage {
  readonly id: RequestId;
  readonly lane: Lane;
  readonly model?: string;
  /** Texts for the text lane; images for the image lane. Omitted when `binary_inputs` announces binary frames. */
  readonly inputs?: readonly string[] | readonly ImageInputJson[];
  /** Image lane: this many images follow as binary frames (indices 0 … n-1), under these options. */
  readonly binary_inputs?: number;
  readonly normalize?: boolean;
  readonly truncate?: boolean;
  readonly dimensions?: number;
  readonly format?: AnswerFormat;
  /** With format "binary": the value type of answer frames (default f32). */
  readonly dtype?: BinaryDtype;
  /** Quantized answers (int8, uint8, binary, ubinary; with format "float"): integer `embedding`s, and a `scale` for int8 and uint8. */
  readonly encoding?: 'float' | 'int8' | 'uint8' | 'binary' | 'ubinary';
}

export interface CancelMessage {
  readonly id: RequestId;
  readonly cancel: true;
}

export type ClientMessage = EmbedRequestMessage | CancelMessage;

/** The HTTP error shape (SPEC.md §4), with the same `code` strings. */
export interface ErrorBody {
  readonly message: string;
  readonly type: string;
  readonly code: string;
  readonly param: string | null;
}

export interface ItemMessage {
  readonly id: RequestId;
  readonly index: number;
  /** format float: numbers; base64: little-endian float32 bytes in base64; a quantized encoding: integers. */
  readonly embedding: readonly number[] | string;
  /** Quantized int8 / uint8 answers: the value of one unit. */
  readonly scale?: number;
  readonly cached: boolean;
}

export interface ItemErrorMessage {
  readonly id: RequestId;
  readonly index: number;
  readonly error: ErrorBody;
}

/** A refused or failed request (or a frame that could not be read: `id` is absent when unreadable). */
export interface RequestErrorMessage {
  readonly id?: RequestId;
  readonly error: ErrorBody;
  /** Seconds to wait before retrying, for 429-equivalent errors. */
  readonly retry_after?: number;
}

export interface DoneMessage {
  readonly id: RequestId;
  readonly done: true;
  /** Items of the request. */
  readonly count: number;
  /** Items answered with an error. */
  readonly failed: number;
  /** Set when the request was cancelled (or refused part-way); `dropped` items got no answer. */
  readonly cancelled?: true;
  readonly dropped?: number;
}

export type ServerMessage = ItemMessage | ItemErrorMessage | RequestErrorMessage | DoneMessage;

/** Close codes the server uses besides the standard ones (1001 going away, 1009 frame too big). */
export const WS_CLOSE = Object.freeze({
  /** The server is shutting down; in-flight items were delivered first. */
  goingAway: 1001,
  /** A frame larger than the frame limit (closed by uWebSockets.js itself). */
  tooBig: 1009,
  /** The reader stayed above the high-water mark longer than allowed; what it was owed is dropped. */
  slowReader: 4008,
});

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function idBytes(id: RequestId): Uint8Array {
  const bytes = encoder.encode(String(id));
  if (bytes.length < 1 || bytes.length > 255)
    throw new RangeError(`a request id must be 1–255 UTF-8 bytes in binary frames (got ${bytes.length}).`);
  return bytes;
}

/** Bytes before the two uint32 fields: 4 fixed, the id, padding to a multiple of 4. */
function prefixLength(idLength: number): number {
  return (4 + idLength + 3) & ~3;
}

/** Total header length of a binary frame whose id is `idLength` bytes. */
function binaryHeaderLength(idLength: number): number {
  return prefixLength(idLength) + 8;
}

function writeHeader(
  out: Uint8Array,
  kind: readonly [number, number],
  id: Uint8Array,
  first: number,
  second: number,
): number {
  out[0] = WS_PROTOCOL_VERSION;
  out[1] = kind[0];
  out[2] = kind[1];
  out[3] = id.length;
  out.set(id, 4);
  const at = prefixLength(id.length);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(at, first, true);
  view.setUint32(at + 4, second, true);
  return at + 8;
}

export interface BinaryHeader {
  readonly id: string;
  readonly index: number;
  /** Image request: the request's item count. Answer: dims. */
  readonly second: number;
  readonly byte1: number;
  readonly byte2: number;
  /** Offset of the payload (image bytes or values). */
  readonly payloadOffset: number;
}

/** Reads a binary frame's header; throws a RangeError naming what is wrong. */
export function readBinaryHeader(frame: Uint8Array): BinaryHeader {
  if (frame.length < 12) throw new RangeError(`a binary frame needs at least 12 header bytes (got ${frame.length}).`);
  if (frame[0] !== WS_PROTOCOL_VERSION)
    throw new RangeError(`unknown binary frame version ${frame[0]} (expected ${WS_PROTOCOL_VERSION}).`);
  const idLength = frame[3]!;
  if (idLength === 0) throw new RangeError('the binary frame has an empty request id.');
  const header = binaryHeaderLength(idLength);
  if (frame.length < header) throw new RangeError(`the binary frame ends inside its ${header}-byte header.`);
  let id: string;
  try {
    id = decoder.decode(frame.subarray(4, 4 + idLength));
  } catch {
    throw new RangeError("the binary frame's request id is not valid UTF-8.");
  }
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const at = prefixLength(idLength);
  return {
    id,
    index: view.getUint32(at, true),
    second: view.getUint32(at + 4, true),
    byte1: frame[1]!,
    byte2: frame[2]!,
    payloadOffset: header,
  };
}

/** A client's binary image frame: header (id, index, count) then the encoded image. */
export function encodeImageFrame(id: RequestId, index: number, count: number, image: Uint8Array): Uint8Array {
  const idb = idBytes(id);
  const out = new Uint8Array(binaryHeaderLength(idb.length) + image.length);
  const at = writeHeader(out, [0, 0], idb, index, count);
  out.set(image, at);
  return out;
}

/** The server's binary vector answer: header (dtype, cached, id, index, dims) then `values` (already little-endian bytes). */
export function encodeVectorFrame(
  id: RequestId,
  index: number,
  dims: number,
  dtype: BinaryDtype,
  cached: boolean,
  values: Uint8Array,
): Uint8Array {
  const idb = idBytes(id);
  const out = new Uint8Array(binaryHeaderLength(idb.length) + values.length);
  const at = writeHeader(out, [dtype === 'f32' ? 0 : 1, cached ? 1 : 0], idb, index, dims);
  out.set(values, at);
  return out;
}

export interface VectorFrame {
  readonly id: string;
  readonly index: number;
  readonly cached: boolean;
  readonly dtype: BinaryDtype;
  readonly vector: Float32Array;
}

/** Decodes a vector answer frame into float32 (BF16 values are widened exactly). */
export function decodeVectorFrame(frame: Uint8Array): VectorFrame {
  const header = readBinaryHeader(frame);
  const dims = header.second;
  const dtype: BinaryDtype = header.byte1 === 1 ? 'bf16' : 'f32';
  const width = dtype === 'f32' ? 4 : 2;
  if (frame.length !== header.payloadOffset + dims * width)
    throw new RangeError(
      `a ${dims}-dim ${dtype} answer frame must have ${header.payloadOffset + dims * width} bytes (got ${frame.length}).`,
    );
  const view = new DataView(frame.buffer, frame.byteOffset + header.payloadOffset, dims * width);
  const vector = new Float32Array(dims);
  if (dtype === 'f32') for (let i = 0; i < dims; i++) vector[i] = view.getFloat32(i * 4, true);
  else {
    const widened = new DataView(new ArrayBuffer(4));
    for (let i = 0; i < dims; i++) {
      widened.setUint32(0, view.getUint16(i * 2, true) << 16);
      vector[i] = widened.getFloat32(0);
    }
  }
  return { id: header.id, index: header.index, cached: (header.byte2 & 1) === 1, dtype, vector };
}
