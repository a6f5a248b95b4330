// `twinlane batch <input> [-o output.jsonl]`: submits a batch to a server through the Files and
// Batches API (or, with --local, runs it in this process without a server) and shows a progress bar
// with rate and ETA on stderr. The input is a Batch API JSONL file, or plain text with one input per
// line (converted). Exit codes: 0 every line answered 2xx; 3 completed with failed lines (in the
// error file); 4 the batch failed validation; 5 cancelled or expired; 2 bad usage; 1 anything else
// (server unreachable, an HTTP error).
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BatchObject } from './state.js';

const USAGE = `Usage: twinlane batch <input> [options]

<input> is a Batch API JSONL file ({"custom_id","method":"POST","url":"/v1/embeddings","body":{…}} per
line) or plain text with one input per line (converted, custom_id "line-N").

Options:
  -o, --output FILE   where the output lines go (default: <input>.output.jsonl; failed lines go to
                      FILE with .errors.jsonl in place of .jsonl)
  --url URL           the server (default: $TWINLANE_URL, else http://127.0.0.1:8080)
  --api-key KEY       sent as Bearer (default: $TWINLANE_API_KEY)
  --model ID          model for plain-text input (default: the server's text model)
  --local             run in this process, no server: models and settings from the TWINLANE_*
                      environment, as the server would load them
  --help

Exit codes: 0 all lines answered; 3 completed with failed lines; 4 failed validation; 5 cancelled or
expired; 2 bad usage; 1 other errors.
`;

export const EXIT = { ok: 0, error: 1, usage: 2, failedLines: 3, invalid: 4, stopped: 5 } as const;

class UsageError extends Error {}

interface Args {
  readonly input: string;
  readonly output: string;
  readonly url: string;
  readonly apiKey: string | undefined;
  readonly model: string | undefined;
  readonly local: boolean;
}

function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv): Args {
  let input: string | undefined;
  let output: string | undefined;
  let url = env['TWINLANE_URL'] ?? 'http://127.0.0.1:8080';
  let apiKey = env['TWINLANE_API_KEY'];
  let model: string | undefined;
  let local = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    if (arg === '-o' || arg === '--output') output = value();
    else if (arg === '--url') url = value();
    else if (arg === '--api-key') apiKey = value();
    else if (arg === '--model') model = value();
    else if (arg === '--local') local = true;
    else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
    else if (input === undefined) input = arg;
    else throw new UsageError(`one input file only (got ${input} and ${arg})`);
  }
  if (input === undefined) throw new UsageError('no input file');
  if (!existsSync(input)) throw new UsageError(`${input} does not exist`);
  return { input, output: output ?? `${input}.output.jsonl`, url: url.replace(/\/$/, ''), apiKey, model, local };
}

/** A Batch API file as it is, or plain text lines turned into one. */
export function toBatchJsonl(content: string, model: string | undefined): string {
  const lines = content.split('\n').filter((l) => l.trim() !== '');
  const first = lines[0]?.trim() ?? '';
  let isJsonl = false;
  try {
    const value = JSON.parse(first) as unknown;
    isJsonl = typeof value === 'object' && value !== null && 'custom_id' in value;
  } catch {
    isJsonl = false;
  }
  if (isJsonl) return content;
  return lines
    .map((text, i) =>
      JSON.stringify({
        custom_id: `line-${i + 1}`,
        method: 'POST',
        url: '/v1/embeddings',
        body: { ...(model ? { model } : {}), input: text },
      }),
    )
    .join('\n');
}

/** One line on stderr: a bar on a terminal (redrawn), else a plain line every few seconds. */
class Progress {
  readonly #started = Date.now();
  #lastPlain = 0;

  show(batch: BatchObject): void {
    const { total, completed, failed } = batch.request_counts;
    const done = completed + failed;
    const seconds = (Date.now() - this.#started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const eta = rate > 0 && total > done ? `${Math.ceil((total - done) / rate)} s` : '—';
    const share = total > 0 ? done / total : 0;
    const text = `${batch.status} ${done}/${total} (${(share * 100).toFixed(0)} %), ${failed} failed, ${rate.toFixed(0)} lines/s, ETA ${eta}`;
    if (process.stderr.isTTY) {
      const width = 30;
      const bar = '#'.repeat(Math.round(share * width)).padEnd(width, '.');
      process.stderr.write(`\r[${bar}] ${text}\u001b[K`);
    } else if (Date.now() - this.#lastPlain > 5000) {
      this.#lastPlain = Date.now();
      process.stderr.write(`${text}\n`);
    }
  }

  end(): void {
    if (process.stderr.isTTY) process.stderr.write('\n');
  }
}

const FINAL = ['completed', 'failed', 'cancelled', 'expired'];

/** The Files and Batches API of a running server. */
class Remote {
  readonly #url: string;
  readonly #headers: Record<string, string>;

  constructor(url: string, apiKey: string | undefined) {
    this.#url = url;
    this.#headers = apiKey ? { authorization: `Bearer ${apiKey}` } : {};
  }

  async #json<T>(method: string, route: string, body?: FormData | string): Promise<T> {
    const res = await fetch(`${this.#url}${route}`, {
      method,
      headers: { ...this.#headers, ...(typeof body === 'string' ? { 'content-type': 'application/json' } : {}) },
      ...(body === undefined ? {} : { body }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${route} answered ${res.status}: ${text.slice(0, 500)}`);
    return JSON.parse(text) as T;
  }

  async submit(jsonl: string, name: string): Promise<BatchObject> {
    const form = new FormData();
    form.set('purpose', 'batch');
    form.set('file', new Blob([jsonl]), name);
    const file = await this.#json<{ id: string }>('POST', '/v1/files', form);
    return this.#json<BatchObject>(
      'POST',
      '/v1/batches',
      JSON.stringify({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' }),
    );
  }

  get(id: string): Promise<BatchObject> {
    return this.#json<BatchObject>('GET', `/v1/batches/${id}`);
  }

  async content(id: string | null): Promise<string> {
    if (id === null) return '';
    const res = await fetch(`${this.#url}/v1/files/${id}/content`, { headers: this.#headers });
    if (!res.ok) throw new Error(`GET /v1/files/${id}/content answered ${res.status}`);
    return res.text();
  }
}

interface Backend {
  submit(jsonl: string, name: string): Promise<BatchObject>;
  get(id: string): Promise<BatchObject>;
  content(id: string | null): Promise<string>;
  close(): Promise<void>;
}

/** The server's parts in this process, with a temporary files directory: no sockets. */
async function localBackend(): Promise<Backend> {
  const { loadConfig } = await import('../src/config.js');
  const { createParts, resolveModels } = await import('../src/serve.js');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'twinlane-batch-'));
  const config = loadConfig([], { ...process.env, TWINLANE_FILES_DIR: dir, TWINLANE_REDIS_URL: '' });
  const parts = createParts(config, await resolveModels(config));
  await Promise.all([parts.textLane.warmup(), parts.imageLane?.warmup()]);
  const { files, service, queue } = parts.batch;
  return {
    async submit(jsonl, name) {
      const file = await files.create('batch', name, Buffer.from(jsonl));
      return service.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' });
    },
    get: (id) => service.get(id),
    async content(id) {
      return id === null ? '' : ((await files.content(id))?.toString('utf8') ?? '');
    },
    async close() {
      await queue.close();
      await parts.orchestrator.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function run(args: Args): Promise<number> {
  const jsonl = toBatchJsonl(await readFile(args.input, 'utf8'), args.model);
  const backend: Backend = args.local
    ? await localBackend()
    : Object.assign(new Remote(args.url, args.apiKey), { close: async () => undefined });
  try {
    let batch = await backend.submit(jsonl, path.basename(args.input));
    const progress = new Progress();
    while (!FINAL.includes(batch.status)) {
      progress.show(batch);
      await new Promise((r) => setTimeout(r, 500));
      batch = await backend.get(batch.id);
    }
    progress.show(batch);
    progress.end();
    if (batch.status === 'failed') {
      for (const e of batch.errors?.data ?? [])
        process.stderr.write(`line ${e.line ?? '-'}: ${e.code}: ${e.message}\n`);
      return EXIT.invalid;
    }
    const errorsPath = args.output.replace(/(\.jsonl)?$/, '.errors.jsonl');
    await writeFile(args.output, await backend.content(batch.output_file_id));
    const errors = await backend.content(batch.error_file_id);
    if (errors !== '') await writeFile(errorsPath, errors);
    const { completed, failed, total } = batch.request_counts;
    process.stderr.write(
      `${batch.status}: ${completed} of ${total} lines in ${args.output}${failed > 0 ? `, ${failed} failed in ${errorsPath}` : ''}\n`,
    );
    if (batch.status !== 'completed') return EXIT.stopped;
    return failed > 0 ? EXIT.failedLines : EXIT.ok;
  } finally {
    await backend.close();
  }
}

export async function batchCli(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE);
    return EXIT.ok;
  }
  try {
    return await run(parseArgs(argv, process.env));
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`twinlane batch: ${error.message}\n\n${USAGE}`);
      return EXIT.usage;
    }
    process.stderr.write(`twinlane batch: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.error;
  }
}
