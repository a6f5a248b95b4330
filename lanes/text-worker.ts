// Runs inside a text-lane worker thread: owns the tokenizer and one ONNX Runtime session, and turns
// one batch of texts into pooled vectors per ONNX call. Never runs on the main thread.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { workerData } from 'piscina';
import type { BatchResult, ItemError, LaneResult, LaneTask, TextItem, TextWorkerData } from './protocol.js';
import { createSession, l2NormalizeRows } from './session.js';

const data = workerData as TextWorkerData;

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

async function embedBatch(batchId: number, items: readonly TextItem[]): Promise<BatchResult> {
  const started = performance.now();
  const encoded = items.map(encode);
  const errors = encoded.flatMap((e) => (e.error ? [e.error] : []));
  const rows = encoded.filter((e) => !e.error);
  const dims = data.dims;
  const vectors = new Float32Array(items.length * dims);
  const tokens = Int32Array.from(encoded, (e) => e.ids.length);
  if (rows.length === 0) return { type: 'batch-result', batchId, vectors, dims, tokens, errors, paddedTokens: 0, inferenceMs: performance.now() - started };

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

  let r = 0;
  encoded.forEach((e, i) => {
    if (e.error) return;
    const row = vectors.subarray(i * dims, (i + 1) * dims);
    const base = r * longest * dims;
    if (data.pooling === 'cls') {
      row.set(hidden.subarray(base, base + dims));
    } else {
      // Mean over real tokens only: padded positions are excluded exactly as the attention mask says.
      for (let t = 0; t < e.ids.length; t++) {
        const off = base + t * dims;
        for (let d = 0; d < dims; d++) row[d]! += hidden[off + d]!;
      }
      for (let d = 0; d < dims; d++) row[d]! /= e.ids.length;
    }
    if (items[i]!.normalize) l2NormalizeRows(row, dims);
    r++;
  });
  return { type: 'batch-result', batchId, vectors, dims, tokens, errors, paddedTokens: size, inferenceMs: performance.now() - started };
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
