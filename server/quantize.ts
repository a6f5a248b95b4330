// Quantized vector answers, for clients that store int8 or bit vectors (Cohere's embedding types,
// sentence-transformers' quantize_embeddings, the int8 and binary indexes of vector databases):
//   int8     q[i] = round(x[i] / scale), in −127…127, scale = max|x| / 127 (per vector; sent with it), x ≈ q × scale
//   uint8    q[i] + 128, in 1…255 (same scale), x ≈ (u − 128) × scale
//   ubinary  the sign bits (x[i] > 0 → 1), 8 per byte, most significant bit first, the last byte padded with 0 bits
//   binary   the same bytes minus 128, as int8 (sentence-transformers' and Cohere's "binary")
// A per-vector scale loses nothing of the vector's range, and cosine similarity ignores it; the
// quantization follows any Matryoshka truncation (and its re-normalisation).

export const QUANTIZATIONS = ['int8', 'uint8', 'binary', 'ubinary'] as const;
export type Quantization = (typeof QUANTIZATIONS)[number];

export interface QuantizedVector {
  readonly values: Int8Array | Uint8Array;
  /** int8 and uint8: the step of one unit (0 for a zero vector); null for the bit formats. */
  readonly scale: number | null;
}

export function isQuantization(value: string): value is Quantization {
  return (QUANTIZATIONS as readonly string[]).includes(value);
}

function scaled(vector: Float32Array, offset: number): QuantizedVector {
  let max = 0;
  for (const x of vector) max = Math.max(max, Math.abs(x));
  const scale = max / 127;
  const out = offset === 0 ? new Int8Array(vector.length) : new Uint8Array(vector.length);
  if (scale > 0) for (let i = 0; i < vector.length; i++) out[i] = Math.round(vector[i]! / scale) + offset;
  else out.fill(offset);
  return { values: out, scale };
}

function signBits(vector: Float32Array, signed: boolean): QuantizedVector {
  const packed = new Uint8Array(Math.ceil(vector.length / 8));
  for (let i = 0; i < vector.length; i++) if (vector[i]! > 0) packed[i >> 3]! |= 0x80 >> (i & 7);
  if (!signed) return { values: packed, scale: null };
  return { values: Int8Array.from(packed, (b) => b - 128), scale: null };
}

export function quantize(vector: Float32Array, format: Quantization): QuantizedVector {
  switch (format) {
    case 'int8':
      return scaled(vector, 0);
    case 'uint8':
      return scaled(vector, 128);
    case 'ubinary':
      return signBits(vector, false);
    case 'binary':
      return signBits(vector, true);
  }
}

/** The JSON members of a quantized vector: `"embedding":[…]` and, for int8/uint8, `"scale":…`. */
export function quantizedMembers(vector: Float32Array, format: Quantization): string {
  const { values, scale } = quantize(vector, format);
  return `"embedding":[${values.join(',')}]${scale === null ? '' : `,"scale":${scale}`}`;
}
