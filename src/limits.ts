// The per-request limits every transport shares (TWINLANE_MAX_INPUTS, TWINLANE_MAX_CHARS): checked
// before anything is looked up or computed, each refusal naming the field to fix.
import { TwinlaneError } from './errors.js';

export interface Limits {
  readonly maxInputs: number;
  readonly maxChars: number;
}

/** The param of a request's item `i`: `input[3]`, or its position in the client's list when the request is a part of it. */
export function itemParam(param: string, i: number, positions?: readonly number[]): string {
  return `${param}[${positions?.[i] ?? i}]`;
}

export function checkCount(count: number, param: string, limits: Limits): void {
  if (count === 0) throw new TwinlaneError('empty_input', `${param} must contain at least one item.`, { param });
  if (count > limits.maxInputs)
    throw new TwinlaneError('too_many_inputs', `${param} has ${count} items; the limit is ${limits.maxInputs}.`, {
      param,
    });
}

/** Why a text cannot be embedded (empty, or over the character limit), or null. */
export function textRefusal(text: string, param: string, limits: Limits): TwinlaneError | null {
  if (text.length === 0) return new TwinlaneError('empty_input', `${param} is an empty string.`, { param });
  if (text.length > limits.maxChars)
    return new TwinlaneError(
      'input_too_long',
      `${param} has ${text.length} characters; the limit is ${limits.maxChars}.`,
      { param },
    );
  return null;
}
