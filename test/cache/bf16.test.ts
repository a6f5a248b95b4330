import { describe, expect, it } from 'vitest';
import { decodeBf16, decodeStoredVector, encodeBf16 } from '../../cache/index.js';
import { fromBf16Bits, toBf16Bits } from '../../cache/bf16.js';

/** A float32 vector from exact bit patterns (so NaN payloads and -0 survive). */
function fromBits(bits: readonly number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}

// [float32 bits, expected BF16 bits, what it exercises]
const GOLDEN: readonly (readonly [number, number, string])[] = [
  [0x3f800000, 0x3f80, '1.0 exact'],
  [0xbfc00000, 0xbfc0, '-1.5 exact'],
  [0x00000000, 0x0000, '+0'],
  [0x80000000, 0x8000, '-0'],
  [0x3f808000, 0x3f80, 'tie, kept bit even: rounds down'],
  [0x3f818000, 0x3f82, 'tie, kept bit odd: rounds up to even'],
  [0xbf818000, 0xbf82, 'negative tie rounds up in magnitude to even'],
  [0x3f808001, 0x3f81, 'just above the tie rounds up'],
  [0x3f807fff, 0x3f80, 'just below the tie rounds down'],
  [0x3f7fffff, 0x3f80, 'carry into the exponent'],
  [0x00010000, 0x0001, 'smallest BF16 subnormal'],
  [0x00018000, 0x0002, 'subnormal tie rounds up to even'],
  [0x00008000, 0x0000, 'subnormal tie rounds down to even (zero)'],
  [0x807f0000, 0x807f, 'negative subnormal exact'],
  [0x7f800000, 0x7f80, '+Inf'],
  [0xff800000, 0xff80, '-Inf'],
  [0x7fc00000, 0x7fc0, 'quiet NaN'],
  [0x7f800001, 0x7fc0, 'NaN whose payload is only in the dropped bits stays NaN'],
  [0xffc00000, 0xffc0, 'negative NaN'],
  [0x7f7fffff, 0x7f80, 'max float32 rounds to +Inf (beyond BF16 max)'],
  [0x7f7f0000, 0x7f7f, 'max BF16 exact'],
  [0xff7fffff, 0xff80, '-max float32 rounds to -Inf'],
];

describe('BF16 codec', () => {
  it('encodes every golden value to the expected BF16 bits', () => {
    for (const [bits, expected, what] of GOLDEN) {
      const value = fromBits([bits])[0]!;
      if (!Number.isNaN(value)) expect(toBf16Bits(value), what).toBe(expected);
    }
  });

  it('encodes a golden vector to exactly the expected big-endian and little-endian bytes', () => {
    const vector = fromBits(GOLDEN.map(([bits]) => bits));
    const big = Buffer.alloc(GOLDEN.length * 2);
    const little = Buffer.alloc(GOLDEN.length * 2);
    GOLDEN.forEach(([, expected], i) => {
      big.writeUInt16BE(expected, i * 2);
      little.writeUInt16LE(expected, i * 2);
    });
    expect(encodeBf16(vector, 'big').toString('hex')).toBe(big.toString('hex'));
    expect(encodeBf16(vector, 'little').toString('hex')).toBe(little.toString('hex'));
    // Spelled out once, so a byte-order slip in the expectation itself would show.
    expect(encodeBf16(new Float32Array([1, -2]), 'big').toString('hex')).toBe('3f80c000');
    expect(encodeBf16(new Float32Array([1, -2]), 'little').toString('hex')).toBe('803f00c0');
  });

  it('decodes golden bytes back to the BF16 values widened to float32', () => {
    const bytes = Buffer.alloc(GOLDEN.length * 2);
    GOLDEN.forEach(([, expected], i) => bytes.writeUInt16BE(expected, i * 2));
    const decoded = new Uint32Array(decodeBf16(bytes, 'big').buffer);
    GOLDEN.forEach(([, expected, what], i) => expect(decoded[i], what).toBe(expected * 0x10000));
    const little = Buffer.alloc(4);
    little.writeUInt16LE(0x3f80, 0);
    little.writeUInt16LE(0xc000, 2);
    expect(Array.from(decodeBf16(little, 'little'))).toEqual([1, -2]);
    expect(fromBf16Bits(0xbfc0)).toBe(-1.5);
  });

  it('round-trips random vectors within BF16 precision (relative error at most 2^-8)', () => {
    for (let trial = 0; trial < 50; trial++) {
      const vector = new Float32Array(384);
      const scale = 10 ** (Math.floor(Math.random() * 12) - 6);
      for (let i = 0; i < vector.length; i++) vector[i] = (Math.random() * 2 - 1) * scale || 1e-3;
      for (const endianness of ['big', 'little'] as const) {
        const back = decodeBf16(encodeBf16(vector, endianness), endianness);
        expect(back.length).toBe(vector.length);
        for (let i = 0; i < vector.length; i++) {
          expect(Math.abs(back[i]! - vector[i]!) / Math.abs(vector[i]!)).toBeLessThanOrEqual(2 ** -8);
        }
      }
    }
  });

  it('refuses odd-length data', () => {
    expect(() => decodeBf16(new Uint8Array(3), 'big')).toThrow(RangeError);
  });

  it('accepts a stored value only when it is non-empty, even, of the expected dims and finite', () => {
    const good = encodeBf16(new Float32Array([0.5, -0.25, 1]), 'big');
    const ok = decodeStoredVector(good, 3);
    expect(ok.ok && Array.from(ok.vector)).toEqual([0.5, -0.25, 1]);
    expect(decodeStoredVector(good).ok).toBe(true);
    expect(decodeStoredVector(new Uint8Array(0))).toEqual({ ok: false, reason: 'empty' });
    expect(decodeStoredVector(good.subarray(0, 5))).toEqual({ ok: false, reason: 'odd_length' });
    expect(decodeStoredVector(good, 4)).toEqual({ ok: false, reason: 'wrong_dims' });
    for (const bad of [NaN, Infinity, -Infinity]) {
      expect(decodeStoredVector(encodeBf16(new Float32Array([1, bad]), 'big'), 2)).toEqual({
        ok: false,
        reason: 'not_finite',
      });
    }
  });
});
