import { describe, expect, it } from 'vitest';
import { ApiKeys, TwinlaneError, type AuthFailure } from '../../src/index.js';

function failure(keys: ApiKeys, header: string | undefined): { code: string; reason: AuthFailure | null } {
  let reason: AuthFailure | null = null;
  try {
    keys.verify(header, (r) => (reason = r));
  } catch (error) {
    if (!(error instanceof TwinlaneError)) throw error;
    return { code: error.code, reason };
  }
  throw new Error(`verify(${header}) accepted the header`);
}

describe('ApiKeys', () => {
  const keys = new ApiKeys(['first-secret', 'second-secret']);

  it('accepts every configured key as a Bearer token, the scheme in any case', () => {
    expect(keys.verify('Bearer first-secret')).toMatch(/^key:[0-9a-f]{16}$/);
    expect(keys.verify('bearer second-secret')).toMatch(/^key:[0-9a-f]{16}$/);
  });

  it('gives each key its own client id, which does not contain the key', () => {
    const a = keys.verify('Bearer first-secret');
    const b = keys.verify('Bearer second-secret');
    expect(a).not.toBe(b);
    expect(keys.verify('Bearer first-secret')).toBe(a);
    expect(a).not.toContain('secret');
  });

  it.each([
    [undefined, 'missing'],
    ['', 'missing'],
    ['first-secret', 'malformed'],
    ['Basic Zmlyc3Q6c2VjcmV0', 'malformed'],
    ['Bearer ', 'malformed'],
    ['Bearer first-secreT', 'wrong'],
    ['Bearer first-secret-and-more', 'wrong'],
    ['Bearer f', 'wrong'],
  ] as const)('refuses %j with invalid_api_key (%s)', (header, reason) => {
    expect(failure(keys, header)).toEqual({ code: 'invalid_api_key', reason });
  });

  it('compares digests of equal length, so a key of any length is checked the same way', () => {
    // timingSafeEqual throws on buffers of different lengths: a short, a long and a multi-byte
    // key reaching the comparison without an exception shows that digests, not keys, are compared.
    for (const header of ['Bearer x', `Bearer ${'y'.repeat(4096)}`, 'Bearer ключ']) {
      expect(failure(keys, header).reason).toBe('wrong');
    }
  });
});
