// The JSON field readers every route shares: what they accept, and the exact param and words of
// each refusal (clients fix their request from them).
import { describe, expect, it } from 'vitest';
import {
  optionalBoolean,
  optionalEnum,
  optionalNumber,
  optionalString,
  requireObject,
  textInputs,
  textItem,
} from '../../server/fields.js';
import { TwinlaneError } from '../../src/errors.js';

function refusal(read: () => unknown): { code: string; param: string | null; message: string } {
  try {
    read();
  } catch (error) {
    expect(error).toBeInstanceOf(TwinlaneError);
    const { code, param, message } = error as TwinlaneError;
    return { code, param, message };
  }
  throw new Error('expected a refusal');
}

describe('server/fields', () => {
  it('requireObject takes objects only', () => {
    expect(requireObject({ a: 1 })).toEqual({ a: 1 });
    for (const body of [null, [], 'x', 3, true]) {
      expect(refusal(() => requireObject(body))).toMatchObject({ code: 'invalid_request', param: null });
    }
  });

  it('textInputs: a string, or an array of strings; names the bad item', () => {
    expect(textInputs({ input: 'one' }, 'input')).toEqual(['one']);
    expect(textInputs({ input: ['a', 'b'] }, 'input')).toEqual(['a', 'b']);
    expect(textInputs({ input: [] }, 'input')).toEqual([]);
    expect(refusal(() => textInputs({}, 'input'))).toEqual({
      code: 'invalid_request',
      param: 'input',
      message: "'input' is required.",
    });
    expect(refusal(() => textInputs({ input: { text: 'x' } }, 'input'))).toEqual({
      code: 'invalid_request',
      param: 'input',
      message: "'input' must be a string or an array of strings (got object).",
    });
    expect(refusal(() => textInputs({ inputs: ['a', null] }, 'inputs'))).toEqual({
      code: 'invalid_request',
      param: 'inputs[1]',
      message: "'inputs[1]' must be a string (got null).",
    });
  });

  it('textItem refuses token ids with words that say so', () => {
    expect(textItem('x', 'input[0]')).toBe('x');
    for (const ids of [101, [101, 2023]]) {
      expect(refusal(() => textItem(ids, 'input[2]'))).toEqual({
        code: 'invalid_request',
        param: 'input[2]',
        message: "'input[2]': token-id inputs are not supported; send text.",
      });
    }
  });

  it('optional readers: absent or null take the fallback; a wrong type names what it got', () => {
    expect(optionalBoolean({}, 'normalize', true)).toBe(true);
    expect(optionalBoolean({ normalize: null }, 'normalize', false)).toBe(false);
    expect(optionalBoolean({ normalize: false }, 'normalize', true)).toBe(false);
    expect(refusal(() => optionalBoolean({ normalize: 'yes' }, 'normalize', true))).toEqual({
      code: 'invalid_request',
      param: 'normalize',
      message: "'normalize' must be a boolean (got string).",
    });
    expect(optionalString({ model: 'm' }, 'model')).toBe('m');
    expect(optionalString({}, 'model')).toBeUndefined();
    expect(refusal(() => optionalString({ model: ['m'] }, 'model')).message).toBe(
      "'model' must be a string (got array).",
    );
    expect(optionalNumber({ dimensions: 64 }, 'dimensions')).toBe(64);
    expect(optionalNumber({ dimensions: null }, 'dimensions')).toBeUndefined();
    expect(refusal(() => optionalNumber({ dimensions: '64' }, 'dimensions')).param).toBe('dimensions');
  });

  it('optionalEnum lists the allowed values', () => {
    const formats = ['float', 'base64'] as const;
    expect(optionalEnum({}, 'encoding_format', formats, 'float')).toBe('float');
    expect(optionalEnum({ encoding_format: 'base64' }, 'encoding_format', formats, 'float')).toBe('base64');
    expect(refusal(() => optionalEnum({ encoding_format: 'hex' }, 'encoding_format', formats, 'float'))).toEqual({
      code: 'invalid_request',
      param: 'encoding_format',
      message: "'encoding_format' must be one of float, base64 (got 'hex').",
    });
  });
});
