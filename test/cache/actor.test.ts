// The cache actor with L1 only (no Redis): hits, single flight, failures.
import { describe, expect, it } from 'vitest';
import { createCache } from '../../cache/index.js';
import type { ComputeMisses } from '../../cache/index.js';
import { RecordingObserver, recordingCompute, vectorOf } from './fixtures.js';
import { CancelSource } from '../../src/cancel.js';

const L1 = 1 << 20;

describe('cache actor (L1 only)', () => {
  it('answers a repeated key from L1 without calling compute', async () => {
    const observer = new RecordingObserver();
    const cache = createCache({ l1Bytes: L1, observer });
    const keys = ['k:a', 'k:b'];
    const first = recordingCompute(keys);
    const a = await Promise.all(cache.resolve(keys, first.compute));
    expect(a.map((r) => r.source)).toEqual(['computed', 'computed']);
    expect(first.calls).toEqual([[0, 1]]);

    const second = recordingCompute(keys);
    const b = await Promise.all(cache.resolve(keys, second.compute));
    expect(second.calls).toEqual([]);
    expect(b.map((r) => r.source)).toEqual(['l1', 'l1']);
    expect(Array.from(b[0]!.vector)).toEqual(Array.from(vectorOf('k:a')));
    expect(b[0]!.tokens).toBe(7);
    expect(observer.lookup('l1', 'hit')).toBe(2);
    expect(observer.lookup('l1', 'miss')).toBe(2);
    expect(cache.status()).toEqual({ l1: 'up', redis: 'disabled', breaker: null });
    await cache.close();
  });

  it('computes 50 concurrent identical requests once', async () => {
    const cache = createCache({ l1Bytes: L1 });
    const keys = ['k:same'];
    const { compute, calls } = recordingCompute(keys, { delayMs: 20 });
    const results = await Promise.all(Array.from({ length: 50 }, () => cache.resolve(keys, compute)[0]!));
    expect(calls).toEqual([[0]]);
    expect(results.filter((r) => r.source === 'computed')).toHaveLength(1);
    expect(results.filter((r) => r.source === 'joined')).toHaveLength(49);
    for (const r of results) expect(Array.from(r.vector)).toEqual(Array.from(vectorOf('k:same')));
    expect(cache.stats().inFlight).toBe(0);
  });

  it('rejects only the item whose computation failed, and does not cache it', async () => {
    const cache = createCache({ l1Bytes: L1 });
    const keys = ['k:ok1', 'k:bad', 'k:ok2'];
    const { compute } = recordingCompute(keys, { failKeys: new Set(['k:bad']), delayMs: 10 });
    const results = cache.resolve(keys, compute);
    // Another request joins the bad item and a good one while they are in flight.
    const joiner = recordingCompute(['k:bad', 'k:ok1']);
    const joined = cache.resolve(['k:bad', 'k:ok1'], joiner.compute);
    const settled = await Promise.allSettled(results);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(Error);
    const joinedSettled = await Promise.allSettled(joined);
    expect(joinedSettled.map((s) => s.status)).toEqual(['rejected', 'fulfilled']);
    expect(joiner.calls).toEqual([]);

    const retry = recordingCompute(keys);
    await Promise.all(cache.resolve(keys, retry.compute));
    expect(retry.calls).toEqual([[1]]);
  });

  it('gives a request that joined a failed computation the same error', async () => {
    const cache = createCache({ l1Bytes: L1 });
    const refused = new Error('lane refused');
    const keys = ['k:x', 'k:y'];
    const owner = recordingCompute(keys, { throwAll: refused, delayMs: 10 });
    const first = cache.resolve(keys, owner.compute);
    const joiner = recordingCompute(['k:y']);
    const second = cache.resolve(['k:y'], joiner.compute);
    await expect(first[0]).rejects.toBe(refused);
    await expect(first[1]).rejects.toBe(refused);
    await expect(second[0]).rejects.toBe(refused);
    expect(joiner.calls).toEqual([]);
    expect(cache.stats().inFlight).toBe(0);
    // Nothing was cached: the next request computes again.
    const again = recordingCompute(keys);
    await Promise.all(cache.resolve(keys, again.compute));
    expect(again.calls).toEqual([[0, 1]]);
  });

  it('computes a key repeated within one request once', async () => {
    const cache = createCache({ l1Bytes: L1 });
    const keys = ['k:d', 'k:e', 'k:d', 'k:d'];
    const { compute, calls } = recordingCompute(keys);
    const results = await Promise.all(cache.resolve(keys, compute));
    expect(calls).toEqual([[0, 1]]);
    expect(results.map((r) => r.source)).toEqual(['computed', 'computed', 'joined', 'joined']);
    expect(Array.from(results[3]!.vector)).toEqual(Array.from(vectorOf('k:d')));
  });

  it('treats a compute that answers the wrong number of items as a failure of them all', async () => {
    const cache = createCache({ l1Bytes: L1 });
    const results = cache.resolve(['k:1', 'k:2'], () => [
      Promise.resolve({ ok: true, value: { vector: new Float32Array(2), tokens: 1 } }),
    ]);
    const settled = await Promise.allSettled(results);
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
    expect(cache.stats().inFlight).toBe(0);
  });

  it('computes every time when L1 is disabled, still with single flight', async () => {
    const cache = createCache({ l1Bytes: 0 });
    const keys = ['k:z'];
    const { compute, calls } = recordingCompute(keys, { delayMs: 5 });
    await Promise.all([cache.resolve(keys, compute)[0], cache.resolve(keys, compute)[0]]);
    await Promise.all(cache.resolve(keys, compute));
    expect(calls).toEqual([[0], [0]]);
    expect(cache.status().l1).toBe('disabled');
  });

  it('cancels a request: its pending items reject at once, and only items nobody else waits for stop being wanted', async () => {
    const cache = createCache({ l1Bytes: L1 });
    const wanted: (() => boolean[])[] = [];
    const release: (() => void)[] = [];
    const compute: ComputeMisses = (indices, control) => {
      wanted.push(() => indices.map((_, k) => control.unwanted(k) === null));
      return indices.map(
        (i) =>
          new Promise((resolve) =>
            release.push(() => resolve({ ok: true, value: { vector: vectorOf(`c:${i}`), tokens: 1 } })),
          ),
      );
    };
    const controller = new CancelSource();
    const mine = cache.resolve(['c:shared', 'c:alone'], compute, { cancellation: controller });
    const other = cache.resolve(['c:shared'], compute);
    expect(wanted[0]!()).toEqual([true, true]);
    controller.cancel();
    const settled = await Promise.allSettled(mine);
    expect(settled.map((s) => (s.status === 'rejected' ? (s.reason as Error).name : 'fulfilled'))).toEqual([
      'RequestCancelledError',
      'RequestCancelledError',
    ]);
    // The shared key is still wanted by the other request; the lone one is not.
    expect(wanted[0]!()).toEqual([true, false]);
    for (const r of release.splice(0)) r();
    expect((await other[0])!.source).toBe('joined');
    expect(cache.stats().inFlight).toBe(0);
  });

  it('computes again a dropped item that a new request joined after its last waiter was cancelled', async () => {
    const cache = createCache({ l1Bytes: L1 });
    const controls: { wanted: () => boolean; settle: (dropped: boolean) => void }[] = [];
    const compute: ComputeMisses = (indices, control) =>
      indices.map(
        (_, k) =>
          new Promise((resolve) => {
            controls.push({
              wanted: () => control.unwanted(k) === null,
              settle: (dropped) =>
                resolve(
                  dropped ? { ok: false, dropped: true } : { ok: true, value: { vector: vectorOf('d:1'), tokens: 1 } },
                ),
            });
          }),
      );
    const controller = new CancelSource();
    const first = cache.resolve(['d:1'], compute, { cancellation: controller });
    controller.cancel();
    await expect(first[0]).rejects.toThrow('cancelled');
    // The lane forms its batch now and finds the item unwanted: it will come back dropped...
    expect(controls[0]!.wanted()).toBe(false);
    // ...but another request joins it before the dropped outcome arrives.
    const joined = cache.resolve(['d:1'], compute);
    controls[0]!.settle(true);
    await new Promise((r) => setImmediate(r));
    expect(controls).toHaveLength(2);
    controls[1]!.settle(false);
    expect(Array.from((await joined[0])!.vector)).toEqual(Array.from(vectorOf('d:1')));
    expect(cache.stats().inFlight).toBe(0);
  });
});
