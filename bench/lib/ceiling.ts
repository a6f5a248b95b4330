// The raw ceiling: texts/s of ONNX Runtime sessions alone, fed pre-tokenized batches of the same
// sentences the load test sends. The machine's ceiling is the best of every thread layout that fits its
// cores (sessions × intra-op threads ≤ cores) and every batch size the lane may form.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import type { CeilingReport, CeilingTask, CeilingWorkerData } from '../workers/ceiling-worker.js';
import { cpuMark, cpuSince, type CpuShare } from './cpu.js';
import { runTask, startWorker } from './worker-calls.js';

export interface CeilingRow {
  readonly batchSize: number;
  readonly textsPerSecond: number;
  readonly msPerRun: number;
  readonly meanTokens: number;
  readonly cpu: CpuShare;
}

export interface CeilingOptions {
  readonly modelDir: string;
  /** The weights below modelDir (default onnx/model.onnx; onnx/model_quantized.onnx for q8). */
  readonly onnxFile?: string;
  readonly sessions: number;
  readonly intraOpThreads: number;
  readonly batchSizes: readonly number[];
  /** Fresh sentences, never sent elsewhere in the run. */
  readonly nextText: () => string;
  readonly minMs: number;
}

const WORKER = new URL('../workers/ceiling-worker.js', import.meta.url);

function loadTokenizer(modelDir: string): Tokenizer {
  const json = (file: string) => JSON.parse(readFileSync(path.join(modelDir, file), 'utf8')) as object;
  return new Tokenizer(json('tokenizer.json'), json('tokenizer_config.json'));
}

export interface Layout {
  readonly sessions: number;
  readonly intraOpThreads: number;
}

/**
 * The thread layouts a ceiling is measured over: on up to 4 cores every (sessions, intra-op threads)
 * with sessions × threads ≤ cores; on more, one session alone and each power-of-two number of sessions
 * with the cores split evenly between them (every layout would take too long to measure).
 */
export function layoutsFor(cores: number): Layout[] {
  const layouts: Layout[] = [];
  if (cores <= 4) {
    for (let sessions = 1; sessions <= cores; sessions++) {
      for (let intraOpThreads = 1; sessions * intraOpThreads <= cores; intraOpThreads++)
        layouts.push({ sessions, intraOpThreads });
    }
    return layouts;
  }
  layouts.push({ sessions: 1, intraOpThreads: 1 });
  for (let sessions = 1; sessions <= cores; sessions *= 2)
    layouts.push({ sessions, intraOpThreads: Math.floor(cores / sessions) });
  return layouts;
}

export async function measureCeiling(options: CeilingOptions): Promise<CeilingRow[]> {
  const tokenizer = loadTokenizer(options.modelDir);
  const onnxPath = path.join(options.modelDir, options.onnxFile ?? 'onnx/model.onnx');
  const workers = await Promise.all(
    Array.from({ length: options.sessions }, () =>
      startWorker(WORKER, { onnxPath, intraOpThreads: options.intraOpThreads } satisfies CeilingWorkerData),
    ),
  );
  try {
    const rows: CeilingRow[] = [];
    for (const batchSize of options.batchSizes) {
      // Enough distinct batches that no run repeats an earlier one's shapes in a short window.
      const batchCount = Math.max(4, Math.ceil(512 / batchSize));
      let tokens = 0;
      const tasks = workers.map((): CeilingTask => {
        const batches = Array.from({ length: batchCount }, () =>
          Array.from({ length: batchSize }, () => {
            const ids = tokenizer.encode(options.nextText()).ids;
            tokens += ids.length;
            return ids;
          }),
        );
        return { batches, minMs: options.minMs, minRuns: 3 };
      });
      const mark = cpuMark();
      const reports = await Promise.all(
        workers.map((worker, i) => runTask<CeilingTask, CeilingReport>(worker, tasks[i]!)),
      );
      const textsPerSecond = reports.reduce((sum, r) => sum + (r.texts * 1000) / r.ms, 0);
      const runs = reports.reduce((sum, r) => sum + r.runs, 0);
      const ms = reports.reduce((sum, r) => sum + r.ms, 0);
      rows.push({
        batchSize,
        textsPerSecond,
        msPerRun: ms / runs,
        meanTokens: tokens / (batchCount * batchSize * workers.length),
        cpu: cpuSince(mark),
      });
    }
    return rows;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

export type LayoutRow = CeilingRow & Layout;

export const layoutName = (l: Layout): string => `${l.sessions} × ${l.intraOpThreads}`;

/**
 * The machine's ceiling: every layout of `layouts` at every batch size, each row reported through
 * `progress`; the best row is the ceiling.
 */
export async function ceilingOverLayouts(
  base: Omit<CeilingOptions, 'sessions' | 'intraOpThreads' | 'batchSizes'>,
  layouts: readonly Layout[],
  batchSizes: readonly number[],
  progress: (line: string) => void,
): Promise<{ rows: LayoutRow[]; best: LayoutRow }> {
  const rows: LayoutRow[] = [];
  for (const layout of layouts) {
    progress(`${layoutName(layout)} (sessions × intra-op threads), batches ${batchSizes.join('/')}`);
    for (const row of await measureCeiling({ ...base, ...layout, batchSizes })) {
      progress(
        `${layoutName(layout)} batch ${row.batchSize}: ${row.textsPerSecond.toFixed(1)} texts/s (other ${row.cpu.other.toFixed(2)} cores, steal ${row.cpu.steal.toFixed(2)})`,
      );
      rows.push({ ...row, ...layout });
    }
  }
  const best = rows.reduce((a, b) => (b.textsPerSecond > a.textsPerSecond ? b : a));
  return { rows, best };
}

/** One timed window of `best` (its layout and batch size), for a paired ratio (bench/lib/paired.ts): texts/s. */
export function ceilingWindow(
  base: Omit<CeilingOptions, 'sessions' | 'intraOpThreads' | 'batchSizes' | 'minMs'>,
  best: LayoutRow,
  minMs: number,
): () => Promise<number> {
  return async () => {
    const [row] = await measureCeiling({
      ...base,
      sessions: best.sessions,
      intraOpThreads: best.intraOpThreads,
      batchSizes: [best.batchSize],
      minMs,
    });
    if (!row) throw new Error('a paired ceiling window returned nothing');
    return row.textsPerSecond;
  };
}
