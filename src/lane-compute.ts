// How the cache actor's misses reach a lane: one submission per call, each item settling as its batch
// finishes, in the cache's terms (vector, the item's own error, or dropped as unwanted). Shared by
// whole requests (orchestrator.ts) and streams (stream.ts). A lane's refusal becomes the error its
// requests answer with (429 lane_overloaded, 503 shutting_down) for every item of the submission.
import type { Computed, ComputeMisses } from '../cache/index.js';
import {
  LaneFailedError,
  LaneRejectedError,
  type ItemError,
  type ItemOutcome,
  type ItemTiming,
  type Lane,
  type LaneName,
  type Priority,
} from '../lanes/index.js';
import { TwinlaneError } from './errors.js';

/** What a request brings to a lane's admission: its priority and its deadline. */
export interface LaneAdmission {
  readonly priority?: Priority;
  /** performance.now() by which its items must be computed. */
  readonly deadline?: number | undefined;
}

function laneError(error: unknown): unknown {
  if (error instanceof LaneFailedError)
    return new TwinlaneError('lane_failed', error.message, {
      retryAfterSeconds: error.retryAfterSeconds,
      cause: error,
    });
  if (!(error instanceof LaneRejectedError)) return error;
  if (error.reason === 'closed') return new TwinlaneError('shutting_down', error.message);
  if (error.reason === 'deadline') return new TwinlaneError('deadline_exceeded', error.message);
  return new TwinlaneError('lane_overloaded', error.message, { retryAfterSeconds: error.retryAfterSeconds });
}

/** The lane's word on one item, in the cache actor's terms. */
function asComputed(outcome: ItemOutcome<ItemError>, timing: ItemTiming, lane: LaneName, param: string): Computed {
  if (outcome.ok)
    return { ok: true, value: { vector: outcome.vector, tokens: lane === 'text' ? outcome.tokens : null }, timing };
  if ('dropped' in outcome) return { ok: false, dropped: true };
  return { ok: false, error: new TwinlaneError(outcome.error.code, outcome.error.message, { param }) };
}

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A ComputeMisses over `lane`: `item(i)` is the lane item of the request's index i, `paramAt(i)` the
 * request field its errors name (`input[3]`). Each item settles with its vector and its own timing.
 */
export function laneCompute<I>(
  lane: Lane<I>,
  item: (index: number) => I,
  paramAt: (index: number) => string,
  admission: LaneAdmission = {},
): ComputeMisses {
  return (indices, control) => {
    const answers = indices.map(() => deferred<Computed>());
    lane
      .embed(indices.map(item), {
        ...admission,
        unwanted: control.unwanted,
        onItem: (k, outcome, timing) =>
          answers[k]!.resolve(asComputed(outcome, timing, lane.name, paramAt(indices[k]!))),
      })
      .catch((error: unknown) => {
        const failure = laneError(error);
        for (const answer of answers) answer.reject(failure);
      });
    return answers.map((a) => a.promise);
  };
}
