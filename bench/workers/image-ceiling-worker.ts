// One image-lane worker's work without the server around it: the lane's own preprocessor (sharp)
// and the lane's own session options, in a thread of its own, as lanes/image-worker.ts has them.
// Two tasks: a ceiling run (whole batches back to back: decode + preprocess + model), and a
// preprocessing-only run that times each image on its own.
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { createPreprocessor } from '../../lanes/image-preprocess.js';
import type { ImagePreprocess } from '../../lanes/protocol.js';
import { createSession } from '../../lanes/session.js';

export interface ImageCeilingWorkerData {
  readonly onnxPath: string;
  readonly intraOpThreads: number;
  readonly preprocess: ImagePreprocess;
  readonly maxPixels: number;
}

/** Encoded images per batch; every image appears once in the whole task. */
export interface ImageCeilingTask {
  readonly type: 'ceiling';
  readonly batches: readonly (readonly Uint8Array[])[];
  readonly warmupBatches: number;
  readonly minMs: number;
  readonly minRuns: number;
}

export interface ImageCeilingReport {
  readonly images: number;
  readonly runs: number;
  readonly ms: number;
  /** Of `ms`: time in decode + preprocess, and in the model. */
  readonly preprocessMs: number;
  readonly modelMs: number;
  /** True when the images ran out before `minMs`: the window was shorter than asked. */
  readonly exhausted: boolean;
}

export interface PreprocessTask {
  readonly type: 'preprocess';
  readonly images: readonly Uint8Array[];
  readonly warmup: number;
}

/** Microseconds per image after the warm-up ones, in the order sent. */
export interface PreprocessReport {
  readonly micros: readonly number[];
}

const data = workerData as ImageCeilingWorkerData;
const port = parentPort;
if (!port) throw new Error('image-ceiling-worker must run as a worker thread');

// As in the lane's worker: libvips on the lane's threads only, and no decoded-image cache.
sharp.concurrency(data.intraOpThreads);
sharp.cache(false);
const session = await createSession(data.onnxPath, data.intraOpThreads, { name: 'cpu', deviceId: 0 });
const preprocessor = createPreprocessor(data.preprocess, data.maxPixels);
const itemFloats = 3 * preprocessor.height * preprocessor.width;

async function embed(images: readonly Uint8Array[]): Promise<{ preprocessMs: number; modelMs: number }> {
  const started = performance.now();
  // A fresh tensor per batch, as the lane allocates one.
  const pixels = new Float32Array(images.length * itemFloats);
  for (const [i, bytes] of images.entries()) await preprocessor.into(bytes, pixels, i * itemFloats);
  const preprocessed = performance.now();
  await session.run({
    pixel_values: session.tensor('float32', pixels, [images.length, 3, preprocessor.height, preprocessor.width]),
  });
  return { preprocessMs: preprocessed - started, modelMs: performance.now() - preprocessed };
}

async function ceiling(task: ImageCeilingTask): Promise<ImageCeilingReport> {
  for (const batch of task.batches.slice(0, task.warmupBatches)) await embed(batch); // first runs allocate
  const timed = task.batches.slice(task.warmupBatches);
  if (timed.length < task.minRuns) throw new Error(`${timed.length} batches after warm-up, ${task.minRuns} needed`);
  let images = 0;
  let runs = 0;
  let preprocessMs = 0;
  let modelMs = 0;
  const started = performance.now();
  while (runs < timed.length && (performance.now() - started < task.minMs || runs < task.minRuns)) {
    const batch = timed[runs]!;
    const split = await embed(batch);
    preprocessMs += split.preprocessMs;
    modelMs += split.modelMs;
    images += batch.length;
    runs++;
  }
  const ms = performance.now() - started;
  return { images, runs, ms, preprocessMs, modelMs, exhausted: ms < task.minMs };
}

async function preprocessOnly(task: PreprocessTask): Promise<PreprocessReport> {
  const out = new Float32Array(itemFloats);
  const micros: number[] = [];
  for (const [i, bytes] of task.images.entries()) {
    const started = performance.now();
    await preprocessor.into(bytes, out, 0);
    if (i >= task.warmup) micros.push((performance.now() - started) * 1000);
  }
  return { micros };
}

port.on('message', (task: ImageCeilingTask | PreprocessTask) => {
  void (async () => {
    port.postMessage(task.type === 'ceiling' ? await ceiling(task) : await preprocessOnly(task));
  })();
});
port.postMessage('ready');
