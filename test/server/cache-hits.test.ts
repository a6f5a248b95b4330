import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startServer, TEXT_MODEL, type TestServer } from '../helpers/server.js';

async function computedItems(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/twinlane_lane_items_computed_total\{lane="text"\} (\S+)/.exec(text)?.[1] ?? 0);
}

describe('the embedded cache', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  it('answers a repeated text from the cache, bit-identical to the first answer', async () => {
    const body = { model: TEXT_MODEL, input: 'Please send me the invoice by email.', encoding_format: 'base64' };
    const first = await postJson(`${server.url}/v1/embeddings`, body);
    const second = await postJson(`${server.url}/v1/embeddings`, body);
    expect(first.headers.get('x-cache-hits')).toBe('0');
    expect(second.headers.get('x-cache-hits')).toBe('1');
    const a = (await first.json()) as { data: { embedding: string }[]; usage: { prompt_tokens: number } };
    const b = (await second.json()) as { data: { embedding: string }[]; usage: { prompt_tokens: number } };
    expect(b.data[0]!.embedding).toBe(a.data[0]!.embedding);
    expect(b.usage.prompt_tokens).toBe(a.usage.prompt_tokens);
  });

  it('runs the model once for 50 identical concurrent requests', async () => {
    const before = await computedItems(server.url);
    const input = 'Fifty clients asked for this very sentence at once.';
    const answers = await Promise.all(Array.from({ length: 50 }, () => postJson(`${server.url}/embed/text`, { inputs: input })));
    const vectors = await Promise.all(answers.map(async (r) => JSON.stringify(await r.json())));
    expect(answers.every((r) => r.status === 200)).toBe(true);
    expect(new Set(vectors).size).toBe(1);
    expect((await computedItems(server.url)) - before).toBe(1);
  });

  it('keeps normalised and raw vectors apart', async () => {
    const input = 'The airplane landed safely at the airport.';
    const raw = (await (await postJson(`${server.url}/embed/text`, { inputs: input, normalize: false })).json()) as number[][];
    const unit = (await (await postJson(`${server.url}/embed/text`, { inputs: input, normalize: true })).json()) as number[][];
    const length = Math.hypot(...raw[0]!);
    expect(Math.abs(length - 1)).toBeGreaterThan(1e-3);
    expect(Math.hypot(...unit[0]!)).toBeCloseTo(1, 5);
    unit[0]!.forEach((v, i) => expect(v).toBeCloseTo(raw[0]![i]! / length, 5));
  });
});
