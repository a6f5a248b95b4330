// Image request bodies for bench:isolation's floods, made where they are sent (bench/flood-worker.ts
// or the bench process): small distinct PNGs, the same few cached ones, and about 100 KB distinct
// random-noise PNGs cheap enough to make thousands a second.
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';

export type BodyKind = 'small' | 'cached' | 'noise';
export const CACHED_IMAGES = 8;

/** A PNG tEXt chunk (length, type, data, CRC): it changes a PNG's bytes (and cache key), not its pixels. */
function textChunk(text: string): Buffer {
  const data = Buffer.from(`Comment\0${text}`, 'latin1');
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write('tEXt', 4, 'latin1');
  data.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + data.length)), 8 + data.length);
  return chunk;
}

/** `png` with a tEXt chunk of `text` just before its IEND chunk. */
function withTextChunk(png: Buffer, text: string): Buffer {
  const iend = png.length - 12;
  return Buffer.concat([png.subarray(0, iend), textChunk(text), png.subarray(iend)]);
}

async function smallPng(): Promise<Buffer> {
  return sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 40, g: 120, b: 200 } } }).png().toBuffer();
}

/**
 * Distinct PNGs of random noise (about 75 KB, so 100 KB of base64) as /embed/image JSON bodies, made
 * cheaply enough for thousands a second: a tEXt chunk near the end carries a counter, and only the
 * base64 of the bytes after the last 3-byte boundary before it is computed per body.
 */
async function noiseBodies(): Promise<() => string> {
  const side = 160;
  const pixels = randomBytes(side * side * 3);
  const png = await sharp(pixels, { raw: { width: side, height: side, channels: 3 } }).png({ compressionLevel: 1 }).toBuffer();
  const iend = png.length - 12;
  const aligned = iend - (iend % 3);
  const prefix = png.subarray(0, aligned).toString('base64');
  const before = png.subarray(aligned, iend);
  const end = png.subarray(iend);
  let n = 0;
  return () => {
    const tail = Buffer.concat([before, textChunk(`flood ${String(n++).padStart(10, '0')}`), end]);
    return `{"inputs":[{"b64":"${prefix}${tail.toString('base64')}"}]}`;
  };
}

/** JSON bodies for POST /embed/image of `kind`: distinct small PNGs, cycling cached ones, or distinct noise. */
export async function imageBodies(kind: BodyKind): Promise<() => string> {
  if (kind === 'noise') return noiseBodies();
  const base = await smallPng();
  const body = (text: string) => JSON.stringify({ inputs: [{ b64: withTextChunk(base, text).toString('base64') }] });
  if (kind === 'small') {
    let n = 0;
    return () => body(`flood ${n++}`);
  }
  const cached = Array.from({ length: CACHED_IMAGES }, (_, i) => body(`cached ${i}`));
  let turn = 0;
  return () => cached[turn++ % CACHED_IMAGES]!;
}
