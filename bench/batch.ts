// bench:batch — does a running bulk job slow live queries? One server with its defaults: (A) live
// text clients alone; (B) the same clients while a batch of unique texts runs through the Batch API
// (submitted before B and still running when B ends). Reports live p50/p99 and 429s in each, the
// batch's lines/s during B, and the ratio of B's p99 to A's (target ≤ 1.3). Writes
// bench/results/batch.md.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ROOT, standInServerEnv, startChild, stopChild, waitReady, type Child } from './lib/children.js';
import { cpuMark, cpuSince, type CpuShare } from './lib/cpu.js';
import { batchProgress, sentenceBatch, submitBatch } from './lib/batch-api.js';
import { runLoad, type LoadResult } from './lib/load.js';
import { machineLines, quietSample } from './lib/machine.js';
import { f0, f1, f2, progress } from './lib/phase.js';
import { sentence } from './fixtures/texts.js';

const LIVE_CLIENTS = 16;
const PHASE_S = Number(process.env['BENCH_MEASURE_S'] ?? '15');
const BATCH_LINES = 20_000;
const TEXT_MODEL = 'twinlane/minilm-l6-standin';

async function live(server: Child, offset: number): Promise<{ result: LoadResult; cpu: CpuShare }> {
  let n = offset;
  const mark = cpuMark(server.pid);
  const result = await runLoad({
    port: server.port,
    path: '/v1/embeddings',
    concurrency: LIVE_CLIENTS,
    warmupMs: 2000,
    durationMs: PHASE_S * 1000,
    body: () => JSON.stringify({ model: TEXT_MODEL, input: sentence(n++), encoding_format: 'base64' }),
  });
  return { result, cpu: cpuSince(mark, server.pid) };
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const quiet = await quietSample(progress);
  const modelsDir = path.resolve(ROOT, process.env['TWINLANE_MODELS_DIR'] ?? '../shared/models');
  let server: Child | undefined;
  try {
    server = await startChild(
      'dist/src/main.js',
      standInServerEnv(modelsDir, { TWINLANE_FILES_DIR: path.join(ROOT, 'scratch', `bench-batch-${process.pid}`) }),
    );
    await waitReady(server.port);
    progress(`(A) ${LIVE_CLIENTS} live clients alone, ${PHASE_S} s`);
    const alone = await live(server, 0);
    progress(`(B) the same with a ${BATCH_LINES}-line batch running`);
    const id = await submitBatch(server.port, sentenceBatch(TEXT_MODEL, BATCH_LINES, 2_000_000));
    await new Promise((r) => setTimeout(r, 1000));
    const before = await batchProgress(server.port, id);
    const during = await live(server, 1_000_000);
    const after = await batchProgress(server.port, id);
    if (after.status !== 'in_progress')
      throw new Error(`the batch ended (${after.status}) before phase B did: raise BATCH_LINES`);
    const batchRate = (after.completed + after.failed - before.completed - before.failed) / (PHASE_S + 2);
    await report({ startedAt, quiet, alone, during, batchRate });
  } finally {
    await stopChild(server);
  }
}

interface Run {
  readonly startedAt: Date;
  readonly quiet: CpuShare;
  readonly alone: { result: LoadResult; cpu: CpuShare };
  readonly during: { result: LoadResult; cpu: CpuShare };
  readonly batchRate: number;
}

async function report(run: Run): Promise<void> {
  const row = (label: string, p: { result: LoadResult; cpu: CpuShare }) =>
    `| ${label} | ${f0(p.result.throughput)} | ${f1(p.result.latencyMs.p50)} | ${f1(p.result.latencyMs.p99)} | ${p.result.statuses['429'] ?? 0} | ${p.result.non2xx} | ${f2(p.cpu.target)} | ${f2(p.cpu.other)} |`;
  const ratio = run.during.result.latencyMs.p99 / run.alone.result.latencyMs.p99;
  const lines = [
    '# Live traffic during a batch',
    '',
    `Written by \`npm run bench:batch\` (bench/batch.ts) on ${run.startedAt.toISOString()}.`,
    '',
    ...machineLines(run.quiet),
    `- Server defaults, both lanes on; live load: ${LIVE_CLIENTS} closed-loop keep-alive clients, one never-repeated sentence per \`POST /v1/embeddings\`, 2 s warm-up + ${PHASE_S} s measured; (B) with a ${BATCH_LINES.toLocaleString('en')}-line batch of unique sentences running (Batch API defaults: 2 chunks × 64 lines in flight, lowest priority, at most half the workers while live traffic is about)`,
    '',
    '| phase | live texts/s | p50 ms | p99 ms | live 429s | live non-2xx | server (cores) | other programs (cores) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    row('(A) live alone', run.alone),
    row('(B) live with a batch running', run.during),
    '',
    `| ratio | value | target | |`,
    `|---|---:|---:|---|`,
    `| live p99, B ÷ A | ${f2(ratio)} | ≤ 1.3 | ${ratio <= 1.3 ? 'met' : '**not met**'} |`,
    `| live 429s caused by the batch | ${run.during.result.statuses['429'] ?? 0} | 0 | ${(run.during.result.statuses['429'] ?? 0) === 0 ? 'met' : '**not met**'} |`,
    `| batch lines/s during B | ${f0(run.batchRate)} | | |`,
    '',
  ];
  await writeFile(path.join(ROOT, 'bench/results/batch.md'), lines.join('\n'));
  progress(
    `wrote bench/results/batch.md: p99 ${f1(run.alone.result.latencyMs.p99)} → ${f1(run.during.result.latencyMs.p99)} ms (${f2(ratio)}×), batch ${f0(run.batchRate)} lines/s`,
  );
}

await main();
