// Reading /ws text frames into typed messages. A frame that cannot be read (not JSON, not an object,
// a bad id, an unknown lane, a field of the wrong type) throws a TwinlaneError with the same codes
// and `param`s as HTTP, together with the id when it could be read. Item contents (an empty text,
// an image that is not base64) are not judged here: they fail only their own item later.
import { TwinlaneError, type ImageInput } from '../../src/index.js';
import { parseJson } from '../body.js';
import {
  optionalBoolean,
  optionalEnum,
  optionalNumber,
  optionalString,
  requireObject,
  textInputs,
  type JsonObject,
} from '../fields.js';
import { imageInput } from '../image-inputs.js';
import { QUANTIZATIONS, type Quantization } from '../quantize.js';
import type { AnswerFormat, BinaryDtype, Lane, RequestId } from './protocol.js';

export interface RequestOptions {
  readonly id: RequestId;
  readonly lane: Lane;
  readonly model: string | undefined;
  readonly normalize: boolean;
  readonly truncate: boolean;
  readonly dimensions: number | undefined;
  readonly format: AnswerFormat;
  readonly dtype: BinaryDtype;
  /** float, or a quantization (server/quantize.ts), answered in JSON item messages. */
  readonly encoding: 'float' | Quantization;
}

/** An image input, or the error that fails only that item. */
export type ImageSlot = ImageInput | TwinlaneError;

export type ParsedFrame =
  | { readonly kind: 'cancel'; readonly id: RequestId }
  | { readonly kind: 'texts'; readonly options: RequestOptions; readonly texts: readonly string[] }
  | { readonly kind: 'images'; readonly options: RequestOptions; readonly images: readonly ImageSlot[] }
  | { readonly kind: 'binary'; readonly options: RequestOptions; readonly count: number };

/** A frame refused as a whole, with the request id when the frame carried a readable one. */
export class FrameError extends Error {
  constructor(
    readonly error: TwinlaneError,
    readonly id: RequestId | undefined,
  ) {
    super(error.message);
    this.name = 'FrameError';
  }
}

/** A request id: a string of 1–255 UTF-8 bytes, or a finite number; the key that makes ids unique is its text. */
function readId(value: unknown): RequestId {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && value.length > 0 && Buffer.byteLength(value) <= 255) return value;
  throw new TwinlaneError(
    'invalid_request',
    `'id' must be a string of 1 to 255 bytes or a number (got ${value === undefined ? 'none' : JSON.stringify(value)?.slice(0, 40)}).`,
    { param: 'id' },
  );
}

function requestOptions(body: JsonObject, id: RequestId): RequestOptions {
  const lane = body['lane'];
  if (lane !== 'text' && lane !== 'image') {
    throw new TwinlaneError(
      'invalid_request',
      `'lane' must be "text" or "image" (got ${JSON.stringify(lane) ?? 'none'}).`,
      { param: 'lane' },
    );
  }
  const dimensions = optionalNumber(body, 'dimensions');
  const format = optionalEnum(body, 'format', ['float', 'base64', 'binary'], 'float');
  const encoding = optionalEnum(body, 'encoding', ['float', ...QUANTIZATIONS], 'float');
  if (encoding !== 'float' && format !== 'float') {
    throw new TwinlaneError(
      'invalid_request',
      `'encoding' ${encoding} answers JSON integers; it needs "format": "float" (got "${format}").`,
      { param: 'encoding' },
    );
  }
  return {
    id,
    lane,
    model: optionalString(body, 'model'),
    normalize: optionalBoolean(body, 'normalize', true),
    truncate: optionalBoolean(body, 'truncate', true),
    dimensions,
    format,
    dtype: optionalEnum(body, 'dtype', ['f32', 'bf16'], 'f32'),
    encoding,
  };
}

function images(body: JsonObject): ImageSlot[] {
  const value = body['inputs'];
  if (!Array.isArray(value))
    throw new TwinlaneError('invalid_request', "'inputs' must be an array of images.", { param: 'inputs' });
  return value.map((item: unknown, i) => {
    try {
      return imageInput(item, `inputs[${i}]`);
    } catch (error) {
      if (error instanceof TwinlaneError) return error;
      throw error;
    }
  });
}

function embedFrame(body: JsonObject, id: RequestId): ParsedFrame {
  const options = requestOptions(body, id);
  const binary = body['binary_inputs'];
  if (binary !== undefined) {
    if (options.lane !== 'image')
      throw new TwinlaneError(
        'invalid_request',
        '\'binary_inputs\' announces binary image frames: it needs "lane": "image".',
        { param: 'binary_inputs' },
      );
    if (body['inputs'] !== undefined)
      throw new TwinlaneError('invalid_request', "Send either 'inputs' or 'binary_inputs', not both.", {
        param: 'binary_inputs',
      });
    if (typeof binary !== 'number' || !Number.isInteger(binary) || binary < 0)
      throw new TwinlaneError('invalid_request', "'binary_inputs' must be a whole number of images.", {
        param: 'binary_inputs',
      });
    return { kind: 'binary', options, count: binary };
  }
  if (options.lane === 'text') return { kind: 'texts', options, texts: textInputs(body, 'inputs') };
  return { kind: 'images', options, images: images(body) };
}

/** One text frame (its UTF-8 bytes) as a message, or a FrameError. */
export function parseFrame(bytes: Buffer): ParsedFrame {
  let body: JsonObject;
  try {
    body = requireObject(parseJson(bytes));
  } catch (error) {
    throw new FrameError(error as TwinlaneError, undefined);
  }
  let id: RequestId;
  try {
    id = readId(body['id']);
  } catch (error) {
    throw new FrameError(error as TwinlaneError, undefined);
  }
  try {
    if (body['cancel'] !== undefined) {
      if (body['cancel'] !== true)
        throw new TwinlaneError('invalid_request', "'cancel' must be true.", { param: 'cancel' });
      return { kind: 'cancel', id };
    }
    return embedFrame(body, id);
  } catch (error) {
    if (error instanceof TwinlaneError) throw new FrameError(error, id);
    throw error;
  }
}

/** The options a binary frame for an unannounced id runs with: the image lane's defaults. */
export function binaryDefaults(id: RequestId): RequestOptions {
  return {
    id,
    lane: 'image',
    model: undefined,
    normalize: true,
    truncate: true,
    dimensions: undefined,
    format: 'float',
    dtype: 'f32',
    encoding: 'float',
  };
}
