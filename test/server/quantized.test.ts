// Quantized weights and quantized vectors (issue 13): TWINLANE_TEXT_DTYPE=q8 loads
// onnx/model_quantized.onnx and keys its vectors apart from fp32's; int8, uint8, binary and ubinary
// answers on every route decode back to the float vector's scaled values and signs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { textKey } from '../../cache/index.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { cosine, maxAbsDiff, startServer, TEXT_MODEL, type TestServer } from '../helpers/server.js';
import { openSocket } from '../helpers/ws.js';

const FORMATS = ['int8', 'uint8', 'binary', 'ubinary'] as const;
type Format = (typeof FORMATS)[number];

const TEXTS = [
  'A man is playing a guitar.',
  'The quick brown fox jumps over the lazy dog.',
  'quantized vectors take a quarter of the space or less',
];

function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

async function floats(url: string, input: readonly string[], model = TEXT_MODEL): Promise<number[][]> {
  const res = await post(url, '/v1/embeddings', { model, input });
  expect(res.status).toBe(200);
  return ((await res.json()) as { data: { embedding: number[] }[] }).data.map((d) => d.embedding);
}

/** Checks one quantized answer against the float vector it was made from, as the README documents the encoding. */
function expectDecodes(
  format: Format,
  values: readonly number[],
  scale: number | undefined,
  float: readonly number[],
): void {
  if (format === 'int8' || format === 'uint8') {
    const offset = format === 'uint8' ? 128 : 0;
    expect(scale).toBeGreaterThan(0);
    expect(values).toHaveLength(float.length);
    expect(Math.min(...values)).toBeGreaterThanOrEqual(format === 'uint8' ? 1 : -127);
    expect(Math.max(...values)).toBeLessThanOrEqual(format === 'uint8' ? 255 : 127);
    // The largest component uses the whole range, and every value is within half a step.
    expect(Math.max(...values.map((v) => Math.abs(v - offset)))).toBe(127);
    const decoded = values.map((v) => (v - offset) * scale!);
    expect(maxAbsDiff(decoded, float)).toBeLessThanOrEqual(scale! / 2 + 1e-6);
    expect(cosine(decoded, float)).toBeGreaterThan(0.999);
    return;
  }
  expect(scale).toBeUndefined();
  expect(values).toHaveLength(Math.ceil(float.length / 8));
  const bytes = values.map((v) => (format === 'binary' ? v + 128 : v));
  expect(Math.min(...bytes)).toBeGreaterThanOrEqual(0);
  expect(Math.max(...bytes)).toBeLessThanOrEqual(255);
  float.forEach((x, i) => expect((bytes[i >> 3]! >> (7 - (i & 7))) & 1, `bit ${i}`).toBe(x > 0 ? 1 : 0));
}

describe('quantized vectors', () => {
  let server: TestServer;
  let reference: number[][];

  beforeAll(async () => {
    server = await startServer();
    reference = await floats(server.url, TEXTS);
  });
  afterAll(async () => {
    await server.stop();
  });

  it.each(FORMATS)('answers %s on /v1/embeddings, decoding to the float vectors', async (format) => {
    const res = await post(server.url, '/v1/embeddings', { model: TEXT_MODEL, input: TEXTS, encoding_format: format });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      data: { embedding: number[]; scale?: number; index: number }[];
      usage: { prompt_tokens: number };
    };
    expect(body.usage.prompt_tokens).toBeGreaterThan(0);
    body.data.forEach((d, i) => expectDecodes(format, d.embedding, d.scale, reference[i]!));
  });

  it.each(FORMATS)('answers %s on /embed/text, after Matryoshka truncation too', async (format) => {
    const res = await post(server.url, '/embed/text', { inputs: TEXTS, encoding: format });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { encoding: string; embeddings: number[][]; scales?: number[] };
    expect(body.encoding).toBe(format);
    body.embeddings.forEach((values, i) => expectDecodes(format, values, body.scales?.[i], reference[i]!));
    const cut = await post(server.url, '/v1/embeddings', {
      model: TEXT_MODEL,
      input: TEXTS[0],
      encoding_format: format,
      dimensions: 100,
    });
    const cutFloat = (
      (await (
        await post(server.url, '/v1/embeddings', { model: TEXT_MODEL, input: TEXTS[0], dimensions: 100 })
      ).json()) as { data: { embedding: number[] }[] }
    ).data[0]!.embedding;
    const quantized = ((await cut.json()) as { data: { embedding: number[]; scale?: number }[] }).data[0]!;
    expectDecodes(format, quantized.embedding, quantized.scale, cutFloat);
  });

  it.each(FORMATS)('answers %s over /ws item by item', async (format) => {
    const socket = await openSocket(server.url);
    try {
      socket.send({ id: format, lane: 'text', inputs: TEXTS, encoding: format });
      await socket.done(format);
      const items = socket.of(format).filter((m) => 'embedding' in m) as {
        index: number;
        embedding: number[];
        scale?: number;
      }[];
      expect(items).toHaveLength(TEXTS.length);
      for (const item of items) expectDecodes(format, item.embedding, item.scale, reference[item.index]!);
      socket.send({ id: 'bad', lane: 'text', inputs: TEXTS, encoding: format, format: 'base64' });
      const refused = await socket.next((m) => m['id'] === 'bad' && 'error' in m);
      expect(refused['error']).toMatchObject({ code: 'invalid_request', param: 'encoding' });
    } finally {
      await socket.close();
    }
  });

  it("keeps OpenAI's float and base64 answers as they were", async () => {
    const res = await post(server.url, '/v1/embeddings', {
      model: TEXT_MODEL,
      input: TEXTS,
      encoding_format: 'base64',
    });
    const body = (await res.json()) as { data: { embedding: string }[] };
    body.data.forEach((d, i) =>
      expect(Array.from(new Float32Array(Uint8Array.from(Buffer.from(d.embedding, 'base64')).buffer))).toEqual(
        reference[i]!.map((x) => Math.fround(x)),
      ),
    );
  });
});

describe('q8 weights', () => {
  let redis: TestRedis;
  let fp32: TestServer;
  let q8: TestServer;

  beforeAll(async () => {
    redis = await startRedis();
    const env = { TWINLANE_REDIS_URL: redis.url, TWINLANE_CACHE_PREFIX: 'dtype', TWINLANE_IMAGE_MODEL: 'none' };
    [fp32, q8] = await Promise.all([startServer(env), startServer({ ...env, TWINLANE_TEXT_DTYPE: 'q8' })]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([fp32?.stop(), q8?.stop()]);
    await redis?.stop();
  });

  it('loads onnx/model_quantized.onnx and says so on /info', async () => {
    const info = (await (await fetch(`${q8.url}/info`)).json()) as {
      models: { towers: { text: { dtype: string; file: string; cache_id: string } } }[];
    };
    expect(info.models[0]!.towers.text).toEqual(
      expect.objectContaining({ dtype: 'q8', file: 'onnx/model_quantized.onnx', cache_id: `${TEXT_MODEL}@q8` }),
    );
    const plain = (await (await fetch(`${fp32.url}/info`)).json()) as typeof info;
    expect(plain.models[0]!.towers.text).toEqual(
      expect.objectContaining({ dtype: 'fp32', file: 'onnx/model.onnx', cache_id: TEXT_MODEL }),
    );
  });

  it("keys q8 vectors apart from fp32 ones in the shared Redis, so neither serves the other's", async () => {
    const text = 'a sentence both variants embed';
    const [fromQ8] = await floats(q8.url, [text]);
    await expect.poll(() => redis.client.exists(textKey('dtype', `${TEXT_MODEL}@q8`, true, text))).toBe(1);
    expect(await redis.client.exists(textKey('dtype', TEXT_MODEL, true, text))).toBe(0);
    // fp32 finds nothing of q8's under its own key: it computes, and its vector is its own.
    const res = await post(fp32.url, '/v1/embeddings', { model: TEXT_MODEL, input: [text] });
    expect(res.headers.get('x-cache-hits')).toBe('0');
    const fromFp32 = ((await res.json()) as { data: { embedding: number[] }[] }).data[0]!.embedding;
    await expect.poll(() => redis.client.exists(textKey('dtype', TEXT_MODEL, true, text))).toBe(1);
    // The int8 weights are another model in the last digits, the same one in meaning. How close
    // depends on the CPU: without VNNI, ONNX Runtime's u8s8 kernel saturates int16 pair sums (what
    // quantize_dynamic's reduce_range exists for), so this sentence's cosine is 0.9986 on an AVX2-only
    // AMD EPYC against ≥ 0.9991 on the Intel Xeons; a wrong model would be far below either.
    expect(maxAbsDiff(fromQ8!, fromFp32)).toBeGreaterThan(1e-4);
    expect(cosine(fromQ8!, fromFp32)).toBeGreaterThan(0.995);
  });
});
