// The one message protocol between a lane (main thread) and its workers. Every task and result is
// a tagged union member carrying the batch id, so a reply can never be matched to the wrong batch.
import type { FaultSpec } from './faults.js';

/**
 * How a text model turns tokens into a vector: mean or CLS pooling of `last_hidden_state`
 * (sentence-transformers), or `graph`: the model pools itself and answers `text_embeds` (CLIP's text
 * tower, at the end-of-text token).
 */
export type TextPooling = 'mean' | 'cls' | 'graph';

/** One text model of a lane, as its workers load it (a worker holds a session per model). */
export interface TextWorkerModel {
  /** For messages only; items name their model by its position in the lane's list. */
  readonly id: string;
  readonly modelDir: string;
  readonly onnxPath: string;
  readonly dims: number;
  readonly maxTokens: number;
  readonly pooling: TextPooling;
}

/** What a text worker needs to load its models; sent once as piscina's workerData. */
export interface TextWorkerData {
  readonly kind: 'text';
  readonly models: readonly TextWorkerModel[];
  /** Linux nice value for the worker's threads. */
  readonly nice: number;
  readonly intraOpThreads: number;
  readonly provider: { readonly name: 'cpu' | 'cuda'; readonly deviceId: number };
  /** Test-only fault injection (lanes/faults.ts); empty in production. */
  readonly faults: readonly FaultSpec[];
}

/** sharp's resampling kernels that stand for PIL's `resample` codes in preprocessor_config.json. */
export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'lanczos3';

/**
 * Image preprocessing, as the model's preprocessor_config.json says (transformers' CLIPImageProcessor
 * order: convert to RGB → resize → centre crop → rescale → normalise). The output size is fixed (the
 * crop, else an exact resize), so that images of any shape batch into one tensor.
 */
export interface ImagePreprocess {
  /** `size`: the shortest edge scaled to a length (aspect kept), or an exact height × width; null when do_resize is false. */
  readonly resize: { readonly shortestEdge: number } | { readonly height: number; readonly width: number } | null;
  readonly kernel: ResizeKernel;
  /** `crop_size`; null when do_center_crop is false. */
  readonly crop: { readonly height: number; readonly width: number } | null;
  /** Multiplies 0–255 values (1 when do_rescale is false). */
  readonly rescaleFactor: number;
  /** Per channel; [0,0,0] and [1,1,1] when do_normalize is false. */
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
  /** true: alpha is composited onto white, as transformers' convert_to_rgb does; false: alpha is dropped. */
  readonly convertRgb: boolean;
}

/** One image model of a lane, as its workers load it. */
export interface ImageWorkerModel {
  readonly id: string;
  readonly onnxPath: string;
  readonly dims: number;
  readonly preprocess: ImagePreprocess;
}

/** What an image worker needs to load its models; sent once as piscina's workerData. */
export interface ImageWorkerData {
  readonly kind: 'image';
  readonly models: readonly ImageWorkerModel[];
  /** Images with more pixels are refused from their header, before any pixel is decoded. */
  readonly maxPixels: number;
  /** Linux nice value for the worker's threads (and the ONNX and libvips threads they start). */
  readonly nice: number;
  readonly intraOpThreads: number;
  readonly provider: { readonly name: 'cpu' | 'cuda'; readonly deviceId: number };
  /** Test-only fault injection (lanes/faults.ts); empty in production. */
  readonly faults: readonly FaultSpec[];
}

export interface ImageItem {
  /** The item's model: its position in the lane's model list. */
  readonly model: number;
  /** Encoded image bytes (JPEG, PNG, WebP, GIF, AVIF, …); decoded only inside the worker. */
  readonly bytes: Uint8Array;
  readonly normalize: boolean;
}

export interface ImageBatchTask {
  readonly type: 'image-batch';
  readonly batchId: number;
  /** Every item's model: a batch never mixes models. */
  readonly model: number;
  readonly items: readonly ImageItem[];
}

export interface TextItem {
  /** The item's model: its position in the lane's model list. */
  readonly model: number;
  readonly text: string;
  readonly normalize: boolean;
  /** false: texts over the model's max tokens fail with `input_too_long` instead of being cut. */
  readonly truncate: boolean;
}

export interface TextBatchTask {
  readonly type: 'text-batch';
  readonly batchId: number;
  /** Every item's model: a batch never mixes models. */
  readonly model: number;
  readonly items: readonly TextItem[];
}

/** Runs every model of the worker once, so the first real request does not pay for lazy initialisation. */
export interface WarmupTask {
  readonly type: 'warmup';
  readonly batchId: number;
}

export type LaneTask = TextBatchTask | ImageBatchTask | WarmupTask;

/** Per-item failure codes a worker may report; each maps to an error code of SPEC.md §4. */
export type ItemErrorCode = 'input_too_long' | 'unsupported_image' | 'image_too_large';

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
  /** Text: tokens per item after truncation, special tokens included (what OpenAI's usage counts). Images: 0. */
  readonly tokens: Int32Array;
  readonly errors: readonly ItemError[];
  /** Positions the model really ran over: text, the padded tokens of its ONNX calls (rows × longest, summed over its calls); images, the images. */
  readonly paddedTokens: number;
  /** The worker's whole time for the batch: prepareMs + modelMs + pooling and normalising. */
  readonly inferenceMs: number;
  /** Text: tokenising and truncating. Images: decoding and preprocessing. */
  readonly prepareMs: number;
  /** Inside the model runtime's run calls (every call of a text batch). */
  readonly modelMs: number;
  /** Model runtime run calls made for the batch: a text batch on a CPU runs as several (lanes/call-plan.ts). */
  readonly calls: number;
}

export interface WarmupResult {
  readonly type: 'warmup-result';
  readonly batchId: number;
  /** Each model's output dims, in the lane's order. */
  readonly dims: readonly number[];
}

export type LaneResult = BatchResult | WarmupResult;
