// POST /v1/embeddings (and /embeddings): OpenAI's embeddings API, so the official client, LangChain
// and friends work by changing only their base URL.
import { TwinlaneError, type EmbedResult, type Orchestrator, type RequestPolicy } from '../../src/index.js';
import { parseJson, readBody, requireJson } from '../body.js';
import type { Exchange } from '../exchange.js';
import type { Guard } from '../guard.js';
import { optionalEnum, optionalNumber, optionalString, requireObject, textInputs, type JsonObject } from '../fields.js';
import { imageInputs } from '../image-inputs.js';
import type { FrontGate } from '../front-gate.js';
import { answerHot, keepHot, type HotRoute } from '../hot-answers.js';
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

export async function openAiEmbeddings(ex: Exchange, options: EmbeddingsRouteOptions): Promise<void> {
  requireJson(ex);
  const policy = requestPolicy(ex);
  // The model, and so the limit that applies, is inside the body: read up to the larger limit, then
  // hold text requests to their own.
  const raw = await readBody(ex, options.readLimitBytes);
  const hotKey = options.hot?.key(ex.route, 'openai', raw) ?? null;
  if (await answerHot(ex, hotKey, options)) return;
  // The lane is named inside the body: a stormed lane's request is shed before it is parsed.
  const sniffed = sniffModel(raw);
  if (sniffed !== null) options.gate.admit(options.orchestrator.model(sniffed, 'text').lane);
  const body = requireObject(parseJson(raw));
  const model = optionalString(body, 'model');
  const format = optionalEnum(body, 'encoding_format', ['float', 'base64'], 'float');
  const dimensions = optionalNumber(body, 'dimensions');
  const result = await embed(ex, body, { bytes: raw.length, model, dimensions, policy }, options);
  // Written by hand: base64 never needs escaping, and JSON.stringify would scan every vector string
  // (or build an array per float vector) on the hottest path of the server.
  const data = result.vectors.map((vector, index) => {
    const embedding = format === 'base64' ? `"${float32Bytes([vector], result.dims).toString('base64')}"` : jsonVector(vector);
    return `{"object":"embedding","index":${index},"embedding":${embedding}}`;
  });
  const usage = `{"prompt_tokens":${result.promptTokens},"total_tokens":${result.promptTokens}}`;
  const answer = `{"object":"list","data":[${data.join(',')}],"model":${JSON.stringify(result.model)},"usage":${usage}}`;
  ex.send(200, { 'content-type': 'application/json', ...timingHeaders(ex, result) }, answer);
  keepHot(options, hotKey, result, { contentType: 'application/json', headers: {}, body: answer });
}

/**
 * The `model` of a body without parsing it, when it is among its first bytes (where OpenAI clients
 * put it); null otherwise, or when it names no served model (the parse that follows says so).
 */
function sniffModel(raw: Buffer): string | null {
  const match = /"model"\s*:\s*"([A-Za-z0-9._/-]{1,200})"/.exec(raw.toString('latin1', 0, Math.min(raw.length, 512)));
  return match ? match[1]! : null;
}

/** The client pays for its items once they are known and before any is looked up or computed. */
async function embed(ex: Exchange, body: JsonObject, request: { bytes: number; model: string | undefined; dimensions: number | undefined; policy: RequestPolicy }, options: EmbeddingsRouteOptions): Promise<EmbedResult> {
  const { model, dimensions, policy } = request;
  const { orchestrator, guard } = options;
  // OpenAI's vectors are unit length and its clients expect them so; cutting dims keeps that.
  // An image model id takes image URLs or data URIs as its `input` strings.
  if (model !== undefined && orchestrator.model(model, 'text').lane === 'image') {
    const inputs = imageInputs(body, 'input');
    await guard.spend(ex, inputs.length);
    return orchestrator.embedImages({ model, inputs, normalize: true, dimensions, param: 'input', cancellation: ex, policy });
  }
  if (request.bytes > options.maxBodyBytes) {
    throw new TwinlaneError('payload_too_large', `The body has ${request.bytes} bytes; the limit for text is ${options.maxBodyBytes}.`);
  }
  const inputs = textInputs(body, 'input');
  await guard.spend(ex, inputs.length);
  return orchestrator.embedText({ model, inputs, normalize: true, truncate: true, dimensions, needsUsage: true, param: 'input', cancellation: ex, policy });
}
