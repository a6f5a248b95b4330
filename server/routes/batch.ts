// OpenAI's Files and Batches API for /v1/embeddings: the official `openai` client's
// `files.create/retrieve/content/delete/list` and `batches.create/retrieve/list/cancel`.
import { BatchError, type BatchService, type FileStore } from '../../batch/index.js';
import { TwinlaneError } from '../../src/index.js';
import { parseJson, readBody, requireJson } from '../body.js';
import type { Exchange } from '../exchange.js';
import { requireObject } from '../fields.js';
import { replyJson } from '../reply.js';
import { uWS } from '../uws.js';

export interface BatchRouteOptions {
  readonly service: BatchService;
  readonly files: FileStore;
  readonly maxFileBytes: number;
}

/** The `{id}` of `/v1/<kind>/{id}[/…]`. */
const idOf = (ex: Exchange, at: number) => decodeURIComponent(ex.url.split('/')[at] ?? '');

function batchError(error: unknown): never {
  if (!(error instanceof BatchError)) throw error;
  throw new TwinlaneError(error.code, error.message, { param: error.param });
}

async function fileOr404(options: BatchRouteOptions, id: string) {
  const file = await options.files.get(id);
  if (!file) throw new TwinlaneError('file_not_found', `No file ${JSON.stringify(id)}.`);
  return file;
}

/** A batch input must look like JSONL: text whose first line is a JSON object. */
function checkBatchInput(bytes: Buffer): void {
  if (bytes.length === 0) throw new TwinlaneError('invalid_file', 'The file is empty.', { param: 'file' });
  const first = bytes
    .subarray(0, Math.min(bytes.length, 1 << 20))
    .toString('utf8')
    .split('\n')[0]!
    .trim();
  let value: unknown;
  try {
    value = JSON.parse(first);
  } catch {
    value = null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new TwinlaneError('invalid_file', 'A batch file is JSONL: one JSON object per line.', { param: 'file' });
}

/** POST /v1/files: multipart with `purpose=batch` and `file`. */
export async function createFile(ex: Exchange, options: BatchRouteOptions): Promise<void> {
  const contentType = ex.header('content-type') ?? '';
  if (!contentType.toLowerCase().startsWith('multipart/form-data'))
    throw new TwinlaneError('unsupported_media_type', 'POST /v1/files takes multipart/form-data.');
  const body = await readBody(ex, options.maxFileBytes + 64 * 1024);
  const parts = uWS.getParts(body, contentType) ?? [];
  const purpose = parts.find((p) => p.name === 'purpose');
  const file = parts.find((p) => p.name === 'file');
  const purposeText = purpose ? Buffer.from(purpose.data).toString('utf8') : undefined;
  if (purposeText !== 'batch')
    throw new TwinlaneError('invalid_request', `purpose must be "batch" (got ${JSON.stringify(purposeText)}).`, {
      param: 'purpose',
    });
  if (!file) throw new TwinlaneError('invalid_request', 'The multipart body has no `file` part.', { param: 'file' });
  const bytes = Buffer.from(file.data);
  if (bytes.length > options.maxFileBytes)
    throw new TwinlaneError(
      'payload_too_large',
      `The file has ${bytes.length} bytes; the limit is ${options.maxFileBytes}.`,
    );
  checkBatchInput(bytes);
  replyJson(ex, 200, await options.files.create('batch', file.filename ?? 'input.jsonl', bytes));
}

export async function listFiles(ex: Exchange, options: BatchRouteOptions): Promise<void> {
  replyJson(ex, 200, { object: 'list', data: await options.files.list() });
}

export async function getFile(ex: Exchange, options: BatchRouteOptions): Promise<void> {
  replyJson(ex, 200, await fileOr404(options, idOf(ex, 3)));
}

export async function fileContent(ex: Exchange, options: BatchRouteOptions): Promise<void> {
  const id = idOf(ex, 3);
  const content = await options.files.content(id);
  if (!content) throw new TwinlaneError('file_not_found', `No file ${JSON.stringify(id)}.`);
  ex.send(200, { 'content-type': 'application/octet-stream' }, content);
}

export async function deleteFile(ex: Exchange, options: BatchRouteOptions): Promise<void> {
  const id = idOf(ex, 3);
  if (!(await options.files.delete(id))) throw new TwinlaneError('file_not_found', `No file ${JSON.stringify(id)}.`);
  replyJson(ex, 200, { id, object: 'file', deleted: true });
}

/** POST /v1/batches: `{input_file_id, endpoint, completion_window, metadata?}`. */
export async function createBatch(ex: Exchange, options: BatchRouteOptions): Promise<void> {
  requireJson(ex);
  const body = requireObject(parseJson(await readBody(ex, 64 * 1024)));
  const batch = await options.service
    .create({
      input_file_id: body['input_file_id'],
      endpoint: body['endpoint'],
      completion_window: body['completion_window'],
      metadata: body['metadata'],
    })
    .catch(batchError);
  replyJson(ex, 200, batch);
}

export async function getBatch(ex: Exchange, options: BatchRouteOptions): Promise<void> {
  replyJson(ex, 200, await options.service.get(idOf(ex, 3)).catch(batchError));
}

export async function cancelBatch(ex: Exchange, options: BatchRouteOptions): Promise<void> {
  replyJson(ex, 200, await options.service.cancel(idOf(ex, 3)).catch(batchError));
}

/** GET /v1/batches?limit=&after=: newest first. */
export async function listBatches(ex: Exchange, options: BatchRouteOptions): Promise<void> {
  const query = ex.query;
  const limitText = query.get('limit') ?? '20';
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw new TwinlaneError(
      'invalid_request',
      `limit must be an integer from 1 to 100 (got ${JSON.stringify(limitText)}).`,
      {
        param: 'limit',
      },
    );
  const after = query.get('after') ?? undefined;
  const { data, has_more } = await options.service.list(limit, after);
  replyJson(ex, 200, {
    object: 'list',
    data,
    first_id: data[0]?.id ?? null,
    last_id: data.at(-1)?.id ?? null,
    has_more,
  });
}
