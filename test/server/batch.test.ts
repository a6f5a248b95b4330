// OpenAI's Files and Batches API for /v1/embeddings, driven by the official `openai` client: a
// 5,000-line batch (texts, a few images, some lines that fail) completes with the answers
// /v1/embeddings gives, while live traffic is served without a 429; validation fails bad files up
// front; cancel keeps the finished part; a Redis-less server killed mid-batch resumes it; two
// instances on one Redis share a batch and finish it when one is killed, every custom_id once.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { scenePng } from '../fixtures/images.js';
import { startRedis, waitFor, type TestRedis } from '../helpers/redis.js';
import { startServer, TEXT_MODEL, IMAGE_MODEL, type TestServer } from '../helpers/server.js';

const dirs: string[] = [];
const servers: TestServer[] = [];
let redis: TestRedis | undefined;

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop('SIGKILL')));
  await redis?.stop();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function filesDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'twinlane-batch-'));
  dirs.push(dir);
  return dir;
}

async function server(env: Record<string, string>): Promise<TestServer> {
  const s = await startServer({ TWINLANE_BATCH_CHUNK_LINES: '100', ...env });
  servers.push(s);
  return s;
}

const client = (s: TestServer) => new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });

interface Line {
  custom_id: string;
  method: 'POST';
  url: string;
  body: Record<string, unknown>;
}

const textLine = (i: number, input: unknown = `batch sentence number ${i} about catalogues`): Line => ({
  custom_id: `line-${i}`,
  method: 'POST',
  url: '/v1/embeddings',
  body: { model: TEXT_MODEL, input },
});

const jsonl = (lines: readonly unknown[]) => Buffer.from(lines.map((l) => JSON.stringify(l)).join('\n') + '\n');

async function upload(openai: OpenAI, content: Buffer, name = 'input.jsonl') {
  return openai.files.create({ file: await toFile(content, name), purpose: 'batch' });
}

async function finished(openai: OpenAI, id: string, timeoutMs = 120_000) {
  let batch = await openai.batches.retrieve(id);
  const deadline = Date.now() + timeoutMs;
  while (!['completed', 'failed', 'cancelled', 'expired'].includes(batch.status)) {
    if (Date.now() > deadline)
      throw new Error(`batch ${id} still ${batch.status}: ${JSON.stringify(batch.request_counts)}`);
    await new Promise((r) => setTimeout(r, 200));
    batch = await openai.batches.retrieve(id);
  }
  return batch;
}

interface OutputLine {
  custom_id: string;
  response: { status_code: number; body: { data?: { embedding: number[] }[]; error?: { code: string } } };
  error: { code: string } | null;
}

async function outputLines(openai: OpenAI, fileId: string | null | undefined): Promise<OutputLine[]> {
  if (!fileId) return [];
  const text = await (await openai.files.content(fileId)).text();
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as OutputLine);
}

async function metric(s: TestServer, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && l.includes(labels))
    .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
}

describe('the Batch API in one process', () => {
  it('runs 5,000 lines to completed with the answers /v1/embeddings gives, live traffic served throughout', async () => {
    const s = await server({ TWINLANE_FILES_DIR: await filesDir() });
    const openai = client(s);
    const image = `data:image/png;base64,${(await scenePng('circle')).toString('base64')}`;
    const lines: Line[] = Array.from({ length: 5000 }, (_, i) => textLine(i));
    for (const i of [10, 2000, 4999]) lines[i] = { ...lines[i]!, body: { model: IMAGE_MODEL, input: image } };
    for (const i of [7, 3333]) lines[i] = textLine(i, ''); // fail: empty_input
    lines[42] = textLine(42, ['two texts', 'in one line']);
    const file = await upload(openai, jsonl(lines));
    expect(file).toMatchObject({ object: 'file', purpose: 'batch', bytes: jsonl(lines).length });
    const created = await openai.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/embeddings',
      completion_window: '24h',
    });
    expect(created.status).toBe('in_progress');

    // Live traffic while the batch runs: every request answered, none with a 429.
    const live: number[] = [];
    let batchDone = false;
    const liveTraffic = (async () => {
      for (let i = 0; !batchDone; i++) {
        const res = await fetch(`${s.url}/v1/embeddings`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: TEXT_MODEL, input: `a live query number ${i}` }),
        });
        await res.arrayBuffer();
        live.push(res.status);
      }
    })();
    const batch = await finished(openai, created.id);
    batchDone = true;
    await liveTraffic;
    expect(live.length).toBeGreaterThan(10);
    expect(live.filter((status) => status !== 200)).toEqual([]);

    expect(batch.status).toBe('completed');
    expect(batch.request_counts).toEqual({ total: 5000, completed: 4998, failed: 2 });
    const out = await outputLines(openai, batch.output_file_id);
    const errors = await outputLines(openai, batch.error_file_id);
    expect(out.length + errors.length).toBe(5000);
    expect(new Set([...out, ...errors].map((l) => l.custom_id)).size).toBe(5000);
    expect(errors.map((l) => [l.custom_id, l.response.status_code, l.error?.code]).sort()).toEqual([
      ['line-3333', 422, 'empty_input'],
      ['line-7', 422, 'empty_input'],
    ]);
    // Spot checks against the live route (cache hits now, bit-identical or within 1e-5).
    const byId = new Map(out.map((l) => [l.custom_id, l]));
    for (const i of [0, 42, 10, 1234, 4998]) {
      const body = lines[i]!.body;
      const direct = await openai.embeddings.create({ model: body['model'] as string, input: body['input'] as string });
      const got = byId.get(`line-${i}`)!.response.body.data!;
      expect(got.length).toBe(direct.data.length);
      got.forEach((d, k) => {
        const want = direct.data[k]!.embedding;
        expect(Math.max(...d.embedding.map((x, j) => Math.abs(x - want[j]!)))).toBeLessThanOrEqual(1e-5);
      });
    }
    expect(await metric(s, 'twinlane_batch_lines_total', 'outcome="completed"')).toBe(4998);
    expect((await openai.batches.list({ limit: 5 })).data.map((b) => b.id)).toContain(created.id);
  }, 180_000);

  it('fails bad files and bad lines up front, each with its code', async () => {
    const s = await server({
      TWINLANE_FILES_DIR: await filesDir(),
      TWINLANE_FILES_MAX_BYTES: '100000',
      TWINLANE_MAX_INPUTS: '8',
    });
    const openai = client(s);
    const refused = async (content: Buffer) => {
      const error = (await upload(openai, content).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
      return [error.status, (error.error as { code?: string } | undefined)?.code];
    };
    expect(await refused(Buffer.alloc(0))).toEqual([422, 'invalid_file']);
    expect(await refused(Buffer.from('not json at all\n'))).toEqual([422, 'invalid_file']);
    expect(await refused(Buffer.alloc(200_000, 'a'))).toEqual([413, 'payload_too_large']);
    const unknown = (await openai.batches
      .create({ input_file_id: 'file-000000000000000000000000', endpoint: '/v1/embeddings', completion_window: '24h' })
      .catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect([unknown.status, (unknown.error as { code?: string }).code]).toEqual([404, 'file_not_found']);

    const bad = await upload(
      openai,
      Buffer.from(
        [
          JSON.stringify(textLine(1)),
          '{"custom_id": "broken", ',
          JSON.stringify({ ...textLine(3), url: '/v1/chat/completions' }),
          JSON.stringify({ ...textLine(4), body: { model: 'nobody/none', input: 'x' } }),
          JSON.stringify(
            textLine(
              5,
              Array.from({ length: 9 }, (_, i) => `t${i}`),
            ),
          ),
          JSON.stringify(textLine(1)),
        ].join('\n'),
      ),
    );
    const batch = await openai.batches.create({
      input_file_id: bad.id,
      endpoint: '/v1/embeddings',
      completion_window: '24h',
    });
    expect(batch.status).toBe('failed');
    expect(batch.errors?.data?.map((e) => [e.line, e.code])).toEqual([
      [2, 'invalid_json_line'],
      [3, 'mismatched_endpoint'],
      [4, 'model_not_found'],
      [5, 'too_many_inputs'],
      [6, 'duplicate_custom_id'],
    ]);
    const missing = (await openai.batches
      .retrieve('batch_000000000000000000000000')
      .catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect([missing.status, (missing.error as { code?: string }).code]).toEqual([404, 'batch_not_found']);
  });

  it('cancels: cancelling, then cancelled with the finished part in the output', async () => {
    const s = await server({ TWINLANE_FILES_DIR: await filesDir(), TWINLANE_BATCH_CHUNK_LINES: '50' });
    const openai = client(s);
    const file = await upload(openai, jsonl(Array.from({ length: 3000 }, (_, i) => textLine(i, `to cancel ${i}`))));
    const created = await openai.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/embeddings',
      completion_window: '24h',
    });
    await waitFor(
      async () => (await openai.batches.retrieve(created.id)).request_counts!.completed > 0,
      60_000,
      'progress',
    );
    const cancelling = await openai.batches.cancel(created.id);
    expect(cancelling.status).toBe('cancelling');
    const batch = await finished(openai, created.id);
    expect(batch.status).toBe('cancelled');
    const out = await outputLines(openai, batch.output_file_id);
    expect(out.length).toBe(batch.request_counts!.completed);
    expect(out.length).toBeGreaterThan(0);
    expect(out.length).toBeLessThan(3000);
    const again = (await openai.batches.cancel(created.id).catch((e: unknown) => e)) as InstanceType<
      typeof OpenAI.APIError
    >;
    expect([again.status, (again.error as { code?: string }).code]).toEqual([409, 'batch_not_cancellable']);
  }, 120_000);

  it('resumes an unfinished batch when the server restarts on the same files directory', async () => {
    const dir = await filesDir();
    const first = await server({ TWINLANE_FILES_DIR: dir, TWINLANE_BATCH_CHUNK_LINES: '50' });
    const file = await upload(client(first), jsonl(Array.from({ length: 2000 }, (_, i) => textLine(i, `resume ${i}`))));
    const created = await client(first).batches.create({
      input_file_id: file.id,
      endpoint: '/v1/embeddings',
      completion_window: '24h',
    });
    await waitFor(
      async () => (await client(first).batches.retrieve(created.id)).request_counts!.completed >= 100,
      60_000,
      'progress',
    );
    await first.stop('SIGKILL');
    const second = await server({ TWINLANE_FILES_DIR: dir, TWINLANE_BATCH_CHUNK_LINES: '50' });
    const batch = await finished(client(second), created.id);
    expect(batch.status).toBe('completed');
    const out = await outputLines(client(second), batch.output_file_id);
    expect(out.map((l) => l.custom_id).sort()).toEqual(Array.from({ length: 2000 }, (_, i) => `line-${i}`).sort());
  }, 120_000);
});

describe('the Batch API on BullMQ, two instances and one Redis', () => {
  it('shares one batch between instances and finishes it when one is killed, every custom_id once', async () => {
    redis = await startRedis();
    const dir = await filesDir();
    const env = {
      TWINLANE_FILES_DIR: dir,
      TWINLANE_REDIS_URL: redis.url,
      TWINLANE_BATCH_CHUNK_LINES: '40',
      TWINLANE_BATCH_LOCK_MS: '2000',
    };
    const [a, b] = await Promise.all([server(env), server(env)]);
    const file = await upload(client(a), jsonl(Array.from({ length: 3000 }, (_, i) => textLine(i, `shared ${i}`))));
    const created = await client(a).batches.create({
      input_file_id: file.id,
      endpoint: '/v1/embeddings',
      completion_window: '24h',
    });
    // Both instances take chunks, and either reports the same progress.
    await waitFor(
      async () =>
        (await metric(a, 'twinlane_batch_lines_total', 'completed')) > 0 &&
        (await metric(b, 'twinlane_batch_lines_total', 'completed')) > 0,
      60_000,
      'both instances computing',
    );
    const seenFromB = await client(b).batches.retrieve(created.id);
    expect(seenFromB.id).toBe(created.id);
    const perInstance = {
      a: await metric(a, 'twinlane_batch_lines_total', 'completed'),
      b: await metric(b, 'twinlane_batch_lines_total', 'completed'),
    };
    console.log(`[batch] lines computed before the kill: ${JSON.stringify(perInstance)}`);
    await a.stop('SIGKILL');
    const batch = await finished(client(b), created.id, 120_000);
    expect(batch.status).toBe('completed');
    expect(batch.request_counts).toEqual({ total: 3000, completed: 3000, failed: 0 });
    const out = await outputLines(client(b), batch.output_file_id);
    const ids = out.map((l) => l.custom_id);
    expect(ids.length).toBe(3000);
    expect(new Set(ids).size).toBe(3000);
  }, 180_000);
});
