// The one message protocol between a lane (main thread) and its workers. Every task and result is
// a tagged union member carrying the batch id, so a reply can never be matched to the wrong batch.

/** What a text worker needs to load its model; sent once as piscina's workerData. */
export interface TextWorkerData {
  readonly kind: 'text';
  readonly modelDir: string;
  readonly onnxPath: string;
  readonly dims: number;
  readonly maxTokens: number;
  readonly pooling: 'mean' | 'cls';
  readonly intraOpThreads: number;
  readonly provider: { readonly name: 'cpu' | 'cuda'; readonly deviceId: number };
}

export interface TextItem {
  readonly text: string;
  readonly normalize: boolean;
  /** false: texts over the model's max tokens fail with `input_too_long` instead of being cut. */
  readonly truncate: boolean;
}

export interface TextBatchTask {
  readonly type: 'text-batch';
  readonly batchId: number;
  readonly items: readonly TextItem[];
}

export interface WarmupTask {
  readonly type: 'warmup';
  readonly batchId: number;
}

export type LaneTask = TextBatchTask | WarmupTask;

/** Per-item failure codes a worker may report; each maps to an error code of SPEC.md §4. */
export type ItemErrorCode = 'input_too_long';

export interface ItemError {
  readonly index: number;
  readonly code: ItemErrorCode;
  readonly message: string;
}

export interface BatchResult {
  readonly type: 'batch-result';
  readonly batchId: number;
  /** Row-major [items × dims]; rows of failed items are zero. Transferred, not copied. */
  readonly vectors: Float32Array;
  readonly dims: number;
  /** Tokens per item after truncation, special tokens included (what OpenAI's usage counts). */
  readonly tokens: Int32Array;
  readonly errors: readonly ItemError[];
  /** Padded tokens of the ONNX call (items × longest), for batch metrics. */
  readonly paddedTokens: number;
  readonly inferenceMs: number;
}

export interface WarmupResult {
  readonly type: 'warmup-result';
  readonly batchId: number;
  readonly dims: number;
}

export type LaneResult = BatchResult | WarmupResult;
