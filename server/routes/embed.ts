// POST /embed/text and /embed/image: the native routes. JSON (or a raw image) in; JSON, raw
// little-endian float32 or BF16 out, or quantized vectors as JSON (`encoding`).
import { TwinlaneError, type Orchestrator, type RequestPolicy } from '../../src/index.js';
import { parseJson, readBody, requireJson } from '../body.js';
import type { Exchange } from '../exchange.js';
import type { Guard } from '../guard.js';
import { optionalBoolean, optionalString, requireObject, textInputs } from '../fields.js';
import { imageInputs, RAW_IMAGE_TYPES } from '../image-inputs.js';
import { keepHot, readOrAnswerHot, type HotRoute } from '../hot-answers.js';
import { requestPolicy } from '../policy.js';
import { encodeVectors, negotiateFormat, replyVectors, type VectorFormat } from '../reply.js';
import { isQuantization, QUANTIZATIONS, type Quantization } from '../quantize.js';

export interface EmbedRouteOptions extends HotRoute {
  readonly orchestrator: Orchestrator;
  readonly guard: Guard;
  readonly maxBodyBytes: number;
}

/** The native routes' `encoding` values. */
export const NATIVE_ENCODINGS = ['float', ...QUANTIZATIONS] as const;

/** The `encoding` a client asks for; quantized vectors are answered as JSON only. */
function encodingOf(value: string | undefined, format: VectorFormat, param: string): 'float' | Quantization {
  const encoding = value ?? 'float';
  if (encoding !== 'float' && !isQuantization(encoding)) {
    throw new TwinlaneError(
      'invalid_request',
      `'${param}' must be one of ${NATIVE_ENCODINGS.join(', ')} (got '${encoding}').`,
      { param },
    );
  }
  if (encoding !== 'float' && format !== 'json') {
    throw new TwinlaneError(
      'invalid_request',
      `'${param}' ${encoding} is answered as JSON; drop the Accept header that asks for ${format === 'f32' ? 'application/octet-stream' : 'application/x-bfloat16'}.`,
      { param },
    );
  }
  return encoding;
}

export function embedText(ex: Exchange, options: EmbedRouteOptions): Promise<void> {
  ex.lane = 'text';
  requireJson(ex);
  const policy = requestPolicy(ex);
  const format = negotiateFormat(ex);
  return readOrAnswerHot(ex, options.maxBodyBytes, format, options, (raw, hotKey) =>
    embedTextBody(ex, raw, hotKey, { policy, format }, options),
  );
}

/** A text request that its hot answer did not answer. */
async function embedTextBody(
  ex: Exchange,
  raw: Buffer,
  hotKey: string | null,
  { policy, format }: { readonly policy: RequestPolicy; readonly format: VectorFormat },
  options: EmbedRouteOptions,
): Promise<void> {
  const body = requireObject(parseJson(raw));
  const inputs = textInputs(body, 'inputs');
  const encoding = encodingOf(optionalString(body, 'encoding'), format, 'encoding');
  await options.guard.spend(ex, inputs.length);
  const result = await options.orchestrator.embedText({
    model: optionalString(body, 'model'),
    inputs,
    normalize: optionalBoolean(body, 'normalize', true),
    truncate: optionalBoolean(body, 'truncate', true),
    param: 'inputs',
    cancellation: ex,
    policy,
  });
  const encoded = encodeVectors(result, format, encoding);
  replyVectors(ex, result, encoded);
  keepHot(options, hotKey, result, encoded);
}

/**
 * POST /embed/image: JSON `{"inputs": [...], "normalize", "model"}`, or one raw image as the body
 * (`Content-Type: image/jpeg|png|webp|gif|avif`, with `?normalize=` and `?model=` in the query).
 */
export async function embedImage(ex: Exchange, options: EmbedRouteOptions): Promise<void> {
  ex.lane = 'image';
  const policy = requestPolicy(ex);
  const media = (ex.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  const format = negotiateFormat(ex);
  if (media.startsWith('image/')) {
    if (!RAW_IMAGE_TYPES.has(media)) {
      throw new TwinlaneError(
        'unsupported_media_type',
        `Content-Type ${media} is not accepted; send ${[...RAW_IMAGE_TYPES].join(', ')} or application/json.`,
      );
    }
    const normalize = ex.query.get('normalize');
    if (normalize !== null && normalize !== 'true' && normalize !== 'false') {
      throw new TwinlaneError('invalid_request', `normalize must be true or false (got '${normalize}').`, {
        param: 'normalize',
      });
    }
    const encoding = encodingOf(ex.query.get('encoding') ?? undefined, format, 'encoding');
    const bytes = await readBody(ex, options.maxBodyBytes);
    await options.guard.spend(ex, 1);
    const result = await options.orchestrator.embedImages({
      model: ex.query.get('model') ?? undefined,
      inputs: [{ bytes }],
      normalize: normalize !== 'false',
      param: 'body',
      cancellation: ex,
      policy,
    });
    replyVectors(ex, result, encodeVectors(result, format, encoding));
    return;
  }
  requireJson(ex);
  const body = requireObject(parseJson(await readBody(ex, options.maxBodyBytes)));
  const inputs = imageInputs(body, 'inputs');
  const encoding = encodingOf(optionalString(body, 'encoding'), format, 'encoding');
  await options.guard.spend(ex, inputs.length);
  const result = await options.orchestrator.embedImages({
    model: optionalString(body, 'model'),
    inputs,
    normalize: optionalBoolean(body, 'normalize', true),
    param: 'inputs',
    cancellation: ex,
    policy,
  });
  replyVectors(ex, result, encodeVectors(result, format, encoding));
}
