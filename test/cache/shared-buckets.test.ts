// Token buckets in a real redis-server: shared between instances, and answering null (never
// hanging, never throwing) while Redis is away, then working again when it returns.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SharedBuckets, type SharedBucketsOptions } from '../../cache/index.js';
import { startRedis, waitFor, type TestRedis } from '../helpers/redis.js';

let redis: TestRedis;
const open: SharedBuckets[] = [];
let client = 0;

beforeAll(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});
afterAll(async () => {
  await redis?.stop();
});

async function buckets(options: Partial<SharedBucketsOptions> = {}): Promise<SharedBuckets> {
  const b = new SharedBuckets({
    url: redis.url,
    keyPrefix: 'test:ratelimit:',
    rate: 1,
    burst: 5,
    timeoutMs: 200,
    ...options,
  });
  open.push(b);
  await waitFor(() => b.state() === 'up', 10_000, 'the buckets to connect');
  return b;
}

describe('SharedBuckets', () => {
  it('shares one bucket per client between instances', async () => {
    const a = await buckets();
    const b = await buckets();
    const id = `c${++client}`;
    expect(await a.take(id, 3)).toMatchObject({ allowed: true });
    const second = await b.take(id, 2);
    expect(second?.allowed).toBe(true);
    expect(second?.tokens).toBeLessThan(0.5);
    expect(await a.take(id, 2)).toMatchObject({ allowed: false });
    expect(await b.take(`c${++client}`, 5)).toMatchObject({ allowed: true });
  });

  it('keeps its state in one hash per client that expires once the bucket would be full again', async () => {
    const b = await buckets({ rate: 2, burst: 10 });
    const id = `c${++client}`;
    await b.take(id, 10);
    const key = `test:ratelimit:${id}`;
    expect(Number(await redis.client.hget(key, 'tokens'))).toBeCloseTo(0, 1);
    const ttl = await redis.client.pttl(key);
    // Empty bucket at 2 items/s: full after 5 s, plus a second of slack.
    expect(ttl).toBeGreaterThan(5000);
    expect(ttl).toBeLessThanOrEqual(6000);
  });

  it('refuses without taking, and admits a request larger than the burst from a full bucket', async () => {
    const b = await buckets({ rate: 1, burst: 4 });
    const id = `c${++client}`;
    const big = await b.take(id, 10);
    expect(big?.allowed).toBe(true);
    expect(big?.tokens).toBeCloseTo(-6, 1);
    const refused = await b.take(id, 1);
    expect(refused?.allowed).toBe(false);
    expect(refused?.tokens).toBeCloseTo(-6, 1);
  });

  it('answers null while Redis is away and works again when it is back', async () => {
    const b = await buckets({ failureThreshold: 1, coolDownMs: 100 });
    await redis.kill();
    const started = performance.now();
    expect(await b.take(`c${++client}`, 1)).toBeNull();
    // Fail-fast: nothing waits for a reconnect.
    expect(performance.now() - started).toBeLessThan(1000);
    await redis.restart();
    await waitFor(async () => (await b.take(`c${++client}`, 1)) !== null, 10_000, 'the buckets to use Redis again');
    expect(b.state()).toBe('up');
  });

  it('answers null within its timeout while Redis is paused', async () => {
    const b = await buckets({ timeoutMs: 50 });
    await redis.pause(1000);
    expect(await b.take(`c${++client}`, 1)).toBeNull();
    await waitFor(async () => (await b.take(`c${++client}`, 1)) !== null, 10_000, 'the pause to end');
  });
});
