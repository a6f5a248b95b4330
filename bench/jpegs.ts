// Distinct synthetic JPEGs for the image benchmarks. Every index draws a different picture (size,
// gradient, shapes, texture, grain, all from a seed) encoded as a camera or browser would (quality
// 85, 4:2:0), so every request carries new pixels and new bytes: the embedding cache cannot answer
// and the decoder does real work each time.
import sharp from 'sharp';

/** Width × height classes, cycled by index; portrait included because real uploads have both. */
export const JPEG_SIZES: readonly (readonly [number, number])[] = [
  [320, 240],
  [480, 360],
  [640, 480],
  [360, 480],
];
export const JPEG_QUALITY = 85;

export interface Jpeg {
  readonly bytes: Buffer;
  readonly width: number;
  readonly height: number;
}

/** mulberry32: a tiny seeded generator, so picture `i` is the same in every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function paint(index: number, width: number, height: number): Buffer {
  const rnd = random(index * 2654435761 + 1);
  const colour = () => [rnd() * 255, rnd() * 255, rnd() * 255] as const;
  // Clamped, so gradients plus waves plus grain saturate at 0 and 255 instead of wrapping.
  const rgb = new Uint8ClampedArray(width * height * 3);
  // Background: a two-colour gradient at a random angle, with a soft wave texture over it. The wave
  // sin(x·fx + y·fy) is split into per-column and per-row tables: one Math.sin per pixel made
  // painting slower than encoding.
  const [a, b] = [colour(), colour()];
  const angle = rnd() * Math.PI * 2;
  const [dx, dy] = [Math.cos(angle) / width, Math.sin(angle) / height];
  const [fx, fy, amp] = [0.02 + rnd() * 0.2, 0.02 + rnd() * 0.2, 6 + rnd() * 20];
  const sinX = Float64Array.from({ length: width }, (_, x) => amp * Math.sin(x * fx));
  const cosX = Float64Array.from({ length: width }, (_, x) => amp * Math.cos(x * fx));
  for (let y = 0; y < height; y++) {
    const [sinY, cosY] = [Math.sin(y * fy), Math.cos(y * fy)];
    const t0 = 0.5 - (width / 2) * dx + (y - height / 2) * dy;
    for (let x = 0, o = y * width * 3; x < width; x++, o += 3) {
      const t = Math.min(1, Math.max(0, t0 + x * dx));
      const wave = sinX[x]! * cosY + cosX[x]! * sinY;
      rgb[o] = a[0] + (b[0] - a[0]) * t + wave;
      rgb[o + 1] = a[1] + (b[1] - a[1]) * t + wave;
      rgb[o + 2] = a[2] + (b[2] - a[2]) * t + wave;
    }
  }
  // Objects: filled ellipses and rectangles, drawn only inside their bounding boxes.
  const shapes = 3 + Math.floor(rnd() * 6);
  for (let s = 0; s < shapes; s++) {
    const fill = colour();
    const [cx, cy] = [rnd() * width, rnd() * height];
    const [rx, ry] = [8 + rnd() * width * 0.3, 8 + rnd() * height * 0.3];
    const ellipse = rnd() < 0.6;
    for (let y = Math.max(0, Math.floor(cy - ry)); y < Math.min(height, cy + ry); y++) {
      for (let x = Math.max(0, Math.floor(cx - rx)); x < Math.min(width, cx + rx); x++) {
        if (ellipse && ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 > 1) continue;
        const o = (y * width + x) * 3;
        rgb[o] = fill[0];
        rgb[o + 1] = fill[1];
        rgb[o + 2] = fill[2];
      }
    }
  }
  // Sensor-like grain, so the entropy-coded data is closer to a photo's than a flat drawing's.
  // One 32-bit xorshift step gives four grain bytes; calling rnd() per byte doubled the paint time.
  let state = (rnd() * 0xffffffff) | 1;
  for (let i = 0; i < rgb.length; i += 4) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    for (let k = 0; k < 4 && i + k < rgb.length; k++) rgb[i + k] = rgb[i + k]! + (((state >>> (k * 8)) & 0xff) - 128) / 8;
  }
  return Buffer.from(rgb.buffer);
}

/** Pictures `start` … `start + count - 1`; disjoint ranges never share a picture. */
export async function makeJpegs(start: number, count: number): Promise<Jpeg[]> {
  const out: Jpeg[] = [];
  const encoding: Promise<void>[] = [];
  for (let i = start; i < start + count; i++) {
    const [width, height] = JPEG_SIZES[i % JPEG_SIZES.length]!;
    const raw = paint(i, width, height);
    const slot = out.length;
    // Encoding runs on libuv's pool while the next picture is painted here.
    encoding.push(
      sharp(raw, { raw: { width, height, channels: 3 } })
        .jpeg({ quality: JPEG_QUALITY })
        .toBuffer()
        .then((bytes) => {
          out[slot] = { bytes, width, height };
        }),
    );
    out.push({ bytes: Buffer.alloc(0), width, height });
  }
  await Promise.all(encoding);
  return out;
}

/**
 * The same picture with a JPEG comment (COM segment) after the SOI marker: new bytes, hence a new
 * cache key, with the same pixels and the same decoding work. Only for when a pool runs dry.
 */
export function withJpegComment(jpeg: Buffer, text: string): Buffer {
  const data = Buffer.from(text, 'latin1');
  const segment = Buffer.alloc(4 + data.length);
  segment.writeUInt16BE(0xfffe, 0);
  segment.writeUInt16BE(2 + data.length, 2); // the length counts itself, not the marker
  data.copy(segment, 4);
  return Buffer.concat([jpeg.subarray(0, 2), segment, jpeg.subarray(2)]);
}
