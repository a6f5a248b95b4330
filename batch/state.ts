// A batch's state in the files directory, shared by every instance that shares the directory:
// `batches/<id>.json` is written once when the batch is created and once when it is finalised (by
// the one instance that claims it with an exclusive create); progress in between is the chunk
// markers `work/<id>/<n>.done` (written after the chunk's output, so a marker means its output is
// whole) and a `cancel` marker. No file is ever updated by two writers, so no update is lost.
import { mkdir, open, readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeAtomically } from './files.js';
import type { LineError } from './validate.js';

/** OpenAI's batch statuses. */
export const BATCH_STATUSES = [
  'validating',
  'failed',
  'in_progress',
  'finalizing',
  'completed',
  'expired',
  'cancelling',
  'cancelled',
] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

export interface RequestCounts {
  readonly total: number;
  readonly completed: number;
  readonly failed: number;
}

/** OpenAI's batch object. */
export interface BatchObject {
  readonly id: string;
  readonly object: 'batch';
  readonly endpoint: string;
  readonly errors: { readonly object: 'list'; readonly data: readonly LineError[] } | null;
  readonly input_file_id: string;
  readonly completion_window: string;
  readonly status: BatchStatus;
  readonly output_file_id: string | null;
  readonly error_file_id: string | null;
  readonly created_at: number;
  readonly in_progress_at: number | null;
  readonly expires_at: number;
  readonly finalizing_at: number | null;
  readonly completed_at: number | null;
  readonly failed_at: number | null;
  readonly expired_at: number | null;
  readonly cancelling_at: number | null;
  readonly cancelled_at: number | null;
  readonly request_counts: RequestCounts;
  readonly metadata: Readonly<Record<string, string>> | null;
}

/** What the runner needs besides the object: how the lines are split. */
export interface BatchPlan {
  readonly chunks: number;
  readonly chunkLines: number;
  readonly lines: number;
}

export interface Stored {
  readonly batch: BatchObject;
  readonly plan: BatchPlan;
}

export interface ChunkResult {
  readonly completed: number;
  readonly failed: number;
  /** Not run: the batch was cancelled or expired first. */
  readonly skipped: boolean;
}

const FINAL: readonly BatchStatus[] = ['failed', 'completed', 'expired', 'cancelled'];
export const isFinal = (status: BatchStatus): boolean => FINAL.includes(status);

export class BatchState {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  #meta(id: string): string {
    return path.join(this.#dir, 'batches', `${id}.json`);
  }

  work(id: string): string {
    return path.join(this.#dir, 'work', id);
  }

  chunkFiles(id: string, chunk: number): { out: string; err: string; done: string } {
    const base = path.join(this.work(id), String(chunk));
    return { out: `${base}.out.jsonl`, err: `${base}.err.jsonl`, done: `${base}.done` };
  }

  async save(batch: BatchObject, plan: BatchPlan): Promise<void> {
    await mkdir(path.dirname(this.#meta(batch.id)), { recursive: true });
    await mkdir(this.work(batch.id), { recursive: true });
    await writeAtomically(this.#meta(batch.id), JSON.stringify({ batch, plan } satisfies Stored));
  }

  /** The batch as written at creation (or finalisation), with its plan; no progress folded in. */
  async stored(id: string): Promise<Stored | null> {
    if (!/^batch_[0-9a-f]{24}$/.test(id)) return null;
    try {
      return JSON.parse(await readFile(this.#meta(id), 'utf8')) as Stored;
    } catch {
      return null;
    }
  }

  async plan(id: string): Promise<BatchPlan | null> {
    return (await this.stored(id))?.plan ?? null;
  }

  /** Whether chunk `chunk` has its marker (one stat, no read). */
  async isDone(id: string, chunk: number): Promise<boolean> {
    return stat(this.chunkFiles(id, chunk).done).then(
      () => true,
      () => false,
    );
  }

  /** How many chunks have their marker (one directory listing, no file read). */
  async doneCount(id: string): Promise<number> {
    const names = await readdir(this.work(id)).catch(() => [] as string[]);
    return names.filter((n) => n.endsWith('.done')).length;
  }

  /** Finished chunks and their counts. */
  async chunks(id: string): Promise<Map<number, ChunkResult>> {
    const done = new Map<number, ChunkResult>();
    const names = await readdir(this.work(id)).catch(() => [] as string[]);
    await Promise.all(
      names
        .filter((n) => n.endsWith('.done'))
        .map(async (n) => {
          const result = JSON.parse(await readFile(path.join(this.work(id), n), 'utf8')) as ChunkResult;
          done.set(Number(n.slice(0, -'.done'.length)), result);
        }),
    );
    return done;
  }

  async cancelRequested(id: string): Promise<number | null> {
    return stat(path.join(this.work(id), 'cancel')).then(
      (s) => Math.floor(s.mtimeMs / 1000),
      () => null,
    );
  }

  async requestCancel(id: string): Promise<void> {
    await writeAtomically(path.join(this.work(id), 'cancel'), '');
  }

  /** True for exactly one caller per batch: the one that finalises it. */
  async claimFinalize(id: string): Promise<boolean> {
    try {
      const handle = await open(path.join(this.work(id), 'finalize'), 'wx');
      await handle.close();
      return true;
    } catch {
      return false;
    }
  }

  /** The batch as a client sees it now: stored, with progress and a cancel or finalisation in course folded in. */
  async get(id: string): Promise<BatchObject | null> {
    const stored = await this.stored(id);
    if (!stored) return null;
    const { batch, plan } = stored;
    if (batch.status !== 'in_progress') return batch;
    const chunks = await this.chunks(id);
    let completed = 0;
    let failed = 0;
    for (const c of chunks.values()) {
      completed += c.completed;
      failed += c.failed;
    }
    const cancelling = await this.cancelRequested(id);
    const status: BatchStatus =
      chunks.size === plan.chunks ? 'finalizing' : cancelling !== null ? 'cancelling' : 'in_progress';
    return { ...batch, status, cancelling_at: cancelling, request_counts: { total: plan.lines, completed, failed } };
  }

  async list(): Promise<BatchObject[]> {
    const names = await readdir(path.join(this.#dir, 'batches')).catch(() => [] as string[]);
    const all = await Promise.all(names.filter((n) => n.endsWith('.json')).map((n) => this.get(n.slice(0, -5))));
    return all
      .filter((b): b is BatchObject => b !== null)
      .sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
  }

  /** Batches still running, for a restart to resume. */
  async unfinished(): Promise<BatchObject[]> {
    return (await this.list()).filter((b) => !isFinal(b.status));
  }
}
