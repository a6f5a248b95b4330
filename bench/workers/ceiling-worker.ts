// One ONNX Runtime session in its own thread, as a text-lane worker has it, running pre-built batches
// back to back. onnxruntime-node's run() blocks the thread that calls it, so concurrent sessions need
// a thread each to really overlap.
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';

export interface CeilingWorkerData {
  readonly onnxPath: string;
  readonly intraOpThreads: number;
}

/** Token ids of one batch, unpadded; the worker pads them to the longest row, as the server does. */
export interface CeilingTask {
  readonly batches: readonly (readonly (readonly number[])[])[];
  readonly minMs: number;
  readonly minRuns: number;
}

export interface CeilingReport {
  readonly texts: number;
  readonly runs: number;
  readonly ms: number;
}

const { onnxPath, intraOpThreads } = workerData as CeilingWorkerData;
const port = parentPort;
if (!port) throw new Error('ceiling-worker must run as a worker thread');

// The same options as lanes/session.ts, so the ceiling is what the lane's session could do at best.
const session = await ort.InferenceSession.create(onnxPath, {
  intraOpNumThreads: intraOpThreads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  executionProviders: ['cpu'],
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});

function feeds(rows: readonly (readonly number[])[]): Record<string, ort.Tensor> {
  const longest = Math.max(...rows.map((r) => r.length));
  const size = rows.length * longest;
  const ids = new BigInt64Array(size);
  const mask = new BigInt64Array(size);
  rows.forEach((row, r) =>
    row.forEach((id, t) => {
      ids[r * longest + t] = BigInt(id);
      mask[r * longest + t] = 1n;
    }),
  );
  const dims = [rows.length, longest];
  return {
    input_ids: new ort.Tensor('int64', ids, dims),
    attention_mask: new ort.Tensor('int64', mask, dims),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(size), dims),
  };
}

port.on('message', (task: CeilingTask) => {
  void (async () => {
    // Tensors are built before the clock starts: the ceiling is the session alone.
    const prepared = task.batches.map((rows) => ({ feeds: feeds(rows), texts: rows.length }));
    if (prepared.length === 0) throw new Error('no batches');
    for (const batch of prepared.slice(0, 2)) await session.run(batch.feeds); // warm-up: first runs allocate
    let texts = 0;
    let runs = 0;
    const started = performance.now();
    while (performance.now() - started < task.minMs || runs < task.minRuns) {
      const batch = prepared[runs % prepared.length]!;
      await session.run(batch.feeds);
      texts += batch.texts;
      runs++;
    }
    const report: CeilingReport = { texts, runs, ms: performance.now() - started };
    port.postMessage(report);
  })();
});
port.postMessage('ready');
