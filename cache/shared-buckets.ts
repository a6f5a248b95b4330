// Token buckets kept in Redis, so that several twinlane instances sharing one Redis share one budget
// per client. It lives in cache/ because cache/ is the one folder that talks to Redis. Like the cache
// tier it never makes a request wait on a sick Redis: a call that fails, times out or finds the
// circuit open answers null, and the caller (src/rate-limit.ts) decides from its local buckets.
import type { Redis } from 'ioredis';
import { CircuitBreaker } from './breaker.js';
import type { RedisState } from './protocol.js';
import { connectRedis, Deadlines, quitRedis } from './redis-link.js';

export interface SharedBucketsOptions {
  readonly url: string;
  /** Every bucket key starts with this (e.g. `twinlane:ratelimit:`). */
  readonly keyPrefix: string;
  /** Tokens added per second. */
  readonly rate: number;
  /** Most tokens a bucket holds. */
  readonly burst: number;
  /** Budget of one call before the local buckets decide instead. */
  readonly timeoutMs: number;
  /** Consecutive failures that open the circuit. Default 3. */
  readonly failureThreshold?: number | undefined;
  /** How long the circuit stays open before a probe. Default 1000 ms. */
  readonly coolDownMs?: number | undefined;
}

/** Tokens left after the call (negative: in debt after a request larger than the burst). */
export interface BucketReading {
  readonly allowed: boolean;
  readonly tokens: number;
}

/**
 * Refill by elapsed time, then take `cost` if the bucket holds min(cost, burst): a request larger
 * than the burst is admitted from a full bucket and leaves it in debt, so it is slowed to the rate
 * instead of refused for ever. Time is Redis's own clock, so instances with skewed clocks agree. The
 * key expires once it would be full again (a full bucket and a missing one are the same).
 */
const TAKE_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end
local allowed = 0
if tokens >= math.min(cost, burst) then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
`;

interface TakeCommand {
  twinlaneTake(key: string, rate: number, burst: number, cost: number): Promise<[number, string]>;
}

export class SharedBuckets {
  readonly #options: SharedBucketsOptions;
  readonly #client: Redis & TakeCommand;
  readonly #deadlines: Deadlines;
  readonly #breaker: CircuitBreaker;
  #closed = false;

  constructor(options: SharedBucketsOptions) {
    if (!(options.rate > 0) || !(options.burst > 0))
      throw new RangeError(`rate and burst must be positive (got ${options.rate}, ${options.burst}).`);
    this.#options = options;
    const client = connectRedis(options.url, 'twinlane-ratelimit');
    // ioredis sends EVALSHA and falls back to EVAL when Redis does not know the script yet.
    client.defineCommand('twinlaneTake', { numberOfKeys: 1, lua: TAKE_SCRIPT });
    this.#client = client as Redis & TakeCommand;
    this.#deadlines = new Deadlines(options.timeoutMs);
    this.#breaker = new CircuitBreaker({
      failureThreshold: options.failureThreshold ?? 3,
      coolDownMs: options.coolDownMs ?? 1000,
      probe: async () => {
        await this.#deadlines.race(this.#client.ping());
      },
    });
  }

  state(): RedisState {
    if (this.#breaker.state !== 'closed') return 'open';
    return this.#client.status === 'ready' ? 'up' : 'down';
  }

  /** Takes `cost` tokens from `client`'s bucket; null when Redis could not say in time. */
  async take(client: string, cost: number): Promise<BucketReading | null> {
    if (this.#closed || !this.#breaker.closed || this.#client.status !== 'ready') return null;
    const { keyPrefix, rate, burst } = this.#options;
    try {
      const [allowed, tokens] = await this.#deadlines.race(
        this.#client.twinlaneTake(keyPrefix + client, rate, burst, cost),
      );
      this.#breaker.success();
      return { allowed: allowed === 1, tokens: Number(tokens) };
    } catch {
      this.#breaker.failure();
      return null;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#breaker.dispose();
    this.#deadlines.dispose();
    await quitRedis(this.#client);
  }
}
