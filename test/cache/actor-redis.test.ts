// The cache actor in front of a real redis-server: value format, TTL, corrupt values, and Redis
// failing (killed, restarted, paused) without failing a single request.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { l1RefreshIntervalMs } from '../../cache/actor.js';
import {
  createCache,
  decodeBf16,
  encodeBf16,
  textKey,
  type CacheActor,
  type CacheOptions,
  type RedisTierOptions,
} from '../../cache/index.js';
import { freePort, startRedis, waitFor, type TestRedis } from '../helpers/redis.js';
import { RecordingObserver, recordingCompute, vectorOf } from './fixtures.js';

const DIMS = 384;
let redis: TestRedis;
const open: CacheActor[] = [];
let model = 0;

/** Keys of a model id no other test uses, so tests never see each other's values. */
function freshKeys(n: number, prefix = 'test'): string[] {
  const id = `org/m${++model}`;
  return Array.from({ length: n }, (_, i) => textKey(prefix, id, true, `text ${i}`));
}

type TestOptions = Omit<Partial<CacheOptions>, 'redis'> & { redis?: Partial<RedisTierOptions> };

async function cacheWith(options: TestOptions = {}, observer = new RecordingObserver()) {
  const cache = createCache({
    l1Bytes: 1 << 20,
    ...options,
    observer,
    redis: { url: redis.url, ttlSeconds: 100, timeoutMs: 50, ...options.redis },
  });
  open.push(cache);
  await waitFor(() => cache.status().redis === 'up', 10_000, 'the cache to connect to Redis');
  return { cache, observer };
}

beforeAll(async () => {
  redis = await startRedis();
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

afterAll(async () => {
  await redis?.stop();
});

describe('cache actor with Redis', () => {
  it('stores each computed vector in Redis as big-endian BF16 bytes with the configured TTL', async () => {
    const { cache } = await cacheWith({ redis: { ttlSeconds: 100 } });
    const keys = freshKeys(3);
    const { compute } = recordingCompute(keys, { dims: DIMS });
    const results = await Promise.all(cache.resolve(keys, compute, { dims: DIMS }));
    await cache.flush();
    for (const [i, key] of keys.entries()) {
      const stored = await redis.client.getBuffer(key);
      expect(stored?.equals(encodeBf16(results[i]!.vector, 'big'))).toBe(true);
      expect(stored?.length).toBe(DIMS * 2);
      const ttl = await redis.client.ttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(100);
    }
  });

  it('serves a Redis hit decoded from BF16 without computing, with tokens null, and promotes it to L1', async () => {
    const keys = freshKeys(4);
    const writer = await cacheWith();
    await Promise.all(writer.cache.resolve(keys, recordingCompute(keys, { dims: DIMS }).compute, { dims: DIMS }));
    await writer.cache.flush();

    const { cache, observer } = await cacheWith();
    const { compute, calls } = recordingCompute(keys, { dims: DIMS });
    const hits = await Promise.all(cache.resolve(keys, compute, { dims: DIMS }));
    expect(calls).toEqual([]);
    expect(hits.map((h) => h.source)).toEqual(['redis', 'redis', 'redis', 'redis']);
    for (const [i, hit] of hits.entries()) {
      expect(hit.tokens).toBeNull();
      const expected = decodeBf16(encodeBf16(vectorOf(keys[i]!, DIMS), 'big'), 'big');
      expect(Array.from(hit.vector)).toEqual(Array.from(expected));
    }
    expect(observer.lookup('redis', 'hit')).toBe(4);
    const again = await Promise.all(cache.resolve(keys, compute, { dims: DIMS }));
    expect(again.map((h) => h.source)).toEqual(['l1', 'l1', 'l1', 'l1']);
  });

  it('looks up and computes concurrent identical misses once across tiers', async () => {
    const { cache, observer } = await cacheWith();
    const keys = freshKeys(1);
    const { compute, calls } = recordingCompute(keys, { dims: DIMS, delayMs: 10 });
    const results = await Promise.all(
      Array.from({ length: 20 }, () => cache.resolve(keys, compute, { dims: DIMS })[0]!),
    );
    expect(calls).toEqual([[0]]);
    expect(observer.lookup('redis', 'miss')).toBe(1);
    expect(results.filter((r) => r.source === 'computed')).toHaveLength(1);
    await cache.flush();

    // A fresh actor (empty L1): 20 identical concurrent lookups are one Redis hit shared by all.
    const other = await cacheWith({ l1Bytes: 0 });
    const none = recordingCompute(keys, { dims: DIMS });
    const shared = await Promise.all(
      Array.from({ length: 20 }, () => other.cache.resolve(keys, none.compute, { dims: DIMS })[0]!),
    );
    expect(none.calls).toEqual([]);
    expect(other.observer.lookup('redis', 'hit')).toBe(1);
    expect(shared.every((r) => r.source === 'redis')).toBe(true);
  });

  it('refreshes the TTL on every hit (sliding expiry)', async () => {
    const { cache } = await cacheWith({ l1Bytes: 0, redis: { ttlSeconds: 5 } });
    const keys = freshKeys(2);
    await Promise.all(cache.resolve(keys, recordingCompute(keys, { dims: DIMS }).compute, { dims: DIMS }));
    await cache.flush();
    await new Promise((r) => setTimeout(r, 1500));
    const before = await redis.client.pttl(keys[0]!);
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThanOrEqual(3600);

    const { compute, calls } = recordingCompute(keys, { dims: DIMS });
    const hits = await Promise.all(cache.resolve(keys, compute, { dims: DIMS }));
    expect(hits.map((h) => h.source)).toEqual(['redis', 'redis']);
    expect(calls).toEqual([]);
    await cache.flush();
    for (const key of keys) {
      const after = await redis.client.pttl(key);
      expect(after).toBeGreaterThan(4000);
      expect(after).toBeLessThanOrEqual(5000);
    }
  });

  it('refreshes the Redis TTL of a key kept hot in L1 once a tenth of the TTL has passed, not on every hit', async () => {
    let clock = 1_000_000;
    const { cache } = await cacheWith({ now: () => clock, redis: { ttlSeconds: 100 } });
    const keys = freshKeys(2);
    await Promise.all(cache.resolve(keys, recordingCompute(keys, { dims: DIMS }).compute, { dims: DIMS }));
    await cache.flush();
    const shorten = () => Promise.all(keys.map((key) => redis.client.expire(key, 50)));
    const ttls = () => Promise.all(keys.map((key) => redis.client.ttl(key)));
    const hitL1 = async (times = 1) => {
      for (let i = 0; i < times; i++) {
        const hits = await Promise.all(cache.resolve(keys, recordingCompute(keys).compute, { dims: DIMS }));
        expect(hits.map((h) => h.source)).toEqual(['l1', 'l1']);
      }
      await cache.flush();
    };

    // Within a tenth of the TTL (10 s) of the write, and then of each refresh, hits send nothing.
    for (let round = 0; round < 2; round++) {
      await shorten();
      clock += 9_999;
      await hitL1(5);
      for (const ttl of await ttls()) expect(ttl).toBeLessThanOrEqual(50);
      clock += 1;
      await hitL1();
      for (const ttl of await ttls()) expect(ttl).toBeGreaterThan(90);
    }
  });

  it('counts a Redis hit as a refresh of the key it promotes into L1', async () => {
    const keys = freshKeys(1);
    const writer = await cacheWith();
    await Promise.all(writer.cache.resolve(keys, recordingCompute(keys, { dims: DIMS }).compute, { dims: DIMS }));
    await writer.cache.flush();

    let clock = 0;
    const { cache } = await cacheWith({ now: () => clock, redis: { ttlSeconds: 100 } });
    clock = 50_000;
    expect((await Promise.all(cache.resolve(keys, recordingCompute(keys).compute, { dims: DIMS })))[0]!.source).toBe(
      'redis',
    );
    await cache.flush();
    await redis.client.expire(keys[0]!, 50);
    clock += 9_999;
    expect((await Promise.all(cache.resolve(keys, recordingCompute(keys).compute, { dims: DIMS })))[0]!.source).toBe(
      'l1',
    );
    await cache.flush();
    expect(await redis.client.ttl(keys[0]!)).toBeLessThanOrEqual(50);
    clock += 1;
    await Promise.all(cache.resolve(keys, recordingCompute(keys).compute, { dims: DIMS }));
    await cache.flush();
    expect(await redis.client.ttl(keys[0]!)).toBeGreaterThan(90);
  });

  it('spaces L1-hit refreshes a tenth of the TTL apart, at least a second unless the TTL is shorter than two', () => {
    expect(l1RefreshIntervalMs(86_400)).toBe(8_640_000);
    expect(l1RefreshIntervalMs(100)).toBe(10_000);
    expect(l1RefreshIntervalMs(5)).toBe(1_000);
    expect(l1RefreshIntervalMs(1)).toBe(500);
  });

  it('deletes corrupt values, counts them by reason, and recomputes the right vectors', async () => {
    const { cache, observer } = await cacheWith();
    const keys = freshKeys(5);
    const nan = Buffer.alloc(DIMS * 2);
    nan.writeUInt16BE(0x7fc0, 10);
    const inf = encodeBf16(new Float32Array(DIMS).fill(0.5), 'big');
    inf.writeUInt16BE(0xff80, 0);
    await redis.client.set(keys[0]!, Buffer.alloc(DIMS * 2 - 1, 1)); // odd length
    await redis.client.set(keys[1]!, encodeBf16(new Float32Array(DIMS - 6).fill(0.1), 'big')); // wrong dims
    await redis.client.set(keys[2]!, nan);
    await redis.client.set(keys[3]!, inf);
    await redis.client.set(keys[4]!, ''); // empty

    const { compute, calls } = recordingCompute(keys, { dims: DIMS });
    const results = await Promise.all(cache.resolve(keys, compute, { dims: DIMS }));
    expect(calls).toEqual([[0, 1, 2, 3, 4]]);
    for (const [i, r] of results.entries()) {
      expect(r.source).toBe('computed');
      expect(Array.from(r.vector)).toEqual(Array.from(vectorOf(keys[i]!, DIMS)));
    }
    expect(Object.fromEntries(observer.corrupt)).toEqual({ odd_length: 1, wrong_dims: 1, not_finite: 2, empty: 1 });
    expect(observer.lookup('redis', 'miss')).toBe(5);
    await cache.flush();
    // Deleted, then replaced by the recomputed vector.
    for (const [i, key] of keys.entries())
      expect((await redis.client.getBuffer(key))?.equals(encodeBf16(results[i]!.vector, 'big'))).toBe(true);
  });

  it('leaves no corrupt value behind when its recomputation fails', async () => {
    const { cache, observer } = await cacheWith();
    const keys = freshKeys(1);
    await redis.client.set(keys[0]!, Buffer.from([1, 2, 3]));
    const { compute } = recordingCompute(keys, { failKeys: new Set(keys) });
    await expect(cache.resolve(keys, compute, { dims: DIMS })[0]).rejects.toThrow(/bad item/);
    await cache.flush();
    expect(await redis.client.exists(keys[0]!)).toBe(0);
    expect(observer.corrupt.get('odd_length')).toBe(1);
  });

  it('bounds the writes waiting on a paused Redis and counts what it drops', async () => {
    const { cache, observer } = await cacheWith({ redis: { maxPendingWrites: 4, failureThreshold: 1000 } });
    await redis.pause(1500);
    for (let i = 0; i < 8; i++) {
      const keys = freshKeys(2);
      const results = await Promise.all(
        cache.resolve(keys, recordingCompute(keys, { dims: DIMS }).compute, { dims: DIMS }),
      );
      expect(results.every((r) => r.source === 'computed')).toBe(true);
      await new Promise((r) => setImmediate(r));
      expect(cache.stats().pendingWrites).toBeLessThanOrEqual(4);
    }
    expect(observer.dropped.get('backlog') ?? 0).toBeGreaterThan(0);
    expect(observer.errors.get('redis:timeout') ?? 0).toBeGreaterThan(0);
    await waitFor(() => cache.stats().pendingWrites === 0, 10_000, 'paused writes to be answered');
  });

  it('still refreshes TTLs with plain EXPIREs where Redis refuses scripts', async () => {
    await redis.client.call('ACL', 'SETUSER', 'noscripts', 'on', '>secret', '~*', '&*', '+@all', '-@scripting');
    const observer = new RecordingObserver();
    const cache = createCache({
      l1Bytes: 0,
      observer,
      redis: { url: `redis://noscripts:secret@127.0.0.1:${redis.port}`, ttlSeconds: 5 },
    });
    open.push(cache);
    await waitFor(() => cache.status().redis === 'up', 10_000, 'the cache to connect');
    const keys = freshKeys(2);
    await Promise.all(cache.resolve(keys, recordingCompute(keys, { dims: DIMS }).compute, { dims: DIMS }));
    await cache.flush();
    await new Promise((r) => setTimeout(r, 1200));
    // The first refresh tries the script and is refused; every later one uses EXPIRE.
    for (let round = 0; round < 2; round++) {
      const hits = await Promise.all(cache.resolve(keys, recordingCompute(keys).compute, { dims: DIMS }));
      expect(hits.map((h) => h.source)).toEqual(['redis', 'redis']);
      await cache.flush();
    }
    for (const key of keys) expect(await redis.client.pttl(key)).toBeGreaterThan(4000);
    expect(observer.errors.get('redis:command')).toBe(1);
    expect(cache.status()).toMatchObject({ redis: 'up', breaker: 'closed' });
  });

  it('keeps serving reads from a Redis that refuses writes (OOM), counting the dropped writes without opening the breaker', async () => {
    const { cache, observer } = await cacheWith();
    const stored = freshKeys(2);
    await Promise.all(cache.resolve(stored, recordingCompute(stored, { dims: DIMS }).compute, { dims: DIMS }));
    await cache.flush();
    await redis.client.config('SET', 'maxmemory', '1');
    try {
      for (let i = 0; i < 10; i++) {
        const keys = freshKeys(2);
        const computed = await Promise.all(
          cache.resolve(keys, recordingCompute(keys, { dims: DIMS }).compute, { dims: DIMS }),
        );
        expect(computed.every((r) => r.source === 'computed')).toBe(true);
        await cache.flush();
        expect(await redis.client.exists(...keys)).toBe(0);
      }
      expect(observer.dropped.get('error')).toBe(20);
      expect(observer.errors.get('redis:command')).toBeGreaterThanOrEqual(10);
      expect(observer.breaker).not.toContain('open');
      const reader = await cacheWith({ l1Bytes: 0 });
      const hits = await Promise.all(reader.cache.resolve(stored, recordingCompute(stored).compute, { dims: DIMS }));
      expect(hits.map((h) => h.source)).toEqual(['redis', 'redis']);
    } finally {
      await redis.client.config('SET', 'maxmemory', '0');
    }
  });

  it('quits its Redis connection on close', async () => {
    const name = 'twinlane-cache';
    const { cache } = await cacheWith();
    const count = async () =>
      ((await redis.client.call('CLIENT', 'LIST')) as string).split('\n').filter((l) => l.includes(`name=${name} `))
        .length;
    const before = await count();
    expect(before).toBeGreaterThan(0);
    await cache.close();
    await waitFor(async () => (await count()) === before - 1, 5000, 'the connection to close');
  });
});

describe('cache actor when Redis fails', () => {
  it('starts and serves with Redis down, without waiting on it', async () => {
    const port = await freePort();
    const observer = new RecordingObserver();
    const cache = createCache({ l1Bytes: 0, observer, redis: { url: `redis://127.0.0.1:${port}`, ttlSeconds: 100 } });
    open.push(cache);
    for (let i = 0; i < 10; i++) {
      const keys = [`down:${i}`];
      const { compute, calls } = recordingCompute(keys);
      const [r] = await Promise.all(cache.resolve(keys, compute));
      expect(r!.source).toBe('computed');
      expect(calls).toEqual([[0]]);
    }
    await cache.flush();
    expect(['down', 'open']).toContain(cache.status().redis);
    expect(observer.breaker).toContain('open');
    expect(observer.dropped.get('breaker_open') ?? 0).toBeGreaterThan(0);
    expect(observer.lookup('redis', 'skipped')).toBeGreaterThan(0);
  });

  it('answers every request while Redis is killed, opens the breaker, and resumes caching after a restart', async () => {
    const { cache, observer } = await cacheWith();
    let failed = 0;
    let computed = 0;
    for (let i = 0; i < 60; i++) {
      // Killed while this round's lookups are on the wire.
      const killing = i === 20 ? redis.kill() : null;
      const rounds = Array.from({ length: 3 }, async () => {
        const keys = freshKeys(4);
        const { compute, computedItems } = recordingCompute(keys, { dims: DIMS });
        const settled = await Promise.allSettled(cache.resolve(keys, compute, { dims: DIMS }));
        failed += settled.filter((s) => s.status === 'rejected').length;
        computed += computedItems();
      });
      await Promise.all([...rounds, killing]);
    }
    expect(failed).toBe(0);
    expect(computed).toBe(720);
    expect(observer.breaker).toContain('open');
    expect(cache.status().redis).not.toBe('up');
    expect(observer.redis).toContain('open');

    await redis.restart();
    await waitFor(() => cache.status().redis === 'up', 15_000, 'the breaker to close after Redis came back');
    expect(observer.breaker.at(-1)).toBe('closed');
    const keys = freshKeys(3);
    await Promise.all(cache.resolve(keys, recordingCompute(keys, { dims: DIMS }).compute, { dims: DIMS }));
    await cache.flush();
    await waitFor(async () => (await redis.client.exists(...keys).catch(() => 0)) === 3, 5000, 'new keys in Redis');
  });

  it('does not let a paused Redis (CLIENT PAUSE) hold requests, and resumes caching after the pause', async () => {
    const { cache, observer } = await cacheWith({ redis: { timeoutMs: 50 } });
    await redis.pause(3000);
    const started = Date.now();
    let computed = 0;
    for (let i = 0; i < 20; i++) {
      const keys = freshKeys(2);
      const { compute, computedItems } = recordingCompute(keys, { dims: DIMS });
      const results = await Promise.all(cache.resolve(keys, compute, { dims: DIMS }));
      expect(results.every((r) => r.source === 'computed')).toBe(true);
      computed += computedItems();
    }
    // Generous: only catches a request that waited for the pause (3 s) to end.
    expect(Date.now() - started).toBeLessThan(2500);
    expect(computed).toBe(40);
    expect(observer.errors.get('redis:timeout') ?? 0).toBeGreaterThanOrEqual(5);
    expect(observer.breaker).toContain('open');

    await waitFor(() => cache.status().redis === 'up', 15_000, 'the breaker to close after the pause');
    const keys = freshKeys(2);
    await Promise.all(cache.resolve(keys, recordingCompute(keys, { dims: DIMS }).compute, { dims: DIMS }));
    await cache.flush();
    expect(await redis.client.exists(...keys)).toBe(2);
  });
});
