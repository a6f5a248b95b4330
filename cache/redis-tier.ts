// The Redis tier (SPEC.md §6): one MGET per batch of L1 misses, raced against a per-call timeout so a
// slow or paused Redis cannot hold a request; writes (SETEX of new vectors, EXPIRE of hits, DEL of
// corrupt values) are queued and sent as one pipeline per event-loop turn, never awaited by a
// request, and dropped (and counted) when the circuit is open or too many are already unanswered.
// Only the cache actor uses this class.
import type { Redis } from 'ioredis';
import { CircuitBreaker } from './breaker.js';
import type { BreakerState, CacheObserver, RedisState } from './protocol.js';
import { connectRedis, Deadlines, errorReason, quitRedis, RedisTimeoutError, withTimeout } from './redis-link.js';

export interface RedisTierOptions {
  /** redis://[user:password@]host:port[/db] (or rediss://). */
  readonly url: string;
  /** Lifetime of a stored vector; every hit refreshes it. */
  readonly ttlSeconds: number;
  /** Budget of one lookup or probe before it counts as a failure. Default 50 ms. */
  readonly timeoutMs?: number | undefined;
  /** Consecutive failures that open the circuit. Default 5. */
  readonly failureThreshold?: number | undefined;
  /** How long the circuit stays open before a probe. Default 1000 ms. */
  readonly coolDownMs?: number | undefined;
  /** Keys in write commands sent and not yet answered beyond which new writes are dropped. Default 10000. */
  readonly maxPendingWrites?: number | undefined;
  /**
   * Refresh hit keys with one small Lua script call per batch (default true) instead of one EXPIRE
   * command per key. Same effect; falls back to EXPIREs by itself where scripts are refused.
   */
  readonly refreshScript?: boolean | undefined;
}

const REDIS_DEFAULTS = Object.freeze({
  timeoutMs: 50,
  failureThreshold: 5,
  coolDownMs: 1000,
  maxPendingWrites: 10_000,
});

/** EXPIRE of every key given, in one command. Redis caches the compiled script by its SHA. */
const REFRESH_SCRIPT = "for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ARGV[1]) end return #KEYS";

/** Probe timeouts in a row, on a connection that claims to be ready, after which it is recycled (a half-open TCP connection never errors by itself). */
const PROBE_TIMEOUTS_BEFORE_RECONNECT = 5;

interface WriteQueue {
  sets: [string, Buffer][];
  expires: string[];
  dels: string[];
}

const emptyQueue = (): WriteQueue => ({ sets: [], expires: [], dels: [] });

export class RedisTier {
  readonly #client: Redis;
  readonly #breaker: CircuitBreaker;
  readonly #observer: CacheObserver | null;
  readonly #ttl: number;
  readonly #timeoutMs: number;
  readonly #maxPending: number;
  readonly #deadlines: Deadlines;
  #queue: WriteQueue = emptyQueue();
  #flushScheduled = false;
  #pendingCommands = 0;
  readonly #writes = new Set<Promise<void>>();
  #state: RedisState = 'down';
  #probeTimeouts = 0;
  #closed = false;
  #closing: Promise<void> | null = null;
  /** Whether hits are refreshed by REFRESH_SCRIPT (else by one EXPIRE each). */
  #refreshScript = true;

  constructor(options: RedisTierOptions, observer: CacheObserver | null) {
    this.#observer = observer;
    this.#ttl = options.ttlSeconds;
    this.#timeoutMs = options.timeoutMs ?? REDIS_DEFAULTS.timeoutMs;
    this.#maxPending = options.maxPendingWrites ?? REDIS_DEFAULTS.maxPendingWrites;
    this.#deadlines = new Deadlines(this.#timeoutMs);
    this.#refreshScript = options.refreshScript ?? true;
    if (!Number.isInteger(this.#ttl) || this.#ttl < 1)
      throw new RangeError(`ttlSeconds must be a whole number ≥ 1 (got ${this.#ttl}).`);
    this.#client = connectRedis(options.url, 'twinlane-cache');
    for (const event of ['ready', 'close', 'end', 'reconnecting']) this.#client.on(event, () => this.#publish());
    this.#breaker = new CircuitBreaker({
      failureThreshold: options.failureThreshold ?? REDIS_DEFAULTS.failureThreshold,
      coolDownMs: options.coolDownMs ?? REDIS_DEFAULTS.coolDownMs,
      probe: () => this.#probe(),
      onStateChange: (state) => this.#onBreaker(state),
    });
    observer?.onBreakerState('closed');
    observer?.onRedisState(this.#state);
  }

  state(): RedisState {
    if (this.#breaker.state !== 'closed') return 'open';
    return this.#client.status === 'ready' ? 'up' : 'down';
  }

  get breakerState(): BreakerState {
    return this.#breaker.state;
  }

  get pendingWrites(): number {
    return this.#pendingCommands;
  }

  /**
   * The stored values of `keys` (null where absent), or null when Redis was not asked (circuit open)
   * or did not answer in time: the caller then computes, as on a miss.
   */
  async lookup(keys: readonly string[]): Promise<(Buffer | null)[] | null> {
    if (!this.#breaker.closed || this.#closed) {
      this.#observer?.onCacheLookups('redis', 'skipped', keys.length);
      return null;
    }
    try {
      const values = await this.#deadlines.race(this.#client.mgetBuffer(...keys));
      this.#breaker.success();
      return values;
    } catch (error) {
      this.#failed(error);
      this.#observer?.onCacheLookups('redis', 'error', keys.length);
      return null;
    }
  }

  /** Stores new vectors (already encoded) with the TTL. */
  store(entries: readonly (readonly [string, Buffer])[]): void {
    if (this.#closed) return;
    for (const [key, value] of entries) this.#queue.sets.push([key, value]);
    this.#schedule();
  }

  /** Sliding expiry: pushes the TTL of hit keys back to the full lifetime. */
  refresh(keys: readonly string[]): void {
    if (this.#closed) return;
    for (const key of keys) this.#queue.expires.push(key);
    this.#schedule();
  }

  remove(keys: readonly string[]): void {
    if (this.#closed) return;
    for (const key of keys) this.#queue.dels.push(key);
    this.#schedule();
  }

  /** Sends what is queued now and resolves when every write sent so far is answered or failed. */
  async flush(): Promise<void> {
    this.#flush();
    await Promise.all([...this.#writes]);
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Writes queued before close are still worth sending; wait for them, but not for long.
    const flushed = this.flush();
    await withTimeout(flushed, 1000).catch(() => undefined);
    this.#closed = true;
    this.#breaker.dispose();
    this.#deadlines.dispose();
    await quitRedis(this.#client);
    this.#publish();
  }

  #schedule(): void {
    if (this.#flushScheduled || this.#closed) return;
    this.#flushScheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#flushScheduled = false;
    const { sets, expires, dels } = this.#queue;
    const commands = sets.length + expires.length + dels.length;
    if (commands === 0) return;
    this.#queue = emptyQueue();
    if (!this.#breaker.closed || this.#closed) {
      if (sets.length > 0) this.#observer?.onCacheWriteDropped('breaker_open', sets.length);
      return;
    }
    if (this.#pendingCommands + commands > this.#maxPending) {
      if (sets.length > 0) this.#observer?.onCacheWriteDropped('backlog', sets.length);
      return;
    }
    const pipeline = this.#client.pipeline();
    // Deletes first: a corrupt value deleted and recomputed in the same turn must end up stored.
    for (const key of dels) pipeline.del(key);
    for (const [key, value] of sets) pipeline.setex(key, this.#ttl, value);
    // Sliding expiry: every hit key gets its EXPIRE. One script call refreshes all of them, which
    // costs the client one command instead of one per key (bench/results/cache.md: +41 % hits/s at
    // batch 32);
    // where scripts are refused (ACL, managed Redis), plain EXPIREs do the same.
    const scriptAt = this.#refreshScript && expires.length > 0 ? dels.length + sets.length : -1;
    if (scriptAt >= 0) pipeline.eval(REFRESH_SCRIPT, expires.length, ...expires, this.#ttl);
    else for (const key of expires) pipeline.expire(key, this.#ttl);
    this.#pendingCommands += commands;
    const write = pipeline
      .exec()
      .then(
        (results) => {
          let failedSets = 0;
          let lostConnection: unknown = null;
          (results ?? []).forEach(([error], i) => {
            if (!error) return;
            if (i >= dels.length && i < dels.length + sets.length) failedSets++;
            if (errorReason(error) !== 'command') {
              lostConnection ??= error;
              return;
            }
            // Redis answered with an error (a refused script, OOM under noeviction…): it is up, so
            // this is counted but does not open the circuit, which would also stop the reads.
            this.#observer?.onCacheError('redis', 'command');
            // A refused script: refresh with plain EXPIREs from now on.
            if (i === scriptAt) this.#refreshScript = false;
          });
          if (lostConnection !== null) this.#failed(lostConnection);
          else this.#breaker.success();
          if (failedSets > 0) this.#observer?.onCacheWriteDropped('error', failedSets);
        },
        (error: unknown) => {
          this.#failed(error);
          if (sets.length > 0) this.#observer?.onCacheWriteDropped('error', sets.length);
        },
      )
      .finally(() => {
        this.#pendingCommands -= commands;
        this.#writes.delete(write);
      });
    this.#writes.add(write);
  }

  #failed(error: unknown): void {
    this.#observer?.onCacheError('redis', errorReason(error));
    this.#breaker.failure();
  }

  async #probe(): Promise<void> {
    try {
      await this.#deadlines.race(this.#client.ping());
      this.#probeTimeouts = 0;
    } catch (error) {
      this.#observer?.onCacheError('redis', errorReason(error));
      if (
        error instanceof RedisTimeoutError &&
        this.#client.status === 'ready' &&
        ++this.#probeTimeouts >= PROBE_TIMEOUTS_BEFORE_RECONNECT
      ) {
        this.#probeTimeouts = 0;
        this.#client.disconnect(true);
      }
      throw error;
    }
  }

  #onBreaker(state: BreakerState): void {
    this.#observer?.onBreakerState(state);
    this.#publish();
  }

  #publish(): void {
    const state = this.state();
    if (state === this.#state) return;
    this.#state = state;
    this.#observer?.onRedisState(state);
  }
}
