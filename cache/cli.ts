#!/usr/bin/env node
// Cache maintenance CLI (SPEC.md §6): `npm run cache -- stats | sample N | purge --model ID`.
// It walks keys with SCAN (never KEYS, so a large Redis is not blocked) and prints plain text.
import { Redis } from 'ioredis';
import { decodeBf16 } from './bf16.js';
import { parseKey, RATE_LIMIT_SEGMENT, rateLimitKeyPrefix } from './keys.js';

const USAGE = `Usage: npm run cache -- <command> [options]

Commands:
  stats                 keys under the prefix by model, kind and normalisation, rate-limit buckets
                        counted apart; Redis memory
  sample N              decode N randomly chosen cache values: key, dims, dtype, L2 norm, NaN/Inf check
  purge --model ID      delete every key of one model under the prefix (SCAN + UNLINK in batches);
                        never the rate limiter's buckets

Options:
  --redis URL           Redis to inspect (default: $TWINLANE_REDIS_URL)
  --prefix P            first key segment (default: $TWINLANE_CACHE_PREFIX, else twinlane)
  --model ID            model id, for purge
  --dry-run             purge: count the keys without deleting them
  --scan-limit N        sample: stop scanning after N keys (default 100000)
  --help
`;

class UsageError extends Error {}

interface Args {
  command: string;
  positional: string[];
  redis: string | undefined;
  prefix: string;
  model: string | undefined;
  dryRun: boolean;
  scanLimit: number;
}

function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv): Args {
  const positional: string[] = [];
  const args: Args = {
    command: '',
    positional,
    redis: env.TWINLANE_REDIS_URL || undefined,
    prefix: env.TWINLANE_CACHE_PREFIX || 'twinlane',
    model: undefined,
    dryRun: false,
    scanLimit: 100_000,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq !== -1 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      const v = eq !== -1 && arg.startsWith('--') ? arg.slice(eq + 1) : argv[++i];
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value.`);
      return v;
    };
    switch (flag) {
      case '--redis':
        args.redis = value();
        break;
      case '--prefix':
        args.prefix = value();
        break;
      case '--model':
        args.model = value();
        break;
      case '--dry-run':
        args.dryRun = true;
        break;
      case '--scan-limit':
        args.scanLimit = positiveInt(value(), '--scan-limit');
        break;
      default:
        if (arg.startsWith('-')) throw new UsageError(`Unknown option ${flag}.`);
        positional.push(arg);
    }
  }
  args.command = positional.shift() ?? '';
  return args;
}

function positiveInt(raw: string, what: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new UsageError(`${what} must be a whole number ≥ 1 (got "${raw}").`);
  return Number(raw);
}

/** A literal for SCAN MATCH: glob characters escaped. */
function globLiteral(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map(
      (r) =>
        '  ' +
        r
          .map((cell, c) => cell.padEnd(widths[c]!))
          .join('  ')
          .trimEnd(),
    )
    .join('\n');
}

async function* scanKeys(client: Redis, match: string): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', match, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) yield keys;
  } while (cursor !== '0');
}

function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

async function stats(client: Redis, args: Args, out: (line: string) => void): Promise<void> {
  const groups = new Map<string, { model: string; kind: string; norm: string; keys: number; sample: string }>();
  let other = 0;
  let buckets = 0;
  let total = 0;
  for await (const keys of scanKeys(client, `${globLiteral(args.prefix)}:*`)) {
    for (const key of keys) {
      total++;
      const parsed = parseKey(key, args.prefix);
      if (parsed.type === 'rate-limit') buckets++;
      if (parsed.type === 'other') other++;
      if (parsed.type !== 'vector') continue;
      const id = `${parsed.model}\u0000${parsed.kind}\u0000${parsed.norm}`;
      const group = groups.get(id);
      if (group) group.keys++;
      else groups.set(id, { model: parsed.model, kind: parsed.kind, norm: parsed.norm, keys: 1, sample: key });
    }
  }
  const sorted = [...groups.values()].sort(
    (a, b) => a.model.localeCompare(b.model) || a.kind.localeCompare(b.kind) || a.norm.localeCompare(b.norm),
  );
  const lengths = sorted.length > 0 ? await Promise.all(sorted.map((g) => client.strlen(g.sample))) : [];
  const dbsize = await client.dbsize();
  out(`redis ${redact(args.redis!)}: ${dbsize} keys in this database`);
  out(
    `prefix "${args.prefix}": ${total} keys (${total - buckets - other} cache entries in ${sorted.length} groups, ${buckets} rate-limit buckets, ${other} other)`,
  );
  if (sorted.length > 0) {
    const rows = [['model', 'kind', 'norm', 'keys', 'dims', 'value bytes (est.)']];
    sorted.forEach((g, i) => {
      const len = lengths[i] ?? 0;
      rows.push([
        g.model,
        g.kind,
        g.norm,
        String(g.keys),
        len > 0 && len % 2 === 0 ? String(len / 2) : '?',
        human(len * g.keys),
      ]);
    });
    out(table(rows));
  }
  const info = await client.info('memory');
  const used = Number(infoField(info, 'used_memory') ?? 0);
  const peak = Number(infoField(info, 'used_memory_peak') ?? 0);
  const max = Number(infoField(info, 'maxmemory') ?? 0);
  const policy = infoField(info, 'maxmemory_policy') ?? '?';
  out(
    `memory: used ${human(used)} (${used} bytes), peak ${human(peak)}, maxmemory ${max === 0 ? 'unlimited' : human(max)}, policy ${policy}`,
  );
}

function describeValue(value: Buffer | null): { dims: string; norm: string; status: string } {
  if (value === null) return { dims: '-', norm: '-', status: 'missing (expired meanwhile)' };
  if (value.length === 0) return { dims: '0', norm: '-', status: 'CORRUPT: empty' };
  if (value.length % 2 !== 0) return { dims: '-', norm: '-', status: `CORRUPT: odd length (${value.length} bytes)` };
  const vector = decodeBf16(value, 'big');
  let nan = 0;
  let inf = 0;
  let sum = 0;
  for (const v of vector) {
    if (Number.isNaN(v)) nan++;
    else if (!Number.isFinite(v)) inf++;
    else sum += v * v;
  }
  const status = nan + inf === 0 ? 'ok' : `CORRUPT: ${nan} NaN, ${inf} Inf`;
  return { dims: String(vector.length), norm: Math.sqrt(sum).toFixed(4), status };
}

async function sample(client: Redis, args: Args, out: (line: string) => void): Promise<void> {
  const raw = args.positional[0];
  if (raw === undefined) throw new UsageError('sample needs a count, e.g. `sample 10`.');
  const n = positiveInt(raw, 'sample N');
  // Reservoir sampling over one SCAN walk: every key seen has the same chance.
  const reservoir: string[] = [];
  let seen = 0;
  scan: for await (const keys of scanKeys(client, `${globLiteral(args.prefix)}:*`)) {
    for (const key of keys) {
      if (parseKey(key, args.prefix).type !== 'vector') continue;
      seen++;
      if (reservoir.length < n) reservoir.push(key);
      else {
        const j = Math.floor(Math.random() * seen);
        if (j < n) reservoir[j] = key;
      }
      if (seen >= args.scanLimit) break scan;
    }
  }
  out(
    `sampled ${reservoir.length} of ${seen} cache keys under prefix "${args.prefix}"${seen >= args.scanLimit ? ` (scan stopped at --scan-limit ${args.scanLimit})` : ''}`,
  );
  if (reservoir.length === 0) return;
  const pipeline = client.pipeline();
  for (const key of reservoir) {
    pipeline.getBuffer(key);
    pipeline.ttl(key);
  }
  const results = (await pipeline.exec()) ?? [];
  const rows = [['key', 'dims', 'dtype', 'L2 norm', 'ttl', 'status']];
  let bad = 0;
  reservoir.forEach((key, i) => {
    const [getError, value] = results[i * 2] ?? [null, null];
    const [, ttl] = results[i * 2 + 1] ?? [null, -2];
    const d = getError
      ? { dims: '-', norm: '-', status: `error: ${(getError as Error).message}` }
      : describeValue(value as Buffer | null);
    if (d.status !== 'ok') bad++;
    const t = Number(ttl);
    rows.push([key, d.dims, 'bf16', d.norm, t >= 0 ? `${t}s` : t === -1 ? 'none' : '-', d.status]);
  });
  out(table(rows));
  out(
    bad === 0
      ? 'all sampled values decode (finite BF16, big-endian)'
      : `${bad} sampled value(s) are not usable vectors (the server deletes such values when it reads them)`,
  );
}

async function purge(client: Redis, args: Args, out: (line: string) => void): Promise<void> {
  if (!args.model) throw new UsageError('purge needs --model ID.');
  if (args.model.includes(':')) throw new UsageError('--model must not contain ":".');
  if (args.model === RATE_LIMIT_SEGMENT) {
    throw new UsageError(
      `"${RATE_LIMIT_SEGMENT}" is not a model: ${rateLimitKeyPrefix(args.prefix)}… holds the rate limiter's buckets, which purge never deletes.`,
    );
  }
  const match = `${globLiteral(args.prefix)}:${globLiteral(args.model)}:*`;
  let count = 0;
  for await (const keys of scanKeys(client, match)) {
    // A SCAN page is at most about COUNT keys: one UNLINK per page keeps each command small.
    if (!args.dryRun) await client.unlink(...keys);
    count += keys.length;
  }
  out(
    args.dryRun ? `would delete ${count} keys matching ${match} (dry run)` : `deleted ${count} keys matching ${match}`,
  );
}

export async function run(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  out: (line: string) => void,
): Promise<number> {
  let args: Args;
  try {
    if (argv.includes('--help') || argv.includes('-h')) {
      out(USAGE);
      return 0;
    }
    args = parseArgs(argv, env);
    if (!['stats', 'sample', 'purge'].includes(args.command))
      throw new UsageError(args.command ? `Unknown command "${args.command}".` : 'No command given.');
    if (!args.redis) throw new UsageError('No Redis: pass --redis URL or set TWINLANE_REDIS_URL.');
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`twinlane cache: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    throw error;
  }
  const client = new Redis(args.redis, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
    connectTimeout: 3000,
    connectionName: 'twinlane-cache-cli',
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    process.stderr.write(
      `twinlane cache: cannot reach Redis at ${redact(args.redis)}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    client.disconnect();
    return 1;
  }
  try {
    if (args.command === 'stats') await stats(client, args, out);
    else if (args.command === 'sample') await sample(client, args, out);
    else await purge(client, args, out);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`twinlane cache: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(
      `twinlane cache: ${args.command} failed: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return 1;
  } finally {
    await client.quit().catch(() => client.disconnect());
  }
}

run(process.argv.slice(2), process.env, (line) => process.stdout.write(line + '\n')).then(
  // Exit at once: a failed connect leaves ioredis's connect timer pending for seconds.
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `twinlane cache: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
