// What a lane did during a phase, from two scrapes of GET /metrics: batches, their sizes, time in the
// worker and in the queue, model runtime calls, and how items were answered (computed or from the cache).
import { pick, value, type Sample } from './scrape.js';

export interface LaneActivity {
  readonly batches: number;
  readonly meanBatch: number;
  /** Model runtime run calls per batch (a text batch on a CPU runs as several, lanes/call-plan.ts). */
  readonly meanCalls: number;
  /** Batches per histogram bucket (upper bound `le`), not cumulative. */
  readonly histogram: readonly { readonly le: string; readonly batches: number }[];
  readonly meanInferenceMs: number;
  readonly meanQueueMs: number;
  readonly cacheItems: Readonly<Record<string, number>>;
}

export function laneActivity(
  before: readonly Sample[],
  after: readonly Sample[],
  lane: 'text' | 'image',
): LaneActivity {
  const delta = (name: string, labels: Record<string, string> = {}) =>
    value(after, name, labels) - value(before, name, labels);
  const ofLane = { lane };
  const batches = delta('twinlane_lane_batch_size_count', ofLane);
  let previous = 0;
  const histogram = pick(after, 'twinlane_lane_batch_size_bucket', ofLane).map((s) => {
    const cumulative = delta('twinlane_lane_batch_size_bucket', { ...ofLane, le: s.labels['le']! });
    const row = { le: s.labels['le']!, batches: cumulative - previous };
    previous = cumulative;
    return row;
  });
  const cacheItems: Record<string, number> = {};
  for (const s of pick(after, 'twinlane_cache_items_total', ofLane)) {
    cacheItems[s.labels['result'] ?? '?'] = delta('twinlane_cache_items_total', {
      ...ofLane,
      result: s.labels['result'] ?? '',
    });
  }
  return {
    batches,
    meanBatch: delta('twinlane_lane_batch_size_sum', ofLane) / batches,
    meanCalls: delta('twinlane_model_calls_total', ofLane) / batches,
    histogram,
    meanInferenceMs: (delta('twinlane_lane_batch_seconds_sum', ofLane) * 1000) / batches,
    meanQueueMs: (delta('twinlane_lane_queue_seconds_sum', ofLane) * 1000) / batches,
    cacheItems,
  };
}

/** Markdown rows of the batch-size histogram, empty buckets left out. */
export function histogramRows(activity: LaneActivity): string[] {
  const share = (n: number) => `${((n / Math.max(1, activity.batches)) * 100).toFixed(0)}%`;
  return [
    '| batch size ≤ | batches | share |',
    '|---:|---:|---:|',
    ...activity.histogram.filter((h) => h.batches > 0).map((h) => `| ${h.le} | ${h.batches} | ${share(h.batches)} |`),
  ];
}
