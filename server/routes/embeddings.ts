// POST /v1/embeddings (and /embeddings): OpenAI's embeddings API, so the official client, LangChain
// and friends work by changing only their base URL.
import {
  asTwinlaneError,
  TwinlaneError,
  type EmbedInput,
  type EmbedResult,
  type Orchestrator,
  type RequestLane,
  type RequestPolicy,
  type ServedModel,
} from '../../src/index.js';
import { parseJson, requireJson } from '../body.js';
import type { Exchange } from '../exchange.js';
import type { Guard } from '../guard.js';
import {
  optionalEnum,
  optionalNumber,
  optionalString,
  requireObject,
  textItem,
  wrongType,
  type JsonObject,
} from '../fields.js';
import { imageInput } from '../image-inputs.js';
import { QUANTIZATIONS, quantizedMembers } from '../quantize.js';
import type { FrontGate } from '../front-gate.js';
import { keepHot, readOrAnswerHot, type HotRoute } from '../hot-answers.js';
import { requestPolicy } from '../policy.js';
import { float32Bytes, jsonVector, timingHeaders } from '../reply.js';

export interface EmbeddingsRouteOptions extends HotRoute {
  readonly orchestrator: Orchestrator;
  readonly guard: Guard;
  readonly gate: FrontGate;
  /** Body limit of text requests. */
  readonly maxBodyBytes: number;
  /** How much of a body is read before its model is known: the larger of the text and image limits, or the text limit without an image lane. */
  readonly readLimitBytes: number;
}

/** `encoding_format` values: OpenAI's two, and the quantized encodings. */
export const OPENAI_ENCODINGS = ['float', 'base64', ...QUANTIZATIONS] as const;

export function openAiEmbeddings(ex: Exchange, options: EmbeddingsRouteOptions): Promise<void> {
  requireJson(ex);
  const policy = requestPolicy(ex);
  // The model, and so the limit that applies, is inside the body: read up to the larger limit, then
  // hold text requests to their own.
  return readOrAnswerHot(ex, options.readLimitBytes, 'openai', options, (raw, hotKey) =>
    embedBody(ex, raw, hotKey, policy, options),
  );
}

/** A request that its hot answer did not answer: parsed, embedded, answered and kept hot if it can be. */
async function embedBody(
  ex: Exchange,
  raw: Buffer,
  hotKey: string | null,
  policy: RequestPolicy,
  options: EmbeddingsRouteOptions,
): Promise<void> {
  // The lane is named inside the body: a stormed lane's request is refused before it is parsed, or,
  // when small, answered from L1 only (server/front-gate.ts).
  const sniffed = sniffModel(raw);
  if (sniffed !== null) {
    ex.lane = options.orchestrator.laneOf(sniffed);
    if (options.gate.readsWhenStormed(raw.length)) ex.cachedOnly = options.gate.stormed(ex.lane) !== null;
    else options.gate.admit(ex.lane);
  }
  const body = requireObject(parseJson(raw));
  const format = optionalEnum(body, 'encoding_format', OPENAI_ENCODINGS, 'float');
  const result = await embed(
    ex,
    body,
    raw.length,
    {
      policy: ex.cachedOnly ? { ...policy, cachedOnly: true } : policy,
      model: optionalString(body, 'model'),
      dimensions: optionalNumber(body, 'dimensions'),
    },
    options,
  );
  const answer = answerJson(result, format);
  ex.send(200, { 'content-type': 'application/json', ...timingHeaders(ex, result) }, answer);
  keepHot(options, hotKey, result, { contentType: 'application/json', headers: {}, body: answer });
}

function answerJson(result: EmbedResult, format: (typeof OPENAI_ENCODINGS)[number]): string {
  const usage = `{"prompt_tokens":${result.promptTokens},"total_tokens":${result.promptTokens}}`;
  return `{"object":"list","data":[${result.vectors.map((vector, index) => embeddingObject(vector, index, format)).join(',')}],"model":${JSON.stringify(result.model)},"usage":${usage}}`;
}

/** Refusals a batch line waits out and tries again: live traffic first, a worker being replaced, a drain. */
const TRANSIENT = new Set(['lane_overloaded', 'lane_failed', 'not_ready', 'shutting_down', 'deadline_exceeded']);

/**
 * One `/v1/embeddings` body of a batch line, answered as the route answers it (same parsing, same
 * body, same error shape) but at the lowest priority, with no deadline and no rate limit: batch work
 * waits behind live traffic and never takes its budget.
 */
export async function embeddingsForBatch(
  body: Readonly<Record<string, unknown>>,
  orchestrator: Orchestrator,
): Promise<{ statusCode: number; body: unknown; retryAfterSeconds?: number }> {
  try {
    const format = optionalEnum(body, 'encoding_format', OPENAI_ENCODINGS, 'float');
    const model = optionalString(body, 'model');
    const inputs = openAiInputs(body, 'input', orchestrator.registry.find(model, 'text'));
    const result = await orchestrator.embedInputs({
      model,
      dimensions: optionalNumber(body, 'dimensions'),
      inputs,
      normalize: true,
      truncate: true,
      needsUsage: true,
      param: 'input',
      policy: { priority: 'low', startedAt: performance.now(), timeoutMs: null },
    });
    return { statusCode: 200, body: JSON.parse(answerJson(result, format)) as unknown };
  } catch (thrown) {
    const error = asTwinlaneError(thrown);
    return {
      statusCode: error.status,
      body: { error: { message: error.message, type: error.type, code: error.code, param: error.param } },
      ...(TRANSIENT.has(error.code) ? { retryAfterSeconds: error.retryAfterSeconds ?? 1 } : {}),
    };
  }
}

/**
 * One `data` item. Written by hand: base64 never needs escaping, and JSON.stringify would scan every
 * vector string (or build an array per float vector) on the hottest path of the server.
 */
function embeddingObject(vector: Float32Array, index: number, format: (typeof OPENAI_ENCODINGS)[number]): string {
  const head = `{"object":"embedding","index":${index},`;
  if (format === 'float') return `${head}"embedding":${jsonVector(vector)}}`;
  if (format === 'base64') return `${head}"embedding":"${float32Bytes([vector], vector.length).toString('base64')}"}`;
  return `${head}${quantizedMembers(vector, format)}}`;
}

/**
 * The `model` of a body without parsing it, when it is among its first bytes (where OpenAI clients
 * put it); null otherwise, or when it names no served model (the parse that follows says so).
 */
function sniffModel(raw: Buffer): string | null {
  const match = /"model"\s*:\s*"([A-Za-z0-9._/-]{1,200})"/.exec(raw.toString('latin1', 0, Math.min(raw.length, 512)));
  return match ? match[1]! : null;
}

/**
 * `input` as texts and images: plain strings are texts for a model with a text tower (image URLs or
 * data URIs for a vision-only model); `{"text": …}` and `{"image": url | data URI}` say which, for
 * any model; a vision-only model also takes `{"url"}` / `{"b64"}` objects, as /embed/image does.
 */
function openAiInputs(body: JsonObject, param: string, model: ServedModel): EmbedInput[] {
  const value = body[param];
  if (value === undefined) throw new TwinlaneError('invalid_request', `'${param}' is required.`, { param });
  if (typeof value !== 'string' && !Array.isArray(value) && (typeof value !== 'object' || value === null))
    throw wrongType(param, 'a string or an array', value);
  const list: readonly unknown[] = Array.isArray(value) ? value : [value];
  return list.map((item, i): EmbedInput => {
    const at = `${param}[${i}]`;
    if (typeof item === 'object' && item !== null && !Array.isArray(item)) {
      const { text, image } = item as { text?: unknown; image?: unknown };
      if (text !== undefined && image === undefined && Object.keys(item).length === 1) {
        if (typeof text !== 'string')
          throw new TwinlaneError('invalid_request', `'${at}.text' must be a string.`, { param: `${at}.text` });
        return { text };
      }
      if (image !== undefined && text === undefined && Object.keys(item).length === 1)
        return { image: imageInput(image, `${at}.image`) };
      if (model.text)
        throw new TwinlaneError('invalid_request', `${at} must be a string, {"text": …} or {"image": …}.`, {
          param: at,
        });
    }
    if (model.text) return { text: textItem(item, at) };
    return { image: imageInput(item, at) };
  });
}

/** The lane label of a request's metrics: `mixed` when it holds both texts and images. */
function laneOfInputs(inputs: readonly EmbedInput[]): RequestLane {
  const texts = inputs.filter((input) => 'text' in input).length;
  return texts === inputs.length ? 'text' : texts === 0 ? 'image' : 'mixed';
}

/** The client pays for its items once they are known and before any is looked up or computed. */
async function embed(
  ex: Exchange,
  body: JsonObject,
  bytes: number,
  request: { model: string | undefined; dimensions: number | undefined; policy: RequestPolicy },
  options: EmbeddingsRouteOptions,
): Promise<EmbedResult> {
  const { orchestrator, guard } = options;
  const inputs = openAiInputs(body, 'input', orchestrator.registry.find(request.model, 'text'));
  ex.lane = laneOfInputs(inputs);
  // Image bytes may be larger than any text; a text-only body is held to the text limit.
  if (bytes > options.maxBodyBytes && inputs.every((input) => 'text' in input)) {
    throw new TwinlaneError(
      'payload_too_large',
      `The body has ${bytes} bytes; the limit for text is ${options.maxBodyBytes}.`,
    );
  }
  await guard.spend(ex, inputs.length);
  // OpenAI's vectors are unit length and its clients expect them so; cutting dims keeps that.
  return orchestrator.embedInputs({
    ...request,
    inputs,
    normalize: true,
    truncate: true,
    needsUsage: true,
    param: 'input',
    cancellation: ex,
  });
}
