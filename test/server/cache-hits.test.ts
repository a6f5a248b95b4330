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
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => postJson(`${server.url}/embed/text`, { inputs: input })),
    );
    const vectors = await Promise.all(answers.map(async (r) => JSON.stringify(await r.json())));
    expect(answers.every((r) => r.status === 200)).toBe(true);
    expect(new Set(vectors).size).toBe(1);
    expect((await computedItems(server.url)) - before).toBe(1);
  });

  it('keeps normalised and raw vectors apart', async () => {
    const input = 'The airplane landed safely at the airport.';
    const raw = (await (
      await postJson(`${server.url}/embed/text`, { inputs: input, normalize: false })
    ).json()) as number[][];
    const unit = (await (
      await postJson(`${server.url}/embed/text`, { inputs: input, normalize: true })
    ).json()) as number[][];
    const length = Math.hypot(...raw[0]!);
    expect(Math.abs(length - 1)).toBeGreaterThan(1e-3);
    expect(Math.hypot(...unit[0]!)).toBeCloseTo(1, 5);
    unit[0]!.forEach((v, i) => expect(v).toBeCloseTo(raw[0]![i]! / length, 5));
  });
});

describe('hot answers (a request repeated byte for byte)', () => {
  it('answers the third identical request from its kept answer: same bytes and headers, counted as L1 hits, charged to the budget', async () => {
    const server = await startServer({
      TWINLANE_IMAGE_MODEL: 'none',
      TWINLANE_API_KEYS: 'hot-key',
      TWINLANE_RATE_LIMIT: '0.001',
      TWINLANE_RATE_BURST: '9',
    });
    try {
      const auth = { authorization: 'Bearer hot-key' };
      const body = { input: ['hot answer one', 'hot answer two'], encoding_format: 'base64' };
      const metrics = async (pattern: RegExp) =>
        Number(pattern.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push(await postJson(`${server.url}/v1/embeddings`, body, auth));
      const texts = await Promise.all(answers.map((r) => r.text()));
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      // 1: computed; 2: L1 hits through the whole flow (and kept); 3, 4: the kept answer.
      expect(new Set(texts.slice(1)).size).toBe(1);
      expect(JSON.parse(texts[3]!)).toEqual(JSON.parse(texts[0]!));
      expect(answers.map((r) => r.headers.get('x-cache-hits'))).toEqual(['0', '2', '2', '2']);
      for (const r of answers)
        for (const h of ['x-queue-time', 'x-inference-time', 'x-total-time', 'x-request-id', 'x-ratelimit-remaining'])
          expect(r.headers.get(h), h).not.toBeNull();
      // Each request spent its two items: 9, 7, 5, 3, 1 left.
      expect(answers.map((r) => r.headers.get('x-ratelimit-remaining'))).toEqual(['7', '5', '3', '1']);
      expect((await postJson(`${server.url}/v1/embeddings`, body, auth)).status).toBe(429);
      expect(await metrics(/twinlane_cache_items_total\{lane="text",result="l1"\} (\S+)/)).toBe(6);
      expect(await metrics(/twinlane_cache_tier_lookups_total\{tier="l1",result="hit"\} (\S+)/)).toBe(6);
      expect(await metrics(/twinlane_lane_items_computed_total\{lane="text"\} (\S+)/)).toBe(2);
    } finally {
      await server.stop();
    }
  });

  it("sends a kept answer with every header of the answer it keeps, each value the same but the request's own", async () => {
    const server = await startServer({ TWINLANE_IMAGE_MODEL: 'none' });
    try {
      // Answer shapes with their own headers: /embed/text's binary encodings, OpenAI's JSON.
      const requests: [string, object, Record<string, string>][] = [
        ['/embed/text', { inputs: ['kept headers'] }, { accept: 'application/octet-stream' }],
        ['/embed/text', { inputs: ['kept headers', 'two'] }, {}],
        ['/v1/embeddings', { input: 'kept headers', encoding_format: 'base64' }, {}],
      ];
      for (const [route, body, headers] of requests) {
        const answers = [];
        for (let i = 0; i < 3; i++) answers.push(await postJson(`${server.url}${route}`, body, headers));
        const [, throughFlow, kept] = answers.map((r) => Object.fromEntries(r.headers));
        // The second went through the whole flow as L1 hits; the third is its kept answer.
        const fresh = ['x-request-id', 'x-total-time', 'date'];
        const fixed = (h: Record<string, string>) =>
          Object.fromEntries(Object.entries(h).filter(([name]) => !fresh.includes(name)));
        expect(fixed(kept!), route).toEqual(fixed(throughFlow!));
        expect(Object.keys(kept!).sort(), route).toEqual(Object.keys(throughFlow!).sort());
        expect(kept!['x-request-id']).not.toBe(throughFlow!['x-request-id']);
        expect(kept!['x-cache-hits']).toBe(
          String(route === '/v1/embeddings' ? 1 : (body as { inputs: string[] }).inputs.length),
        );
      }
    } finally {
      await server.stop();
    }
  });

  it('takes the whole flow again once an item of the kept answer left L1, and never keeps answers with TWINLANE_HOT_ANSWER_BYTES=0', async () => {
    // An L1 of about three vectors: filling it with others evicts the kept answer's items.
    const server = await startServer({ TWINLANE_IMAGE_MODEL: 'none', TWINLANE_L1_BYTES: '6000' });
    const off = await startServer({ TWINLANE_IMAGE_MODEL: 'none', TWINLANE_HOT_ANSWER_BYTES: '0' });
    try {
      const body = { inputs: ['evicted later'] };
      for (let i = 0; i < 3; i++)
        expect((await postJson(`${server.url}/embed/text`, body)).headers.get('x-cache-hits')).toBe(
          i === 0 ? '0' : '1',
        );
      await postJson(`${server.url}/embed/text`, {
        inputs: ['filler one', 'filler two', 'filler three', 'filler four'],
      });
      const after = await postJson(`${server.url}/embed/text`, body);
      expect(after.headers.get('x-cache-hits')).toBe('0');
      expect(Number(after.headers.get('x-inference-time'))).toBeGreaterThan(0);
      for (let i = 0; i < 3; i++) expect((await postJson(`${off.url}/embed/text`, body)).status).toBe(200);
      // Without a rate limit a kept answer is sent from the callback that read the body: the same
      // bytes and headers, counted as the L1 hits they are.
      const openAi = { input: ['kept without limits'], encoding_format: 'base64' };
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push(await postJson(`${server.url}/v1/embeddings`, openAi));
      const texts = await Promise.all(answers.map((r) => r.text()));
      expect(answers.map((r) => [r.status, r.headers.get('x-cache-hits')])).toEqual([
        [200, '0'],
        [200, '1'],
        [200, '1'],
        [200, '1'],
      ]);
      expect(new Set(texts.slice(1)).size).toBe(1);
      expect(JSON.parse(texts[3]!)).toEqual(JSON.parse(texts[0]!));
      const ids = answers.map((r) => r.headers.get('x-request-id'));
      expect(new Set(ids).size).toBe(4);
      const scrape = await (await fetch(`${server.url}/metrics`)).text();
      expect(scrape).toMatch(/twinlane_http_requests_total\{route="\/v1\/embeddings",lane="text",status="200"\} 4\b/);
      expect(scrape).toMatch(
        /twinlane_http_request_duration_seconds_count\{route="\/v1\/embeddings",lane="text"\} 4\b/,
      );
    } finally {
      await Promise.all([server.stop(), off.stop()]);
    }
  });
});
