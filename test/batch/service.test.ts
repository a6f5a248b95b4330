// The batch state machine where time matters: the 24 h completion window. The service runs on a real
// files directory with a clock the test moves on; a line's embedding is a counting stand-in for the
// server's /v1/embeddings code (the routes' own tests run that part), so the test sees exactly which
// lines ran. A chunk taken after the window has passed is not run: its lines go to the error file as
// batch_expired, the finished chunks stay in the output, and a restart resumes into the same ending.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BatchService, BatchState, FileStore, LocalQueue, type BatchObject } from '../../batch/index.js';

const DAY = 24 * 3600;
const START = 1_800_000_000;

let dir: string;
let time: number;
let executed: string[];

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'twinlane-batch-service-'));
  time = START;
  executed = [];
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function service(files: FileStore): BatchService {
  return new BatchService({
    files,
    state: new BatchState(dir),
    execute: async (body) => {
      executed.push(String(body['input']));
      return {
        statusCode: 200,
        body: { object: 'list', data: [{ object: 'embedding', index: 0, embedding: [1, 0] }] },
      };
    },
    limits: { maxInputs: 16, maxLineBytes: 10_000, maxLines: 1000, knownModel: (id) => id === 'm' },
    chunkLines: 10,
    lineConcurrency: 4,
    clock: () => time,
  });
}

async function createBatch(files: FileStore, svc: BatchService, lines: number): Promise<BatchObject> {
  const jsonl = Array.from({ length: lines }, (_, i) =>
    JSON.stringify({ custom_id: `c${i}`, method: 'POST', url: '/v1/embeddings', body: { model: 'm', input: `t${i}` } }),
  ).join('\n');
  const file = await files.create('batch', 'in.jsonl', Buffer.from(jsonl));
  return svc.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' });
}

async function jsonLines(files: FileStore, id: string | null): Promise<Record<string, unknown>[]> {
  if (id === null) return [];
  const content = (await files.content(id))!.toString('utf8');
  return content
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('the completion window', () => {
  it('expires a batch whose chunks were not all run within 24 h, keeping the finished part', async () => {
    const files = new FileStore({ dir, ttlSeconds: 0 });
    const svc = service(files);
    const batch = await createBatch(files, svc, 30);
    expect([batch.status, batch.expires_at]).toEqual(['in_progress', START + DAY]);

    await svc.processChunk(batch.id, 0);
    time = START + DAY - 1; // the last second of the window: a chunk taken now still runs
    await svc.processChunk(batch.id, 1);
    expect(executed).toHaveLength(20);
    expect((await svc.get(batch.id)).status).toBe('in_progress');

    time = START + DAY; // the window is over
    await svc.processChunk(batch.id, 2);
    expect(executed).toHaveLength(20);
    const final = await svc.get(batch.id);
    expect(final.status).toBe('expired');
    expect(final.expired_at).toBe(START + DAY);
    expect([final.completed_at, final.cancelled_at]).toEqual([null, null]);
    expect(final.request_counts).toEqual({ total: 30, completed: 20, failed: 10 });

    const out = await jsonLines(files, final.output_file_id);
    expect(out.map((l) => l['custom_id'])).toEqual(Array.from({ length: 20 }, (_, i) => `c${i}`));
    const errors = await jsonLines(files, final.error_file_id);
    expect(errors.map((l) => l['custom_id'])).toEqual(Array.from({ length: 10 }, (_, i) => `c${20 + i}`));
    for (const line of errors) {
      expect(line['response']).toBeNull();
      expect((line['error'] as { code: string }).code).toBe('batch_expired');
    }
  });

  it('a restart after the window ends an unfinished batch as expired without running it', async () => {
    const files = new FileStore({ dir, ttlSeconds: 0 });
    const before = service(files);
    const batch = await createBatch(files, before, 25);
    await before.processChunk(batch.id, 0);

    time = START + DAY + 3600; // the server was down past the window
    const after = service(files);
    const queue = new LocalQueue(
      (id, chunk) => after.processChunk(id, chunk),
      1,
      () => {},
    );
    after.attach(queue);
    expect(await after.resume()).toBe(2);
    for (let i = 0; i < 100 && (await after.get(batch.id)).status === 'in_progress'; i++)
      await new Promise((r) => setTimeout(r, 20));
    await queue.close();
    const final = await after.get(batch.id);
    expect(final.status).toBe('expired');
    expect(executed).toHaveLength(10);
    expect(final.request_counts).toEqual({ total: 25, completed: 10, failed: 15 });
  });

  it('a cancelled batch writes the lines it never ran as batch_cancelled', async () => {
    const files = new FileStore({ dir, ttlSeconds: 0 });
    const svc = service(files);
    const batch = await createBatch(files, svc, 20);
    await svc.processChunk(batch.id, 0);
    expect((await svc.cancel(batch.id)).status).toBe('cancelling');
    await svc.processChunk(batch.id, 1);
    const final = await svc.get(batch.id);
    expect(final.status).toBe('cancelled');
    expect(final.request_counts).toEqual({ total: 20, completed: 10, failed: 10 });
    const errors = await jsonLines(files, final.error_file_id);
    expect(errors.map((l) => (l['error'] as { code: string }).code)).toEqual(Array(10).fill('batch_cancelled'));
    expect(executed).toHaveLength(10);
  });
});
