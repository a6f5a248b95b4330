// CLIP-style preprocessing with sharp, run inside image workers: refuse what is not a safe raster
// image from its header alone, then EXIF-rotate, drop alpha, resize the shortest edge, centre-crop,
// and write normalised NCHW float32 straight into the batch tensor.
import sharp, { type Metadata } from 'sharp';
import type { ImagePreprocess, ItemErrorCode } from './protocol.js';

/** Raster formats only: SVG (and anything vips would render or read from elsewhere) is refused. */
const RASTER_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png', 'webp', 'gif', 'avif', 'heif', 'tiff']);

export class ImageRejected extends Error {
  constructor(
    readonly code: Extract<ItemErrorCode, 'unsupported_image' | 'image_too_large'>,
    message: string,
  ) {
    super(message);
  }
}

export interface Preprocessor {
  readonly height: number;
  readonly width: number;
  /** Writes one image into `out` at `offset` (3 × height × width floats), or throws ImageRejected. */
  into(bytes: Uint8Array, out: Float32Array, offset: number): Promise<void>;
}

export function createPreprocessor(config: ImagePreprocess, maxPixels: number): Preprocessor {
  const height = config.doCenterCrop ? config.cropHeight : config.shortestEdge;
  const width = config.doCenterCrop ? config.cropWidth : config.shortestEdge;
  const plane = height * width;
  const scale = config.doRescale ? config.rescaleFactor : 1;
  const mean = config.doNormalize ? config.mean : ([0, 0, 0] as const);
  const std = config.doNormalize ? config.std : ([1, 1, 1] as const);

  async function decode(bytes: Uint8Array): Promise<Buffer> {
    // failOn 'warning' turns truncated or corrupt data into an error instead of a half-grey image;
    // limitInputPixels makes vips refuse a decompression bomb before allocating its pixels.
    const options = { failOn: 'warning' as const, limitInputPixels: maxPixels, pages: 1 };
    let meta: Metadata;
    try {
      // The header alone: no pixel is decoded here, so the size check below can name the size.
      meta = await sharp(bytes, { ...options, limitInputPixels: false }).metadata();
    } catch (error) {
      throw new ImageRejected('unsupported_image', `The image could not be read: ${(error as Error).message}.`);
    }
    if (!meta.format || !RASTER_FORMATS.has(meta.format)) {
      throw new ImageRejected('unsupported_image', `Image format ${meta.format ?? 'unknown'} is not accepted; send JPEG, PNG, WebP, GIF or AVIF.`);
    }
    const pixels = (meta.width ?? 0) * (meta.pageHeight ?? meta.height ?? 0);
    if (pixels > maxPixels) {
      throw new ImageRejected('image_too_large', `The image is ${meta.width}×${meta.pageHeight ?? meta.height} pixels; the limit is ${maxPixels} pixels.`);
    }
    // Shortest edge → `shortestEdge` then the centre crop: with CLIP's equal sizes that is exactly
    // sharp's `cover` fit; other configs resize first and crop from the resized image.
    const pipeline = sharp(bytes, options).rotate().removeAlpha().toColourspace('srgb');
    try {
      if (!config.doCenterCrop || config.shortestEdge === width && config.shortestEdge === height) {
        return await pipeline.resize(width, height, { fit: 'cover', kernel: 'cubic' }).raw().toBuffer();
      }
      const resized = await pipeline.resize(config.shortestEdge, config.shortestEdge, { fit: 'outside', kernel: 'cubic' }).raw().toBuffer({ resolveWithObject: true });
      const { width: rw, height: rh } = resized.info;
      return await sharp(resized.data, { raw: { width: rw, height: rh, channels: 3 } })
        .extract({ left: Math.floor((rw - width) / 2), top: Math.floor((rh - height) / 2), width, height })
        .raw()
        .toBuffer();
    } catch (error) {
      const message = (error as Error).message;
      if (/pixel limit/i.test(message)) throw new ImageRejected('image_too_large', `The image is over the limit of ${maxPixels} pixels.`);
      throw new ImageRejected('unsupported_image', `The image could not be decoded: ${message}.`);
    }
  }

  return {
    height,
    width,
    async into(bytes, out, offset) {
      const rgb = await decode(bytes);
      if (rgb.length !== plane * 3) throw new Error(`preprocessing produced ${rgb.length} bytes, expected ${plane * 3}. This is a bug.`);
      for (let c = 0; c < 3; c++) {
        const base = offset + c * plane;
        const m = mean[c]!;
        const inv = 1 / std[c]!;
        for (let p = 0; p < plane; p++) out[base + p] = (rgb[p * 3 + c]! * scale - m) * inv;
      }
    },
  };
}
