// API keys and per-client rate limits against the real server: the official client, raw fetch, and
// two instances sharing one real redis-server (killed mid-way to show the limiter keeps answering).
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, waitFor, type TestRedis } from '../helpers/redis.js';
import { metric, postJson, startServer, TEXT_MODEL, type TestServer } from '../helpers/server.js';

const KEY = 'sk-twinlane-test-key-1';
const OTHER_KEY = 'sk-twinlane-test-key-2';
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function errorOf(res: Response): Promise<{ code: string; type: string }> {
  return ((await res.json()) as { error: { code: string; type: string } }).error;
}

describe('API keys', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ TWINLANE_API_KEYS: `${KEY}, ${OTHER_KEY}`, TWINLANE_IMAGE_MODEL: 'none' });
  });
  afterAll(async () => {
    await server.stop();
  });

  it.each([
    ['no Authorization header', {}],
    ['a wrong key', bearer('sk-wrong')],
    ['a key in the wrong scheme', { authorization: `Basic ${KEY}` }],
  ])('refuses %s on the embedding routes with 401, invalid_api_key and WWW-Authenticate', async (_, headers) => {
    for (const path of ['/v1/embeddings', '/embed/text']) {
      const res = await postJson(`${server.url}${path}`, { input: 'hello', inputs: 'hello' }, headers);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="twinlane"');
      expect(await errorOf(res)).toMatchObject({ code: 'invalid_api_key', type: 'authentication_error' });
    }
  });

  it('serves every configured key', async () => {
    for (const key of [KEY, OTHER_KEY]) {
      const res = await postJson(`${server.url}/embed/text`, { inputs: 'hello' }, bearer(key));
      expect(res.status).toBe(200);
    }
  });

  it('works with the official openai client given the key, and refuses it a wrong one', async () => {
    const good = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const answer = await good.embeddings.create({ model: TEXT_MODEL, input: 'The cat sat on the mat.' });
    expect(answer.data[0]!.embedding).toHaveLength(384);
    const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-nope', maxRetries: 0 });
    await expect(bad.embeddings.create({ model: TEXT_MODEL, input: 'x' })).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    );
  });

  it('keeps health, readiness and metrics open, and asks a key for the model list and info', async () => {
    for (const path of ['/health', '/ready', '/metrics'])
      expect((await fetch(`${server.url}${path}`)).status).toBe(200);
    for (const path of ['/v1/models', '/info']) {
      expect((await fetch(`${server.url}${path}`)).status).toBe(401);
      expect((await fetch(`${server.url}${path}`, { headers: bearer(KEY) })).status).toBe(200);
    }
  });

  it('counts refusals by reason, and never shows a key in metrics or logs', async () => {
    const wrong = await metric(server.url, /twinlane_auth_failures_total\{reason="wrong"\} (\S+)/);
    await postJson(`${server.url}/embed/text`, { inputs: 'x' }, bearer('sk-another-wrong-one'));
    expect(await metric(server.url, /twinlane_auth_failures_total\{reason="wrong"\} (\S+)/)).toBe(wrong + 1);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    for (const secret of [KEY, OTHER_KEY, 'sk-another-wrong-one']) {
      expect(metrics).not.toContain(secret);
      expect(server.output()).not.toContain(secret);
    }
  });
});

describe('API keys on operator routes when configured', () => {
  it('asks a key for health, readiness and metrics with TWINLANE_AUTH_OPS', async () => {
    const server = await startServer(
      { TWINLANE_API_KEYS: KEY, TWINLANE_AUTH_OPS: 'true', TWINLANE_IMAGE_MODEL: 'none' },
      { waitReady: false },
    );
    try {
      await waitFor(
        async () => (await fetch(`${server.url}/ready`, { headers: bearer(KEY) })).status === 200,
        30_000,
        'readiness',
      );
      for (const path of ['/health', '/ready', '/metrics']) {
        expect((await fetch(`${server.url}${path}`)).status).toBe(401);
        expect((await fetch(`${server.url}${path}`, { headers: bearer(KEY) })).status).toBe(200);
      }
    } finally {
      await server.stop();
    }
  });
});

describe('rate limits in one instance', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({
      TWINLANE_API_KEYS: `${KEY},${OTHER_KEY}`,
      TWINLANE_RATE_LIMIT: '1',
      TWINLANE_RATE_BURST: '4',
      TWINLANE_IMAGE_MODEL: 'none',
    });
  });
  afterAll(async () => {
    await server.stop();
  });

  it('counts items, empties the bucket, refuses with 429 and Retry-After, then refills', async () => {
    const embed = (inputs: string[]) => postJson(`${server.url}/embed/text`, { inputs }, bearer(KEY));
    const first = await embed(['one', 'two', 'three']);
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-limit')).toBe('4');
    expect(first.headers.get('x-ratelimit-remaining')).toBe('1');
    expect(Number(first.headers.get('x-ratelimit-reset'))).toBeGreaterThanOrEqual(3);

    const refused = await embed(['four', 'five']);
    expect(refused.status).toBe(429);
    expect(await errorOf(refused)).toMatchObject({ code: 'rate_limited', type: 'rate_limit_error' });
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get('x-ratelimit-remaining')).toBe('1');

    // The other key has a budget of its own.
    expect(
      (await postJson(`${server.url}/embed/text`, { inputs: ['a', 'b', 'c', 'd'] }, bearer(OTHER_KEY))).status,
    ).toBe(200);

    await new Promise((r) => setTimeout(r, retryAfter * 1000));
    const later = await embed(['four', 'five']);
    expect(later.status).toBe(200);
    expect(later.headers.get('x-ratelimit-remaining')).toBe('0');
  });

  it('puts the budget headers on every answer of an embedding route, errors included', async () => {
    const answers = [
      await fetch(`${server.url}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(OTHER_KEY) },
        body: '{"input": ',
      }),
      await postJson(`${server.url}/v1/embeddings`, { input: 'x' }),
      await postJson(`${server.url}/embed/text`, { inputs: [''] }, bearer(OTHER_KEY)),
    ];
    expect(answers.map((r) => r.status)).toEqual([400, 401, 422]);
    for (const res of answers) {
      expect(res.headers.get('x-ratelimit-limit')).toBe('4');
      expect(res.headers.get('x-ratelimit-remaining')).toMatch(/^\d+$/);
      expect(res.headers.get('x-ratelimit-reset')).toMatch(/^\d+$/);
    }
  });

  it('counts each refusal in metrics', async () => {
    const limited = () =>
      metric(server.url, /twinlane_rate_limit_decisions_total\{store="local",result="limited"\} (\S+)/);
    const before = await limited();
    const many = Array.from({ length: 10 }, (_, i) => `text ${i}`);
    const res = await postJson(`${server.url}/embed/text`, { inputs: many }, bearer(OTHER_KEY));
    const again = await postJson(`${server.url}/embed/text`, { inputs: many }, bearer(OTHER_KEY));
    expect([res.status, again.status]).toContain(429);
    expect(await limited()).toBeGreaterThan(before);
    expect(
      await metric(server.url, /twinlane_http_errors_total\{route="\/embed\/text",code="rate_limited"\} (\S+)/),
    ).toBeGreaterThan(0);
  });
});

describe('rate limits shared through Redis', () => {
  let redis: TestRedis;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    redis = await startRedis();
    const env = {
      TWINLANE_REDIS_URL: redis.url,
      TWINLANE_RATE_LIMIT: '0.5',
      TWINLANE_RATE_BURST: '6',
      TWINLANE_IMAGE_MODEL: 'none',
    };
    [a, b] = await Promise.all([startServer(env), startServer(env)]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  it('gives two instances one budget per client', async () => {
    const first = await postJson(`${a.url}/embed/text`, { inputs: ['one', 'two', 'three', 'four'] });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-remaining')).toBe('2');
    const second = await postJson(`${b.url}/embed/text`, { inputs: ['five', 'six', 'seven'] });
    expect(second.status).toBe(429);
    expect(second.headers.get('x-ratelimit-remaining')).toBe('2');
    expect((await postJson(`${b.url}/embed/text`, { inputs: ['five', 'six'] })).status).toBe(200);
    expect((await postJson(`${a.url}/embed/text`, { inputs: ['seven'] })).status).toBe(429);
    expect(await metric(a.url, /twinlane_rate_limit_decisions_total\{store="redis",result="limited"\} (\S+)/)).toBe(1);
  });

  it('keeps answering from local buckets while Redis is down, and counts the fallback', async () => {
    await redis.kill();
    const answers = await Promise.all([a, b].map((s) => postJson(`${s.url}/embed/text`, { inputs: ['still here'] })));
    for (const res of answers) {
      expect([200, 429]).toContain(res.status);
      expect(res.headers.get('x-ratelimit-limit')).toBe('6');
    }
    expect(
      await metric(a.url, /twinlane_fallbacks_total\{reason="rate_limit_decided_locally"\} (\S+)/),
    ).toBeGreaterThan(0);
    await redis.restart();
  });
});
