import { describe, expect, it } from 'vitest';
import { assertNativeUws, UwsFallbackError } from '../../server/index.js';

describe('uWebSockets.js loading', () => {
  it('accepts the native binary that is installed', () => {
    expect(() => assertNativeUws()).not.toThrow();
  });

  it('refuses the pure-JS fallback, which exports only App', () => {
    expect(() => assertNativeUws({ App: () => undefined, default: {} })).toThrow(UwsFallbackError);
  });
});
