// A load of bench/lib/load.ts run in a thread of its own (bench/workers/load-worker.ts says why),
// with bodies the thread can make itself: a fixed set it cycles, or one of bench:isolation's image kinds.
import { Worker } from 'node:worker_threads';
import type { BodyKind } from '../fixtures/flood-bodies.js';
import type { LoadOptions, LoadResult } from './load.js';

export type ThreadBodies = { readonly kind: 'cycle'; readonly bodies: readonly string[] } | { readonly kind: BodyKind };

export interface LoadTask extends Omit<LoadOptions, 'body'> {
  readonly bodies: ThreadBodies;
}

/** Runs `task` in a new thread and resolves with its result; the thread ends with it. */
export function loadInThread(task: LoadTask): Promise<LoadResult> {
  const worker = new Worker(new URL('../workers/load-worker.js', import.meta.url), { workerData: task });
  return new Promise((resolve, reject) => {
    worker.once('message', (result: LoadResult) => {
      resolve(result);
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}
