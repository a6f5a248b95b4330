// Runs inside an image-lane worker thread: owns sharp and one ONNX Runtime session. Decoding and
// preprocessing happen here, never on the main thread; one batch of images is one ONNX call.
import sharp from 'sharp';
import { workerData } from 'piscina';
import { createPreprocessor, ImageRejected } from './image-preprocess.js';
import type { BatchResult, ImageItem, ItemError, LaneResult, LaneTask } from './protocol.js';
import { createSession, l2NormalizeRows, lowerThreadPriority } from './session.js';
import type { ImageWorkerData } from './protocol.js';

const data = workerData as ImageWorkerData;
// Below the text lane and the main thread: under CPU pressure images wait and text does not.
lowerThreadPriority(data.nice, 'image');
// libvips would otherwise start a thread per core in every worker, outside the lane's budget, and
// cache decoded images nobody asks for twice (the embedding cache does that job).
sharp.concurrency(data.intraOpThreads);
sharp.cache(false);

const session = await createSession(data.onnxPath, data.intraOpThreads, data.provider);
const preprocessor = createPreprocessor(data.preprocess, data.maxPixels);
const itemFloats = 3 * preprocessor.height * preprocessor.width;

async function embedBatch(batchId: number, items: readonly ImageItem[]): Promise<BatchResult> {
  const started = performance.now();
  const dims = data.dims;
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
  if (good.length > 0) {
    const shape = [good.length, 3, preprocessor.height, preprocessor.width];
    const output = await session.run({ pixel_values: session.tensor('float32', pixels.subarray(0, good.length * itemFloats), shape) });
    const embeds = output['image_embeds'];
    if (!embeds || embeds.length !== good.length * dims) {
      throw new Error(`image model returned ${embeds?.length ?? 'no'} image_embeds values, expected ${good.length * dims}. This is a bug or a wrong model.`);
    }
    good.forEach((index, row) => {
      const vector = vectors.subarray(index * dims, (index + 1) * dims);
      vector.set(embeds.subarray(row * dims, (row + 1) * dims));
      if (items[index]!.normalize) l2NormalizeRows(vector, dims);
    });
  }
  return { type: 'batch-result', batchId, vectors, dims, tokens, errors, paddedTokens: good.length, inferenceMs: performance.now() - started };
}

/** A 64×64 grey PNG, made here so warm-up needs no file and exercises the whole decode path. */
const warmupImage = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 128, g: 128, b: 128 } } }).png().toBuffer();

export default async function run(task: LaneTask): Promise<LaneResult> {
  switch (task.type) {
    case 'image-batch':
      return embedBatch(task.batchId, task.items);
    case 'warmup': {
      const result = await embedBatch(task.batchId, [{ bytes: warmupImage, normalize: true }]);
      if (result.errors.length > 0) throw new Error(`warm-up image was refused: ${result.errors[0]!.message}. This is a bug.`);
      return { type: 'warmup-result', batchId: task.batchId, dims: result.dims };
    }
    case 'text-batch':
      throw new Error('an image worker got a text batch. This is a bug.');
  }
}
