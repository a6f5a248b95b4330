// Bulk embedding jobs: OpenAI's Files and Batches API on the files directory, with chunks queued in
// process or on BullMQ (Redis) so that every instance sharing the directory and the Redis shares the
// work. The HTTP routes live in server/routes/batch.ts; a line's embedding is the server's own
// /v1/embeddings code, handed in as a LineExecutor.
export { FileStore, type FileObject, type FilePurpose } from './files.js';
export { BATCH_STATUSES, BatchState, type BatchObject, type BatchStatus, type RequestCounts } from './state.js';
export {
  BatchError,
  BatchService,
  type BatchObserver,
  type BatchServiceOptions,
  type ChunkQueue,
  type LineAnswer,
  type LineExecutor,
} from './service.js';
export { BullQueue, LocalQueue, type BullQueueOptions } from './queue.js';
export type { LineError, ValidationLimits } from './validate.js';
