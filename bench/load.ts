// bench:load — the load report people know from load-test tables: a concurrency sweep (1 … 256
// closed-loop clients) × unique vs repeated inputs × text / image / mixed, over HTTP (Debian's wrk,
// bench/workers/wrk-embed.lua) and WebSocket (bench/lib/ws-load.ts), against one server with its
// defaults (both lanes on). Per step: answers/s, items/s, mean/p50/p95/p99, error and 429 rates, and
// who used the CPU. Writes bench/results/load.md and two PNG charts (throughput and p99 against
// concurrency, one line per scenario), and names each curve's knee and peak.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ROOT, standInServerEnv, startChild, stopChild, waitReady, type Child } from './lib/children.js';
import { chartPng, type Series } from './lib/chart.js';
import { cpuMark, cpuSince, disturbed, type CpuShare } from './lib/cpu.js';
import { machineLines, quietSample } from './lib/machine.js';
import { f0, f1, f2, progress } from './lib/phase.js';
import { scrape, value } from './lib/scrape.js';
import { runWrk } from './lib/wrk.js';
import { runWsLoad } from './lib/ws-load.js';
import { makeJpegs, withJpegComment } from './fixtures/jpegs.js';
import { sentence } from './fixtures/texts.js';

const TEXT_MODEL = 'twinlane/minilm-l6-standin';
const IMAGE_MODEL = 'twinlane/clip-vision-standin';
const CONCURRENCIES = (process.env['BENCH_CONCURRENCY'] ?? '1,8,32,64,128,256').split(',').map(Number);
const STEP_S = Number(process.env['BENCH_STEP_S'] ?? '5');
const REPEATED = 64;
const REPEATED_IMAGES = 8;
/** Unique texts written for one HTTP step (wrk reads the file at start; past its end it adds a counter). */
const STEP_TEXTS = 20_000;

type Lane = 'text' | 'image' | 'mixed';
type Transport = 'http' | 'ws';

interface Scenario {
  readonly transport: Transport;
  readonly lane: Lane;
  readonly unique: boolean;
}

interface Step {
  readonly concurrency: number;
  readonly seconds: number;
  readonly answers: number;
  readonly ok: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly n429: number;
  readonly errors: number;
  readonly cpu: CpuShare;
  readonly wrapped: number;
}

const name = (s: Scenario) =>
  `${s.lane} ${s.unique ? 'unique' : 'repeated'} · ${s.transport === 'http' ? 'HTTP' : 'WS'}`;

const SCENARIOS: Scenario[] = (['http', 'ws'] as const).flatMap((transport) =>
  (['text', 'image', 'mixed'] as const).flatMap((lane) => [true, false].map((unique) => ({ transport, lane, unique }))),
);

interface Fixtures {
  readonly dir: string;
  readonly repeatedTextsFile: string;
  readonly uniqueImagesFile: string;
  readonly repeatedImagesFile: string;
  readonly repeatedTexts: readonly string[];
  readonly uniqueJpegs: readonly Buffer[];
  readonly repeatedJpegs: readonly Buffer[];
}

async function fixtures(): Promise<Fixtures> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'twinlane-load-'));
  const repeatedTextsFile = path.join(dir, 'repeated.txt');
  // The repeated set comes from far past anything the unique steps reach.
  const repeatedTexts = Array.from({ length: REPEATED }, (_, i) => sentence(10_000_000 + i));
  await writeFile(repeatedTextsFile, repeatedTexts.join('\n') + '\n');
  const jpegs = (await makeJpegs(0, 64 + REPEATED_IMAGES)).map((j) => j.bytes);
  const list = async (file: string, bytes: readonly Buffer[], prefix: string) => {
    const paths = await Promise.all(
      bytes.map(async (b, i) => {
        const p = path.join(dir, `${prefix}-${i}.jpg`);
        await writeFile(p, b);
        return p;
      }),
    );
    await writeFile(file, paths.join('\n') + '\n');
  };
  const uniqueJpegs = jpegs.slice(0, 64);
  const repeatedJpegs = jpegs.slice(64);
  const uniqueImagesFile = path.join(dir, 'unique-images.txt');
  const repeatedImagesFile = path.join(dir, 'repeated-images.txt');
  await list(uniqueImagesFile, uniqueJpegs, 'u');
  await list(repeatedImagesFile, repeatedJpegs, 'r');
  return {
    dir,
    repeatedTextsFile,
    uniqueImagesFile,
    repeatedImagesFile,
    repeatedTexts,
    uniqueJpegs,
    repeatedJpegs,
  };
}

/** The repeated sets computed once, so every repeated step measures cache hits. */
async function warmRepeated(port: number, fx: Fixtures): Promise<void> {
  const base = `http://127.0.0.1:${port}`;
  for (const input of fx.repeatedTexts) {
    const res = await fetch(`${base}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: TEXT_MODEL, input, encoding_format: 'base64' }),
    });
    if (res.status !== 200) throw new Error(`warming a text answered ${res.status}`);
    await res.arrayBuffer();
  }
  for (const jpeg of fx.repeatedJpegs) {
    const res = await fetch(`${base}/embed/image`, {
      method: 'POST',
      headers: { 'content-type': 'image/jpeg' },
      body: jpeg,
    });
    if (res.status !== 200) throw new Error(`warming an image answered ${res.status}`);
    await res.arrayBuffer();
  }
}

/** Waits until no lane has items queued or running, so a step never inherits the last one's backlog. */
async function drained(port: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const samples = await scrape(port);
    if (value(samples, 'twinlane_lane_queue_depth') + value(samples, 'twinlane_lane_in_flight') === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the lanes did not drain within 60 s');
}

/** Offsets into the unique sentence file and a salt per run: no step sees another's inputs. */
class Inputs {
  offset = 0;
  runs = 0;
}

/** This step's own unique sentences, so wrk reads only what one step can use. */
async function stepTexts(fx: Fixtures, inputs: Inputs): Promise<string> {
  const file = path.join(fx.dir, 'step.txt');
  await writeFile(file, Array.from({ length: STEP_TEXTS }, (_, i) => sentence(inputs.offset + i)).join('\n') + '\n');
  return file;
}

async function httpStep(server: Child, s: Scenario, concurrency: number, fx: Fixtures, inputs: Inputs): Promise<Step> {
  const textsFile = s.unique ? await stepTexts(fx, inputs) : fx.repeatedTextsFile;
  const mark = cpuMark(server.pid);
  const r = await runWrk({
    port: server.port,
    concurrency,
    seconds: STEP_S,
    lane: s.lane,
    unique: s.unique,
    model: TEXT_MODEL,
    textsFile,
    imagesFile: s.unique ? fx.uniqueImagesFile : fx.repeatedImagesFile,
    repeated: s.unique ? 0 : s.lane === 'text' ? REPEATED : REPEATED_IMAGES,
    offset: 0,
    salt: `run${inputs.runs++}`,
  });
  const cpu = cpuSince(mark, server.pid);
  const seconds = r.durationUs / 1e6;
  inputs.offset += Math.min(r.sent, STEP_TEXTS);
  // wrk is a program of its own: its CPU shows in `other` until it is taken out here.
  const wrkCores = r.cpuSeconds / seconds;
  const errors = r.statusOther + r.connectErrors + r.readErrors + r.writeErrors + r.timeouts;
  return {
    concurrency,
    seconds,
    answers: r.requests,
    ok: r.requests - r.status429 - r.statusOther,
    meanMs: r.meanUs / 1000,
    p50Ms: r.p50Us / 1000,
    p95Ms: r.p95Us / 1000,
    p99Ms: r.p99Us / 1000,
    n429: r.status429,
    errors,
    cpu: { ...cpu, loadGen: wrkCores, other: Math.max(0, cpu.other - wrkCores) },
    wrapped: r.wrapped,
  };
}

async function wsStep(server: Child, s: Scenario, concurrency: number, fx: Fixtures, inputs: Inputs): Promise<Step> {
  const salt = `ws${inputs.runs++}`;
  const start = inputs.offset;
  let used = 0;
  const text = (n: number) => (s.unique ? sentence(start + (used = n + 1) - 1) : fx.repeatedTexts[n % REPEATED]!);
  const image = (n: number) => ({
    b64: (s.unique
      ? withJpegComment(fx.uniqueJpegs[n % fx.uniqueJpegs.length]!, `${salt}-${n}`)
      : fx.repeatedJpegs[n % REPEATED_IMAGES]!
    ).toString('base64'),
  });
  const mark = cpuMark(server.pid);
  const r = await runWsLoad({
    port: server.port,
    concurrency,
    durationMs: STEP_S * 1000,
    next: (n) => {
      if (s.lane === 'text' || (s.lane === 'mixed' && n % 2 === 0))
        return { lane: 'text', input: text(s.lane === 'mixed' ? n / 2 : n) };
      return { lane: 'image', input: image(s.lane === 'mixed' ? (n - 1) / 2 : n) };
    },
  });
  const cpu = cpuSince(mark, server.pid);
  inputs.offset += used;
  return {
    concurrency,
    seconds: r.seconds,
    answers: r.requests + r.refused429 + r.errors,
    ok: r.requests,
    meanMs: r.meanMs,
    p50Ms: r.p50Ms,
    p95Ms: r.p95Ms,
    p99Ms: r.p99Ms,
    n429: r.refused429,
    errors: r.errors,
    cpu,
    wrapped: 0,
  };
}

const rate = (s: Step) => s.ok / s.seconds;
const peak = (steps: readonly Step[]) => steps.reduce((a, b) => (rate(b) > rate(a) ? b : a));

/**
 * The knee: the fewest clients that reach 90 % of the curve's peak throughput. Past it, closed-loop
 * clients add queueing, not throughput: p99 turns upward with concurrency (Little's law).
 */
const knee = (steps: readonly Step[]) => steps.find((s) => rate(s) >= 0.9 * rate(peak(steps)))!;

const COLOURS: Record<string, string> = {
  'text unique': '#1f77b4',
  'text repeated': '#6baed6',
  'image unique': '#d62728',
  'image repeated': '#fc9272',
  'mixed unique': '#2ca02c',
  'mixed repeated': '#98df8a',
};

function series(results: readonly { scenario: Scenario; steps: Step[] }[], y: (s: Step) => number): Series[] {
  return results.map(({ scenario, steps }) => ({
    label: name(scenario),
    colour: COLOURS[`${scenario.lane} ${scenario.unique ? 'unique' : 'repeated'}`]!,
    dashed: scenario.transport === 'ws',
    points: steps.map((s) => [s.concurrency, y(s)] as const),
  }));
}

function stepRow(scenario: Scenario, s: Step): string {
  const rate = (n: number) => (s.answers === 0 ? '—' : `${((n / s.answers) * 100).toFixed(1)}%`);
  const flag = disturbed(s.cpu) ? ' ⚠' : '';
  return `| ${name(scenario)} | ${s.concurrency} | ${f0(s.answers / s.seconds)} | ${f0(s.ok / s.seconds)} | ${f1(s.meanMs)} | ${f1(s.p50Ms)} | ${f1(s.p95Ms)} | ${f1(s.p99Ms)} | ${rate(s.errors)} | ${rate(s.n429)} | ${f2(s.cpu.target)} | ${f2(s.cpu.loadGen)} | ${f2(s.cpu.other)}${flag} |`;
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const modelsDir = path.resolve(ROOT, process.env['TWINLANE_MODELS_DIR'] ?? '../shared/models');
  const quiet = await quietSample(progress);
  progress('writing fixtures (sentences, JPEGs)');
  const fx = await fixtures();
  const inputs = new Inputs();
  const results: { scenario: Scenario; steps: Step[] }[] = [];
  let server: Child | undefined;
  try {
    server = await startChild('dist/src/main.js', standInServerEnv(modelsDir));
    await waitReady(server.port);
    await warmRepeated(server.port, fx);
    for (const scenario of SCENARIOS) {
      const steps: Step[] = [];
      for (const concurrency of CONCURRENCIES) {
        await drained(server.port);
        progress(`${name(scenario)}, ${concurrency} clients`);
        const run = scenario.transport === 'http' ? httpStep : wsStep;
        const step = await run(server, scenario, concurrency, fx, inputs);
        progress(
          `  ${f0(step.ok / step.seconds)} items/s, p99 ${f1(step.p99Ms)} ms, 429 ${step.n429}, errors ${step.errors}`,
        );
        steps.push(step);
      }
      results.push({ scenario, steps });
    }
  } finally {
    await stopChild(server);
    await rm(fx.dir, { recursive: true, force: true });
  }
  await report(results, quiet, startedAt);
}

async function report(
  results: readonly { scenario: Scenario; steps: Step[] }[],
  quiet: CpuShare,
  startedAt: Date,
): Promise<void> {
  const dir = path.join(ROOT, 'bench/results');
  const xLabel = 'concurrent clients (closed loop, one item per request)';
  await chartPng(
    {
      title: 'Throughput against concurrency',
      xLabel,
      yLabel: 'items/s (answered 200)',
      series: series(results, (s) => s.ok / s.seconds),
    },
    path.join(dir, 'load-throughput.png'),
  );
  await chartPng(
    { title: 'p99 latency against concurrency', xLabel, yLabel: 'p99 ms', series: series(results, (s) => s.p99Ms) },
    path.join(dir, 'load-p99.png'),
  );
  const wrapped = results.flatMap((r) => r.steps).reduce((n, s) => n + s.wrapped, 0);
  const lines = [
    '# Load sweep',
    '',
    `Written by \`npm run bench:load\` (bench/load.ts) on ${startedAt.toISOString()}, ${f0((Date.now() - startedAt.getTime()) / 1000)} s in all.`,
    '',
    ...machineLines(quiet),
    `- Server: \`dist/src/main.js\` with its defaults, both lanes on (\`${TEXT_MODEL}\`, \`${IMAGE_MODEL}\`), no Redis, no rate limit`,
    `- Load: closed loop, each client one request of one item in flight; ${STEP_S} s per step, no warm-up window (the repeated sets were computed once before the sweep; the lanes drained between steps)`,
    '- HTTP: Debian\'s `wrk` with bench/workers/wrk-embed.lua — texts `POST /v1/embeddings` (one sentence, base64 answer), images `POST /embed/image` (a raw 320×240 … 640×480 JPEG), mixed: the two alternating. WebSocket: bench/lib/ws-load.ts, one socket per client, `format: "binary"`, images as `{"b64"}`',
    `- Unique: no input repeats in the run (texts: bench/fixtures/texts.ts sentences, ${STEP_TEXTS.toLocaleString('en')} written for each HTTP step${wrapped > 0 ? `, ${wrapped} with a counter once that ran dry` : ''}; JPEGs with a counter in a comment segment). Repeated: ${REPEATED} texts, ${REPEATED_IMAGES} JPEGs, all cache hits`,
    "- Latency: wrk counts every answer (a 429 too) from its request's first byte out to its answer; WebSocket: send to the request's `done`, successful requests only. Error %: non-2xx other than 429 and socket errors, of all answers",
    "- CPU columns: cores used by the server, by the load generator (wrk's own CPU, or this process for WebSocket) and by other programs; ⚠ where other programs or steal passed 0.15 cores",
    '',
    '![throughput against concurrency](load-throughput.png)',
    '',
    '![p99 against concurrency](load-p99.png)',
    '',
    '## Knee and peak per scenario',
    '',
    'The knee is the fewest clients that reach 90 % of the peak throughput: past it, closed-loop clients add queueing rather than throughput, and p99 turns upward with concurrency. Items/s count answers with a vector only.',
    '',
    '| scenario | knee (clients) | items/s there | p99 there | peak items/s | at clients | p99 at the peak |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...results.map(({ scenario, steps }) => {
      const k = knee(steps);
      const p = peak(steps);
      return `| ${name(scenario)} | ${k.concurrency} | ${f0(rate(k))} | ${f1(k.p99Ms)} ms | ${f0(rate(p))} | ${p.concurrency} | ${f1(p.p99Ms)} ms |`;
    }),
    '',
    '## Every step',
    '',
    '| scenario | clients | answers/s | items/s | mean ms | p50 ms | p95 ms | p99 ms | errors | 429 | server (cores) | load gen (cores) | other (cores) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.flatMap(({ scenario, steps }) => steps.map((s) => stepRow(scenario, s))),
    '',
  ];
  await writeFile(path.join(dir, 'load.md'), lines.join('\n'));
  progress('wrote bench/results/load.md, load-throughput.png, load-p99.png');
}

await main();
