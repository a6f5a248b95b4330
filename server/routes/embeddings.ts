// POST /v1/embeddings (and /embeddings): OpenAI's embeddings API, so the official client, LangChain
// and friends work by changing only their base URL.
import { TwinlaneError, type EmbedResult, type Orchestrator } from '../../src/index.js';
import { parseJson, readBody, requireJson } from '../body.js';
import type { Exchange } from '../exchange.js';
import type { Guard } from '../guard.js';
import { optionalEnum, optionalNumber, optionalString, requireObject, textInputs, type JsonObject } from '../fields.js';
import { imageInputs } from '../image-inputs.js';
import { float32Bytes, jsonVector, timingHeaders } from '../reply.js';

export interface EmbeddingsRouteOptions {
  readonly orchestrator: Orchestrator;
  readonly guard: Guard;
  /** Body limit of text requests. */
  readonly maxBodyBytes: number;
  /** How much of a body is read before its model is known: the larger of the text and image limits, or the text limit without an image lane. */
  readonly readLimitBytes: number;
}

export async function openAiEmbeddings(ex: Exchange, options: EmbeddingsRouteOptions): Promise<void> {
  requireJson(ex);
  // The model, and so the limit that applies, is inside the body: read up to the larger limit, then
  // hold text requests to their own.
  const raw = await readBody(ex, options.readLimitBytes);
  const body = requireObject(parseJson(raw));
  const model = optionalString(body, 'model');
  const format = optionalEnum(body, 'encoding_format', ['float', 'base64'], 'float');
  const dimensions = optionalNumber(body, 'dimensions');
  const result = await embed(ex, body, raw.length, model, dimensions, options);
  // Written by hand: base64 never needs escaping, and JSON.stringify would scan every vector string
  // (or build an array per float vector) on the hottest path of the server.
  const data = result.vectors.map((vector, index) => {
    const embedding = format === 'base64' ? `"${float32Bytes([vector], result.dims).toString('base64')}"` : jsonVector(vector);
    return `{"object":"embedding","index":${index},"embedding":${embedding}}`;
  });
  const usage = `{"prompt_tokens":${result.promptTokens},"total_tokens":${result.promptTokens}}`;
  ex.send(200, { 'content-type': 'application/json', ...timingHeaders(ex, result) }, `{"object":"list","data":[${data.join(',')}],"model":${JSON.stringify(result.model)},"usage":${usage}}`);
}

/** The client pays for its items once they are known and before any is looked up or computed. */
async function embed(ex: Exchange, body: JsonObject, bodyBytes: number, model: string | undefined, dimensions: number | undefined, options: EmbeddingsRouteOptions): Promise<EmbedResult> {
  const { orchestrator, guard } = options;
  // OpenAI's vectors are unit length and its clients expect them so; cutting dims keeps that.
  // An image model id takes image URLs or data URIs as its `input` strings.
  if (model !== undefined && orchestrator.model(model, 'text').lane === 'image') {
    const inputs = imageInputs(body, 'input');
    await guard.spend(ex, inputs.length);
    return orchestrator.embedImages({ model, inputs, normalize: true, dimensions, param: 'input', signal: ex.signal });
  }
  if (bodyBytes > options.maxBodyBytes) {
    throw new TwinlaneError('payload_too_large', `The body has ${bodyBytes} bytes; the limit for text is ${options.maxBodyBytes}.`);
  }
  const inputs = textInputs(body, 'input');
  await guard.spend(ex, inputs.length);
  return orchestrator.embedText({ model, inputs, normalize: true, truncate: true, dimensions, needsUsage: true, param: 'input', signal: ex.signal });
}
