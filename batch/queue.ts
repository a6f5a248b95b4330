// Where batch chunks wait for a worker. With Redis, BullMQ: every instance with the batch worker on
// takes chunks from one queue, a chunk whose instance dies is taken again once its lock lapses
// (BullMQ's stalled-job check), failures are retried with exponential back-off, and the job id
// (batch and chunk) keeps a chunk queued once however often it is added. Without Redis, an
// in-process queue with the same retry policy; the files directory holds what a restart resumes.
import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { ChunkQueue } from './service.js';

export type RunChunk = (batchId: string, chunk: number) => Promise<void>;

const MAX_BACKOFF_MS = 30_000;
const backoffMs = (attempt: number) => Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (attempt - 1));

/** In process: `concurrency` chunks at once, each failure retried after 1 s, 2 s, 4 s … (at most 30 s). */
export class LocalQueue implements ChunkQueue {
  readonly #run: RunChunk;
  readonly #concurrency: number;
  readonly #onRetry: () => void;
  readonly #pending: { batchId: string; chunk: number; attempt: number }[] = [];
  readonly #queued = new Set<string>();
  readonly #running = new Set<Promise<void>>();
  #closed = false;

  constructor(run: RunChunk, concurrency: number, onRetry: () => void) {
    this.#run = run;
    this.#concurrency = concurrency;
    this.#onRetry = onRetry;
  }

  async depth(): Promise<number> {
    return this.#pending.length + this.#running.size;
  }

  async add(batchId: string, chunks: readonly number[]): Promise<void> {
    for (const chunk of chunks) {
      const key = `${batchId}-${chunk}`;
      if (this.#queued.has(key)) continue;
      this.#queued.add(key);
      this.#pending.push({ batchId, chunk, attempt: 1 });
    }
    this.#pump();
  }

  #pump(): void {
    while (!this.#closed && this.#running.size < this.#concurrency && this.#pending.length > 0) {
      const job = this.#pending.shift()!;
      const running: Promise<void> = this.#run(job.batchId, job.chunk).then(
        () => void this.#queued.delete(`${job.batchId}-${job.chunk}`),
        () => {
          this.#onRetry();
          setTimeout(() => {
            this.#pending.push({ ...job, attempt: job.attempt + 1 });
            this.#pump();
          }, backoffMs(job.attempt)).unref();
        },
      );
      this.#running.add(running);
      void running.finally(() => {
        this.#running.delete(running);
        this.#pump();
      });
    }
  }

  /** Stops taking chunks and waits for those running (a restart resumes the rest). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#running);
  }
}

export interface BullQueueOptions {
  readonly redisUrl: string;
  /** BullMQ's key prefix: instances sharing batches share it. */
  readonly prefix: string;
  /** Run a worker here (false: this instance only queues and reports). */
  readonly worker: boolean;
  readonly concurrency: number;
  /** How long a chunk stays locked to its worker without a renewal: an instance that died loses its chunks after this. */
  readonly lockMs: number;
}

const QUEUE_NAME = 'twinlane-batch-chunks';
const CLOSE_WAIT_MS = 5000;
const ATTEMPTS = 10;

/** BullMQ opens its own connections from these (workers need no per-command retry limit). */
function connectionOf(redisUrl: string, failFast: boolean): ConnectionOptions {
  const url = new URL(redisUrl);
  return {
    ...(failFast ? { enableOfflineQueue: false } : {}),
    host: url.hostname,
    port: Number(url.port || 6379),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    db: Number(url.pathname.slice(1) || 0),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: failFast ? 1 : null,
  };
}

interface ChunkJob {
  readonly batchId: string;
  readonly chunk: number;
}

export class BullQueue implements ChunkQueue {
  readonly #queue: Queue;
  readonly #worker: Worker<ChunkJob> | null;

  constructor(options: BullQueueOptions, run: RunChunk, onRetry: () => void) {
    // The queue side fails fast while Redis is away (a /metrics scrape or a batch create must not
    // hang); only the worker's blocking connection waits for Redis to come back.
    this.#queue = new Queue(QUEUE_NAME, {
      connection: connectionOf(options.redisUrl, true),
      prefix: options.prefix,
    });
    this.#queue.on('error', () => undefined);
    this.#worker = options.worker
      ? new Worker<ChunkJob>(QUEUE_NAME, (job: Job<ChunkJob>) => run(job.data.batchId, job.data.chunk), {
          connection: connectionOf(options.redisUrl, false),
          prefix: options.prefix,
          concurrency: options.concurrency,
          lockDuration: options.lockMs,
          stalledInterval: Math.max(1000, Math.floor(options.lockMs / 2)),
          maxStalledCount: ATTEMPTS,
        })
      : null;
    this.#worker?.on('failed', () => onRetry());
    this.#worker?.on('error', () => undefined);
  }

  async add(batchId: string, chunks: readonly number[]): Promise<void> {
    await this.#queue.addBulk(
      chunks.map((chunk) => ({
        name: 'chunk',
        data: { batchId, chunk },
        opts: {
          jobId: `${batchId}-${chunk}`,
          attempts: ATTEMPTS,
          backoff: { type: 'exponential', delay: 1000 },
          removeOnComplete: true,
          removeOnFail: 1000,
        },
      })),
    );
  }

  #lastDepth = 0;

  /** Waiting and active chunks, across every instance; the last known count when Redis does not answer within 250 ms. */
  async depth(): Promise<number> {
    const counting = this.#queue.getJobCounts('waiting', 'active', 'delayed').then((counts: Record<string, number>) => {
      this.#lastDepth = Object.values(counts).reduce((a, b) => a + b, 0);
      return this.#lastDepth;
    });
    const late = new Promise<number>((resolve) => setTimeout(() => resolve(this.#lastDepth), 250).unref());
    return Promise.race([counting.catch(() => this.#lastDepth), late]);
  }

  /** Lets running chunks finish for up to CLOSE_WAIT_MS, then lets go (a chunk cut short is retried elsewhere); never waits on a Redis that is away. */
  async close(): Promise<void> {
    const closing = (async () => {
      await this.#worker?.close();
      await this.#queue.close();
    })().catch(() => undefined);
    await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref())]);
  }
}
