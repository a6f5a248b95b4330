// Matryoshka truncation: answers may ask for fewer dimensions than the model makes. Applied after the
// cache (which keeps full vectors), so one cached vector serves every size.

/** Keeps the first `dims` values and re-normalises them, as Matryoshka models are meant to be cut. */
export function truncateDims(vector: Float32Array, dims: number): Float32Array {
  if (dims >= vector.length) return vector;
  const out = vector.slice(0, dims);
  let sum = 0;
  for (const v of out) sum += v * v;
  if (sum > 0) {
    const inv = 1 / Math.sqrt(sum);
    for (let i = 0; i < dims; i++) out[i]! *= inv;
  }
  return out;
}
