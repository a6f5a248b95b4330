import { describe, expect, it } from 'vitest';
import type { BucketReading } from '../../cache/index.js';
import { RateLimiter, type RateLimitObserver, type RateStore, type SharedBucketStore } from '../../src/index.js';

function clock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

class Recorder implements RateLimitObserver {
  readonly decisions: string[] = [];
  fallbacks = 0;
  onRateDecision(store: RateStore, allowed: boolean): void {
    this.decisions.push(`${store}:${allowed ? 'allowed' : 'limited'}`);
  }
  onRateFallback(): void {
    this.fallbacks++;
  }
}

describe('RateLimiter with local buckets', () => {
  it('lets a client spend its burst at once, then refuses with the wait its cost needs', async () => {
    const time = clock();
    const limiter = new RateLimiter({ rate: 2, burst: 5, now: time.now });
    expect(await limiter.spend('a', 3)).toEqual({
      allowed: true,
      limit: 5,
      remaining: 2,
      resetSeconds: 2,
      retryAfterSeconds: 0,
    });
    expect(await limiter.spend('a', 2)).toMatchObject({ allowed: true, remaining: 0, resetSeconds: 3 });
    // 3 items at 2 items/s: 1.5 s, rounded up.
    expect(await limiter.spend('a', 3)).toMatchObject({ allowed: false, remaining: 0, retryAfterSeconds: 2 });
  });

  it('refills at the configured rate and never above the burst', async () => {
    const time = clock();
    const limiter = new RateLimiter({ rate: 2, burst: 5, now: time.now });
    await limiter.spend('a', 5);
    time.advance(1000);
    expect(limiter.peek('a').remaining).toBe(2);
    expect(await limiter.spend('a', 3)).toMatchObject({ allowed: false });
    time.advance(500);
    expect(await limiter.spend('a', 3)).toMatchObject({ allowed: true, remaining: 0 });
    time.advance(60_000);
    expect(limiter.peek('a')).toMatchObject({ remaining: 5, resetSeconds: 0 });
  });

  it('refuses without taking anything, so a refused request does not deepen the wait', async () => {
    const time = clock();
    const limiter = new RateLimiter({ rate: 1, burst: 2, now: time.now });
    await limiter.spend('a', 2);
    for (let i = 0; i < 5; i++) expect((await limiter.spend('a', 1)).allowed).toBe(false);
    time.advance(1000);
    expect((await limiter.spend('a', 1)).allowed).toBe(true);
  });

  it('admits a request larger than the burst from a full bucket and leaves the client in debt', async () => {
    const time = clock();
    const limiter = new RateLimiter({ rate: 10, burst: 10, now: time.now });
    expect(await limiter.spend('a', 25)).toMatchObject({ allowed: true, remaining: 0, resetSeconds: 3 });
    // 15 items of debt: nothing more for 1.5 s, and a full burst only after 2.5 s.
    time.advance(1400);
    expect((await limiter.spend('a', 1)).allowed).toBe(false);
    time.advance(200);
    expect((await limiter.spend('a', 1)).allowed).toBe(true);
    time.advance(900);
    expect(await limiter.spend('a', 25)).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
  });

  it('keeps one bucket per client', async () => {
    const limiter = new RateLimiter({ rate: 1, burst: 1, now: clock().now });
    expect((await limiter.spend('a', 1)).allowed).toBe(true);
    expect((await limiter.spend('a', 1)).allowed).toBe(false);
    expect((await limiter.spend('b', 1)).allowed).toBe(true);
  });

  it('reports a never-seen client as having its whole burst', () => {
    const limiter = new RateLimiter({ rate: 3, burst: 7, now: clock().now });
    expect(limiter.peek('new')).toEqual({
      allowed: true,
      limit: 7,
      remaining: 7,
      resetSeconds: 0,
      retryAfterSeconds: 0,
    });
  });
});

describe('RateLimiter with a shared store', () => {
  class FakeStore implements SharedBucketStore {
    answers: (BucketReading | null)[] = [];
    readonly calls: [string, number][] = [];
    async take(client: string, cost: number): Promise<BucketReading | null> {
      this.calls.push([client, cost]);
      return this.answers.shift() ?? null;
    }
    async close(): Promise<void> {}
  }

  it('follows the shared store when it answers, and counts the decision as redis', async () => {
    const store = new FakeStore();
    const observer = new Recorder();
    const limiter = new RateLimiter({ rate: 1, burst: 10, shared: store, observer, now: clock().now });
    store.answers = [{ allowed: false, tokens: 0.5 }];
    expect(await limiter.spend('a', 4)).toMatchObject({ allowed: false, remaining: 0, retryAfterSeconds: 4 });
    expect(store.calls).toEqual([['a', 4]]);
    expect(observer.decisions).toEqual(['redis:limited']);
    expect(observer.fallbacks).toBe(0);
  });

  it('decides locally from the last shared reading when the store cannot answer, and counts the fallback', async () => {
    const store = new FakeStore();
    const observer = new Recorder();
    const limiter = new RateLimiter({ rate: 1, burst: 10, shared: store, observer, now: clock().now });
    store.answers = [{ allowed: true, tokens: 2 }];
    await limiter.spend('a', 8);
    // The store is gone: the local mirror says 2 tokens are left.
    expect(await limiter.spend('a', 2)).toMatchObject({ allowed: true, remaining: 0 });
    expect(await limiter.spend('a', 1)).toMatchObject({ allowed: false });
    expect(observer.decisions).toEqual(['redis:allowed', 'local:allowed', 'local:limited']);
    expect(observer.fallbacks).toBe(2);
  });
});
