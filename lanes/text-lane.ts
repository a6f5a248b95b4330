// The text lane: a Lane whose items are texts of any of its models, costed in (estimated) tokens for
// batching. Its workers each hold every model's tokenizer and session.
import { Lane, workerPath, type LaneObserver, type WorkerLimits } from './lane.js';
import type { TextItem, TextWorkerData, TextWorkerModel } from './protocol.js';
import { tokenUpperBound, type TokenBound } from './token-bound.js';

/** A model of the lane: what its workers load, and how its token counts are bounded. */
export interface TextLaneModel extends TextWorkerModel {
  readonly tokenBound: TokenBound;
}

export interface TextLaneOptions {
  readonly models: readonly TextLaneModel[];
  readonly threads: number;
  readonly intraOpThreads: number;
  readonly maxQueue: number;
  readonly maxBatchItems: number;
  readonly maxBatchTokens: number;
  readonly nice: number;
  /** The share of the workers batch jobs may hold while live traffic is about (the batcher's bulkShare). */
  readonly bulkShare?: number;
  readonly provider: TextWorkerData['provider'];
  readonly observer?: LaneObserver;
  /** Each worker's heap limit and (tests only) its injected faults. */
  readonly worker: WorkerLimits;
}

export type TextLane = Lane<TextItem>;

export function createTextLane(options: TextLaneOptions): TextLane {
  const { models } = options;
  if (models.length === 0) throw new Error('a text lane needs at least one model. This is a bug.');
  const workerData: TextWorkerData = {
    kind: 'text',
    models: models.map(({ id, modelDir, onnxPath, dims, maxTokens, pooling }) => ({
      id,
      modelDir,
      onnxPath,
      dims,
      maxTokens,
      pooling,
    })),
    nice: options.nice,
    intraOpThreads: options.intraOpThreads,
    provider: options.provider,
    faults: options.worker.faults,
  };
  return new Lane<TextItem>({
    name: 'text',
    workerFile: workerPath('text-worker'),
    workerData,
    threads: options.threads,
    maxHeapMb: options.worker.maxHeapMb,
    maxQueue: options.maxQueue,
    ...(options.bulkShare === undefined ? {} : { bulkShare: options.bulkShare }),
    maxBatchItems: options.maxBatchItems,
    maxBatchCost: options.maxBatchTokens,
    // Tokenising happens in the worker, so the batcher bounds padded tokens by the model's bound.
    cost: (item) => {
      const model = models[item.model]!;
      return Math.min(tokenUpperBound(model.tokenBound, item.text), model.maxTokens);
    },
    models: models.map((m) => m.id),
    model: (item) => item.model,
    task: (batchId, items) => ({ type: 'text-batch', batchId, model: items[0]!.model, items }),
    ...(options.observer ? { observer: options.observer } : {}),
  });
}
