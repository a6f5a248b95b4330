// float32 ↔ BF16. BF16 keeps float32's sign and exponent and the top 7 mantissa bits, so the
// conversion is a rounding of the low 16 bits: round-to-nearest-even, NaN kept a (quiet) NaN,
// ±Inf and ±0 kept exactly. Redis values are big-endian (SPEC.md §6); HTTP and WebSocket binary
// answers are little-endian.
import type { CorruptReason } from './protocol.js';

export type Endianness = 'big' | 'little';

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** BF16 bits of a float32 given as its bit pattern. */
function roundBits(bits: number): number {
  // NaN: truncating could clear every mantissa bit left and make it Inf, so force a quiet NaN.
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return ((bits >>> 16) | 0x0040) & 0xffff;
  // Round to nearest, ties to even: add 0x7fff plus the lowest kept bit. Cannot pass 2^32: only
  // negative NaNs come that close, and they left above.
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The BF16 bit pattern of one float32 value. */
export function toBf16Bits(value: number): number {
  scratch[0] = value;
  return roundBits(scratchBits[0]!);
}

export function fromBf16Bits(bits: number): number {
  scratchBits[0] = (bits & 0xffff) << 16;
  return scratch[0]!;
}

export function encodeBf16(vector: Float32Array, endianness: Endianness): Buffer {
  const n = vector.length;
  const out = Buffer.allocUnsafe(n * 2);
  // A Float32Array's offset is always a multiple of 4, so its bits can be read in place.
  const bits = new Uint32Array(vector.buffer, vector.byteOffset, n);
  if (endianness === 'big') {
    for (let i = 0, j = 0; i < n; i++, j += 2) {
      const h = roundBits(bits[i]!);
      out[j] = h >>> 8;
      out[j + 1] = h & 0xff;
    }
  } else {
    for (let i = 0, j = 0; i < n; i++, j += 2) {
      const h = roundBits(bits[i]!);
      out[j] = h & 0xff;
      out[j + 1] = h >>> 8;
    }
  }
  return out;
}

/** Throws when the byte length is not a whole number of BF16 values. */
export function decodeBf16(bytes: Uint8Array, endianness: Endianness): Float32Array {
  if (bytes.length % 2 !== 0) throw new RangeError(`BF16 data must have an even byte length (got ${bytes.length}).`);
  const n = bytes.length / 2;
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  const hi = endianness === 'big' ? 0 : 1;
  const lo = 1 - hi;
  for (let i = 0, j = 0; i < n; i++, j += 2) bits[i] = (bytes[j + hi]! << 24) | (bytes[j + lo]! << 16);
  return out;
}

export type StoredVector =
  { readonly ok: true; readonly vector: Float32Array } | { readonly ok: false; readonly reason: CorruptReason };

/**
 * Decodes a Redis value (big-endian BF16) and refuses anything that is not a usable vector: empty,
 * an odd byte count, not `dims` values when dims is known, or any NaN/±Inf.
 */
export function decodeStoredVector(bytes: Uint8Array, dims?: number): StoredVector {
  if (bytes.length === 0) return { ok: false, reason: 'empty' };
  if (bytes.length % 2 !== 0) return { ok: false, reason: 'odd_length' };
  if (dims !== undefined && bytes.length !== dims * 2) return { ok: false, reason: 'wrong_dims' };
  const n = bytes.length / 2;
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0, j = 0; i < n; i++, j += 2) {
    const h = bytes[j]!;
    const l = bytes[j + 1]!;
    // Exponent all ones (7 bits in the high byte, 1 in the low byte): NaN or ±Inf.
    if ((h & 0x7f) === 0x7f && (l & 0x80) !== 0) return { ok: false, reason: 'not_finite' };
    bits[i] = (h << 24) | (l << 16);
  }
  return { ok: true, vector: out };
}
