// How a text worker on a CPU splits one batch into ONNX Runtime calls. Rows are padded to the
// longest row of their call, and on a CPU a padded position costs what a real token does, so one
// call per batch pays for the padding; but each call also costs something of its own, so one call
// per distinct length pays that many times over. The batch is sorted by length and cut into the
// contiguous runs that minimise padded tokens + CALL_OVERHEAD_TOKENS per call: an exact dynamic
// programme, at most MAX_CALL_ROWS × rows steps.
//
// Why a fixed overhead in token units and not a cost each worker measures at start-up: that was
// built and tried first (a least-squares fit of overhead + tokens + tokens × length over six timed
// shapes). Timed while both lanes load (four threads on two cores), the same shape varied by up to
// 50 % between start-ups and the fitted overhead came out at 0.5–1.9 ms where a quiet machine shows
// 0.15; simulated over the measured table below, the plans from those fits cost 866–978 µs of model
// time per text, no better than the old rule. The plan depends on the overhead in tokens, and
// anywhere from 1 to 4 tokens gives plans within 2 % of each other there.
//
// Measured on a 2-core Intel Xeon with VNNI (MiniLM stand-in, q8, one intra-op thread, 14–22-token
// sentences): a call of r rows × L positions costs about 0.15 ms + 47 µs × r·L (r·L ≥ 24), a one-row
// call 0.96–1.5 ms. Simulated over that table, batches of 4–32 texts planned with 3 overhead tokens
// cost 837–861 µs of model time per text, against 867–917 for the old rule (a new call once padding
// passed 10 % of the real tokens) and 869–1,007 for one call per batch.
// fp32 on the same machine: 160–200 µs per token, and a one-row call of 12 tokens costs 2.38 ms,
// about 3 tokens' worth above 12 tokens at the large calls' rate: the same overhead in tokens.
// In the server (64 clients of unique texts, old and new build alternating): q8 1,479 and 1,474 →
// 1,708 and 1,697 texts/s; fp32 570 and 579 → 627 and 637.

/** What one call costs beyond its padded tokens, in tokens: 0.15 ms ÷ 47 µs on the machine above. */
export const CALL_OVERHEAD_TOKENS = 3;

/** The longest run of sorted rows one call may take: bounds the planner's work. */
const MAX_CALL_ROWS = 64;

/**
 * The calls that cover `rows` at the least padded tokens + `overheadTokens` per call: rows sorted by
 * length, cut into contiguous runs (each padded to its last, longest row).
 */
export function planCalls<R extends { readonly ids: { readonly length: number } }>(
  rows: readonly R[],
  overheadTokens: number = CALL_OVERHEAD_TOKENS,
): R[][] {
  const sorted = [...rows].sort((a, b) => a.ids.length - b.ids.length);
  const n = sorted.length;
  const best = new Float64Array(n + 1).fill(Number.POSITIVE_INFINITY);
  const start = new Int32Array(n + 1);
  best[0] = 0;
  for (let end = 1; end <= n; end++) {
    const longest = sorted[end - 1]!.ids.length;
    for (let from = Math.max(0, end - MAX_CALL_ROWS); from < end; from++) {
      const cost = best[from]! + overheadTokens + (end - from) * longest;
      if (cost < best[end]!) {
        best[end] = cost;
        start[end] = from;
      }
    }
  }
  const calls: R[][] = [];
  for (let end = n; end > 0; end = start[end]!) calls.unshift(sorted.slice(start[end]!, end));
  return calls;
}
