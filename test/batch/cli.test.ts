// `twinlane batch`, run as a user runs it (the built bin, a real server, real files): plain text and
// JSONL input, the output and error files, every documented exit code, and --local with no server.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODELS_DIR, startServer, TEXT_MODEL, IMAGE_MODEL, type TestServer } from '../helpers/server.js';

let server: TestServer;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'twinlane-cli-'));
  server = await startServer({ TWINLANE_FILES_DIR: path.join(dir, 'files'), TWINLANE_BATCH_CHUNK_LINES: '50' });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['dist/src/main.js', 'batch', ...args],
      { env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 120_000 },
      (error, _stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stderr }),
    );
  });
}

const lines = async (file: string) => (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');

describe('twinlane batch', () => {
  it('turns plain text into a batch and writes one output line per input (exit 0)', async () => {
    const input = path.join(dir, 'titles.txt');
    await writeFile(input, Array.from({ length: 120 }, (_, i) => `product title number ${i}`).join('\n'));
    const { code, stderr } = await cli([input, '--url', server.url, '-o', path.join(dir, 'titles.out.jsonl')]);
    expect([code, stderr.trim().split('\n').at(-1)]).toEqual([
      0,
      `completed: 120 of 120 lines in ${path.join(dir, 'titles.out.jsonl')}`,
    ]);
    const out = (await lines(path.join(dir, 'titles.out.jsonl'))).map((l) => JSON.parse(l) as { custom_id: string });
    expect(out.map((o) => o.custom_id).sort()).toEqual(Array.from({ length: 120 }, (_, i) => `line-${i + 1}`).sort());
  }, 120_000);

  it('exits 3 with the failed lines in the error file, 4 on a file that fails validation, 2 on bad usage, 1 without a server', async () => {
    const input = path.join(dir, 'mixed.jsonl');
    const line = (id: string, body: object) =>
      JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/embeddings', body });
    await writeFile(
      input,
      [line('a', { model: TEXT_MODEL, input: 'fine' }), line('b', { model: TEXT_MODEL, input: '' })].join('\n'),
    );
    const failed = await cli([input, '--url', server.url]);
    expect(failed.code).toBe(3);
    expect((await lines(`${input}.output.jsonl`)).length).toBe(1);
    const errors = (await lines(`${input}.output.errors.jsonl`)).map(
      (l) => JSON.parse(l) as { error: { code: string } },
    );
    expect(errors.map((e) => e.error.code)).toEqual(['empty_input']);

    const invalid = path.join(dir, 'invalid.jsonl');
    await writeFile(invalid, [line('a', { model: 'nobody/none', input: 'x' })].join('\n'));
    const refused = await cli([invalid, '--url', server.url]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('model_not_found');

    expect((await cli(['--bogus'])).code).toBe(2);
    expect((await cli([path.join(dir, 'missing.txt')])).code).toBe(2);
    expect((await cli([input, '--url', 'http://127.0.0.1:9'])).code).toBe(1);
  }, 120_000);

  it('--local runs the batch in process, without a server', async () => {
    const input = path.join(dir, 'local.txt');
    await writeFile(input, ['a local text', 'another local text', 'a third'].join('\n'));
    const { code, stderr } = await cli([input, '--local'], {
      TWINLANE_MODELS_DIR: MODELS_DIR,
      TWINLANE_TEXT_MODEL: TEXT_MODEL,
      TWINLANE_IMAGE_MODEL: IMAGE_MODEL,
      TWINLANE_OFFLINE: 'true',
      HOME: process.env['HOME'] ?? '/tmp',
    });
    expect([code, stderr.trim().split('\n').at(-1)]).toEqual([0, `completed: 3 of 3 lines in ${input}.output.jsonl`]);
    const out = (await lines(`${input}.output.jsonl`)).map(
      (l) => JSON.parse(l) as { response: { body: { data: { embedding: number[] }[] } } },
    );
    expect(out.map((o) => o.response.body.data[0]!.embedding.length)).toEqual([384, 384, 384]);
  }, 120_000);
});
