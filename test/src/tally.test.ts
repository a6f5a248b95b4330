// The hot path's metrics (src/tally.ts) must read exactly as prom-client's own would: the same
// series, labels, values and order in the text a Prometheus scrapes, and in the JSON form.
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Tally, TallyHistogram } from '../../src/tally.js';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LABEL_SETS = [
  { route: '/v1/embeddings', lane: 'text' },
  { route: '/embed/image', lane: 'image' },
  { route: 'unknown', lane: 'none' },
] as const;

/** A seeded stream of values over and between every bound, the bounds themselves and 0 included. */
function values(count: number): number[] {
  let seed = 7;
  const next = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const out = [0, ...BUCKETS, 11, 1e-9];
  while (out.length < count) out.push(next() < 0.2 ? BUCKETS[Math.floor(next() * BUCKETS.length)]! : next() ** 3 * 12);
  return out;
}

/** prom-client's JSON gives every histogram line an empty `exemplar` (exemplars are off); the lines are compared without it. */
function withoutExemplars(metrics: Awaited<ReturnType<client.Registry['getMetricsAsJSON']>>): unknown {
  return metrics.map(({ values, ...metric }) => ({
    ...metric,
    values: values.map((value) => {
      const { exemplar, ...line } = value as typeof value & { exemplar?: unknown };
      expect(exemplar ?? null).toBeNull();
      return line;
    }),
  }));
}

describe('TallyHistogram', () => {
  it('writes what prom-client’s Histogram writes for the same observations', async () => {
    const ours = new client.Registry();
    const theirs = new client.Registry();
    const configuration = { name: 'h_seconds', help: 'A histogram.', labelNames: ['route', 'lane'] as const };
    const tally = new TallyHistogram({ ...configuration, buckets: BUCKETS, registers: [ours] });
    const reference = new client.Histogram({
      ...configuration,
      labelNames: ['route', 'lane'],
      buckets: BUCKETS,
      registers: [theirs],
    });
    values(2_000).forEach((value, index) => {
      const labels = LABEL_SETS[index % LABEL_SETS.length]!;
      tally.observe(labels.route, labels.lane, '', () => labels, value);
      reference.observe(labels, value);
    });
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.getMetricsAsJSON()).toEqual(withoutExemplars(await theirs.getMetricsAsJSON()));
    // Some observations fell in the first bucket, some above the last bound: the comparison covered both ends.
    expect(await ours.metrics()).toMatch(/h_seconds_bucket\{le="0.0005",route="\/v1\/embeddings",lane="text"\} [1-9]/);
    ours.resetMetrics();
    theirs.resetMetrics();
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});

describe('Tally', () => {
  it('shows at each scrape the increments made since, as prom-client’s Counter does', async () => {
    const ours = new client.Registry();
    const theirs = new client.Registry();
    const configuration = { name: 'c_total', help: 'A counter.', labelNames: ['status'] as const };
    const tally = new Tally({ ...configuration, labelNames: ['status'], registers: [ours] });
    const reference = new client.Counter({ ...configuration, labelNames: ['status'], registers: [theirs] });
    for (const [status, count] of [
      ['200', 3],
      ['429', 1],
      ['200', 2],
    ] as const) {
      tally.add(status, '', '', () => ({ status }), count);
      reference.inc({ status }, count);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    tally.add('200', '', '', () => ({ status: '200' }));
    reference.inc({ status: '200' });
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});
