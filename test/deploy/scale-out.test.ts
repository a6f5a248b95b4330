// Several instances, one service, for real on this machine: two twinlane processes and one Redis
// behind Debian's HAProxy running deploy/haproxy.cfg. Shows the shared cache and rate-limit budget,
// a SIGTERM under steady load that loses nothing, and a SIGKILL that costs at most the requests that
// were in flight on the killed instance. The counts are printed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBalancer, type Balancer } from '../helpers/haproxy.js';
import { freePort, startRedis, type TestRedis } from '../helpers/redis.js';
import { metric, postJson, startServer, type TestServer } from '../helpers/server.js';

const KEY = 'scale-out-key';

interface Outcome {
  readonly status: number | 'error';
  readonly servedBy: string | null;
  readonly sentAt: number;
  readonly doneAt: number;
}

/** `concurrency` clients posting unique texts through `url` back to back until stopped; every outcome is kept. */
function steadyLoad(url: string, concurrency: number) {
  const outcomes: Outcome[] = [];
  let running = true;
  let n = 0;
  const client = async (c: number) => {
    while (running) {
      const sentAt = performance.now();
      const res = await postJson(
        `${url}/embed/text`,
        { inputs: [`steady load text ${c}-${n++} about how balancers keep a service whole`] },
        { authorization: `Bearer ${KEY}` },
      ).catch(() => null);
      if (res) await res.arrayBuffer().catch(() => undefined);
      outcomes.push({
        status: res?.status ?? 'error',
        servedBy: res?.headers.get('x-served-by') ?? null,
        sentAt,
        doneAt: performance.now(),
      });
    }
  };
  const clients = Array.from({ length: concurrency }, (_, c) => client(c));
  return {
    outcomes,
    async stop(): Promise<Outcome[]> {
      running = false;
      await Promise.all(clients);
      return outcomes;
    },
  };
}

function countBy(outcomes: readonly Outcome[], key: (o: Outcome) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[key(o)] = (counts[key(o)] ?? 0) + 1;
  return counts;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('two instances behind HAProxy, one Redis', () => {
  let redis: TestRedis;
  let ports: { a: number; b: number };
  let balancer: Balancer;
  const servers: Partial<Record<'a' | 'b', TestServer>> = {};

  const start = async (name: 'a' | 'b', env: Record<string, string> = {}) => {
    servers[name] = await startServer({
      TWINLANE_PORT: String(ports[name]),
      TWINLANE_REDIS_URL: redis.url,
      TWINLANE_API_KEYS: KEY,
      TWINLANE_IMAGE_MODEL: 'none',
      // Longer than HAProxy's check interval (500 ms) × fall (1), with margin.
      TWINLANE_DRAIN_DELAY_MS: '1500',
      ...env,
    });
  };
  const upInBalancer = async (count: number) => {
    const deadline = Date.now() + 10_000;
    const up = async () =>
      [...(await balancer.stats()).values()].filter((s) => s.status === 'UP' && s.check.includes('L7OK')).length;
    while ((await up()) !== count) {
      if (Date.now() > deadline)
        throw new Error(`HAProxy did not see ${count} servers UP within 10 s:\n${balancer.output()}`);
      await sleep(100);
    }
  };

  beforeAll(async () => {
    redis = await startRedis();
    ports = { a: await freePort(), b: await freePort() };
    await Promise.all([
      start('a', { TWINLANE_RATE_LIMIT: '0.5', TWINLANE_RATE_BURST: '6' }),
      start('b', { TWINLANE_RATE_LIMIT: '0.5', TWINLANE_RATE_BURST: '6' }),
    ]);
    balancer = await startBalancer(ports);
    await upInBalancer(2);
  });
  afterAll(async () => {
    await balancer?.stop();
    await Promise.all(Object.values(servers).map((s) => s?.stop('SIGKILL')));
    await redis?.stop();
  });

  it('answers a text computed through one instance from Redis through the other', async () => {
    const auth = { authorization: `Bearer ${KEY}` };
    const first = await postJson(
      `${balancer.url}/embed/text`,
      { inputs: ['computed once for the whole service'] },
      auth,
    );
    expect(first.status).toBe(200);
    expect(first.headers.get('x-cache-hits')).toBe('0');
    const computedBy = first.headers.get('x-served-by') as 'a' | 'b';
    const other = computedBy === 'a' ? servers.b! : servers.a!;
    const redisHitsBefore = await metric(
      other.url,
      /twinlane_cache_tier_lookups_total\{tier="redis",result="hit"\} (\S+)/,
    );
    const second = await postJson(`${other.url}/embed/text`, { inputs: ['computed once for the whole service'] }, auth);
    expect(second.headers.get('x-cache-hits')).toBe('1');
    // Redis holds BF16: the vector comes back within BF16 precision of the computed one.
    const computed = (await first.json()) as number[][];
    expect(await second.json()).toEqual(computed.map((row) => row.map((x) => expect.closeTo(x, 2))));
    expect(await metric(other.url, /twinlane_cache_tier_lookups_total\{tier="redis",result="hit"\} (\S+)/)).toBe(
      redisHitsBefore + 1,
    );
    console.log(`[scale-out] computed by ${computedBy}, answered from Redis by ${computedBy === 'a' ? 'b' : 'a'}`);
  });

  it('gives one client one rate-limit budget across both instances', async () => {
    const auth = { authorization: `Bearer ${KEY}` };
    // The budget is 6 items (refilling at 0.5/s); the first test spent 2 of it. Requests of one item
    // each, spread by HAProxy over both instances, run it down to 0 and are then refused on either.
    const answers: { status: number; servedBy: string | null; remaining: string | null }[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await postJson(`${balancer.url}/embed/text`, { inputs: [`budget item ${i}`] }, auth);
      answers.push({
        status: res.status,
        servedBy: res.headers.get('x-served-by'),
        remaining: res.headers.get('x-ratelimit-remaining'),
      });
    }
    console.log('[scale-out] shared budget:', JSON.stringify(answers));
    const allowed = answers.filter((a) => a.status === 200);
    expect(allowed.length).toBeGreaterThanOrEqual(3);
    expect(allowed.length).toBeLessThanOrEqual(5); // 4 left, plus at most one refill during the test
    expect(new Set(allowed.map((a) => a.servedBy)).size).toBe(2);
    expect(new Set(answers.filter((a) => a.status === 429).map((a) => a.servedBy)).size).toBeGreaterThanOrEqual(1);
    expect(answers.slice(-2).map((a) => a.status)).toEqual([429, 429]);
  });

  it('loses no request when one instance gets SIGTERM under steady load', async () => {
    // A fresh pair without a rate limit, on the same ports: HAProxy finds them by its health checks.
    await Promise.all([servers.a!.stop('SIGKILL'), servers.b!.stop('SIGKILL')]);
    await Promise.all([start('a'), start('b')]);
    await upInBalancer(2);
    const load = steadyLoad(balancer.url, 8);
    await sleep(1500);
    const signalledAt = performance.now();
    const exited = servers.a!.stop('SIGTERM');
    const code = await exited;
    const exitedAt = performance.now();
    await sleep(1000);
    const outcomes = await load.stop();
    const byStatus = countBy(outcomes, (o) => String(o.status));
    const bySource = countBy(outcomes, (o) => `${o.servedBy}`);
    const afterExit = outcomes.filter((o) => o.sentAt > exitedAt);
    console.log(
      `[scale-out] SIGTERM: ${outcomes.length} requests, by status ${JSON.stringify(byStatus)}, by instance ${JSON.stringify(bySource)}; a drained in ${(exitedAt - signalledAt).toFixed(0)} ms and exited ${code}; ${afterExit.length} requests after its exit, all by b`,
    );
    expect(code).toBe(0);
    expect(byStatus).toEqual({ '200': outcomes.length });
    expect(bySource.a).toBeGreaterThan(0);
    expect(afterExit.length).toBeGreaterThan(0);
    expect(afterExit.every((o) => o.servedBy === 'b')).toBe(true);
  });

  it('costs at most the requests in flight on an instance killed with SIGKILL; the survivor serves the rest', async () => {
    await start('a');
    await upInBalancer(2);
    const load = steadyLoad(balancer.url, 8);
    await sleep(1500);
    const before = await balancer.stats();
    const inFlightOnA = before.get('a')!.current;
    const killedAt = performance.now();
    await servers.a!.stop('SIGKILL');
    await sleep(2000);
    const outcomes = await load.stop();
    const after = await balancer.stats();
    const failed = outcomes.filter((o) => o.status !== 200);
    const afterKill = outcomes.filter((o) => o.sentAt > killedAt);
    const retried =
      after.get('a')!.retries - before.get('a')!.retries + after.get('a')!.redispatches - before.get('a')!.redispatches;
    console.log(
      `[scale-out] SIGKILL: ${inFlightOnA} requests in flight on a when killed; ${failed.length} failed of ${outcomes.length} (${afterKill.length} sent after the kill, served by ${JSON.stringify(countBy(afterKill, (o) => `${o.servedBy}`))}); HAProxy retried or redispatched ${retried} away from a`,
    );
    expect(failed.length).toBeLessThanOrEqual(inFlightOnA);
    expect(afterKill.filter((o) => o.status === 200).every((o) => o.servedBy === 'b')).toBe(true);
    expect(afterKill.filter((o) => o.status === 200).length).toBeGreaterThan(0);
    // Every failure is one that was on its way when the process died.
    for (const o of failed) expect(o.sentAt).toBeLessThan(killedAt);
  });
});
