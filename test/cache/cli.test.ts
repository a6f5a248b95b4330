// The maintenance CLI, run as an operator runs it (`node dist/cache/cli.js`) against a real Redis.
import { execFile, execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBf16, imageKey, rateLimitKeyPrefix, SharedBuckets, textKey } from '../../cache/index.js';
import { startRedis, waitFor, type TestRedis } from '../helpers/redis.js';

const CLI = path.resolve('dist/cache/cli.js');
const run = promisify(execFile);
let redis: TestRedis;

/** `npm test` builds first; a bare `vitest run` after editing the CLI builds here. */
function ensureBuilt(): void {
  const mtime = (p: string) => {
    try {
      return statSync(p).mtimeMs;
    } catch {
      return 0;
    }
  };
  const sources = ['cache/cli.ts', 'cache/bf16.ts', 'cache/keys.ts'].map((p) => mtime(path.resolve(p)));
  if (mtime(CLI) >= Math.max(...sources)) return;
  try {
    execFileSync(process.execPath, [path.resolve('node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
      stdio: 'pipe',
    });
  } catch (error) {
    // Type errors elsewhere in the project still emit; only a missing or stale CLI is fatal here.
    if (mtime(CLI) < Math.max(...sources)) throw error;
  }
}

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '' } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const vector = (dims: number, value: number) => encodeBf16(new Float32Array(dims).fill(value), 'big');

beforeAll(async () => {
  ensureBuilt();
  redis = await startRedis();
  const pipeline = redis.client.pipeline();
  // 5 text n1 + 2 text n0 of model a (384 dims, value 0.05 → norm ≈ 0.98), 3 of model b, 2 images, 1 NaN, plus unrelated keys.
  for (let i = 0; i < 5; i++) pipeline.set(textKey('twinlane', 'org/model-a', true, `a${i}`), vector(384, 0.05));
  for (let i = 0; i < 2; i++) pipeline.set(textKey('twinlane', 'org/model-a', false, `a${i}`), vector(384, 0.05));
  for (let i = 0; i < 3; i++) pipeline.set(textKey('twinlane', 'org/model-b', true, `b${i}`), vector(512, 0.1));
  for (let i = 0; i < 2; i++)
    pipeline.set(imageKey('twinlane', 'org/model-b', true, Buffer.from([i])), vector(512, 0.1));
  pipeline.set('other:org/model-a:n1:0000', vector(4, 1));
  pipeline.set('unrelated', 'x');
  pipeline.set('twinlane:not-a-cache-key', 'x');
  await pipeline.exec();
  // Two rate-limit buckets written by the rate limiter itself (hashes, not vectors), under the same prefix.
  // A slow refill keeps them from expiring (a full bucket is deleted) while the tests run.
  const buckets = new SharedBuckets({
    url: redis.url,
    keyPrefix: rateLimitKeyPrefix('twinlane'),
    rate: 0.01,
    burst: 10,
    timeoutMs: 1000,
  });
  try {
    await waitFor(() => buckets.state() === 'up', 10_000, 'the rate limiter to connect');
    for (const client of ['ip:127.0.0.1', 'key:0123456789abcdef'])
      expect(await buckets.take(client, 5)).toMatchObject({ allowed: true });
  } finally {
    await buckets.close();
  }
}, 120_000);

afterAll(async () => {
  await redis?.stop();
});

describe('cache CLI', () => {
  it('counts keys per model, kind and normalisation under the prefix, with dims and memory', async () => {
    const { code, stdout } = await cli('stats', '--redis', redis.url);
    expect(code).toBe(0);
    expect(stdout).toMatch(
      /prefix "twinlane": 15 keys \(12 cache entries in 4 groups, 2 rate-limit buckets, 1 other\)/,
    );
    expect(stdout).toMatch(/org\/model-a\s+text\s+n0\s+2\s+384/);
    expect(stdout).toMatch(/org\/model-a\s+text\s+n1\s+5\s+384/);
    expect(stdout).toMatch(/org\/model-b\s+image\s+n1\s+2\s+512/);
    expect(stdout).toMatch(/org\/model-b\s+text\s+n1\s+3\s+512/);
    expect(stdout).not.toMatch(/ratelimit/);
    expect(stdout).toMatch(/17 keys in this database/);
    expect(stdout).toMatch(/memory: used .*bytes/);
  });

  it('samples values and reports dims, dtype, L2 norm and NaN/Inf', async () => {
    const { code, stdout } = await cli('sample', '50', '--redis', redis.url, '--prefix', 'twinlane');
    expect(code).toBe(0);
    // The rate-limit buckets (hashes) are neither sampled nor counted.
    expect(stdout).toMatch(/sampled 12 of 12 cache keys/);
    // 384 × 0.05² → norm 0.98 (0.05 in BF16 is 0.050048828125); 512 × 0.1² → 2.2627 (0.10009765625).
    expect(stdout).toMatch(/twinlane:org\/model-a:n1:[0-9a-f]{64}\s+384\s+bf16\s+0\.980\d\s+none\s+ok/);
    expect(stdout).toMatch(/twinlane:org\/model-b:image:n1:[0-9a-f]{64}\s+512\s+bf16\s+2\.26\d\d\s+none\s+ok/);
    expect(stdout).toMatch(/all sampled values decode/);

    const nan = Buffer.alloc(8);
    nan.writeUInt16BE(0x7fc0, 2);
    await redis.client.set('corrupt:m/x:n1:00', nan);
    const bad = await cli('sample', '5', '--redis', redis.url, '--prefix', 'corrupt');
    expect(bad.stdout).toMatch(/corrupt:m\/x:n1:00\s+4\s+bf16\s+\S+\s+none\s+CORRUPT: 1 NaN, 0 Inf/);
  });

  it('purges only the named model under the prefix', async () => {
    const dry = await cli('purge', '--model', 'org/model-a', '--redis', redis.url, '--dry-run');
    expect(dry.stdout).toMatch(/would delete 7 keys/);
    expect(await redis.client.dbsize()).toBe(18);

    const { code, stdout } = await cli('purge', '--model', 'org/model-a', '--redis', redis.url);
    expect(code).toBe(0);
    expect(stdout).toMatch(/deleted 7 keys matching twinlane:org\/model-a:\*/);
    expect(await redis.client.keys('twinlane:org/model-a:*')).toEqual([]);
    expect(await redis.client.keys('twinlane:org/model-b:*')).toHaveLength(5);
    // Same model id under another prefix is untouched.
    expect(await redis.client.exists('other:org/model-a:n1:0000')).toBe(1);
    expect(await redis.client.keys('twinlane:ratelimit:*')).toHaveLength(2);
  });

  it('refuses to purge the rate limiter\'s buckets as if "ratelimit" were a model', async () => {
    const { code, stdout, stderr } = await cli('purge', '--model', 'ratelimit', '--redis', redis.url);
    expect(code).toBe(2);
    expect(stderr).toMatch(/"ratelimit" is not a model: twinlane:ratelimit:… holds the rate limiter's buckets/);
    expect(stdout).not.toMatch(/deleted/);
    expect(await redis.client.keys('twinlane:ratelimit:*')).toHaveLength(2);
  });

  it('explains usage errors and an unreachable Redis with a non-zero exit', async () => {
    const none = await cli('purge', '--redis', redis.url);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/purge needs --model ID/);
    const missing = await cli('stats');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/TWINLANE_REDIS_URL/);
    const down = await cli('stats', '--redis', 'redis://127.0.0.1:1');
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot reach Redis/);
  });
});
