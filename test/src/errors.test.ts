import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, TwinlaneError, asTwinlaneError } from '../../src/errors.js';

describe('error codes', () => {
  it('lists every error code with its status in the README', () => {
    const readme = readFileSync('README.md', 'utf8');
    for (const [code, spec] of Object.entries(ERROR_CODES)) {
      expect(readme, code).toMatch(new RegExp(`\\|\\s*${spec.status}\\s*\\|\\s*\`${code}\``));
    }
  });

  it('gives each error its status, OpenAI type and param', () => {
    const error = new TwinlaneError('invalid_dimensions', 'bad', { param: 'dimensions' });
    expect(error).toMatchObject({
      code: 'invalid_dimensions',
      status: 422,
      type: 'invalid_request_error',
      param: 'dimensions',
    });
  });

  it('turns anything else that is thrown into an internal_error that keeps the cause', () => {
    const cause = new Error('boom');
    const error = asTwinlaneError(cause);
    expect(error.code).toBe('internal_error');
    expect(error.status).toBe(500);
    expect(error.cause).toBe(cause);
  });
});
