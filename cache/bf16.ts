// float32 ↔ BF16. BF16 keeps float32's sign and exponent and the top 7 mantissa bits, so the
// conversion is a rounding of the low 16 bits: round-to-nearest-even, NaN kept a (quiet) NaN,
// ±Inf and ±0 kept exactly. Redis values are big-endian (SPEC.md §6); HTTP and WebSocket binary
// answers are little-endian.
export type Endianness = 'big' | 'little';

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** The BF16 bit pattern of one float32 value. */
export function toBf16Bits(value: number): number {
  scratch[0] = value;
  const bits = scratchBits[0]!;
  // NaN: truncating could clear every mantissa bit left and make it Inf, so force a quiet NaN.
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return ((bits >>> 16) | 0x0040) & 0xffff;
  const lsb = (bits >>> 16) & 1;
  return ((bits + 0x7fff + lsb) >>> 16) & 0xffff;
}

export function fromBf16Bits(bits: number): number {
  scratchBits[0] = (bits & 0xffff) << 16;
  return scratch[0]!;
}

export function encodeBf16(vector: Float32Array, endianness: Endianness): Buffer {
  const out = Buffer.allocUnsafe(vector.length * 2);
  const little = endianness === 'little';
  for (let i = 0; i < vector.length; i++) {
    const bits = toBf16Bits(vector[i]!);
    if (little) out.writeUInt16LE(bits, i * 2);
    else out.writeUInt16BE(bits, i * 2);
  }
  return out;
}

/** Throws when the byte length is not a whole number of BF16 values. */
export function decodeBf16(bytes: Uint8Array, endianness: Endianness): Float32Array {
  if (bytes.length % 2 !== 0) throw new RangeError(`BF16 data must have an even byte length (got ${bytes.length}).`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.length / 2);
  const little = endianness === 'little';
  for (let i = 0; i < out.length; i++) out[i] = fromBf16Bits(view.getUint16(i * 2, little));
  return out;
}
