// What src/ offers the transports in server/: the request flow, its errors, metrics and logging.
// The entry point (main.ts) is not exported: it wires everything and nothing imports it.
export { ERROR_CODES, LaneStormedError, TwinlaneError, asTwinlaneError } from './errors.js';
export type { ErrorCode, OpenAiErrorType } from './errors.js';
export { CancelSource } from './cancel.js';
export { Metrics } from './metrics.js';
export type { RequestLane } from './metrics.js';
export { Orchestrator } from './orchestrator.js';
export type {
  EmbedInput,
  EmbedResult,
  ImageEmbedRequest,
  MixedEmbedRequest,
  RequestPolicy,
  TextEmbedRequest,
  TokenizeResult,
} from './orchestrator.js';
export type { OffsetUnit } from './tokenize.js';
export type { ImageInput } from './image-bytes.js';
export type { Readiness } from './readiness.js';
export type { ModelRegistry, ServedModel, TextTower } from './registry.js';
export type { EmbedStream, StreamSink } from './stream.js';
export type { Config } from './config.js';
export { ApiKeys } from './auth.js';
export type { AuthFailure } from './auth.js';
export { RateLimiter } from './rate-limit.js';
export type { RateDecision, RateLimitObserver, RateStore, SharedBucketStore } from './rate-limit.js';
export { log } from './log.js';
