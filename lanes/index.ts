// The lanes' public surface: model execution on isolated worker pools. Nothing outside lanes/ may
// import onnxruntime-node or reach into these files directly.
export { Lane, LaneFailedError, LaneRejectedError } from './lane.js';
export type { WorkerLimits } from './lane.js';
export type { LaneHandle, LaneName, LaneObserver, LaneRequest, LaneStats, RejectReason } from './lane.js';
export { DEFAULT_BULK_SHARE, PRIORITIES } from './batcher.js';
export type {
  BatchInfo,
  WorkerReport,
  DropReason,
  ItemOutcome,
  ItemTiming,
  Priority,
  SubmitOptions,
  SubmitOutcome,
} from './batcher.js';
export type { ItemError, ItemErrorCode, TextItem, TextPooling } from './protocol.js';
export { parseFaults } from './faults.js';
export type { FaultSpec, WorkerFault } from './faults.js';
export { createTextLane } from './text-lane.js';
export type { TextLane, TextLaneModel, TextLaneOptions } from './text-lane.js';
export { tokenUpperBound } from './token-bound.js';
export type { TokenBound } from './token-bound.js';
export { createImageLane } from './image-lane.js';
export type { ImageLane, ImageLaneOptions } from './image-lane.js';
export type { ImageItem, ImagePreprocess, ImageWorkerModel, ResizeKernel } from './protocol.js';
export { createTokenCounter } from './token-counter.js';
export type { TokenCounter } from './token-counter.js';
export { checkProvider, describeProbeFailure, missingLibraries, ProviderUnavailableError } from './provider-check.js';
