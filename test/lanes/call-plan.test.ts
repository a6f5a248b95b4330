import { describe, expect, it } from 'vitest';
import { CALL_OVERHEAD_TOKENS, planCalls } from '../../lanes/call-plan.js';

interface Row {
  readonly index: number;
  readonly ids: { readonly length: number };
}

const rowsOf = (lengths: readonly number[]): Row[] => lengths.map((length, index) => ({ index, ids: { length } }));

/** Padded tokens + the overhead of every call. */
function costOf(calls: readonly (readonly Row[])[], overhead: number): number {
  return calls.reduce((sum, call) => sum + overhead + call.length * Math.max(...call.map((r) => r.ids.length)), 0);
}

/** The cheapest cut of the sorted rows into contiguous runs, by trying every one (2^(n-1) of them). */
function bruteForceCost(lengths: readonly number[], overhead: number): number {
  const sorted = [...lengths].sort((a, b) => a - b);
  let best = Number.POSITIVE_INFINITY;
  for (let cuts = 0; cuts < 2 ** (sorted.length - 1); cuts++) {
    let cost = 0;
    let from = 0;
    for (let i = 1; i <= sorted.length; i++) {
      if (i === sorted.length || cuts & (1 << (i - 1))) {
        cost += overhead + (i - from) * sorted[i - 1]!;
        from = i;
      }
    }
    best = Math.min(best, cost);
  }
  return best;
}

/** A seeded generator, so a failure can be replayed. */
function lcg(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

describe('planCalls', () => {
  it('covers every row exactly once, each call sorted by length', () => {
    const rows = rowsOf([17, 3, 40, 17, 9, 128, 3, 22]);
    const calls = planCalls(rows);
    expect(
      calls
        .flat()
        .map((r) => r.index)
        .sort((a, b) => a - b),
    ).toEqual(rows.map((r) => r.index));
    const lengths = calls.flat().map((r) => r.ids.length);
    expect(lengths).toEqual([...lengths].sort((a, b) => a - b));
  });

  it('keeps rows of one length in one call', () => {
    expect(planCalls(rowsOf(new Array(32).fill(17)))).toHaveLength(1);
  });

  it('splits lengths far apart instead of padding the short rows', () => {
    const calls = planCalls(rowsOf([10, 10, 10, 10, 100, 100, 100, 100]));
    expect(calls.map((c) => c.map((r) => r.ids.length))).toEqual([
      [10, 10, 10, 10],
      [100, 100, 100, 100],
    ]);
  });

  it('pads a little rather than pay for another call', () => {
    // One call: 3 + 4 × 18 = 75 (overhead + padded tokens); two calls: (3 + 2 × 17) + (3 + 2 × 18) = 76.
    expect(planCalls(rowsOf([17, 17, 18, 18]))).toHaveLength(1);
    // With no cost per call, every length gets a call of its own.
    expect(planCalls(rowsOf([17, 17, 18, 18]), 0)).toHaveLength(2);
  });

  it('finds the cheapest plan (against every cut of small random batches)', () => {
    const random = lcg(7);
    for (let trial = 0; trial < 200; trial++) {
      const lengths = Array.from({ length: 1 + Math.floor(random() * 10) }, () => 2 + Math.floor(random() * 40));
      const overhead = [0, 1, CALL_OVERHEAD_TOKENS, 12][trial % 4]!;
      expect(costOf(planCalls(rowsOf(lengths), overhead), overhead)).toBe(bruteForceCost(lengths, overhead));
    }
  });

  it('answers an empty batch with no calls, and never puts more than 64 rows in a call', () => {
    expect(planCalls([])).toEqual([]);
    const calls = planCalls(rowsOf(new Array(200).fill(9)), 1000);
    expect(calls.every((c) => c.length <= 64)).toBe(true);
    expect(calls.flat()).toHaveLength(200);
  });
});
