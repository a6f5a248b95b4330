// bench:soak — does memory stay flat over a long run? One server with both lanes takes a sustained
// mix (repeated texts, unique texts, images, bad requests, WebSocket streams) from closed-loop
// clients for BENCH_SOAK_S seconds (default 240), while its RSS, V8 heap, event-loop lag p99, open
// handles and L1 size are sampled every 2 s. After the warm-up (the first quarter, in which L1 fills
// to its bound) RSS and heap must grow < 5 % and show no trend. Writes bench/results/soak.md and
// bench/results/soak-memory.png.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ROOT, standInServerEnv, startChild, stopChild, waitReady, type Child } from './lib/children.js';
import { chartPng } from './lib/chart.js';
import { cpuMark, cpuSince } from './lib/cpu.js';
import { runLoad, type LoadResult } from './lib/load.js';
import { machineLines, quietSample } from './lib/machine.js';
import { f0, f1, f2, progress } from './lib/phase.js';
import { scrape, value } from './lib/scrape.js';
import { runWsLoad, type WsLoadResult } from './lib/ws-load.js';
import { makeJpegs, withJpegComment } from './fixtures/jpegs.js';
import { sentence } from './fixtures/texts.js';

const SOAK_S = Number(process.env['BENCH_SOAK_S'] ?? '240');
const SAMPLE_MS = 2000;
const WARMUP_SHARE = 0.25;
const L1_BYTES = 16 * 1024 * 1024;
const TEXT_MODEL = 'twinlane/minilm-l6-standin';

interface Sample {
  readonly t: number;
  readonly rssMiB: number;
  readonly heapMiB: number;
  readonly lagP99Ms: number;
  readonly handles: number;
  readonly l1MiB: number;
}

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

async function sample(server: Child, startedAt: number): Promise<Sample> {
  const s = await scrape(server.port);
  return {
    t: (performance.now() - startedAt) / 1000,
    rssMiB: rssMiB(server.pid),
    heapMiB: value(s, 'twinlane_nodejs_heap_size_used_bytes') / 2 ** 20,
    lagP99Ms: value(s, 'twinlane_nodejs_eventloop_lag_p99_seconds') * 1000,
    handles: value(s, 'twinlane_nodejs_active_handles'),
    l1MiB: value(s, 'twinlane_cache_l1_bytes') / 2 ** 20,
  };
}

/** Least-squares slope of y over t, per second. */
function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  const mt = points.reduce((a, [t]) => a + t, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const num = points.reduce((a, [t, y]) => a + (t - mt) * (y - my), 0);
  const den = points.reduce((a, [t]) => a + (t - mt) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

interface Verdict {
  readonly first: number;
  readonly last: number;
  readonly growth: number;
  /** The fitted line's change over the measured span, as a share of its mean. */
  readonly trend: number;
}

/** Mean of the first and of the last fifth of the measured span, their ratio, and the fitted trend. */
function verdict(measured: readonly Sample[], pick: (s: Sample) => number): Verdict {
  const fifth = Math.max(1, Math.floor(measured.length / 5));
  const mean = (xs: readonly Sample[]) => xs.reduce((a, s) => a + pick(s), 0) / xs.length;
  const first = mean(measured.slice(0, fifth));
  const last = mean(measured.slice(-fifth));
  const span = measured.at(-1)!.t - measured[0]!.t;
  const all = mean(measured);
  return {
    first,
    last,
    growth: last / first - 1,
    trend: (slope(measured.map((s) => [s.t, pick(s)] as const)) * span) / all,
  };
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const modelsDir = path.resolve(ROOT, process.env['TWINLANE_MODELS_DIR'] ?? '../shared/models');
  const quiet = await quietSample(progress);
  progress('generating JPEGs');
  const jpegs = (await makeJpegs(0, 32)).map((j) => j.bytes);
  const repeatedTexts = Array.from({ length: 200 }, (_, i) => sentence(5_000_000 + i));
  let server: Child | undefined;
  const samples: Sample[] = [];
  let loads: { label: string; result: LoadResult }[] = [];
  let ws: WsLoadResult | undefined;
  let cpuCores = 0;
  try {
    server = await startChild('dist/src/main.js', standInServerEnv(modelsDir, { TWINLANE_L1_BYTES: String(L1_BYTES) }));
    await waitReady(server.port);
    const running = server;
    const t0 = performance.now();
    const sampler = setInterval(() => void sample(running, t0).then((s) => samples.push(s)), SAMPLE_MS);
    const durationMs = SOAK_S * 1000;
    const mark = cpuMark(running.pid);
    let unique = 0;
    let repeatedAt = 0;
    let image = 0;
    let bad = 0;
    progress(`soaking for ${SOAK_S} s`);
    const base = { port: running.port, warmupMs: 0, durationMs };
    const [repeated, uniqueTexts, images, errors, stream] = await Promise.all([
      runLoad({
        ...base,
        path: '/v1/embeddings',
        concurrency: 12,
        body: () =>
          JSON.stringify({ model: TEXT_MODEL, input: repeatedTexts[repeatedAt++ % 200], encoding_format: 'base64' }),
      }),
      runLoad({
        ...base,
        path: '/embed/text',
        concurrency: 6,
        body: () => JSON.stringify({ inputs: [sentence(unique++)] }),
      }),
      runLoad({
        ...base,
        path: '/embed/image',
        concurrency: 3,
        contentType: 'image/jpeg',
        body: () => withJpegComment(jpegs[image % jpegs.length]!, `soak ${image++}`),
      }),
      runLoad({
        ...base,
        path: '/v1/embeddings',
        concurrency: 3,
        // Bad requests of every kind the router refuses: not JSON, empty, unknown model, a wrong type.
        body: () =>
          [
            '{"input": ',
            '{"input": ""}',
            '{"model": "nobody/none", "input": "x"}',
            '{"input": [1, 2, 3]}',
            '{"input": "x", "dimensions": 0}',
          ][bad++ % 5]!,
      }),
      runWsLoad({
        port: running.port,
        concurrency: 4,
        durationMs,
        next: (n) =>
          n % 3 === 0
            ? { lane: 'text', input: repeatedTexts[n % 200]! }
            : { lane: 'text', input: sentence(10_000_000 + n) },
      }),
    ]);
    cpuCores = cpuSince(mark, running.pid).target;
    clearInterval(sampler);
    loads = [
      { label: 'repeated texts, `POST /v1/embeddings` (12 clients)', result: repeated },
      { label: 'unique texts, `POST /embed/text` (6 clients)', result: uniqueTexts },
      { label: 'unique JPEGs, `POST /embed/image` (3 clients)', result: images },
      { label: 'bad requests, `POST /v1/embeddings` (3 clients)', result: errors },
    ];
    ws = stream;
    samples.push(await sample(running, t0));
  } finally {
    await stopChild(server);
  }
  if (!ws) throw new Error('the soak did not run');
  await report({ startedAt, quiet, samples, loads, ws, cpuCores });
}

interface Run {
  readonly startedAt: Date;
  readonly quiet: Awaited<ReturnType<typeof quietSample>>;
  readonly samples: readonly Sample[];
  readonly loads: readonly { label: string; result: LoadResult }[];
  readonly ws: WsLoadResult;
  readonly cpuCores: number;
}

async function report(run: Run): Promise<void> {
  const { samples, loads, ws } = run;
  const measured = samples.filter((s) => s.t >= SOAK_S * WARMUP_SHARE);
  const rss = verdict(measured, (s) => s.rssMiB);
  const heap = verdict(measured, (s) => s.heapMiB);
  const handles = verdict(measured, (s) => s.handles);
  const lag = [...measured.map((s) => s.lagP99Ms)].sort((a, b) => a - b);
  const httpRequests = loads.reduce((n, l) => n + Object.values(l.result.statuses).reduce((a, b) => a + b, 0), 0);
  const total = httpRequests + ws.requests + ws.errors + ws.refused429;
  const pass = (v: Verdict) => (Math.abs(v.growth) < 0.05 && Math.abs(v.trend) < 0.05 ? 'met' : '**not met**');
  await chartPng(
    {
      title: 'Server memory over the soak',
      xLabel: 'seconds',
      yLabel: 'MiB',
      scale: 'linear',
      series: [
        { label: 'RSS', colour: '#1f77b4', dashed: false, points: samples.map((s) => [s.t, s.rssMiB] as const) },
        {
          label: 'V8 heap used',
          colour: '#d62728',
          dashed: false,
          points: samples.map((s) => [s.t, s.heapMiB] as const),
        },
        { label: 'L1 cache', colour: '#2ca02c', dashed: true, points: samples.map((s) => [s.t, s.l1MiB] as const) },
      ],
    },
    path.join(ROOT, 'bench/results/soak-memory.png'),
  );
  const statuses = (r: LoadResult) =>
    Object.entries(r.statuses)
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ');
  const lines = [
    '# Soak',
    '',
    `Written by \`npm run bench:soak\` (bench/soak.ts) on ${run.startedAt.toISOString()}, ${SOAK_S} s of load.`,
    '',
    ...machineLines(run.quiet),
    `- Server: defaults, both lanes on, \`TWINLANE_L1_BYTES=${L1_BYTES}\` (so L1 reaches its bound inside the warm-up), no Redis`,
    `- Sampled every ${SAMPLE_MS / 1000} s: RSS (/proc), V8 heap used, event-loop lag p99 and active handles (the server's /metrics), L1 bytes. Warm-up: the first ${WARMUP_SHARE * 100} % (${f0(SOAK_S * WARMUP_SHARE)} s); growth compares the mean of the last fifth of the rest with its first fifth; trend is the fitted line's change over the measured span, as a share of the mean`,
    `- The server used ${f2(run.cpuCores)} cores on average`,
    '',
    '![server memory over the soak](soak-memory.png)',
    '',
    `## ${total.toLocaleString('en')} requests`,
    '',
    '| load | requests | statuses | p50 ms | p99 ms |',
    '|---|---:|---|---:|---:|',
    ...loads.map(
      ({ label, result }) =>
        `| ${label} | ${Object.values(result.statuses).reduce((a, b) => a + b, 0)} | ${statuses(result)} | ${f1(result.latencyMs.p50)} | ${f1(result.latencyMs.p99)} |`,
    ),
    `| WebSocket, 4 sockets, one text per request (a third repeated) | ${ws.requests + ws.errors + ws.refused429} | ${ws.requests} answered, ${ws.errors} errors, ${ws.refused429} refused | ${f1(ws.p50Ms)} | ${f1(ws.p99Ms)} |`,
    '',
    'Socket errors: ' +
      loads.map((l) => `${l.result.socketErrors}`).join(', ') +
      ' (per HTTP load, in the order above).',
    '',
    '## Memory and the event loop after the warm-up',
    '',
    '| figure | first fifth | last fifth | growth | trend | target | |',
    '|---|---:|---:|---:|---:|---:|---|',
    `| RSS (MiB) | ${f1(rss.first)} | ${f1(rss.last)} | ${(rss.growth * 100).toFixed(1)} % | ${(rss.trend * 100).toFixed(1)} % | < 5 %, no trend | ${pass(rss)} |`,
    `| V8 heap used (MiB) | ${f1(heap.first)} | ${f1(heap.last)} | ${(heap.growth * 100).toFixed(1)} % | ${(heap.trend * 100).toFixed(1)} % | < 5 %, no trend | ${pass(heap)} |`,
    `| active handles | ${f1(handles.first)} | ${f1(handles.last)} | ${(handles.growth * 100).toFixed(1)} % | ${(handles.trend * 100).toFixed(1)} % | | |`,
    `| event-loop lag p99 (ms) | median ${f1(lag[Math.floor(lag.length / 2)]!)} | max ${f1(lag.at(-1)!)} | | | | |`,
    '',
    '## Samples',
    '',
    '| s | RSS MiB | heap MiB | lag p99 ms | handles | L1 MiB |',
    '|---:|---:|---:|---:|---:|---:|',
    ...samples.map(
      (s) =>
        `| ${f0(s.t)} | ${f1(s.rssMiB)} | ${f1(s.heapMiB)} | ${f1(s.lagP99Ms)} | ${f0(s.handles)} | ${f1(s.l1MiB)} |`,
    ),
    '',
  ];
  await writeFile(path.join(ROOT, 'bench/results/soak.md'), lines.join('\n'));
  progress(
    `wrote bench/results/soak.md: ${total} requests; RSS ${(rss.growth * 100).toFixed(1)} % (trend ${(rss.trend * 100).toFixed(1)} %), heap ${(heap.growth * 100).toFixed(1)} % (trend ${(heap.trend * 100).toFixed(1)} %)`,
  );
}

await main();
