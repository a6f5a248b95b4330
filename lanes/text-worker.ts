// Runs inside a text-lane worker thread: owns the tokenizer and one ONNX Runtime session, and turns
// one batch of texts into pooled vectors per ONNX call. Never runs on the main thread.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { workerData } from 'piscina';
import type { BatchResult, ItemError, LaneResult, LaneTask, TextItem, TextWorkerData } from './protocol.js';
import { createSession, l2NormalizeRows, lowerThreadPriority } from './session.js';

const data = workerData as TextWorkerData;
// Just below the main thread, which answers cache hits and owns every socket: a busy text lane never
// takes it from them.
lowerThreadPriority(data.nice, 'text');

async function readJson(file: string): Promise<object> {
  return JSON.parse(await readFile(path.join(data.modelDir, file), 'utf8')) as object;
}

const tokenizer = new Tokenizer(await readJson('tokenizer.json'), await readJson('tokenizer_config.json'));
const session = await createSession(data.onnxPath, data.intraOpThreads, data.provider);
const sepId = tokenizer.token_to_id('[SEP]');

interface Encoded {
  readonly ids: number[];
  readonly error?: ItemError;
}

// @huggingface/tokenizers ignores tokenizer.json's truncation settings, so truncation happens here,
// the way sentence-transformers does it: keep the first max-1 ids and end with [SEP] again.
function encode(item: TextItem, index: number): Encoded {
  const ids = tokenizer.encode(item.text).ids;
  if (ids.length <= data.maxTokens) return { ids };
  if (!item.truncate) {
    return {
      ids: [],
      error: { index, code: 'input_too_long', message: `Input ${index} has ${ids.length} tokens; the model's limit is ${data.maxTokens} and truncate is false.` },
    };
  }
  const cut = ids.slice(0, data.maxTokens);
  if (sepId !== undefined && ids.at(-1) === sepId) cut[cut.length - 1] = sepId;
  return { ids: cut };
}

interface Row {
  /** Position of the text in its batch. */
  readonly index: number;
  readonly ids: number[];
}

/** Padding a CPU batch may carry, as a share of its real tokens, before it is split by length. */
const MAX_PADDING_SHARE = 0.1;

/**
 * On a CPU every padded position costs as much as a real token (bench/results/e2e.md: batch 1 beat
 * padded batches of 8–64), so rows are sorted by length and run in groups whose padding stays under
 * MAX_PADDING_SHARE: the per-call overhead of a few more ONNX calls is far below the padding saved.
 * A GPU runs padded positions in parallel and pays per call instead, so it keeps one call per batch.
 */
function lengthGroups(rows: readonly Row[]): Row[][] {
  if (data.provider.name !== 'cpu') return [[...rows]];
  const sorted = [...rows].sort((a, b) => a.ids.length - b.ids.length);
  const groups: Row[][] = [];
  let group: Row[] = [];
  let real = 0;
  for (const row of sorted) {
    // Sorted ascending, so this row is the group's longest: every row would be padded to it.
    const padded = (group.length + 1) * row.ids.length;
    if (group.length > 0 && padded > (real + row.ids.length) * (1 + MAX_PADDING_SHARE)) {
      groups.push(group);
      group = [];
      real = 0;
    }
    group.push(row);
    real += row.ids.length;
  }
  groups.push(group);
  return groups;
}

/** One ONNX call over `rows`, right-padded to the longest; pooled vectors land in `vectors` at each row's index. Returns padded tokens. */
async function runGroup(rows: readonly Row[], items: readonly TextItem[], vectors: Float32Array): Promise<number> {
  const dims = data.dims;
  const longest = Math.max(...rows.map((r) => r.ids.length));
  const size = rows.length * longest;
  const inputIds = new BigInt64Array(size);
  const mask = new BigInt64Array(size);
  rows.forEach((row, r) => {
    row.ids.forEach((id, t) => {
      inputIds[r * longest + t] = BigInt(id);
      mask[r * longest + t] = 1n;
    });
  });
  const shape = [rows.length, longest];
  const output = await session.run({
    input_ids: session.tensor('int64', inputIds, shape),
    attention_mask: session.tensor('int64', mask, shape),
    token_type_ids: session.tensor('int64', new BigInt64Array(size), shape),
  });
  const hidden = output['last_hidden_state'];
  if (!hidden || hidden.length !== size * dims) {
    throw new Error(`text model returned ${hidden?.length ?? 'no'} last_hidden_state values, expected ${size * dims}. This is a bug or a wrong model.`);
  }
  rows.forEach((row, r) => {
    const vector = vectors.subarray(row.index * dims, (row.index + 1) * dims);
    const base = r * longest * dims;
    if (data.pooling === 'cls') {
      vector.set(hidden.subarray(base, base + dims));
    } else {
      // Mean over real tokens only: padded positions are excluded exactly as the attention mask says.
      for (let t = 0; t < row.ids.length; t++) {
        const off = base + t * dims;
        for (let d = 0; d < dims; d++) vector[d]! += hidden[off + d]!;
      }
      for (let d = 0; d < dims; d++) vector[d]! /= row.ids.length;
    }
    if (items[row.index]!.normalize) l2NormalizeRows(vector, dims);
  });
  return size;
}

async function embedBatch(batchId: number, items: readonly TextItem[]): Promise<BatchResult> {
  const started = performance.now();
  const encoded = items.map(encode);
  const errors = encoded.flatMap((e) => (e.error ? [e.error] : []));
  const rows = encoded.flatMap((e, index) => (e.error ? [] : [{ index, ids: e.ids }]));
  const dims = data.dims;
  const vectors = new Float32Array(items.length * dims);
  const tokens = Int32Array.from(encoded, (e) => e.ids.length);
  let paddedTokens = 0;
  if (rows.length > 0) for (const group of lengthGroups(rows)) paddedTokens += await runGroup(group, items, vectors);
  return { type: 'batch-result', batchId, vectors, dims, tokens, errors, paddedTokens, inferenceMs: performance.now() - started };
}

export default async function run(task: LaneTask): Promise<LaneResult> {
  switch (task.type) {
    case 'text-batch':
      return embedBatch(task.batchId, task.items);
    case 'warmup': {
      const result = await embedBatch(task.batchId, [{ text: 'warm up', normalize: true, truncate: true }]);
      return { type: 'warmup-result', batchId: task.batchId, dims: result.dims };
    }
    case 'image-batch':
      throw new Error('a text worker got an image batch. This is a bug.');
  }
}
