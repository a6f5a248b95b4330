// The image lane: a Lane whose items are encoded images, each costing one slot of a batch.
import { Lane, workerPath, type LaneObserver } from './lane.js';
import type { ImageItem, ImagePreprocess, ImageWorkerData } from './protocol.js';

export interface ImageLaneOptions {
  readonly model: { readonly onnxPath: string; readonly dims: number; readonly preprocess: ImagePreprocess };
  readonly threads: number;
  readonly intraOpThreads: number;
  readonly maxQueue: number;
  readonly maxBatchItems: number;
  readonly maxPixels: number;
  readonly nice: number;
  readonly provider: ImageWorkerData['provider'];
  readonly observer?: LaneObserver;
}

export type ImageLane = Lane<ImageItem>;

export function createImageLane(options: ImageLaneOptions): ImageLane {
  const workerData: ImageWorkerData = {
    kind: 'image',
    onnxPath: options.model.onnxPath,
    dims: options.model.dims,
    preprocess: options.model.preprocess,
    maxPixels: options.maxPixels,
    nice: options.nice,
    intraOpThreads: options.intraOpThreads,
    provider: options.provider,
  };
  return new Lane<ImageItem>({
    name: 'image',
    workerFile: workerPath('image-worker'),
    workerData,
    threads: options.threads,
    maxQueue: options.maxQueue,
    maxBatchItems: options.maxBatchItems,
    maxBatchCost: options.maxBatchItems,
    cost: () => 1,
    task: (batchId, items) => ({ type: 'image-batch', batchId, items }),
    ...(options.observer ? { observer: options.observer } : {}),
  });
}
