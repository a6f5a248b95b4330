// The text lane: a Lane whose items are texts, costed in (estimated) tokens for batching.
import { Lane, workerPath, type LaneObserver } from './lane.js';
import type { TextItem, TextWorkerData } from './protocol.js';

export interface TextLaneOptions {
  readonly model: { readonly dir: string; readonly onnxPath: string; readonly dims: number; readonly maxTokens: number; readonly pooling: 'mean' | 'cls' };
  readonly threads: number;
  readonly intraOpThreads: number;
  readonly maxQueue: number;
  readonly maxBatchItems: number;
  readonly maxBatchTokens: number;
  readonly nice: number;
  readonly provider: TextWorkerData['provider'];
  readonly observer?: LaneObserver;
}

export type TextLane = Lane<TextItem>;

export function createTextLane(options: TextLaneOptions): TextLane {
  const { model } = options;
  const workerData: TextWorkerData = {
    kind: 'text',
    modelDir: model.dir,
    onnxPath: model.onnxPath,
    dims: model.dims,
    maxTokens: model.maxTokens,
    pooling: model.pooling,
    nice: options.nice,
    intraOpThreads: options.intraOpThreads,
    provider: options.provider,
  };
  return new Lane<TextItem>({
    name: 'text',
    workerFile: workerPath('text-worker'),
    workerData,
    threads: options.threads,
    maxQueue: options.maxQueue,
    maxBatchItems: options.maxBatchItems,
    maxBatchCost: options.maxBatchTokens,
    // Tokenising happens in the worker, so the batcher bounds padded tokens by an upper bound
    // instead: WordPiece emits at most one token per UTF-16 unit, plus [CLS] and [SEP].
    cost: (item) => Math.min(item.text.length + 2, model.maxTokens),
    task: (batchId, items) => ({ type: 'text-batch', batchId, items }),
    ...(options.observer ? { observer: options.observer } : {}),
  });
}
