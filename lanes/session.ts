// The one place that talks to onnxruntime-node, shared by both lanes' workers: session options that
// keep a lane inside its thread budget, provider pinning, and typed outputs.
import ort from 'onnxruntime-node';

export interface Provider {
  readonly name: 'cpu' | 'cuda';
  readonly deviceId: number;
}

export interface ModelSession {
  /** The graph's input names (a CLIP text tower has no token_type_ids). */
  readonly inputNames: readonly string[];
  tensor(type: 'int64', data: BigInt64Array, dims: readonly number[]): ort.Tensor;
  tensor(type: 'float32', data: Float32Array, dims: readonly number[]): ort.Tensor;
  /** Runs the model and returns each float32 output by name. */
  run(feeds: Record<string, ort.Tensor>): Promise<Record<string, Float32Array>>;
}

export async function createSession(
  onnxPath: string,
  intraOpThreads: number,
  provider: Provider,
): Promise<ModelSession> {
  const session = await ort.InferenceSession.create(onnxPath, {
    intraOpNumThreads: intraOpThreads,
    // One graph at a time per worker: parallelism comes from workers and intra-op threads, so the
    // lane's budget (workers × intra-op) is the whole of what it uses.
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    executionProviders: provider.name === 'cuda' ? [{ name: 'cuda', deviceId: provider.deviceId }] : ['cpu'],
    // Spinning intra-op threads burn a core while idle, stealing it from the main thread and the
    // other lane; a few microseconds of wake-up latency is the cheaper side of that trade.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  return {
    inputNames: session.inputNames,
    tensor: (type: 'int64' | 'float32', data: BigInt64Array | Float32Array, dims: readonly number[]) =>
      new ort.Tensor(type, data, dims),
    async run(feeds) {
      const outputs = await session.run(feeds);
      const result: Record<string, Float32Array> = {};
      for (const [name, value] of Object.entries(outputs)) {
        if (value.data instanceof Float32Array) result[name] = value.data;
      }
      return result;
    },
  } as ModelSession;
}

/** L2-normalises each row of a row-major matrix in place; zero rows stay zero. */
export function l2NormalizeRows(matrix: Float32Array, dims: number): void {
  for (let off = 0; off < matrix.length; off += dims) {
    let sum = 0;
    for (let d = 0; d < dims; d++) sum += matrix[off + d]! * matrix[off + d]!;
    if (sum === 0) continue;
    const inv = 1 / Math.sqrt(sum);
    for (let d = 0; d < dims; d++) matrix[off + d]! *= inv;
  }
}
