// The image lane: a Lane whose items are encoded images of any of its models, each costing one slot
// of a batch. Its workers each hold every model's session.
import { Lane, workerPath, type LaneObserver, type WorkerLimits } from './lane.js';
import type { ImageItem, ImageWorkerData, ImageWorkerModel } from './protocol.js';

export interface ImageLaneOptions {
  readonly models: readonly ImageWorkerModel[];
  readonly threads: number;
  readonly intraOpThreads: number;
  readonly maxQueue: number;
  readonly maxBatchItems: number;
  readonly maxPixels: number;
  readonly nice: number;
  /** The share of the workers batch jobs may hold while live traffic is about (the batcher's bulkShare). */
  readonly bulkShare?: number;
  readonly provider: ImageWorkerData['provider'];
  readonly observer?: LaneObserver;
  /** Each worker's heap limit and (tests only) its injected faults. */
  readonly worker: WorkerLimits;
}

export type ImageLane = Lane<ImageItem>;

export function createImageLane(options: ImageLaneOptions): ImageLane {
  const { models } = options;
  if (models.length === 0) throw new Error('an image lane needs at least one model. This is a bug.');
  const workerData: ImageWorkerData = {
    kind: 'image',
    models: models.map(({ id, onnxPath, dims, preprocess }) => ({ id, onnxPath, dims, preprocess })),
    maxPixels: options.maxPixels,
    nice: options.nice,
    intraOpThreads: options.intraOpThreads,
    provider: options.provider,
    faults: options.worker.faults,
  };
  return new Lane<ImageItem>({
    name: 'image',
    workerFile: workerPath('image-worker'),
    workerData,
    threads: options.threads,
    maxHeapMb: options.worker.maxHeapMb,
    maxQueue: options.maxQueue,
    ...(options.bulkShare === undefined ? {} : { bulkShare: options.bulkShare }),
    maxBatchItems: options.maxBatchItems,
    maxBatchCost: options.maxBatchItems,
    cost: () => 1,
    models: models.map((m) => m.id),
    model: (item) => item.model,
    task: (batchId, items) => ({ type: 'image-batch', batchId, model: items[0]!.model, items }),
    ...(options.observer ? { observer: options.observer } : {}),
  });
}
