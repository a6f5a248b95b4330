// OpenAI's Batch API over the files directory: create (validate up front, split into chunks, queue
// them), read, list, cancel; and the chunk work itself, which whichever instance takes a chunk off
// the queue runs. A chunk is idempotent: its output lines depend only on its input lines (ids are
// derived from the batch and custom_id), it writes its output before its marker, and a chunk whose
// marker exists is not run again, so a retried or re-delivered chunk never doubles a line.
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { FileStore } from './files.js';
import { writeAtomically } from './files.js';
import { isFinal, type BatchObject, type BatchState, type ChunkResult } from './state.js';
import { validateBatchFile, type BatchLine, type LineError, type ValidationLimits } from './validate.js';

/** What one line's request answers, as /v1/embeddings would over HTTP. */
export interface LineAnswer {
  readonly statusCode: number;
  readonly body: unknown;
  /** Set on a transient refusal (429, 503): the line is tried again after this many seconds. */
  readonly retryAfterSeconds?: number | undefined;
}

export type LineExecutor = (body: Readonly<Record<string, unknown>>) => Promise<LineAnswer>;

/** Where chunks wait for a worker: in process, or BullMQ on Redis (batch/queue.ts). */
export interface ChunkQueue {
  add(batchId: string, chunks: readonly number[]): Promise<void>;
  /** Chunks waiting or running. */
  depth(): Promise<number>;
  close(): Promise<void>;
}

export interface BatchObserver {
  onBatchStatus(status: BatchObject['status']): void;
  onBatchLines(outcome: 'completed' | 'failed', count: number): void;
  onChunkRetry(): void;
}

export interface BatchServiceOptions {
  readonly files: FileStore;
  readonly state: BatchState;
  readonly execute: LineExecutor;
  readonly limits: ValidationLimits;
  readonly chunkLines: number;
  /** Lines of one chunk in flight at once. */
  readonly lineConcurrency: number;
  readonly observer?: BatchObserver;
  /** Unix seconds; the system clock unless a test moves time on. */
  readonly clock?: () => number;
}

export class BatchError extends Error {
  constructor(
    readonly code: 'file_not_found' | 'batch_not_found' | 'invalid_request' | 'batch_not_cancellable',
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = 'BatchError';
  }
}

const ENDPOINT = '/v1/embeddings';
const WINDOW_SECONDS = 24 * 3600;
const TRANSIENT_TRIES = 20;
const MAX_PARSED_BATCHES = 4;
const systemClock = () => Math.floor(Date.now() / 1000);
/** Error lines of requests a cancelled or expired batch never ran, as OpenAI writes them. */
const NOT_RUN = {
  batch_cancelled: 'The batch was cancelled before this request was executed.',
  batch_expired: 'This request could not be executed before the completion window expired.',
} as const;

export class BatchService {
  readonly #o: BatchServiceOptions;
  #queue: ChunkQueue | null = null;
  /** Parsed input files by batch, so chunks of one batch read and parse it once per instance. */
  readonly #lines = new Map<string, Promise<BatchLine[]>>();
  readonly #now: () => number;

  constructor(options: BatchServiceOptions) {
    this.#o = options;
    this.#now = options.clock ?? systemClock;
  }

  attach(queue: ChunkQueue): void {
    this.#queue = queue;
  }

  async create(request: {
    input_file_id: unknown;
    endpoint: unknown;
    completion_window: unknown;
    metadata?: unknown;
  }): Promise<BatchObject> {
    if (request.endpoint !== ENDPOINT)
      throw new BatchError(
        'invalid_request',
        `endpoint must be ${ENDPOINT} (got ${JSON.stringify(request.endpoint)}).`,
        'endpoint',
      );
    if (request.completion_window !== '24h')
      throw new BatchError('invalid_request', `completion_window must be "24h".`, 'completion_window');
    const fileId = typeof request.input_file_id === 'string' ? request.input_file_id : '';
    const file = await this.#o.files.get(fileId);
    if (!file || file.purpose !== 'batch')
      throw new BatchError(
        'file_not_found',
        `No batch input file ${JSON.stringify(request.input_file_id)}.`,
        'input_file_id',
      );
    const created = this.#now();
    const base: BatchObject = {
      id: `batch_${randomBytes(12).toString('hex')}`,
      object: 'batch',
      endpoint: ENDPOINT,
      errors: null,
      input_file_id: file.id,
      completion_window: '24h',
      status: 'validating',
      output_file_id: null,
      error_file_id: null,
      created_at: created,
      in_progress_at: null,
      expires_at: created + WINDOW_SECONDS,
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      request_counts: { total: 0, completed: 0, failed: 0 },
      metadata: metadataOf(request.metadata),
    };
    const content = (await this.#o.files.content(file.id)) ?? Buffer.alloc(0);
    const checked = validateBatchFile(content, ENDPOINT, this.#o.limits);
    if ('errors' in checked) return this.#failValidation(base, checked.errors);
    const lines = checked.lines.length;
    const chunks = Math.ceil(lines / this.#o.chunkLines);
    const batch: BatchObject = {
      ...base,
      status: 'in_progress',
      in_progress_at: this.#now(),
      request_counts: { total: lines, completed: 0, failed: 0 },
    };
    await this.#o.state.save(batch, { chunks, chunkLines: this.#o.chunkLines, lines });
    this.#o.observer?.onBatchStatus('in_progress');
    await this.#queue?.add(
      batch.id,
      Array.from({ length: chunks }, (_, i) => i),
    );
    return batch;
  }

  async #failValidation(base: BatchObject, errors: readonly LineError[]): Promise<BatchObject> {
    const failed: BatchObject = {
      ...base,
      status: 'failed',
      failed_at: this.#now(),
      errors: { object: 'list', data: errors },
    };
    await this.#o.state.save(failed, { chunks: 0, chunkLines: this.#o.chunkLines, lines: 0 });
    this.#o.observer?.onBatchStatus('failed');
    return failed;
  }

  async get(id: string): Promise<BatchObject> {
    const batch = await this.#o.state.get(id);
    if (!batch) throw new BatchError('batch_not_found', `No batch ${JSON.stringify(id)}.`);
    return batch;
  }

  /** Newest first, `limit` of them after the batch `after`, as OpenAI pages them. */
  async list(limit: number, after: string | undefined): Promise<{ data: BatchObject[]; has_more: boolean }> {
    const all = await this.#o.state.list();
    const start = after === undefined ? 0 : all.findIndex((b) => b.id === after) + 1;
    const data = all.slice(start, start + limit);
    return { data, has_more: start + limit < all.length };
  }

  async cancel(id: string): Promise<BatchObject> {
    const batch = await this.get(id);
    if (isFinal(batch.status) || batch.status === 'finalizing')
      throw new BatchError('batch_not_cancellable', `Batch ${id} is ${batch.status} and cannot be cancelled.`);
    await this.#o.state.requestCancel(id);
    return this.get(id);
  }

  /** Chunks not finished of every unfinished batch, queued again (a restart resumes here). */
  async resume(): Promise<number> {
    let queued = 0;
    for (const batch of await this.#o.state.unfinished()) {
      const plan = await this.#o.state.plan(batch.id);
      if (!plan) continue;
      const done = await this.#o.state.chunks(batch.id);
      const left = Array.from({ length: plan.chunks }, (_, i) => i).filter((i) => !done.has(i));
      if (left.length === 0) await this.#finalizeIfDone(batch.id);
      else await this.#queue?.add(batch.id, left);
      queued += left.length;
    }
    return queued;
  }

  #batchLines(batchId: string, inputFileId: string): Promise<BatchLine[]> {
    let lines = this.#lines.get(batchId);
    if (!lines) {
      lines = this.#o.files.content(inputFileId).then((content) => {
        const checked = validateBatchFile(content ?? Buffer.alloc(0), ENDPOINT, this.#o.limits);
        if ('errors' in checked) throw new Error(`batch ${batchId}'s input file changed after validation`);
        return checked.lines;
      });
      this.#lines.set(batchId, lines);
      // Kept for the few batches this instance is working on, not for every batch it ever saw.
      if (this.#lines.size > MAX_PARSED_BATCHES) this.#lines.delete(this.#lines.keys().next().value!);
    }
    return lines;
  }

  /** Runs chunk `chunk` of `batchId` unless it has run; finalises the batch after its last chunk. */
  async processChunk(batchId: string, chunk: number): Promise<void> {
    const { state } = this.#o;
    const files = state.chunkFiles(batchId, chunk);
    if (!(await state.isDone(batchId, chunk))) {
      const stored = await state.stored(batchId);
      if (!stored || isFinal(stored.batch.status)) return;
      const { batch, plan } = stored;
      const stop =
        (await state.cancelRequested(batchId)) !== null
          ? 'batch_cancelled'
          : batch.expires_at <= this.#now()
            ? 'batch_expired'
            : null;
      const result: ChunkResult = stop
        ? await this.#skipChunk(batch, chunk, plan.chunkLines, files, stop)
        : await this.#runChunk(batch, chunk, plan.chunkLines, files);
      await writeAtomically(files.done, JSON.stringify(result));
    }
    await this.#finalizeIfDone(batchId);
  }

  async #chunkLines(batch: BatchObject, chunk: number, chunkLines: number): Promise<BatchLine[]> {
    const lines = await this.#batchLines(batch.id, batch.input_file_id);
    return lines.slice(chunk * chunkLines, (chunk + 1) * chunkLines);
  }

  /** A chunk of a cancelled or expired batch: each of its lines goes to the error file, not run. */
  async #skipChunk(
    batch: BatchObject,
    chunk: number,
    chunkLines: number,
    files: { out: string; err: string },
    code: keyof typeof NOT_RUN,
  ): Promise<ChunkResult> {
    const lines = await this.#chunkLines(batch, chunk, chunkLines);
    // Emptied, not left alone: an earlier attempt of this chunk may have written lines before it died.
    await writeFile(files.out, '');
    await writeFile(files.err, lines.map((line) => notRunLine(batch.id, line, code)).join(''));
    return { completed: 0, failed: lines.length, skipped: true };
  }

  async #runChunk(
    batch: BatchObject,
    chunk: number,
    chunkLines: number,
    files: { out: string; err: string },
  ): Promise<ChunkResult> {
    const lines = await this.#chunkLines(batch, chunk, chunkLines);
    const answers = new Array<{ ok: boolean; text: string }>(lines.length);
    let next = 0;
    const worker = async () => {
      while (next < lines.length) {
        const i = next++;
        const answer = await this.#executeLine(lines[i]!);
        answers[i] = {
          ok: answer.statusCode >= 200 && answer.statusCode < 300,
          text: outputLine(batch.id, lines[i]!, answer),
        };
      }
    };
    await Promise.all(Array.from({ length: this.#o.lineConcurrency }, worker));
    const ok = answers.filter((a) => a.ok).map((a) => a.text);
    const bad = answers.filter((a) => !a.ok).map((a) => a.text);
    await writeFile(files.out, ok.join(''));
    await writeFile(files.err, bad.join(''));
    this.#o.observer?.onBatchLines('completed', ok.length);
    this.#o.observer?.onBatchLines('failed', bad.length);
    return { completed: ok.length, failed: bad.length, skipped: false };
  }

  /** One line's answer; a transient refusal (live traffic first, a worker being replaced) waits and tries again. */
  async #executeLine(line: BatchLine): Promise<LineAnswer> {
    for (let attempt = 1; ; attempt++) {
      const answer = await this.#o.execute(line.body);
      if (answer.retryAfterSeconds === undefined) return answer;
      if (attempt >= TRANSIENT_TRIES)
        throw new Error(`line ${line.line} was refused ${attempt} times; the chunk is retried`);
      this.#o.observer?.onChunkRetry();
      await new Promise((r) => setTimeout(r, Math.min(5, answer.retryAfterSeconds!) * 1000));
    }
  }

  async #finalizeIfDone(batchId: string): Promise<void> {
    const { state, files } = this.#o;
    const stored = await state.stored(batchId);
    if (!stored || isFinal(stored.batch.status)) return;
    const { batch, plan } = stored;
    // Every chunk has its marker: a cancelled or expired batch's chunks not yet run are skipped (at
    // once) when a worker takes them, so it finalises with the part that was finished.
    if ((await state.doneCount(batchId)) < plan.chunks) return;
    const cancelledAt = await state.cancelRequested(batchId);
    const cancelling = cancelledAt !== null;
    if (!(await state.claimFinalize(batchId))) return;
    const done = await state.chunks(batchId);
    const parts = await Promise.all(
      [...done.keys()]
        .sort((a, b) => a - b)
        .map(async (c) => {
          const f = state.chunkFiles(batchId, c);
          return {
            out: await readFile(f.out, 'utf8').catch(() => ''),
            err: await readFile(f.err, 'utf8').catch(() => ''),
          };
        }),
    );
    const out = parts.map((p) => p.out).join('');
    const err = parts.map((p) => p.err).join('');
    const completed = [...done.values()].reduce((n, c) => n + c.completed, 0);
    const failed = [...done.values()].reduce((n, c) => n + c.failed, 0);
    const expired = !cancelling && [...done.values()].some((c) => c.skipped);
    const output = out === '' ? null : await files.create('batch_output', `${batchId}_output.jsonl`, Buffer.from(out));
    const errors = err === '' ? null : await files.create('batch_output', `${batchId}_error.jsonl`, Buffer.from(err));
    const at = this.#now();
    const status = cancelling ? 'cancelled' : expired ? 'expired' : 'completed';
    const final: BatchObject = {
      ...batch,
      status,
      output_file_id: output?.id ?? null,
      error_file_id: errors?.id ?? null,
      finalizing_at: batch.finalizing_at ?? at,
      cancelling_at: cancelledAt,
      completed_at: status === 'completed' ? at : null,
      cancelled_at: status === 'cancelled' ? at : null,
      expired_at: status === 'expired' ? at : null,
      request_counts: { total: plan.lines, completed, failed },
    };
    await state.save(final, plan);
    this.#lines.delete(batchId);
    this.#o.observer?.onBatchStatus(status);
  }
}

function metadataOf(value: unknown): Readonly<Record<string, string>> | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  return Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/** A line's output id: derived from the batch and custom_id, so a chunk run twice writes the same line. */
function lineId(batchId: string, line: BatchLine): string {
  return `batch_req_${createHash('sha256').update(`${batchId}\n${line.customId}`).digest('hex').slice(0, 24)}`;
}

/** One output line as OpenAI writes them: `error` is null for a 2xx, the body's error otherwise. */
function outputLine(batchId: string, line: BatchLine, answer: LineAnswer): string {
  const id = lineId(batchId, line);
  const ok = answer.statusCode >= 200 && answer.statusCode < 300;
  const error = ok ? null : ((answer.body as { error?: { code?: string; message?: string } }).error ?? null);
  return `${JSON.stringify({
    id,
    custom_id: line.customId,
    response: { status_code: answer.statusCode, request_id: id, body: answer.body },
    error: error && { code: error.code ?? 'error', message: error.message ?? '' },
  })}\n`;
}

/** The error line of a request never run: no response, OpenAI's batch_cancelled or batch_expired. */
function notRunLine(batchId: string, line: BatchLine, code: keyof typeof NOT_RUN): string {
  return `${JSON.stringify({
    id: lineId(batchId, line),
    custom_id: line.customId,
    response: null,
    error: { code, message: NOT_RUN[code] },
  })}\n`;
}
