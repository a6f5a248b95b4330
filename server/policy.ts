// How an HTTP request asks to be scheduled: `x-priority: high|normal|low` (default normal; low is for
// bulk and background work) and `x-request-timeout-ms` (its deadline, counted from its arrival; else
// its lane's queue timeout). A malformed value is the client's error, named as the header.
import { TwinlaneError, type RequestPolicy } from '../src/index.js';
import type { Priority } from '../lanes/index.js';
import type { Exchange } from './exchange.js';

const PRIORITY_VALUES: ReadonlySet<string> = new Set<Priority>(['high', 'normal', 'low']);
/** Longest deadline a request may ask for: an hour. */
const MAX_TIMEOUT_MS = 3_600_000;

export function requestPolicy(ex: Exchange): RequestPolicy {
  const priority = ex.header('x-priority')?.trim().toLowerCase() ?? 'normal';
  if (!PRIORITY_VALUES.has(priority)) {
    throw new TwinlaneError(
      'invalid_request',
      `x-priority must be high, normal or low (got '${priority.slice(0, 40)}').`,
      { param: 'x-priority' },
    );
  }
  const timeout = ex.header('x-request-timeout-ms')?.trim();
  const base = {
    priority: priority as Priority,
    startedAt: ex.started,
    ...(ex.cachedOnly ? { cachedOnly: true } : {}),
  };
  if (timeout === undefined) return base;
  const ms = /^\d{1,7}$/.test(timeout) ? Number(timeout) : Number.NaN;
  if (!(ms >= 1 && ms <= MAX_TIMEOUT_MS)) {
    throw new TwinlaneError(
      'invalid_request',
      `x-request-timeout-ms must be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS} (got '${timeout.slice(0, 40)}').`,
      { param: 'x-request-timeout-ms' },
    );
  }
  return { ...base, timeoutMs: ms };
}
