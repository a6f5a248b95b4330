// The raw ceiling: texts/s of ONNX Runtime sessions alone, on the thread budget the server's text lane
// gets (sessions × intra-op threads), fed pre-tokenized batches of the same sentences the load test sends.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import type { CeilingReport, CeilingTask, CeilingWorkerData } from './ceiling-worker.js';
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
  readonly sessions: number;
  readonly intraOpThreads: number;
  readonly batchSizes: readonly number[];
  /** Fresh sentences, never sent elsewhere in the run. */
  readonly nextText: () => string;
  readonly minMs: number;
}

const WORKER = new URL('./ceiling-worker.js', import.meta.url);

export function loadTokenizer(modelDir: string): Tokenizer {
  const json = (file: string) => JSON.parse(readFileSync(path.join(modelDir, file), 'utf8')) as object;
  return new Tokenizer(json('tokenizer.json'), json('tokenizer_config.json'));
}

export async function measureCeiling(options: CeilingOptions): Promise<CeilingRow[]> {
  const tokenizer = loadTokenizer(options.modelDir);
  const onnxPath = path.join(options.modelDir, 'onnx', 'model.onnx');
  const workers = await Promise.all(
    Array.from({ length: options.sessions }, () => startWorker(WORKER, { onnxPath, intraOpThreads: options.intraOpThreads } satisfies CeilingWorkerData)),
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
      const reports = await Promise.all(workers.map((worker, i) => runTask<CeilingTask, CeilingReport>(worker, tasks[i]!)));
      const textsPerSecond = reports.reduce((sum, r) => sum + (r.texts * 1000) / r.ms, 0);
      const runs = reports.reduce((sum, r) => sum + r.runs, 0);
      const ms = reports.reduce((sum, r) => sum + r.ms, 0);
      rows.push({ batchSize, textsPerSecond, msPerRun: ms / runs, meanTokens: tokens / (batchCount * batchSize * workers.length), cpu: cpuSince(mark) });
    }
    return rows;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
