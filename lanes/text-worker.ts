// Runs inside a text-lane worker thread: owns a tokenizer and an ONNX Runtime session per model of
// the lane, and turns one batch of texts (all of one model) into pooled vectors per ONNX call. Never
// runs on the main thread.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { workerData } from 'piscina';
import type {
  BatchResult,
  ItemError,
  LaneResult,
  LaneTask,
  TextItem,
  TextWorkerData,
  TextWorkerModel,
} from './protocol.js';
import { planCalls } from './call-plan.js';
import { injectFaults } from './faults.js';
import { createSession, l2NormalizeRows, type ModelSession } from './session.js';
import { lowerThreadPriority } from './thread-priority.js';

const data = workerData as TextWorkerData;
// Just below the main thread, which answers cache hits and owns every socket: a busy text lane never
// takes it from them.
lowerThreadPriority(data.nice, 'text');

async function readJson(dir: string, file: string): Promise<object> {
  return JSON.parse(await readFile(path.join(dir, file), 'utf8')) as object;
}

/** One model of the lane as this worker holds it: tokenizer, session, and what its graph wants. */
interface LoadedModel {
  readonly spec: TextWorkerModel;
  readonly tokenizer: Tokenizer;
  readonly session: ModelSession;
  /**
   * The special id an encoding ends with ([SEP], <|endoftext|>), which a truncated one must end with
   * again: a CLIP text tower pools at it. undefined when the tokenizer adds nothing at the end.
   */
  readonly endId: number | undefined;
  /** BERT-style graphs take token_type_ids (all 0 for one sentence); CLIP's text tower does not. */
  readonly typeIds: boolean;
}

async function load(spec: TextWorkerModel): Promise<LoadedModel> {
  const tokenizer = new Tokenizer(
    await readJson(spec.modelDir, 'tokenizer.json'),
    await readJson(spec.modelDir, 'tokenizer_config.json'),
  );
  const session = await createSession(spec.onnxPath, data.intraOpThreads, data.provider);
  const empty = tokenizer.encode('').ids;
  return {
    spec,
    tokenizer,
    session,
    endId: empty.length > 0 ? empty.at(-1) : undefined,
    typeIds: session.inputNames.includes('token_type_ids'),
  };
}

// One after another: loading sessions at once would only raise the peak memory of start-up.
const models: LoadedModel[] = [];
for (const spec of data.models) models.push(await load(spec));

interface Encoded {
  readonly ids: number[];
  readonly error?: ItemError;
}

// @huggingface/tokenizers ignores tokenizer.json's truncation settings, so truncation happens here,
// the way sentence-transformers and CLIP do it: keep the first max-1 ids and end with the end token again.
function encode(model: LoadedModel, item: TextItem, index: number): Encoded {
  const { maxTokens } = model.spec;
  const ids = model.tokenizer.encode(item.text).ids;
  if (ids.length <= maxTokens) return { ids };
  if (!item.truncate) {
    return {
      ids: [],
      error: {
        index,
        code: 'input_too_long',
        message: `Input ${index} has ${ids.length} tokens; the model's limit is ${maxTokens} and truncate is false.`,
      },
    };
  }
  const cut = ids.slice(0, maxTokens);
  if (model.endId !== undefined && ids.at(-1) === model.endId) cut[cut.length - 1] = model.endId;
  return { ids: cut };
}

interface Row {
  /** Position of the text in its batch. */
  readonly index: number;
  readonly ids: number[];
}

/**
 * A CPU batch runs as the calls lanes/call-plan.ts plans (sorted by length, padding weighed against
 * each call's own cost). A GPU runs padded positions in parallel and pays per call instead, so it
 * keeps one call per batch.
 */
function callsOf(rows: readonly Row[]): readonly (readonly Row[])[] {
  if (rows.length === 0) return [];
  return data.provider.name === 'cpu' ? planCalls(rows) : [rows];
}

/** The graph's inputs for `rows`, right-padded to `longest`. */
function feeds(
  model: LoadedModel,
  rows: readonly Row[],
  longest: number,
): Record<string, ReturnType<ModelSession['tensor']>> {
  const size = rows.length * longest;
  const inputIds = new BigInt64Array(size);
  const mask = new BigInt64Array(size);
  rows.forEach((row, r) => {
    const base = r * longest;
    for (let t = 0; t < row.ids.length; t++) {
      inputIds[base + t] = BigInt(row.ids[t]!);
      mask[base + t] = 1n;
    }
  });
  const { session } = model;
  const shape = [rows.length, longest];
  return {
    input_ids: session.tensor('int64', inputIds, shape),
    attention_mask: session.tensor('int64', mask, shape),
    ...(model.typeIds ? { token_type_ids: session.tensor('int64', new BigInt64Array(size), shape) } : {}),
  };
}

/** One ONNX call over `rows`, right-padded to the longest; pooled vectors land in `vectors` at each row's index. */
async function runGroup(
  model: LoadedModel,
  rows: readonly Row[],
  items: readonly TextItem[],
  vectors: Float32Array,
): Promise<{ paddedTokens: number; modelMs: number }> {
  const { dims } = model.spec;
  const longest = Math.max(...rows.map((r) => r.ids.length));
  const input = feeds(model, rows, longest);
  const runStarted = performance.now();
  const output = await model.session.run(input);
  const modelMs = performance.now() - runStarted;
  rows.forEach((row, r) => {
    const vector = vectors.subarray(row.index * dims, (row.index + 1) * dims);
    pool(model, output, rows.length, longest, r, row, vector);
    if (items[row.index]!.normalize) l2NormalizeRows(vector, dims);
  });
  return { paddedTokens: rows.length * longest, modelMs };
}

/** Row `r`'s vector from the model's outputs, as its pooling says. */
function pool(
  model: LoadedModel,
  output: Record<string, Float32Array>,
  rowCount: number,
  longest: number,
  r: number,
  row: Row,
  vector: Float32Array,
): void {
  const { dims, pooling, id } = model.spec;
  const name = pooling === 'graph' ? 'text_embeds' : 'last_hidden_state';
  const values = output[name];
  const expected = pooling === 'graph' ? rowCount * dims : rowCount * longest * dims;
  if (!values || values.length !== expected) {
    throw new Error(
      `text model ${id} returned ${values?.length ?? 'no'} ${name} values, expected ${expected}. This is a bug or a wrong model.`,
    );
  }
  if (pooling === 'graph') {
    // Pooled inside the graph, at the row's end-of-text token (CLIP): padding never reaches it.
    vector.set(values.subarray(r * dims, (r + 1) * dims));
    return;
  }
  const base = r * longest * dims;
  if (pooling === 'cls') {
    vector.set(values.subarray(base, base + dims));
    return;
  }
  // Mean over real tokens only: padded positions are excluded exactly as the attention mask says.
  for (let t = 0; t < row.ids.length; t++) {
    const off = base + t * dims;
    for (let d = 0; d < dims; d++) vector[d]! += values[off + d]!;
  }
  for (let d = 0; d < dims; d++) vector[d]! /= row.ids.length;
}

async function embedBatch(batchId: number, modelIndex: number, items: readonly TextItem[]): Promise<BatchResult> {
  const started = performance.now();
  const model = models[modelIndex];
  if (!model || items.some((item) => item.model !== modelIndex))
    throw new Error(`batch ${batchId} for model ${modelIndex} holds items of another model. This is a bug.`);
  if (data.faults.length > 0)
    await injectFaults(
      data.faults,
      items.map((item) => item.text),
    );
  const encoded = items.map((item, index) => encode(model, item, index));
  const errors = encoded.flatMap((e) => (e.error ? [e.error] : []));
  const rows = encoded.flatMap((e, index) => (e.error ? [] : [{ index, ids: e.ids }]));
  const { dims } = model.spec;
  const vectors = new Float32Array(items.length * dims);
  const tokens = Int32Array.from(encoded, (e) => e.ids.length);
  const prepareMs = performance.now() - started;
  let paddedTokens = 0;
  let modelMs = 0;
  const calls = callsOf(rows);
  for (const group of calls) {
    const run = await runGroup(model, group, items, vectors);
    paddedTokens += run.paddedTokens;
    modelMs += run.modelMs;
  }
  return {
    type: 'batch-result',
    batchId,
    vectors,
    dims,
    tokens,
    errors,
    paddedTokens,
    inferenceMs: performance.now() - started,
    prepareMs,
    modelMs,
    calls: calls.length,
  };
}

export default async function run(task: LaneTask): Promise<LaneResult> {
  switch (task.type) {
    case 'text-batch':
      return embedBatch(task.batchId, task.model, task.items);
    case 'warmup': {
      const dims: number[] = [];
      for (const [model] of models.entries())
        dims.push(
          (await embedBatch(task.batchId, model, [{ model, text: 'warm up', normalize: true, truncate: true }])).dims,
        );
      return { type: 'warmup-result', batchId: task.batchId, dims };
    }
    case 'image-batch':
      throw new Error('a text worker got an image batch. This is a bug.');
  }
}
