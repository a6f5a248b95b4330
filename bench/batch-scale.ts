// bench:batch-scale — do N instances on one Redis finish a batch about N× faster? This machine has
// two cores, so an "instance" here is a server pinned to one core (taskset) with one text worker of
// one thread, standing for one machine: (1) one such instance alone runs a batch of unique texts;
// (2) two of them, on cores 0 and 1, share the same batch through BullMQ; (0) for reference, one
// unpinned instance with its defaults on both cores. Each instance's share comes from its own
// /metrics (batch lines it computed). Reports the wall time to `completed`, lines/s and the
// (2) ÷ (1) speed-up (target ≈ 2×). Writes bench/results/batch-scale.md.
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ROOT, standInServerEnv, startChild, stopChild, waitReady, type Child } from './lib/children.js';
import { batchProgress, sentenceBatch, submitBatch, type BatchProgress } from './lib/batch-api.js';
import { cpuMark, cpuSince, type CpuMark, type CpuShare } from './lib/cpu.js';
import { machineLines, quietSample } from './lib/machine.js';
import { f0, f1, f2, progress } from './lib/phase.js';
import { scrape, value } from './lib/scrape.js';

const LINES = Number(process.env['BENCH_BATCH_LINES'] ?? '6000');
const TEXT_MODEL = 'twinlane/minilm-l6-standin';
const REDIS_URL = process.env['BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

interface Layout {
  readonly label: string;
  /** One entry per instance: the core it is pinned to, or null for an unpinned server with its defaults. */
  readonly cores: readonly (number | null)[];
}

const DEFAULTS: Layout = { label: '(0) one instance, defaults, both cores', cores: [null] };
const ONE: Layout = { label: '(1) one instance on one core', cores: [0] };
const TWO: Layout = { label: '(2) two instances, one core each', cores: [0, 1] };
/** (1) and (2) twice, interleaved, so that a noisy moment on the shared machine shows as a spread. */
const RUNS: readonly Layout[] = [DEFAULTS, ONE, TWO, ONE, TWO];

interface Outcome {
  readonly layout: Layout;
  readonly seconds: number;
  readonly completed: number;
  readonly failed: number;
  /** Lines each instance computed, from its own metrics. */
  readonly perInstance: readonly number[];
  /** Cores' worth of CPU each instance used while the batch ran. */
  readonly cpu: readonly CpuShare[];
}

function instanceEnv(modelsDir: string, core: number | null, shared: { prefix: string; filesDir: string }) {
  const pinned: NodeJS.ProcessEnv =
    core === null ? {} : { TWINLANE_TEXT_THREADS: '1', TWINLANE_TEXT_INTRA_OP_THREADS: '1' };
  return standInServerEnv(modelsDir, {
    TWINLANE_IMAGE_MODEL: 'none',
    TWINLANE_REDIS_URL: REDIS_URL,
    TWINLANE_CACHE_PREFIX: shared.prefix,
    TWINLANE_FILES_DIR: shared.filesDir,
    ...pinned,
  });
}

async function waitFinal(port: number, id: string): Promise<BatchProgress> {
  for (;;) {
    const progress = await batchProgress(port, id);
    if (['completed', 'failed', 'cancelled', 'expired'].includes(progress.status)) return progress;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function linesComputed(port: number): Promise<number> {
  return value(await scrape(port), 'twinlane_batch_lines_total');
}

async function runLayout(layout: Layout, runIndex: number, modelsDir: string): Promise<Outcome> {
  const shared = {
    prefix: `bench-scale-${randomBytes(4).toString('hex')}`,
    filesDir: path.join(ROOT, 'scratch', `bench-batch-scale-${process.pid}-${runIndex}`),
  };
  const servers: Child[] = [];
  try {
    for (const core of layout.cores)
      servers.push(
        await startChild(
          'dist/src/main.js',
          instanceEnv(modelsDir, core, shared),
          core === null ? [] : ['taskset', '-c', String(core)],
        ),
      );
    await Promise.all(servers.map((s) => waitReady(s.port)));
    // Unique sentences in every run, so no run is helped by what an earlier one left in Redis.
    const file = sentenceBatch(TEXT_MODEL, LINES, 3_000_000 + runIndex * 100_000);
    const marks: CpuMark[] = servers.map((s) => cpuMark(s.pid));
    const started = performance.now();
    const id = await submitBatch(servers[0]!.port, file);
    const final = await waitFinal(servers[0]!.port, id);
    const seconds = (performance.now() - started) / 1000;
    if (final.status !== 'completed') throw new Error(`${layout.label}: the batch ended ${final.status}`);
    const cpu = servers.map((s, i) => cpuSince(marks[i]!, s.pid));
    const perInstance = await Promise.all(servers.map((s) => linesComputed(s.port)));
    return { layout, seconds, completed: final.completed, failed: final.failed, perInstance, cpu };
  } finally {
    await Promise.all(servers.map((s) => stopChild(s)));
    await rm(shared.filesDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const quiet = await quietSample(progress);
  const modelsDir = path.resolve(ROOT, process.env['TWINLANE_MODELS_DIR'] ?? '../shared/models');
  const outcomes: Outcome[] = [];
  for (const [i, layout] of RUNS.entries()) {
    progress(`${layout.label}: ${LINES.toLocaleString('en')} lines`);
    const outcome = await runLayout(layout, i, modelsDir);
    progress(
      `  ${f1(outcome.seconds)} s, ${f0(outcome.completed / outcome.seconds)} lines/s, per instance ${outcome.perInstance.join(' + ')}`,
    );
    outcomes.push(outcome);
  }
  await report(startedAt, quiet, outcomes);
}

async function report(startedAt: Date, quiet: CpuShare, outcomes: readonly Outcome[]): Promise<void> {
  const rate = (o: Outcome) => (o.completed + o.failed) / o.seconds;
  const row = (o: Outcome) =>
    `| ${o.layout.label} | ${f1(o.seconds)} | ${f0(rate(o))} | ${o.completed} / ${o.failed} | ${o.perInstance.join(' + ')} | ${o.cpu.map((c) => f2(c.target)).join(' + ')} | ${f2(otherCores(o))} |`;
  const mean = (layout: Layout) => {
    const runs = outcomes.filter((o) => o.layout === layout);
    return runs.reduce((sum, o) => sum + o.seconds, 0) / runs.length;
  };
  const twos = outcomes.filter((o) => o.layout === TWO);
  const speedUp = mean(ONE) / mean(TWO);
  const secondShare =
    (100 * twos.reduce((sum, o) => sum + (o.perInstance[1] ?? 0), 0)) /
    twos.reduce((sum, o) => sum + o.completed + o.failed, 0);
  const lines = [
    '# N instances on one Redis share a batch',
    '',
    `Written by \`npm run bench:batch-scale\` (bench/batch-scale.ts) on ${startedAt.toISOString()}.`,
    '',
    ...machineLines(quiet),
    `- A batch of ${LINES.toLocaleString('en')} unique sentences (\`${TEXT_MODEL}\`) through the Batch API on BullMQ (one Redis, one shared files directory); each run starts fresh instances with their own key prefix, so nothing is cached from an earlier run. A pinned instance (\`taskset -c N\`, one text worker of one intra-op thread, image lane off) stands for one machine; the two in (2) take chunks from the same queue. Time: from submitting the file's batch to \`completed\` as the first instance reports it.`,
    '',
    '| layout | seconds | lines/s | completed / failed | lines computed per instance | instance CPU (cores) | other programs (cores) |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...outcomes.map(row),
    '',
    '| ratio | value | target | |',
    '|---|---:|---:|---|',
    `| speed-up, mean (1) time ÷ mean (2) time | ${f2(speedUp)}× | ≈ 2× (≥ 1.7×) | ${speedUp >= 1.7 ? 'met' : '**not met**'} |`,
    `| share of the second instance in (2) | ${f0(secondShare)} % | ≈ 50 % | |`,
    '',
  ];
  await writeFile(path.join(ROOT, 'bench/results/batch-scale.md'), lines.join('\n'));
  progress(`wrote bench/results/batch-scale.md: speed-up ${f2(speedUp)}×`);
}

/** Other programs' CPU: what the first instance's mark saw outside it, less the other instances. */
function otherCores(o: Outcome): number {
  return o.cpu[0]!.other - o.cpu.slice(1).reduce((sum, c) => sum + c.target, 0);
}

await main();
