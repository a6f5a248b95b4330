// What every Redis user in cache/ shares: a fail-fast ioredis connection, per-call deadlines, and
// how a failed call is classified. Redis is optional at run time, so nothing here ever waits on it
// for longer than a budget.
import { Redis } from 'ioredis';
import type { CacheErrorReason } from './protocol.js';

export class RedisTimeoutError extends Error {
  constructor(ms: number) {
    super(`Redis did not answer within ${ms} ms.`);
    this.name = 'RedisTimeoutError';
  }
}

export function errorReason(error: unknown): CacheErrorReason {
  if (error instanceof RedisTimeoutError) return 'timeout';
  if (error instanceof Error && error.name === 'ReplyError') return 'command';
  return 'unavailable';
}

/** A client that rejects at once while Redis is away (callers fall back) and reconnects by itself. */
export function connectRedis(url: string, connectionName: string): Redis {
  const client = new Redis(url, {
    // Fail fast instead of queueing: a command while disconnected rejects at once, and commands
    // caught by a dropped connection are rejected rather than retried.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // Reconnect for ever, at most a second apart, so Redis is used again as soon as it returns.
    retryStrategy: (times) => Math.min(100 * times, 1000),
    connectTimeout: 1000,
    connectionName,
  });
  // Connection errors are expected while Redis is away; they show up as the caller's state, and
  // without a listener ioredis would print every reconnect attempt.
  client.on('error', () => undefined);
  return client;
}

interface Pending {
  readonly deadline: number;
  readonly reject: (error: Error) => void;
  done: boolean;
}

/**
 * Per-call timeouts with one timer for all calls instead of a setTimeout/clearTimeout pair each:
 * every call has the same budget, so deadlines arrive in call order and a FIFO sweep finds the
 * expired ones. (Measured: the per-call timer pair cost about a tenth of a Redis hit.)
 */
export class Deadlines {
  readonly #ms: number;
  #pending: Pending[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(ms: number) {
    this.#ms = ms;
  }

  /** Settles like `promise`, or rejects with a RedisTimeoutError once the budget is spent (the command itself is left to finish or fail). */
  race<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { deadline: performance.now() + this.#ms, reject, done: false };
      this.#pending.push(entry);
      if (this.#timer === null) this.#arm(this.#ms);
      promise.then(
        (value) => {
          entry.done = true;
          resolve(value);
        },
        (error: unknown) => {
          entry.done = true;
          reject(error);
        },
      );
    });
  }

  #arm(delay: number): void {
    this.#timer = setTimeout(() => this.#sweep(), Math.max(1, Math.ceil(delay)));
  }

  #sweep(): void {
    this.#timer = null;
    const now = performance.now();
    const pending = this.#pending;
    const expired: Pending[] = [];
    while (this.#head < pending.length) {
      const entry = pending[this.#head]!;
      if (!entry.done) {
        if (entry.deadline > now) break;
        expired.push(entry);
      }
      this.#head++;
    }
    // Timers run before the event loop reads sockets: an answer that arrived in time but waited
    // behind this process's own CPU work is read first (poll phase), and only calls still unanswered
    // after that fail (check phase). Event-loop lag is not a Redis timeout.
    if (expired.length > 0) {
      setImmediate(() => {
        for (const entry of expired) {
          if (entry.done) continue;
          entry.done = true;
          entry.reject(new RedisTimeoutError(this.#ms));
        }
      });
    }
    if (this.#head === pending.length) {
      this.#pending = [];
      this.#head = 0;
      return;
    }
    if (this.#head > 1024) {
      this.#pending = pending.slice(this.#head);
      this.#head = 0;
    }
    this.#arm(this.#pending[this.#head]!.deadline - now);
  }

  /** Stops the timer; calls still pending fail now rather than never. */
  dispose(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    for (let i = this.#head; i < this.#pending.length; i++) {
      const entry = this.#pending[i]!;
      if (!entry.done) entry.reject(new RedisTimeoutError(this.#ms));
      entry.done = true;
    }
    this.#pending = [];
    this.#head = 0;
  }
}

/** Settles like `promise`, or rejects with a timeout after `ms`: for rare calls such as quitting. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new RedisTimeoutError(ms)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Quits politely within a second, else drops the connection. */
export async function quitRedis(client: Redis): Promise<void> {
  try {
    await withTimeout(client.quit(), 1000);
  } catch {
    client.disconnect();
  }
}
