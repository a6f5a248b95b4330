// POST /embed/text: the native route. JSON in; JSON, raw little-endian float32 or BF16 out.
import type { Orchestrator } from '../../src/index.js';
import { parseJson, readBody, requireJson } from '../body.js';
import type { Exchange } from '../exchange.js';
import { optionalBoolean, optionalString, requireObject, textInputs } from '../fields.js';
import { negotiateFormat, replyVectors } from '../reply.js';

export interface EmbedRouteOptions {
  readonly orchestrator: Orchestrator;
  readonly maxBodyBytes: number;
}

export async function embedText(ex: Exchange, options: EmbedRouteOptions): Promise<void> {
  requireJson(ex);
  const format = negotiateFormat(ex);
  const body = requireObject(parseJson(await readBody(ex, options.maxBodyBytes)));
  const result = await options.orchestrator.embedText({
    model: optionalString(body, 'model'),
    inputs: textInputs(body, 'inputs'),
    normalize: optionalBoolean(body, 'normalize', true),
    truncate: optionalBoolean(body, 'truncate', true),
  });
  replyVectors(ex, result, format);
}
