// Cache hit path through the actor, against the ceiling of the same Redis server, in one run.
// L1 is disabled (l1Bytes 0), so every item is an MGET answered by Redis, decoded from BF16 and
// followed by a sliding EXPIRE, as in production. Ceiling: `redis-benchmark -c 50 -P 1 MGET …`
// against the same server (no decoding, C client). Also shown: bare ioredis MGET without the actor,
// to separate the client's cost from the actor's. Run: npm run bench:cache.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import os from 'node:os';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import {
  createCache,
  encodeBf16,
  textKey,
  type CacheActor,
  type CacheObserver,
  type Computed,
  type ComputeMisses,
} from '../cache/index.js';
import { formatCodec, runCodecBench } from './micro/codec.bench.js';

const DIMS = 384;
const KEYS = 8192;
const CONCURRENCY = 50;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
/** The production default (TWINLANE_REDIS_TIMEOUT_MS); BENCH_REDIS_TIMEOUT_MS overrides it. */
const TIMEOUT_MS = Number(process.env.BENCH_REDIS_TIMEOUT_MS ?? 50);
const execFileP = promisify(execFile);

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 200; i++) {
    const probe = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      return child;
    } catch {
      probe.disconnect();
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  child.kill('SIGKILL');
  throw new Error('redis-server did not start');
}

/** Runs `CONCURRENCY` loops for `SECONDS`; each call takes the next `batch` keys round-robin (never two identical keys in flight). */
async function closedLoop(
  keys: readonly string[],
  batch: number,
  call: (keys: string[]) => Promise<void>,
): Promise<{ itemsPerSecond: number; callsPerSecond: number }> {
  let next = 0;
  let items = 0;
  let calls = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const chunk: string[] = [];
      for (let i = 0; i < batch; i++) chunk.push(keys[next++ % keys.length]!);
      await call(chunk);
      items += batch;
      calls++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = (performance.now() - started) / 1000;
  return { itemsPerSecond: items / seconds, callsPerSecond: calls / seconds };
}

async function actorLoop(cache: CacheActor, keys: readonly string[], batch: number) {
  let notFromRedis = 0;
  // Every key is in Redis; an item only reaches compute when a lookup failed (timeout, breaker).
  // It yields to the event loop as a real lane would, so such a row cannot spin on microtasks.
  const compute: ComputeMisses = (indices) => {
    const later = new Promise<Computed>((r) =>
      setImmediate(() => r({ ok: true, value: { vector: new Float32Array(DIMS), tokens: 0 } })),
    );
    return indices.map(() => later);
  };
  const result = await closedLoop(keys, batch, async (chunk) => {
    const resolved = await Promise.all(cache.resolve(chunk, compute, { dims: DIMS }));
    for (const r of resolved) if (r.source !== 'redis') notFromRedis++;
  });
  return { ...result, notFromRedis };
}

async function redisBenchmark(port: number, keys: readonly string[], n: number): Promise<number> {
  const { stdout } = await execFileP(
    'redis-benchmark',
    ['-p', String(port), '-n', String(n), '-c', String(CONCURRENCY), '-P', '1', '-q', 'MGET', ...keys],
    { maxBuffer: 1 << 20 },
  );
  const match = /([\d.]+) requests per second/.exec(stdout);
  if (!match) throw new Error(`unexpected redis-benchmark output: ${stdout}`);
  return Number(match[1]);
}

async function main(): Promise<void> {
  const port = await freePort();
  const server = await startRedis(port);
  try {
    const admin = new Redis({ port });
    const keys = Array.from({ length: KEYS }, (_, i) =>
      textKey('bench', 'sentence-transformers/all-MiniLM-L6-v2', true, `query number ${i}`),
    );
    const pipeline = admin.pipeline();
    keys.forEach((key, i) => {
      const v = new Float32Array(DIMS).map((_, d) => Math.sin(i + d) / Math.sqrt(DIMS / 2));
      pipeline.setex(key, 3600, encodeBf16(v, 'big'));
    });
    await pipeline.exec();

    const hasRedisBenchmark = await execFileP('redis-benchmark', ['--version']).then(
      () => true,
      () => false,
    );
    const rows: [string, number, string][] = [];
    const ceiling: Record<number, number> = {};
    if (hasRedisBenchmark) {
      ceiling[1] = await redisBenchmark(port, keys.slice(0, 1), 200_000);
      rows.push([
        'redis-benchmark -c 50 -P 1 MGET k1 (ceiling)',
        ceiling[1],
        `${Math.round(ceiling[1]).toLocaleString('en-US')} calls/s`,
      ]);
      const calls32 = await redisBenchmark(port, keys.slice(0, 32), 50_000);
      ceiling[32] = calls32 * 32;
      rows.push([
        'redis-benchmark -c 50 -P 1 MGET k1..k32 (ceiling)',
        ceiling[32],
        `${Math.round(calls32).toLocaleString('en-US')} calls/s`,
      ]);
    }

    const raw = new Redis({ port, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    await once(raw, 'ready');
    for (const batch of [1, 32]) {
      const r = await closedLoop(keys, batch, async (chunk) => {
        await raw.mgetBuffer(...chunk);
      });
      rows.push([
        `bare ioredis mgetBuffer (no decode, no EXPIRE), batch ${batch}`,
        r.itemsPerSecond,
        `${Math.round(r.callsPerSecond).toLocaleString('en-US')} calls/s`,
      ]);
    }
    raw.disconnect();

    const events = new Map<string, number>();
    const count = (k: string, n = 1) => events.set(k, (events.get(k) ?? 0) + n);
    const observer: CacheObserver = {
      onCacheLookups: (tier, result, n) => count(`lookups ${tier} ${result}`, n),
      onCacheError: (tier, reason) => count(`errors ${tier} ${reason}`),
      onCacheCorrupt: (reason) => count(`corrupt ${reason}`),
      onCacheWriteDropped: (reason, n) => count(`writes dropped ${reason}`, n),
      onBreakerState: (state) => count(`breaker ${state}`),
      onRedisState: () => undefined,
    };
    const actor: Record<number, number> = {};
    // Default: hits refreshed by one script call per batch; for comparison, one EXPIRE per hit key.
    for (const refreshScript of [true, false]) {
      const cache = createCache({
        l1Bytes: 0,
        observer,
        redis: { url: `redis://127.0.0.1:${port}`, ttlSeconds: 3600, timeoutMs: TIMEOUT_MS, refreshScript },
      });
      for (let i = 0; i < 100 && cache.status().redis !== 'up'; i++) await new Promise((r) => setTimeout(r, 20));
      for (const batch of [1, 32]) {
        const r = await actorLoop(cache, keys, batch);
        if (refreshScript) actor[batch] = r.itemsPerSecond;
        const what = refreshScript
          ? 'cache actor resolve (MGET + decode + scripted EXPIREs)'
          : 'cache actor, refreshScript off (MGET + decode + EXPIRE per key)';
        rows.push([
          `${what}, batch ${batch}`,
          r.itemsPerSecond,
          `${Math.round(r.callsPerSecond).toLocaleString('en-US')} calls/s${r.notFromRedis > 0 ? ` — INVALID ROW: ${r.notFromRedis} items were not Redis hits (lookups timed out)` : ''}`,
        ]);
      }
      await cache.close();
    }
    admin.disconnect();

    console.log(
      `cache hit path, ${DIMS}-dim BF16 values (${DIMS * 2} bytes), ${KEYS} keys, L1 disabled, Redis timeout ${TIMEOUT_MS} ms, ${SECONDS} s per client row, 50 calls in flight`,
    );
    console.log(
      `node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} × ${os.availableParallelism()}, redis-server ${(await execFileP('redis-server', ['--version'])).stdout.match(/v=(\S+)/)?.[1] ?? '?'}\n`,
    );
    const width = Math.max(...rows.map((r) => r[0].length));
    console.log(`${'path'.padEnd(width)}  ${'items/s'.padStart(12)}  calls/s`);
    for (const [name, items, calls] of rows)
      console.log(`${name.padEnd(width)}  ${Math.round(items).toLocaleString('en-US').padStart(12)}  ${calls}`);
    console.log(`\nactor events: ${[...events].map(([k, v]) => `${k}=${v}`).join(', ')}`);
    if (hasRedisBenchmark) {
      console.log('');
      for (const batch of [1, 32])
        console.log(
          `ratio actor / redis-benchmark ceiling, batch ${batch}: ${((actor[batch]! / ceiling[batch]!) * 100).toFixed(1)} %`,
        );
    } else {
      console.log('\nredis-benchmark not found: no ceiling row.');
    }
  } finally {
    server.kill('SIGKILL');
  }
}

console.log(`cache codec micro-benchmarks (tinybench, node ${process.version})\n`);
console.log(formatCodec(await runCodecBench()));
console.log('');
await main();
