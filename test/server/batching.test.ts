import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxAbsDiff, postJson, startServer, type TestServer } from '../helpers/server.js';

const WORDS =
  'the quick brown fox jumps over a lazy dog while researchers in the rainforest discover new frogs and the market falls sharply today'.split(
    ' ',
  );

/** 64 distinct texts from 1 to ~300 words, so batches mix short rows with rows cut at max tokens. */
function mixedTexts(): string[] {
  return Array.from({ length: 64 }, (_, i) => {
    const words = 1 + ((i * 37) % 97) * (i % 4 === 0 ? 3 : 1);
    return `${i}: ` + Array.from({ length: words }, (_, k) => WORDS[(i + k * 7) % WORDS.length]).join(' ');
  });
}

async function embed(url: string, text: string): Promise<number[]> {
  const res = await postJson(`${url}/embed/text`, { inputs: [text] });
  expect(res.status).toBe(200);
  const body = (await res.json()) as number[][];
  return body[0]!;
}

/** The text lane's model batches and model runtime calls so far. */
async function modelCalls(url: string): Promise<{ batches: number; calls: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const batches = Number(/twinlane_model_batches_total\{lane="text",model="[^"]+"\} (\S+)/.exec(text)?.[1] ?? 0);
  const calls = Number(/twinlane_model_calls_total\{lane="text",model="[^"]+"\} (\S+)/.exec(text)?.[1] ?? 0);
  return { batches, calls };
}

async function batchSizeCount(url: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sum = Number(/twinlane_lane_batch_size_sum\{lane="text"\} (\S+)/.exec(text)?.[1] ?? 0);
  const count = Number(/twinlane_lane_batch_size_count\{lane="text"\} (\S+)/.exec(text)?.[1] ?? 0);
  return { sum, count };
}

describe('micro-batching', () => {
  let server: TestServer;

  beforeAll(async () => {
    // L1 off: otherwise the concurrent round would be answered from the cache, not from batches.
    server = await startServer({ TWINLANE_L1_BYTES: '0' });
  });
  afterAll(async () => {
    await server.stop();
  });

  it('gives each of 64 concurrent texts of mixed lengths the vector it gets alone', async () => {
    const texts = mixedTexts();
    const alone: number[][] = [];
    for (const text of texts) alone.push(await embed(server.url, text));
    const before = await batchSizeCount(server.url);

    const together = await Promise.all(texts.map((text) => embed(server.url, text)));
    texts.forEach((_, i) => {
      expect(together[i]).toHaveLength(384);
      expect(maxAbsDiff(together[i]!, alone[i]!)).toBeLessThanOrEqual(1e-5);
    });

    // The concurrent round really was batched: fewer model calls than texts.
    const after = await batchSizeCount(server.url);
    expect(after.sum - before.sum).toBe(64);
    expect(after.count - before.count).toBeLessThan(64);
  });

  it('runs a batch of short and long texts as one call per length, each text getting its solo vector', async () => {
    // Four 3-token texts and four 102-token ones: one call would pad the short rows to 102 positions;
    // the plan (lanes/call-plan.ts) runs two calls of equal lengths instead.
    const texts = [1, 2, 3, 4].map(String).concat([5, 6, 7, 8].map((i) => `${i} ${'fox '.repeat(100)}`));
    const alone: number[][] = [];
    for (const text of texts) alone.push(await embed(server.url, text));
    const before = await modelCalls(server.url);
    const res = await postJson(`${server.url}/embed/text`, { inputs: texts });
    expect(res.status).toBe(200);
    const together = (await res.json()) as number[][];
    const after = await modelCalls(server.url);
    expect(after.batches - before.batches).toBe(1);
    expect(after.calls - before.calls).toBe(2);
    together.forEach((vector, i) => expect(maxAbsDiff(vector, alone[i]!)).toBeLessThanOrEqual(1e-5));
  });

  it('never crosses results between requests that carry several texts each', async () => {
    const texts = mixedTexts();
    const alone = new Map<string, number[]>();
    for (const text of texts.slice(0, 16)) alone.set(text, await embed(server.url, text));
    const requests = Array.from({ length: 8 }, (_, r) => [texts[r]!, texts[r + 8]!, texts[(r * 3) % 16]!]);
    const answers = await Promise.all(
      requests.map(async (inputs) => {
        const res = await postJson(`${server.url}/embed/text`, { inputs });
        return (await res.json()) as number[][];
      }),
    );
    requests.forEach((inputs, r) =>
      inputs.forEach((text, k) => expect(maxAbsDiff(answers[r]![k]!, alone.get(text)!)).toBeLessThanOrEqual(1e-5)),
    );
  });
});
