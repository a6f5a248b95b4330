import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distinctJpeg, sceneJpeg, scenePng, type Scene } from '../fixtures/images.js';
import { startImageHost, type ImageHost } from '../helpers/image-host.js';
import { cosine, IMAGE_MODEL, maxAbsDiff, norm, postJson, startServer, type TestServer } from '../helpers/server.js';

async function embedRaw(url: string, bytes: Buffer, type = 'image/jpeg'): Promise<number[]> {
  const res = await fetch(`${url}/embed/image`, { method: 'POST', headers: { 'content-type': type }, body: bytes });
  expect(res.status).toBe(200);
  return ((await res.json()) as number[][])[0]!;
}

async function embedJson(url: string, inputs: unknown[]): Promise<number[][]> {
  const res = await postJson(`${url}/embed/image`, { inputs });
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as number[][];
}

const TEXT_BODY_LIMIT = 64 * 1024;

describe('image embeddings', () => {
  let host: ImageHost;
  let server: TestServer;
  let photo: Buffer;

  beforeAll(async () => {
    host = await startImageHost();
    photo = await sceneJpeg('circle');
    host.put('/photo.jpg', photo);
    // L1 off so that every answer below is computed, and equality across forms means something.
    server = await startServer({
      TWINLANE_L1_BYTES: '0',
      TWINLANE_IMAGE_FETCH_ALLOWLIST: `127.0.0.1:${host.port}`,
      TWINLANE_MAX_BODY_BYTES: String(TEXT_BODY_LIMIT),
    });
  });
  afterAll(async () => {
    await server.stop();
    await host.close();
  });

  it('gives the same vector for raw bytes, base64, a data URI, a URL and the OpenAI route', async () => {
    const raw = await embedRaw(server.url, photo);
    const dataUri = `data:image/jpeg;base64,${photo.toString('base64')}`;
    const [b64, uri, url, plainUrl] = await embedJson(server.url, [
      { b64: photo.toString('base64') },
      dataUri,
      { url: `${host.base}/photo.jpg` },
      `${host.base}/photo.jpg`,
    ]);
    expect(raw).toHaveLength(512);
    expect(norm(raw)).toBeCloseTo(1, 5);
    for (const other of [b64!, uri!, url!, plainUrl!]) expect(maxAbsDiff(other, raw)).toBeLessThanOrEqual(1e-6);

    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const res = await client.embeddings.create({ model: IMAGE_MODEL, input: [dataUri, `${host.base}/photo.jpg`] });
    expect(res.usage.prompt_tokens).toBe(0);
    for (const item of res.data) expect(maxAbsDiff(item.embedding, raw)).toBeLessThanOrEqual(1e-6);
  });

  it.each<Scene>(['circle', 'square', 'stripes'])(
    'scores a re-encoded or shifted %s above unrelated scenes',
    async (scene) => {
      const others = (['circle', 'square', 'stripes'] as const).filter((s) => s !== scene);
      const original = await embedRaw(server.url, await scenePng(scene), 'image/png');
      const reencoded = await embedRaw(server.url, await sceneJpeg(scene, 92));
      const shifted = await embedRaw(server.url, await scenePng(scene, 6), 'image/png');
      const unrelated = await Promise.all(
        others.map(async (s) => embedRaw(server.url, await scenePng(s), 'image/png')),
      );
      const best = Math.max(...unrelated.map((u) => cosine(original, u)));
      expect(cosine(original, reencoded)).toBeGreaterThan(best);
      expect(cosine(original, shifted)).toBeGreaterThan(best);
    },
  );

  it('gives 16 concurrent different images the vectors they get one by one', async () => {
    const images = await Promise.all(Array.from({ length: 16 }, (_, i) => distinctJpeg(i)));
    const alone: number[][] = [];
    for (const image of images) alone.push(await embedRaw(server.url, image));
    const together = await Promise.all(images.map((image) => embedRaw(server.url, image)));
    together.forEach((vector, i) => expect(maxAbsDiff(vector, alone[i]!)).toBeLessThanOrEqual(1e-5));
    expect(new Set(alone.map((v) => v.slice(0, 4).join())).size).toBe(16);
  });

  it('fetches a URL requested by many clients at once only once', async () => {
    const image = await distinctJpeg(99);
    host.put('/once.jpg', image);
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => embedJson(server.url, [{ url: `${host.base}/once.jpg` }])),
    );
    expect(new Set(answers.map((a) => a[0]!.join())).size).toBe(1);
    expect(host.hits.get('/once.jpg')).toBe(1);
  });

  it.each(['webp', 'gif', 'avif'] as const)(
    'takes a raw image/%s body and sees the same picture as in PNG',
    async (format) => {
      const sharp = (await import('sharp')).default;
      const png = await scenePng('circle');
      const encoded = await (format === 'gif' ? sharp(png).gif() : sharp(png)[format]({ quality: 95 })).toBuffer();
      const [same, other, vector] = await Promise.all([
        embedRaw(server.url, png, 'image/png'),
        embedRaw(server.url, await scenePng('square'), 'image/png'),
        embedRaw(server.url, encoded, `image/${format}`),
      ]);
      expect(cosine(vector, same)).toBeGreaterThan(0.85);
      expect(cosine(vector, same)).toBeGreaterThan(cosine(vector, other));
    },
  );

  it('embeds the first frame of an animated GIF', async () => {
    const sharp = (await import('sharp')).default;
    const frames = await Promise.all((['circle', 'square'] as const).map((scene) => scenePng(scene)));
    const animated = await sharp(frames, { join: { animated: true } })
      .gif()
      .toBuffer();
    expect((await sharp(animated).metadata()).pages).toBe(2);
    const [first, second] = await Promise.all(
      frames.map(async (frame) => embedRaw(server.url, await sharp(frame).gif().toBuffer(), 'image/gif')),
    );
    const vector = await embedRaw(server.url, animated, 'image/gif');
    expect(maxAbsDiff(vector, first!)).toBeLessThan(1e-5);
    expect(cosine(vector, first!)).toBeGreaterThan(cosine(vector, second!));
  });

  it('reads normalize and model from the query string of a raw body', async () => {
    const raw = await fetch(`${server.url}/embed/image?normalize=false&model=${encodeURIComponent(IMAGE_MODEL)}`, {
      method: 'POST',
      headers: { 'content-type': 'image/jpeg' },
      body: photo,
    });
    expect(raw.status).toBe(200);
    const [vector] = (await raw.json()) as number[][];
    const unit = await embedRaw(server.url, photo);
    const length = norm(vector!);
    expect(Math.abs(length - 1)).toBeGreaterThan(1e-3);
    expect(
      maxAbsDiff(
        vector!.map((v) => v / length),
        unit,
      ),
    ).toBeLessThan(1e-5);
    const bad = await fetch(`${server.url}/embed/image?normalize=maybe`, {
      method: 'POST',
      headers: { 'content-type': 'image/jpeg' },
      body: photo,
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: 'invalid_request', param: 'normalize' } });
    const unknown = await fetch(`${server.url}/embed/image?model=org/nope`, {
      method: 'POST',
      headers: { 'content-type': 'image/jpeg' },
      body: photo,
    });
    expect(unknown.status).toBe(404);
  });

  it('holds OpenAI-route bodies to the image limit for the image model and to the text limit for text', async () => {
    const sharp = (await import('sharp')).default;
    const noisy = await sharp({
      create: {
        width: 400,
        height: 300,
        channels: 3,
        background: '#808080',
        noise: { type: 'gaussian', mean: 128, sigma: 50 },
      },
    })
      .jpeg({ quality: 95 })
      .toBuffer();
    const dataUri = `data:image/jpeg;base64,${noisy.toString('base64')}`;
    expect(dataUri.length).toBeGreaterThan(TEXT_BODY_LIMIT);
    const image = await postJson(`${server.url}/v1/embeddings`, { model: IMAGE_MODEL, input: dataUri });
    expect(image.status).toBe(200);
    const text = await postJson(`${server.url}/v1/embeddings`, { input: 'word '.repeat(TEXT_BODY_LIMIT / 5) });
    expect(text.status).toBe(413);
    expect(await text.json()).toMatchObject({ error: { code: 'payload_too_large' } });
  });

  it('honours EXIF orientation', async () => {
    const sharp = (await import('sharp')).default;
    const upright = await sharp(await scenePng('square', 30))
      .rotate(90)
      .jpeg({ quality: 95 })
      .toBuffer();
    // The same pixels stored sideways with an EXIF tag that says "rotate 90° clockwise to view".
    const tagged = await sharp(await scenePng('square', 30))
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const plainSideways = await sharp(await scenePng('square', 30))
      .jpeg({ quality: 95 })
      .toBuffer();
    const [a, b, c] = await Promise.all([
      embedRaw(server.url, upright),
      embedRaw(server.url, tagged),
      embedRaw(server.url, plainSideways),
    ]);
    expect(cosine(a, b)).toBeGreaterThan(cosine(a, c));
    expect(cosine(a, b)).toBeGreaterThan(0.99);
  });
});
