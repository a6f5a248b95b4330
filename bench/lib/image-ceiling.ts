// The raw image ceiling: images/s of the image lane's work alone (sharp decode + preprocess of JPEG
// bytes, then ONNX Runtime) on the lane's thread budget, one session per worker thread, and the cost
// of preprocessing alone per image. Every image is decoded once: pools are sized for each window.
import type {
  ImageCeilingReport,
  ImageCeilingTask,
  ImageCeilingWorkerData,
  PreprocessReport,
  PreprocessTask,
} from '../workers/image-ceiling-worker.js';
import { cpuMark, cpuSince, type CpuShare } from './cpu.js';
import { runTask, startWorker } from './worker-calls.js';

const WORKER = new URL('../workers/image-ceiling-worker.js', import.meta.url);
export const CEILING_WARMUP_RUNS = 2;
const MIN_RUNS = 3;
const PROBE_RUNS = 6;
// Pools hold this many times the images the window should need, so a faster batch size still fills it.
const POOL_MARGIN = 1.5;

export interface ImageCeilingRow {
  readonly batchSize: number;
  readonly imagesPerSecond: number;
  readonly msPerRun: number;
  /** Share of the sessions' time spent in decode + preprocess (the rest is the model). */
  readonly preprocessShare: number;
  /** Timed window, averaged over sessions; shorter than asked when a pool ran out. */
  readonly seconds: number;
  readonly exhausted: boolean;
  readonly cpu: CpuShare;
}

export interface ImageCeilingOptions {
  readonly worker: ImageCeilingWorkerData;
  readonly sessions: number;
  readonly batchSizes: readonly number[];
  readonly minMs: number;
  /** Encoded images never used before in the run. */
  readonly nextImages: (count: number) => Promise<Uint8Array[]>;
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  return Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
}

export async function measureImageCeiling(options: ImageCeilingOptions): Promise<ImageCeilingRow[]> {
  const workers = await Promise.all(
    Array.from({ length: options.sessions }, () => startWorker(WORKER, options.worker)),
  );
  try {
    // A few single-image runs first (not reported) size the first pool; later pools follow the rows.
    const probe = await Promise.all(
      workers.map(async (worker) => {
        const batches = chunk(await options.nextImages(CEILING_WARMUP_RUNS + PROBE_RUNS), 1);
        return runTask<ImageCeilingTask, ImageCeilingReport>(worker, {
          type: 'ceiling',
          batches,
          warmupBatches: CEILING_WARMUP_RUNS,
          minMs: 0,
          minRuns: PROBE_RUNS,
        });
      }),
    );
    let expected = probe.reduce((total, r) => total + (r.images * 1000) / r.ms, 0);
    const rows: ImageCeilingRow[] = [];
    for (const batchSize of options.batchSizes) {
      const perSession = (expected / options.sessions) * (options.minMs / 1000) * POOL_MARGIN;
      const batches = CEILING_WARMUP_RUNS + Math.max(MIN_RUNS, Math.ceil(perSession / batchSize));
      // Generated before the clock starts, while the workers wait.
      const tasks: ImageCeilingTask[] = [];
      for (let s = 0; s < options.sessions; s++) {
        const images = await options.nextImages(batches * batchSize);
        tasks.push({
          type: 'ceiling',
          batches: chunk(images, batchSize),
          warmupBatches: CEILING_WARMUP_RUNS,
          minMs: options.minMs,
          minRuns: MIN_RUNS,
        });
      }
      const mark = cpuMark();
      const reports = await Promise.all(
        workers.map((worker, i) => runTask<ImageCeilingTask, ImageCeilingReport>(worker, tasks[i]!)),
      );
      const cpu = cpuSince(mark);
      const sum = (pick: (r: ImageCeilingReport) => number) => reports.reduce((total, r) => total + pick(r), 0);
      const row: ImageCeilingRow = {
        batchSize,
        imagesPerSecond: sum((r) => (r.images * 1000) / r.ms),
        msPerRun: sum((r) => r.ms) / sum((r) => r.runs),
        preprocessShare: sum((r) => r.preprocessMs) / sum((r) => r.preprocessMs + r.modelMs),
        seconds: sum((r) => r.ms) / reports.length / 1000,
        exhausted: reports.some((r) => r.exhausted),
        cpu,
      };
      rows.push(row);
      expected = Math.max(...rows.map((r) => r.imagesPerSecond));
    }
    return rows;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** Microseconds per image of the lane's preprocessor alone, one image at a time on one worker thread. */
export async function measurePreprocessing(
  worker: ImageCeilingWorkerData,
  images: readonly Uint8Array[],
  warmup: number,
): Promise<{ micros: readonly number[]; cpu: CpuShare }> {
  const thread = await startWorker(WORKER, worker);
  try {
    const mark = cpuMark();
    const report = await runTask<PreprocessTask, PreprocessReport>(thread, { type: 'preprocess', images, warmup });
    return { micros: report.micros, cpu: cpuSince(mark) };
  } finally {
    await thread.terminate();
  }
}
