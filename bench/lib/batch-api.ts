// The Batch API as the benches drive it: a file of unique sentences, upload and create its batch,
// read its counts.
import { sentence } from '../fixtures/texts.js';

const base = (port: number) => `http://127.0.0.1:${port}`;

/** A JSONL batch input of `count` never-repeated sentences, the first being sentence number `first`. */
export function sentenceBatch(model: string, count: number, first: number): Blob {
  const lines = Array.from({ length: count }, (_, i) =>
    JSON.stringify({
      custom_id: `c${i}`,
      method: 'POST',
      url: '/v1/embeddings',
      body: { model, input: sentence(first + i) },
    }),
  );
  return new Blob([lines.join('\n')]);
}

/** Uploads `file` (JSONL) and creates its batch; fails unless the batch starts `in_progress`. */
export async function submitBatch(port: number, file: Blob): Promise<string> {
  const form = new FormData();
  form.set('purpose', 'batch');
  form.set('file', file, 'catalogue.jsonl');
  const uploaded = (await (await fetch(`${base(port)}/v1/files`, { method: 'POST', body: form })).json()) as {
    id: string;
  };
  const batch = (await (
    await fetch(`${base(port)}/v1/batches`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input_file_id: uploaded.id, endpoint: '/v1/embeddings', completion_window: '24h' }),
    })
  ).json()) as { id: string; status: string };
  if (batch.status !== 'in_progress') throw new Error(`the batch is ${batch.status}`);
  return batch.id;
}

export interface BatchProgress {
  readonly status: string;
  readonly total: number;
  readonly completed: number;
  readonly failed: number;
}

export async function batchProgress(port: number, id: string): Promise<BatchProgress> {
  const batch = (await (await fetch(`${base(port)}/v1/batches/${id}`)).json()) as {
    status: string;
    request_counts: { total: number; completed: number; failed: number };
  };
  return { status: batch.status, ...batch.request_counts };
}
