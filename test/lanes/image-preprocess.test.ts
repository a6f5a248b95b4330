// The image worker's preprocessing on its own: what preprocessor_config.json asks for is what the
// tensor gets (alpha, resize, crop, padding, rescale and normalisation), checked pixel by pixel.
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { ImagePreprocess } from '../../lanes/index.js';
import { createPreprocessor } from '../../lanes/image-preprocess.js';

const PLAIN: ImagePreprocess = {
  resize: null,
  kernel: 'nearest',
  crop: { height: 4, width: 4 },
  rescaleFactor: 1,
  mean: [0, 0, 0],
  std: [1, 1, 1],
  convertRgb: true,
};

/** Runs one image through a preprocessor and returns its NCHW planes as [r, g, b] per pixel. */
async function pixels(
  config: ImagePreprocess,
  image: Buffer,
): Promise<{ height: number; width: number; rgb: number[][] }> {
  const pre = createPreprocessor(config, 1_000_000);
  const out = new Float32Array(3 * pre.height * pre.width);
  await pre.into(image, out, 0);
  const plane = pre.height * pre.width;
  return {
    height: pre.height,
    width: pre.width,
    rgb: Array.from({ length: plane }, (_, p) => [out[p]!, out[plane + p]!, out[2 * plane + p]!]),
  };
}

const solid = (width: number, height: number, background: { r: number; g: number; b: number; alpha?: number }) =>
  sharp({ create: { width, height, channels: background.alpha === undefined ? 3 : 4, background } })
    .png()
    .toBuffer();

describe('image preprocessing', () => {
  it('composites transparency onto white, so hidden colours under alpha 0 never reach the model', async () => {
    const transparentRed = await solid(4, 4, { r: 255, g: 0, b: 0, alpha: 0 });
    const { rgb } = await pixels(PLAIN, transparentRed);
    expect(new Set(rgb.map((p) => p.join(',')))).toEqual(new Set(['255,255,255']));
    const halfRed = await pixels(PLAIN, await solid(4, 4, { r: 255, g: 0, b: 0, alpha: 0.5 }));
    expect(halfRed.rgb[0]![0]).toBe(255);
    expect(halfRed.rgb[0]![1]).toBeGreaterThan(120);
    expect(halfRed.rgb[0]![1]).toBeLessThan(135);
  });

  it('drops alpha without compositing when do_convert_rgb is false', async () => {
    const { rgb } = await pixels({ ...PLAIN, convertRgb: false }, await solid(4, 4, { r: 255, g: 0, b: 0, alpha: 0 }));
    expect(rgb[0]).toEqual([255, 0, 0]);
  });

  it('pads an image smaller than the crop with black around its centre', async () => {
    const { rgb } = await pixels(PLAIN, await solid(2, 2, { r: 0, g: 200, b: 0 }));
    const row = (y: number) => rgb.slice(y * 4, y * 4 + 4).map((p) => p[1]);
    expect([row(0), row(1), row(2), row(3)]).toEqual([
      [0, 0, 0, 0],
      [0, 200, 200, 0],
      [0, 200, 200, 0],
      [0, 0, 0, 0],
    ]);
  });

  it('crops the centre of a larger image', async () => {
    // Left half blue, right half red, 8×4: the centre 4×4 has two columns of each.
    const image = await sharp({ create: { width: 8, height: 4, channels: 3, background: { r: 0, g: 0, b: 255 } } })
      .composite([{ input: await solid(4, 4, { r: 255, g: 0, b: 0 }), left: 4, top: 0 }])
      .png()
      .toBuffer();
    const { rgb } = await pixels(PLAIN, image);
    expect(
      rgb
        .slice(0, 4)
        .map((p) => (p[0] === 255 ? 'R' : 'B'))
        .join(''),
    ).toBe('BBRR');
  });

  it('resizes to an exact height and width without cropping when configured so', async () => {
    const config: ImagePreprocess = { ...PLAIN, resize: { height: 3, width: 5 }, crop: null };
    const { height, width, rgb } = await pixels(config, await solid(40, 10, { r: 10, g: 20, b: 30 }));
    expect([height, width]).toEqual([3, 5]);
    expect(rgb.every((p) => p.join(',') === '10,20,30')).toBe(true);
  });

  it('scales the shortest edge, keeps the aspect, then crops', async () => {
    // 16×8 → shortest edge 4 gives 8×4, whose centre 4×4 is the middle of the original.
    const image = await sharp({ create: { width: 16, height: 8, channels: 3, background: { r: 0, g: 0, b: 0 } } })
      .composite([{ input: await solid(8, 8, { r: 255, g: 255, b: 255 }), left: 4, top: 0 }])
      .png()
      .toBuffer();
    const { rgb } = await pixels({ ...PLAIN, resize: { shortestEdge: 4 }, crop: { height: 4, width: 4 } }, image);
    expect(rgb.every((p) => p[0] === 255)).toBe(true);
  });

  it('rescales and normalises each channel with its own mean and std', async () => {
    const config: ImagePreprocess = { ...PLAIN, rescaleFactor: 1 / 255, mean: [0.5, 0.25, 0], std: [0.5, 0.25, 2] };
    const { rgb } = await pixels(config, await solid(4, 4, { r: 255, g: 0, b: 255 }));
    expect(rgb[0]![0]).toBeCloseTo(1, 6);
    expect(rgb[0]![1]).toBeCloseTo(-1, 6);
    expect(rgb[0]![2]).toBeCloseTo(0.5, 6);
  });

  it('refuses TIFF like every other format outside the accepted list', async () => {
    const tiff = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#888' } })
      .tiff()
      .toBuffer();
    await expect(pixels(PLAIN, tiff)).rejects.toMatchObject({ code: 'unsupported_image' });
  });
});
