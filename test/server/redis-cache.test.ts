// The built server with a Redis tier, over HTTP: the bytes it stores and their TTL, corrupt values,
// the tier metrics, and Redis killed, restarted and paused under traffic without a failed request.
// Two servers share one redis-server: `warm` as deployed (L1 on), and `cold` with L1 off, so every
// lookup it makes reaches Redis, as a second instance's would.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeBf16, encodeBf16, imageKey, textKey } from '../../cache/index.js';
import { distinctPng } from '../fixtures/images.js';
import { startRedis, waitFor, type TestRedis } from '../helpers/redis.js';
import { IMAGE_MODEL, maxAbsDiff, metric, norm, startServer, TEXT_MODEL, type TestServer } from '../helpers/server.js';

const PREFIX = 'srvtest';
const TTL_SECONDS = 600;
/** Exact float32 answers, so stored bytes can be compared with the codec's encoding of what was returned. */
const FLOAT32 = 'application/octet-stream';

let redis: TestRedis;
let warm: TestServer;
let cold: TestServer;
let seed = 0;

interface Embedded {
  readonly vector: Float32Array;
  readonly cacheHits: number;
}

/** One input of a lane: where the server keeps it in Redis, and how to ask a server for its vector. */
interface Item {
  key(normalize: boolean): string;
  embed(url: string, normalize?: boolean): Promise<Embedded>;
}

interface LaneCase {
  readonly lane: 'text' | 'image';
  readonly dims: number;
  /** A new input no earlier request has sent. */
  item(): Promise<Item>;
}

async function embedded(res: Response): Promise<Embedded> {
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  return { vector: new Float32Array(await res.arrayBuffer()), cacheHits: Number(res.headers.get('x-cache-hits')) };
}

const LANES: readonly LaneCase[] = [
  {
    lane: 'text',
    dims: 384,
    item: async () => {
      const text = `a sentence for the shared Redis tier, number ${++seed}`;
      return {
        key: (normalize) => textKey(PREFIX, TEXT_MODEL, normalize, text),
        embed: async (url, normalize = true) =>
          embedded(
            await fetch(`${url}/embed/text`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', accept: FLOAT32 },
              body: JSON.stringify({ inputs: [text], normalize }),
            }),
          ),
      };
    },
  },
  {
    lane: 'image',
    dims: 512,
    item: async () => {
      const png = await distinctPng(++seed);
      return {
        key: (normalize) => imageKey(PREFIX, IMAGE_MODEL, normalize, png),
        embed: async (url, normalize = true) =>
          embedded(
            await fetch(`${url}/embed/image?normalize=${normalize}`, {
              method: 'POST',
              headers: { 'content-type': 'image/png', accept: FLOAT32 },
              body: png,
            }),
          ),
      };
    },
  },
];

/** The value under `key` once the server's write, which no request waits for, has landed. */
async function stored(key: string): Promise<Buffer> {
  let value = null as Buffer | null;
  await waitFor(async () => (value = await redis.client.getBuffer(key)) !== null, 10_000, `${key} to be written`);
  return value!;
}

/** An unlabelled gauge's value. */
const gauge = (url: string, name: string) => metric(url, new RegExp(`^${name} (\\S+)$`, 'm'));

async function tierLookups(url: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const tier of ['l1', 'redis']) {
    for (const result of ['hit', 'miss'])
      out[`${tier} ${result}`] = await metric(
        url,
        new RegExp(`twinlane_cache_tier_lookups_total\\{tier="${tier}",result="${result}"\\} (\\S+)`),
      );
  }
  return out;
}

async function lookupsDuring(url: string, request: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = await tierLookups(url);
  await request();
  const after = await tierLookups(url);
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k]!]));
}

async function redisInUse(...servers: TestServer[]): Promise<void> {
  for (const server of servers)
    await waitFor(
      async () => (await gauge(server.url, 'twinlane_cache_redis_up')) === 1,
      30_000,
      'the server to use Redis',
    );
}

beforeAll(async () => {
  redis = await startRedis();
  const env = {
    TWINLANE_REDIS_URL: redis.url,
    TWINLANE_CACHE_PREFIX: PREFIX,
    TWINLANE_CACHE_TTL_SECONDS: String(TTL_SECONDS),
    // Long enough that a hit on this busy 2-core machine is not turned into a timeout miss; the
    // outage tests still see the breaker open after two failed calls and probe every 200 ms.
    TWINLANE_REDIS_TIMEOUT_MS: '250',
    TWINLANE_REDIS_FAILURE_THRESHOLD: '2',
    TWINLANE_REDIS_COOL_DOWN_MS: '200',
  };
  [warm, cold] = await Promise.all([startServer(env), startServer({ ...env, TWINLANE_L1_BYTES: '0' })]);
  await redisInUse(warm, cold);
}, 120_000);

// A failed request may be the server's doing (a crash drops connections): show how each server
// stands and what it last wrote.
afterEach((context) => {
  if (context.task.result?.state !== 'fail') return;
  for (const [name, server] of [
    ['warm', warm],
    ['cold', cold],
  ] as const) {
    const { exitCode, signalCode } = server.process;
    console.error(
      `${name} server: ${exitCode === null && signalCode === null ? 'running' : `exited (${exitCode ?? signalCode})`}; last output:\n${server.output().slice(-4000)}`,
    );
  }
});

afterAll(async () => {
  await Promise.all([warm?.stop(), cold?.stop()]);
  await redis?.stop();
});

describe.each(LANES)('the $lane lane with a shared Redis tier', (lane) => {
  it("stores the vector it returned as big-endian BF16 under the item's key, with the configured TTL", async () => {
    const item = await lane.item();
    const answer = await item.embed(warm.url);
    expect(answer.cacheHits).toBe(0);
    expect(answer.vector).toHaveLength(lane.dims);
    const value = await stored(item.key(true));
    expect(value.length).toBe(lane.dims * 2);
    expect(value.equals(encodeBf16(answer.vector, 'big'))).toBe(true);
    const ttl = await redis.client.ttl(item.key(true));
    expect(ttl).toBeGreaterThan(TTL_SECONDS - 30);
    expect(ttl).toBeLessThanOrEqual(TTL_SECONDS);
  });

  it('serves an instance whose L1 is empty from Redis, decoded from the stored bytes, and pushes the TTL back', async () => {
    const item = await lane.item();
    const key = item.key(true);
    const computed = await item.embed(warm.url);
    const value = await stored(key);
    await redis.client.expire(key, 60);

    const hit = await item.embed(cold.url);
    expect(hit.cacheHits).toBe(1);
    expect(Array.from(hit.vector)).toEqual(Array.from(decodeBf16(value, 'big')));
    expect(maxAbsDiff(hit.vector, computed.vector)).toBeLessThanOrEqual(2 ** -8);
    await waitFor(async () => (await redis.client.ttl(key)) > TTL_SECONDS - 30, 10_000, 'the hit to refresh the TTL');
  });

  it('keeps normalised and raw vectors under different keys, the normalised one decoding to a unit vector', async () => {
    const item = await lane.item();
    const unit = await item.embed(warm.url, true);
    const raw = await item.embed(warm.url, false);
    expect(raw.cacheHits).toBe(0);
    expect(item.key(false)).not.toBe(item.key(true));
    const [n1, n0] = await Promise.all([stored(item.key(true)), stored(item.key(false))]);
    expect(n1.equals(encodeBf16(unit.vector, 'big'))).toBe(true);
    expect(n0.equals(encodeBf16(raw.vector, 'big'))).toBe(true);
    expect(Math.abs(norm(decodeBf16(n1, 'big')) - 1)).toBeLessThan(2 ** -8);
    expect(n0.equals(n1)).toBe(false);
  });

  it.each([
    ['odd_length', (dims: number) => Buffer.alloc(dims * 2 - 1, 1)],
    ['wrong_dims', (dims: number) => encodeBf16(new Float32Array(dims - 8).fill(0.05), 'big')],
    [
      'not_finite',
      (dims: number) => {
        const nan = encodeBf16(new Float32Array(dims).fill(0.05), 'big');
        nan.writeUInt16BE(0x7fc0, 14);
        return nan;
      },
    ],
  ])(
    "evicts a corrupt value (%s) planted under the item's key, answers the right vector and counts it",
    async (reason, corrupt) => {
      const item = await lane.item();
      const key = item.key(true);
      const reference = await item.embed(warm.url);
      await stored(key);
      await redis.client.set(key, corrupt(lane.dims));
      const counted = () =>
        metric(cold.url, new RegExp(`twinlane_cache_corrupt_values_total\\{reason="${reason}"\\} (\\S+)`));
      const before = await counted();

      const answer = await item.embed(cold.url);
      expect(answer.cacheHits).toBe(0);
      expect(maxAbsDiff(answer.vector, reference.vector)).toBeLessThanOrEqual(1e-5);
      expect(await counted()).toBe(before + 1);
      await waitFor(
        async () => (await redis.client.getBuffer(key))?.equals(encodeBf16(answer.vector, 'big')) === true,
        10_000,
        'the recomputed vector to replace the corrupt value',
      );
    },
  );

  it('counts a miss, an L1 hit and a Redis hit in the tier lookup metrics', async () => {
    const item = await lane.item();
    expect(await lookupsDuring(warm.url, () => item.embed(warm.url))).toEqual({
      'l1 hit': 0,
      'l1 miss': 1,
      'redis hit': 0,
      'redis miss': 1,
    });
    expect(await lookupsDuring(warm.url, () => item.embed(warm.url))).toEqual({
      'l1 hit': 1,
      'l1 miss': 0,
      'redis hit': 0,
      'redis miss': 0,
    });

    // Computed by the other instance: in Redis, not in this one's L1.
    const shared = await lane.item();
    await shared.embed(cold.url);
    await stored(shared.key(true));
    expect(await lookupsDuring(warm.url, () => shared.embed(warm.url))).toEqual({
      'l1 hit': 0,
      'l1 miss': 1,
      'redis hit': 1,
      'redis miss': 0,
    });
  });
});

// One cache actor serves both lanes, so one outage is exercised with traffic on both at once.
describe('the server when Redis fails', () => {
  const servers = () => [warm, cold];

  /** New inputs, alternating lanes and servers, from `workers` concurrent clients until `stop()`. */
  function stream(workers: number) {
    let running = true;
    let answered = 0;
    const failures: string[] = [];
    const done = Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        for (let n = 0; running; n++) {
          const item = await LANES[(w + n) % LANES.length]!.item();
          const server = servers()[w % 2]!;
          try {
            await item.embed(server.url);
            answered++;
          } catch (error) {
            failures.push(error instanceof Error ? error.message : String(error));
          }
        }
      }),
    );
    return {
      answered: () => answered,
      async stop() {
        running = false;
        await done;
        return failures;
      },
    };
  }

  async function resumesCaching(): Promise<void> {
    await redisInUse(...servers());
    for (const lane of LANES) {
      const item = await lane.item();
      await item.embed(warm.url);
      expect((await stored(item.key(true))).length).toBe(lane.dims * 2);
    }
  }

  it('answers every request while Redis is killed, reports the tier down with /ready still 200, and resumes caching after a restart', async () => {
    await redisInUse(...servers());
    for (const server of servers()) expect(await gauge(server.url, 'twinlane_cache_breaker_state')).toBe(0);
    const pids = servers().map((s) => s.process.pid);
    const traffic = stream(4);
    await waitFor(() => traffic.answered() >= 8, 60_000, 'traffic before the kill');
    await redis.kill();
    const atKill = traffic.answered();
    for (const server of servers())
      await waitFor(
        async () => (await gauge(server.url, 'twinlane_cache_breaker_state')) === 2,
        15_000,
        'the breaker to open',
      );
    await waitFor(() => traffic.answered() >= atKill + 8, 60_000, 'traffic with Redis down');
    for (const server of servers()) {
      const ready = await fetch(`${server.url}/ready`);
      expect(ready.status).toBe(200);
      expect(['down', 'open']).toContain(((await ready.json()) as { cache: { redis: string } }).cache.redis);
      expect(await gauge(server.url, 'twinlane_cache_redis_up')).toBe(0);
    }
    expect(await traffic.stop()).toEqual([]);

    await redis.restart();
    await resumesCaching();
    for (const server of servers()) expect(await gauge(server.url, 'twinlane_cache_breaker_state')).toBe(0);
    expect(servers().map((s) => s.process.pid)).toEqual(pids);
    expect(servers().every((s) => s.process.exitCode === null)).toBe(true);
  });

  it('answers requests while Redis is paused (CLIENT PAUSE) instead of waiting for the pause to end', async () => {
    await redisInUse(...servers());
    const timeouts = () => metric(warm.url, /twinlane_cache_errors_total\{tier="redis",reason="timeout"\} (\S+)/);
    const before = await timeouts();
    const pauseMs = 10_000;
    const pausedAt = Date.now();
    await redis.pause(pauseMs);
    const traffic = stream(4);
    await waitFor(() => traffic.answered() >= 12, 60_000, 'requests during the pause');
    expect(await traffic.stop()).toEqual([]);
    // A hang guard, not a latency bound: the requests ended while Redis was still paused.
    expect(Date.now()).toBeLessThan(pausedAt + pauseMs);
    expect(await timeouts()).toBeGreaterThan(before);

    await resumesCaching();
  });
});
