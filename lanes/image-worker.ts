// Runs inside an image-lane worker thread: owns sharp and an ONNX Runtime session per model of the
// lane. Decoding and preprocessing happen here, never on the main thread; one batch of images (all of
// one model) is one ONNX call.
import sharp from 'sharp';
import { workerData } from 'piscina';
import { createPreprocessor, ImageRejected, type Preprocessor } from './image-preprocess.js';
import type {
  BatchResult,
  ImageItem,
  ImageWorkerData,
  ImageWorkerModel,
  ItemError,
  LaneResult,
  LaneTask,
} from './protocol.js';
import { injectFaults } from './faults.js';
import { createSession, l2NormalizeRows, type ModelSession } from './session.js';
import { lowerThreadPriority, lowerThreadsNamed } from './thread-priority.js';

const data = workerData as ImageWorkerData;
// Below the text lane and the main thread: under CPU pressure images wait and text does not.
lowerThreadPriority(data.nice, 'image');
// libvips would otherwise start a thread per core in every worker, outside the lane's budget, and
// cache decoded images nobody asks for twice (the embedding cache does that job).
sharp.concurrency(data.intraOpThreads);
sharp.cache(false);

interface LoadedModel {
  readonly spec: ImageWorkerModel;
  readonly session: ModelSession;
  readonly preprocessor: Preprocessor;
}

// One after another: loading sessions at once would only raise the peak memory of start-up.
const models: LoadedModel[] = [];
for (const spec of data.models) {
  models.push({
    spec,
    session: await createSession(spec.onnxPath, data.intraOpThreads, data.provider),
    preprocessor: createPreprocessor(spec.preprocess, data.maxPixels),
  });
}

async function embedBatch(batchId: number, modelIndex: number, items: readonly ImageItem[]): Promise<BatchResult> {
  const started = performance.now();
  const model = models[modelIndex];
  if (!model || items.some((item) => item.model !== modelIndex))
    throw new Error(`batch ${batchId} for model ${modelIndex} holds items of another model. This is a bug.`);
  if (data.faults.length > 0)
    await injectFaults(
      data.faults,
      items.map((item) => item.bytes),
    );
  const { session, preprocessor } = model;
  const { dims } = model.spec;
  const itemFloats = 3 * preprocessor.height * preprocessor.width;
  const pixels = new Float32Array(items.length * itemFloats);
  const errors: ItemError[] = [];
  const good: number[] = [];
  for (const [index, item] of items.entries()) {
    try {
      await preprocessor.into(item.bytes, pixels, good.length * itemFloats);
      good.push(index);
    } catch (error) {
      if (!(error instanceof ImageRejected)) throw error;
      errors.push({ index, code: error.code, message: `Image ${index}: ${error.message}` });
    }
  }
  const vectors = new Float32Array(items.length * dims);
  const tokens = new Int32Array(items.length);
  const prepareMs = performance.now() - started;
  let modelMs = 0;
  if (good.length > 0) {
    const shape = [good.length, 3, preprocessor.height, preprocessor.width];
    const runStarted = performance.now();
    const output = await session.run({
      pixel_values: session.tensor('float32', pixels.subarray(0, good.length * itemFloats), shape),
    });
    modelMs = performance.now() - runStarted;
    const embeds = output['image_embeds'];
    if (!embeds || embeds.length !== good.length * dims) {
      throw new Error(
        `image model ${model.spec.id} returned ${embeds?.length ?? 'no'} image_embeds values, expected ${good.length * dims}. This is a bug or a wrong model.`,
      );
    }
    good.forEach((index, row) => {
      const vector = vectors.subarray(index * dims, (index + 1) * dims);
      vector.set(embeds.subarray(row * dims, (row + 1) * dims));
      if (items[index]!.normalize) l2NormalizeRows(vector, dims);
    });
  }
  return {
    type: 'batch-result',
    batchId,
    vectors,
    dims,
    tokens,
    errors,
    paddedTokens: good.length,
    inferenceMs: performance.now() - started,
    prepareMs,
    modelMs,
    calls: good.length > 0 ? 1 : 0,
  };
}

/** A 64×64 grey PNG, made here so warm-up needs no file and exercises the whole decode path. */
const warmupImage = await sharp({
  create: { width: 64, height: 64, channels: 3, background: { r: 128, g: 128, b: 128 } },
})
  .png()
  .toBuffer();

export default async function run(task: LaneTask): Promise<LaneResult> {
  try {
    return await runTask(task);
  } finally {
    // libvips' threads start at nice 0 whatever this worker's nice (lanes/thread-priority.ts): lower
    // any it started for this batch before the next one runs on them.
    lowerThreadsNamed('libvips worker', data.nice);
  }
}

async function runTask(task: LaneTask): Promise<LaneResult> {
  switch (task.type) {
    case 'image-batch':
      return embedBatch(task.batchId, task.model, task.items);
    case 'warmup': {
      const dims: number[] = [];
      for (const [model] of models.entries()) {
        const result = await embedBatch(task.batchId, model, [{ model, bytes: warmupImage, normalize: true }]);
        if (result.errors.length > 0)
          throw new Error(`warm-up image was refused: ${result.errors[0]!.message}. This is a bug.`);
        dims.push(result.dims);
      }
      return { type: 'warmup-result', batchId: task.batchId, dims };
    }
    case 'text-batch':
      throw new Error('an image worker got a text batch. This is a bug.');
  }
}
