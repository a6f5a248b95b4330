// CLIP-style preprocessing with sharp, run inside image workers: refuse what is not a safe raster
// image from its header alone, then EXIF-rotate, flatten alpha onto white, resize, centre-crop as
// preprocessor_config.json says, and write normalised NCHW float32 straight into the batch tensor.
import sharp, { type Metadata, type Sharp } from 'sharp';
import type { ImagePreprocess, ItemErrorCode } from './protocol.js';

/**
 * The raster formats SPEC.md §4 names (AVIF reports itself as heif). SVG, PDF, TIFF and anything else
 * vips could read or render are refused, so every route accepts exactly the same formats.
 */
const RASTER_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png', 'webp', 'gif', 'avif', 'heif']);

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
  const size = config.crop ?? (config.resize && 'height' in config.resize ? config.resize : null);
  if (!size) throw new Error('an image model without a fixed output size reached a worker. This is a bug.');
  const { height, width } = size;
  const plane = height * width;
  const { rescaleFactor: scale, mean, std, kernel } = config;
  // CLIP's own case in one sharp call: shortest edge to the crop's side, then the centre crop, is
  // exactly sharp's `cover` fit.
  const coverFit =
    config.resize !== null &&
    'shortestEdge' in config.resize &&
    config.crop !== null &&
    config.resize.shortestEdge === height &&
    config.resize.shortestEdge === width;

  /** Resize as configured, then centre-crop (padding with black where the image is smaller, as transformers does). */
  async function resizeAndCrop(pipeline: Sharp): Promise<Buffer> {
    if (coverFit) return pipeline.resize(width, height, { fit: 'cover', kernel }).raw().toBuffer();
    const { resize, crop } = config;
    if (resize && 'shortestEdge' in resize)
      pipeline.resize(resize.shortestEdge, resize.shortestEdge, { fit: 'outside', kernel });
    else if (resize) pipeline.resize(resize.width, resize.height, { fit: 'fill', kernel });
    const resized = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (!crop) return resized.data;
    let {
      data,
      info: { width: w, height: h },
    } = resized;
    if (w < width || h < height) {
      const padY = Math.max(0, height - h);
      const padX = Math.max(0, width - w);
      data = await sharp(data, { raw: { width: w, height: h, channels: 3 } })
        .extend({
          top: Math.floor(padY / 2),
          bottom: Math.ceil(padY / 2),
          left: Math.floor(padX / 2),
          right: Math.ceil(padX / 2),
          background: { r: 0, g: 0, b: 0 },
        })
        .raw()
        .toBuffer();
      h += padY;
      w += padX;
    }
    return sharp(data, { raw: { width: w, height: h, channels: 3 } })
      .extract({ left: Math.floor((w - width) / 2), top: Math.floor((h - height) / 2), width, height })
      .raw()
      .toBuffer();
  }

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
      throw new ImageRejected(
        'unsupported_image',
        `Image format ${meta.format ?? 'unknown'} is not accepted; send JPEG, PNG, WebP, GIF or AVIF.`,
      );
    }
    const pixels = (meta.width ?? 0) * (meta.pageHeight ?? meta.height ?? 0);
    if (pixels > maxPixels) {
      throw new ImageRejected(
        'image_too_large',
        `The image is ${meta.width}×${meta.pageHeight ?? meta.height} pixels; the limit is ${maxPixels} pixels.`,
      );
    }
    // transformers' convert_to_rgb composites transparency onto white; dropping alpha instead would
    // turn transparent areas into whatever colour their hidden pixels happen to hold.
    const pipeline = sharp(bytes, options).rotate();
    if (config.convertRgb) pipeline.flatten({ background: '#ffffff' });
    else pipeline.removeAlpha();
    pipeline.toColourspace('srgb');
    try {
      return await resizeAndCrop(pipeline);
    } catch (error) {
      const message = (error as Error).message;
      if (/pixel limit/i.test(message))
        throw new ImageRejected('image_too_large', `The image is over the limit of ${maxPixels} pixels.`);
      throw new ImageRejected('unsupported_image', `The image could not be decoded: ${message}.`);
    }
  }

  return {
    height,
    width,
    async into(bytes, out, offset) {
      const rgb = await decode(bytes);
      if (rgb.length !== plane * 3)
        throw new Error(`preprocessing produced ${rgb.length} bytes, expected ${plane * 3}. This is a bug.`);
      for (let c = 0; c < 3; c++) {
        const base = offset + c * plane;
        const m = mean[c]!;
        const inv = 1 / std[c]!;
        for (let p = 0; p < plane; p++) out[base + p] = (rgb[p * 3 + c]! * scale - m) * inv;
      }
    },
  };
}
