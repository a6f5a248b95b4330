import { describe, expect, it } from 'vitest';
import { Batcher, type BatchOutcome } from '../../lanes/batcher.js';

interface Item {
  readonly id: number;
  readonly cost: number;
}

/** A fake model: the vector of an item is [id], so any mix-up between requests shows. */
function harness(options: { maxItems?: number; maxCost?: number; concurrency?: number; bulkShare?: number } = {}) {
  const calls: number[][] = [];
  const release: (() => void)[] = [];
  const batcher = new Batcher<Item, string>({
    maxItems: options.maxItems ?? 4,
    maxCost: options.maxCost ?? 1000,
    concurrency: options.concurrency ?? 1,
    ...(options.bulkShare === undefined ? {} : { bulkShare: options.bulkShare }),
    cost: (item) => item.cost,
    run: (items) => {
      calls.push(items.map((i) => i.id));
      return new Promise<BatchOutcome<string>>((resolve) => {
        release.push(() =>
          resolve({
            items: items.map((i) =>
              i.id < 0
                ? { ok: false, error: `bad ${i.id}` }
                : { ok: true, vector: Float32Array.of(i.id), tokens: i.cost },
            ),
            inferenceMs: 1,
          }),
        );
      });
    },
  });
  const flush = async () => {
    while (release.length > 0) {
      release.shift()!();
      await new Promise((r) => setImmediate(r));
    }
  };
  return { batcher, calls, flush };
}

const item = (id: number, cost = 1): Item => ({ id, cost });

describe('Batcher', () => {
  it('runs a lone request at once, without waiting for company', () => {
    const { batcher, calls } = harness();
    void batcher.submit([item(1)]);
    expect(calls).toEqual([[1]]);
  });

  it('coalesces requests that arrive while a batch runs into the next batch', async () => {
    const { batcher, calls, flush } = harness({ maxItems: 8 });
    const first = batcher.submit([item(1)]);
    const others = [batcher.submit([item(2)]), batcher.submit([item(3), item(4)]), batcher.submit([item(5)])];
    expect(batcher.queued).toBe(4);
    await flush();
    expect(calls).toEqual([[1], [2, 3, 4, 5]]);
    const answers = await Promise.all([first, ...others]);
    expect(answers.map((a) => a.items.map((o) => (o.ok ? o.vector[0] : o)))).toEqual([[1], [2], [3, 4], [5]]);
  });

  it('bounds a batch by items', async () => {
    const { batcher, calls, flush } = harness({ maxItems: 3 });
    void batcher.submit([item(0)]);
    void batcher.submit(Array.from({ length: 7 }, (_, i) => item(i + 1)));
    await flush();
    expect(calls).toEqual([[0], [1, 2, 3], [4, 5, 6], [7]]);
  });

  it('bounds a batch by padded cost (items × the largest cost)', async () => {
    const { batcher, calls, flush } = harness({ maxItems: 100, maxCost: 100 });
    void batcher.submit([item(0)]);
    void batcher.submit([item(1, 10), item(2, 10), item(3, 40), item(4, 10), item(5, 200)]);
    await flush();
    // [1,2] padded to 10 = 20; adding 3 pads all to 40 × 3 = 120 > 100. A lone over-cost item still runs.
    expect(calls).toEqual([[0], [1, 2], [3, 4], [5]]);
  });

  it('runs up to `concurrency` batches at once', () => {
    const { batcher, calls } = harness({ maxItems: 2, concurrency: 2 });
    void batcher.submit([item(1), item(2), item(3), item(4), item(5)]);
    expect(calls).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(batcher.running).toBe(4);
    expect(batcher.queued).toBe(1);
  });

  it('reports per-item failures to their own request only', async () => {
    const { batcher, flush } = harness({ maxItems: 8 });
    void batcher.submit([item(0)]);
    const mixed = batcher.submit([item(7), item(-1)]);
    const clean = batcher.submit([item(8)]);
    await flush();
    const [m, c] = await Promise.all([mixed, clean]);
    expect(m.items).toEqual([
      { ok: true, vector: Float32Array.of(7), tokens: 1 },
      { ok: false, error: 'bad -1' },
    ]);
    expect(c.items).toEqual([{ ok: true, vector: Float32Array.of(8), tokens: 1 }]);
  });

  it('fails every request of a batch whose run throws, and keeps serving after it', async () => {
    let fail = true;
    const batcher = new Batcher<Item, string>({
      maxItems: 8,
      maxCost: 100,
      concurrency: 1,
      cost: () => 1,
      run: async (items) => {
        if (fail) throw new Error('worker died');
        return {
          items: items.map((i) => ({ ok: true as const, vector: Float32Array.of(i.id), tokens: 1 })),
          inferenceMs: 0,
        };
      },
    });
    await expect(batcher.submit([item(1)])).rejects.toThrow('worker died');
    fail = false;
    const next = await batcher.submit([item(2)]);
    expect(next.items[0]).toMatchObject({ ok: true });
  });

  it('resolves drained() only when nothing is queued or running', async () => {
    const { batcher, flush } = harness();
    void batcher.submit([item(1)]);
    void batcher.submit([item(2)]);
    let drained = false;
    const done = batcher.drained().then(() => (drained = true));
    await new Promise((r) => setImmediate(r));
    expect(drained).toBe(false);
    await flush();
    await done;
    expect(drained).toBe(true);
  });

  it('drops items no longer wanted when their batch is formed, reports them and never runs them', async () => {
    const dropped: number[] = [];
    const calls: number[][] = [];
    const release: (() => void)[] = [];
    const batcher = new Batcher<Item, string>({
      maxItems: 2,
      maxCost: 100,
      concurrency: 1,
      cost: () => 1,
      run: (items) => {
        calls.push(items.map((i) => i.id));
        return new Promise((resolve) =>
          release.push(() =>
            resolve({
              items: items.map((i) => ({ ok: true as const, vector: Float32Array.of(i.id), tokens: 1 })),
              inferenceMs: 0,
            }),
          ),
        );
      },
      onDropped: (count) => dropped.push(count),
    });
    const unwanted = new Set([2, 3, 5]);
    const settled: [number, string][] = [];
    const request = batcher.submit([item(1), item(2), item(3), item(4), item(5)], {
      unwanted: (index: number) => (unwanted.has(index + 1) ? 'cancelled' : null),
      onItem: (index, outcome) => settled.push([index, outcome.ok ? 'ok' : 'dropped' in outcome ? 'dropped' : 'error']),
    });
    // The first batch formed at once: 1, then 2 and 3 dropped on the way, then 4. Item 5 waits.
    expect(calls).toEqual([[1, 4]]);
    expect(batcher.queued).toBe(1);
    while (release.length > 0) {
      release.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    const outcome = await request;
    expect(calls).toEqual([[1, 4]]);
    expect(outcome.items.map((o) => (o.ok ? 'ok' : 'dropped' in o ? o.dropped : 'error'))).toEqual([
      'ok',
      'cancelled',
      'cancelled',
      'ok',
      'cancelled',
    ]);
    expect(dropped.reduce((a, b) => a + b, 0)).toBe(3);
    expect(settled.map(([i]) => i).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(batcher.queued).toBe(0);
  });

  it('holds bulk (low-priority) batches to their share of the workers while live items are about', () => {
    const { batcher, calls } = harness({ maxItems: 1, concurrency: 4, bulkShare: 0.5 });
    void batcher.submit([item(100)]); // a live item: bulk work keeps to its share for the next second
    for (let i = 1; i <= 6; i++) void batcher.submit([item(i)], { priority: 'low' });
    // The live item runs and two of the three free workers take bulk batches (half of 4); one stays free.
    expect(calls).toEqual([[100], [1], [2]]);
    void batcher.submit([item(101)]);
    expect(calls.at(-1)).toEqual([101]);
  });

  it('lets bulk work use every worker when no live item is about', () => {
    const { batcher, calls } = harness({ maxItems: 1, concurrency: 4, bulkShare: 0.25 });
    for (let i = 1; i <= 6; i++) void batcher.submit([item(i)], { priority: 'low' });
    expect(calls).toEqual([[1], [2], [3], [4]]);
  });

  it('gives bulk work at least one worker however small its share', () => {
    const { batcher, calls } = harness({ maxItems: 1, concurrency: 2, bulkShare: 0.1 });
    void batcher.submit([item(100)]);
    for (let i = 1; i <= 3; i++) void batcher.submit([item(i)], { priority: 'low' });
    expect(calls).toEqual([[100], [1]]);
  });
});
