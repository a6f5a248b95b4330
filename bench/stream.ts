// `npm run bench:stream`: /ws streaming against HTTP in one run, written to bench/results/stream.md.
// 10,000 unique short texts (a) streamed over one socket by twinlane/client, (b) as HTTP requests of
// 32 texts over 8 keep-alive connections, (c) as single-text HTTP requests over 64 connections; then
// the same three again, when every text is cached. Every form gets binary vectors (binary frames,
// Accept: application/octet-stream), so the comparison is of transports, not of JSON. Each phase is
// a fixed workload; time-to-item is from the moment an item leaves the client to its vector arriving.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TwinlaneStream } from '../client/index.js';
import { killChildren, ROOT, startChild, stopChild, waitReady, type Child } from './lib/children.js';
import { cpuMark, cpuSince, disturbed, type CpuShare } from './lib/cpu.js';
import { cpuModel } from './lib/machine.js';
import { runLoad, percentiles, type Percentiles } from './lib/load.js';
import { f0, f2, pct } from './lib/phase.js';
import { sentence } from './fixtures/texts.js';

const TEXTS = Number(process.env['BENCH_STREAM_TEXTS'] ?? '10000');
const TEXT_MODEL = process.env['TWINLANE_TEXT_MODEL'] ?? 'twinlane/minilm-l6-standin';
const progress = (line: string) => process.stderr.write(`[bench:stream] ${line}\n`);

interface Result {
  readonly label: string;
  readonly items: number;
  readonly seconds: number;
  readonly perItemMs: Percentiles;
  readonly errors: number;
  readonly cpu: CpuShare;
}

/** Each phase's own range of sentences, so no phase hits another's cache entries when it is meant to miss. */
const textsOf = (set: number) =>
  Array.from(
    { length: TEXTS },
    (_, i) =>
      `${sentence(set * 100_000 + i)
        .split(' ')
        .slice(0, 6)
        .join(' ')} (item ${set}-${i})`,
  );

async function streamPhase(label: string, server: Child, texts: readonly string[]): Promise<Result> {
  const client = await TwinlaneStream.connect({ url: `http://127.0.0.1:${server.port}` });
  const sentAt = new Float64Array(texts.length);
  const latency = new Float64Array(texts.length);
  async function* source() {
    for (let i = 0; i < texts.length; i++) {
      sentAt[i] = performance.now();
      yield texts[i]!;
    }
  }
  const mark = cpuMark(server.pid);
  const started = performance.now();
  let items = 0;
  let errors = 0;
  for await (const result of client.stream(source(), { maxInFlight: 256, requestSize: 32 })) {
    latency[items++] = performance.now() - sentAt[result.index]!;
    if (!result.ok) errors++;
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuSince(mark, server.pid);
  await client.close();
  return { label, items, seconds, perItemMs: percentiles(latency.subarray(0, items)), errors, cpu };
}

async function httpPhase(
  label: string,
  server: Child,
  texts: readonly string[],
  perRequest: number,
  concurrency: number,
): Promise<Result> {
  let next = 0;
  const mark = cpuMark(server.pid);
  const load = await runLoad({
    port: server.port,
    path: '/embed/text',
    concurrency,
    warmupMs: 0,
    durationMs: 600_000,
    requests: Math.ceil(texts.length / perRequest),
    accept: 'application/octet-stream',
    body: () => {
      const inputs = texts.slice(next, next + perRequest);
      next += perRequest;
      return JSON.stringify({ inputs });
    },
  });
  const cpu = cpuSince(mark, server.pid);
  // Every item of a request arrives with its answer: the request's latency is each item's.
  return {
    label,
    items: texts.length,
    seconds: load.seconds,
    perItemMs: load.latencyMs,
    errors: load.non2xx + load.socketErrors,
    cpu,
  };
}

const row = (r: Result) =>
  `| ${r.label} | ${f0(r.items / r.seconds)} | ${f2(r.perItemMs.p50)} | ${f2(r.perItemMs.p99)} | ${f2(r.seconds)} | ${r.errors} | ${f2(r.cpu.target)} | ${f2(r.cpu.loadGen)} | ${f2(r.cpu.other)}${disturbed(r.cpu) ? ' ⚠' : ''} |`;

async function main(): Promise<void> {
  const started = Date.now();
  const modelsDir = path.resolve(ROOT, process.env['TWINLANE_MODELS_DIR'] ?? '../shared/models');
  const server = await startChild('dist/src/main.js', {
    ...process.env,
    TWINLANE_PORT: '0',
    TWINLANE_HOST: '127.0.0.1',
    TWINLANE_MODELS_DIR: modelsDir,
    TWINLANE_TEXT_MODEL: TEXT_MODEL,
    TWINLANE_IMAGE_MODEL: 'none',
    TWINLANE_OFFLINE: 'true',
  });
  const results: Result[] = [];
  try {
    await waitReady(server.port);
    const sets = [textsOf(1), textsOf(2), textsOf(3)] as const;
    // Warm-up on texts no phase uses, so the first phase does not pay for lazy initialisation.
    await httpPhase('warm-up', server, textsOf(9).slice(0, 512), 32, 8);
    const forms = [
      (label: string, texts: readonly string[]) =>
        streamPhase(`${label}: /ws stream, one socket (client helper)`, server, texts),
      (label: string, texts: readonly string[]) =>
        httpPhase(`${label}: HTTP, 32 texts per request, 8 connections`, server, texts, 32, 8),
      (label: string, texts: readonly string[]) =>
        httpPhase(`${label}: HTTP, 1 text per request, 64 connections`, server, texts, 1, 64),
    ];
    for (const [label, cached] of [
      ['unique', false],
      ['cached', true],
    ] as const) {
      for (const [k, form] of forms.entries()) {
        progress(`${label} ${k + 1}/3 …`);
        // Cache hits are fast: each form goes over its texts three times, so the phase lasts long enough to time.
        const texts = cached ? [...sets[k]!, ...sets[k]!, ...sets[k]!] : sets[k]!;
        const result = await form(label, texts);
        progress(`${result.label}: ${f0(result.items / result.seconds)} vectors/s, p99 ${f2(result.perItemMs.p99)} ms`);
        results.push(result);
      }
      if (!cached) progress('the same texts again, now cached');
    }
  } finally {
    await stopChild(server);
  }
  const rate = (r: Result) => r.items / r.seconds;
  const [su, b32u, b1u, sc, , b1c] = results as [Result, Result, Result, Result, Result, Result];
  const bestHttpUnique = Math.max(rate(b32u), rate(b1u));
  const uniqueRatio = rate(su) / bestHttpUnique;
  const cachedRatio = rate(sc) / rate(b1c);
  const md = [
    '# Streaming benchmark',
    '',
    `Written by \`npm run bench:stream\` (bench/stream.ts) on ${new Date(started).toISOString()}, ${((Date.now() - started) / 1000).toFixed(0)} s in all.`,
    '',
    `- Machine: ${cpuModel()}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; Node ${process.version}`,
    `- Server: \`${TEXT_MODEL}\` (text lane only, default thread layout), in-memory cache; the client and HTTP load generator run in the bench process`,
    `- Workload: ${TEXTS} unique texts of 6 words and an item number per phase (each phase its own texts); the cached phases send each form's texts again, three times over (${3 * TEXTS} cache hits)`,
    '- Vectors travel as binary: /ws binary frames (float32), HTTP `Accept: application/octet-stream`. The stream keeps 256 items in flight in requests of 32; the HTTP forms keep 256 and 64.',
    "- Time-to-item: from an item leaving the client to its vector arriving (for HTTP, its request's latency).",
    '',
    '| phase | vectors/s | time-to-item p50 ms | p99 ms | seconds | errors | server (cores) | client (cores) | other programs (cores) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(row),
    '',
    '| ratio | value | target | result |',
    '|---|---:|---:|---|',
    `| unique: stream ÷ best HTTP form | **${f2(uniqueRatio)}** | ≥ 0.9 | ${uniqueRatio >= 0.9 ? 'met' : '**not met**'} |`,
    `| cached: stream ÷ single-text HTTP | **${f2(cachedRatio)}** | ≥ 2 | ${cachedRatio >= 2 ? 'met' : '**not met**'} |`,
    '',
    `Best HTTP form for unique texts: ${rate(b32u) >= rate(b1u) ? 'requests of 32' : 'single texts'}; the stream reached ${pct(uniqueRatio)} of it.`,
    '',
  ].join('\n');
  process.stdout.write(md + '\n');
  const out = path.join(ROOT, 'bench', 'results', 'stream.md');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, md);
  progress(`written to ${path.relative(ROOT, out)}`);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `[bench:stream] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
  killChildren();
});
