// POST /tokenize: a text model's tokens for each input — ids, token strings, special-token flags and
// [start, end) offsets into the input — so clients can chunk documents to the model's limit.
import type { Orchestrator } from '../../src/index.js';
import { parseJson, readBody, requireJson } from '../body.js';
import type { Exchange } from '../exchange.js';
import { optionalBoolean, optionalEnum, optionalString, requireObject, textInputs } from '../fields.js';
import type { Guard } from '../guard.js';
import { replyJson } from '../reply.js';

export interface TokenizeRouteOptions {
  readonly orchestrator: Orchestrator;
  readonly guard: Guard;
  readonly maxBodyBytes: number;
}

/** How /tokenize counts character offsets. */
export const TOKENIZE_OFFSETS = ['utf16', 'codepoint', 'byte'] as const;

export async function tokenize(ex: Exchange, options: TokenizeRouteOptions): Promise<void> {
  requireJson(ex);
  const body = requireObject(parseJson(await readBody(ex, options.maxBodyBytes)));
  const inputs = textInputs(body, 'inputs');
  const request = {
    model: optionalString(body, 'model'),
    inputs,
    addSpecialTokens: optionalBoolean(body, 'add_special_tokens', true),
    offsets: optionalEnum(body, 'offsets', TOKENIZE_OFFSETS, 'utf16'),
    param: 'inputs',
  };
  await options.guard.spend(ex, inputs.length);
  const result = await options.orchestrator.tokenize(request);
  replyJson(ex, 200, {
    model: result.model,
    max_tokens: result.maxTokens,
    offsets: request.offsets,
    data: result.inputs.map((t, index) => ({
      index,
      count: t.ids.length,
      ids: t.ids,
      tokens: t.tokens,
      special: t.special,
      offsets: t.offsets,
    })),
  });
}
