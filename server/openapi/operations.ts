// What each route is, for the API description: the route table (server/index.ts) gives every route
// one of these, so a route cannot be registered without being described. Bodies name schemas of
// ./schemas.ts; errors name codes of the error catalogue, whose statuses and meanings the document
// takes from there.
import type { ErrorCode } from '../../src/index.js';

export type Tag = 'Embeddings' | 'Files' | 'Batches' | 'Operations' | 'Streaming' | 'Pages';

export interface OperationDoc {
  readonly tag: Tag;
  readonly summary: string;
  readonly description?: string;
  /** The JSON body's schema, or other media types with theirs. */
  readonly body?: { readonly json?: string; readonly other?: Readonly<Record<string, string>> };
  /** The 200 answer's media types → schema name (or '' for an opaque body). */
  readonly answer: Readonly<Record<string, string>>;
  readonly query?: readonly {
    readonly name: string;
    readonly schema: Readonly<Record<string, unknown>>;
    readonly description: string;
  }[];
  /** Codes this route itself may answer, beside those every route of its kind may (document.ts adds them). */
  readonly errors: readonly ErrorCode[];
  /** Answers carry the timing headers (x-queue-time, x-inference-time, x-total-time, x-cache-hits). */
  readonly timed?: boolean;
  /** The status of a successful answer when it is not 200 (the WebSocket upgrade). */
  readonly status?: number;
}

const TEXT_ERRORS: readonly ErrorCode[] = [
  'invalid_json',
  'invalid_request',
  'unsupported_media_type',
  'payload_too_large',
  'model_not_found',
  'empty_input',
  'too_many_inputs',
  'input_too_long',
];
const IMAGE_ERRORS: readonly ErrorCode[] = [
  'unsupported_image',
  'image_too_large',
  'image_fetch_forbidden',
  'image_fetch_failed',
  'image_fetch_timeout',
];
const BINARY = { 'application/octet-stream': '', 'application/x-bfloat16': '' };

export const EMBEDDINGS: OperationDoc = {
  tag: 'Embeddings',
  summary: "OpenAI's embeddings API",
  description:
    'Texts for a text model; images (URLs, data URIs) for an image model; `{"text"}` / `{"image"}` items for a model with both towers. The official `openai` client works by changing its base URL.',
  body: { json: 'EmbeddingsRequest' },
  answer: { 'application/json': 'EmbeddingsResponse' },
  errors: [...TEXT_ERRORS, ...IMAGE_ERRORS, 'invalid_dimensions'],
  timed: true,
};

export const EMBED_TEXT: OperationDoc = {
  tag: 'Embeddings',
  summary: 'Embed texts (native)',
  description:
    'JSON vectors by default; `Accept: application/octet-stream` answers a little-endian float32 matrix and `application/x-bfloat16` BF16, each with `x-embedding-dims` and `x-embedding-count`.',
  body: { json: 'EmbedTextRequest' },
  answer: { 'application/json': 'Vectors', ...BINARY },
  errors: TEXT_ERRORS,
  timed: true,
};

export const EMBED_IMAGE: OperationDoc = {
  tag: 'Embeddings',
  summary: 'Embed images (native)',
  description:
    'JSON `{"inputs": [...]}`, or one raw image as the body (`Content-Type: image/jpeg|png|webp|gif|avif`, with `?model=`, `?normalize=`, `?encoding=`). Answers as POST /embed/text does.',
  body: {
    json: 'EmbedImageRequest',
    other: { 'image/jpeg': '', 'image/png': '', 'image/webp': '', 'image/gif': '', 'image/avif': '' },
  },
  query: [
    { name: 'model', schema: { type: 'string' }, description: 'With a raw image body: the image model.' },
    { name: 'normalize', schema: { enum: ['true', 'false'] }, description: 'With a raw image body.' },
    { name: 'encoding', schema: { type: 'string' }, description: 'With a raw image body: float or a quantization.' },
  ],
  answer: { 'application/json': 'Vectors', ...BINARY },
  errors: [...TEXT_ERRORS.filter((c) => c !== 'input_too_long'), ...IMAGE_ERRORS],
  timed: true,
};

export const TOKENIZE: OperationDoc = {
  tag: 'Embeddings',
  summary: 'Tokenize texts',
  description: 'Ids, tokens and character offsets per input, as the text model sees them.',
  body: { json: 'TokenizeRequest' },
  answer: { 'application/json': 'TokenizeResponse' },
  errors: TEXT_ERRORS,
};

export const HEALTH: OperationDoc = {
  tag: 'Operations',
  summary: 'Liveness',
  answer: { 'application/json': 'Health' },
  errors: [],
};
export const READY: OperationDoc = {
  tag: 'Operations',
  summary: 'Readiness',
  description: '200 when every lane has a live worker; 503 (the same body) otherwise or while draining.',
  answer: { 'application/json': 'Ready' },
  errors: [],
};
export const INFO: OperationDoc = {
  tag: 'Operations',
  summary: 'Models, dims and limits',
  answer: { 'application/json': 'Info' },
  errors: [],
};
export const MODELS: OperationDoc = {
  tag: 'Operations',
  summary: "OpenAI's model list",
  answer: { 'application/json': 'ModelList' },
  errors: [],
};
export const METRICS: OperationDoc = {
  tag: 'Operations',
  summary: 'Prometheus metrics',
  answer: { 'text/plain': '' },
  errors: [],
};

export const WEBSOCKET: OperationDoc = {
  tag: 'Streaming',
  summary: 'Streaming over WebSocket',
  description:
    'Upgrade to a WebSocket, then send `{"id", "lane": "text"|"image", "model"?, "inputs": [...], "format"?: "float"|"base64"|"binary"}` frames; each finished item comes back as `{"id", "index", "embedding", "cached"}` (or one binary frame), then `{"id", "done": true, "count", "failed"}`; `{"id", "cancel": true}` drops what is not computing yet. Errors use the error shape per item or request. A browser passes its key as the subprotocol `bearer.<key>`. OpenAPI cannot describe the frames; the README section "Streaming" does.',
  answer: {},
  errors: ['upgrade_required', 'too_many_connections', 'too_many_in_flight'],
  status: 101,
};

const file = (summary: string, answer: string, errors: readonly ErrorCode[] = ['file_not_found']): OperationDoc => ({
  tag: 'Files',
  summary,
  answer: { 'application/json': answer },
  errors,
});
export const FILE_CREATE: OperationDoc = {
  tag: 'Files',
  summary: 'Upload a batch input file',
  description: 'multipart/form-data with `purpose=batch` and `file`: JSONL, one `/v1/embeddings` request per line.',
  body: { other: { 'multipart/form-data': 'FileUpload' } },
  answer: { 'application/json': 'FileObject' },
  errors: ['invalid_request', 'invalid_file', 'payload_too_large', 'unsupported_media_type'],
};
export const FILE_LIST = file('List files', 'FileList', []);
export const FILE_GET = file('Read a file object', 'FileObject');
export const FILE_DELETE = file('Delete a file', 'FileDeleted');
export const FILE_CONTENT: OperationDoc = {
  tag: 'Files',
  summary: "A file's content (batch outputs are JSONL)",
  answer: { 'application/octet-stream': '' },
  errors: ['file_not_found'],
};

export const BATCH_CREATE: OperationDoc = {
  tag: 'Batches',
  summary: 'Create a batch',
  description:
    'Validated up front: a bad line fails the batch at once with per-line `errors`. Lines run at the lowest priority, through the cache.',
  body: { json: 'BatchCreate' },
  answer: { 'application/json': 'Batch' },
  errors: ['invalid_json', 'invalid_request', 'unsupported_media_type', 'payload_too_large', 'file_not_found'],
};
export const BATCH_LIST: OperationDoc = {
  tag: 'Batches',
  summary: 'List batches, newest first',
  query: [
    { name: 'limit', schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 }, description: 'Page size.' },
    { name: 'after', schema: { type: 'string' }, description: 'The last batch id of the previous page.' },
  ],
  answer: { 'application/json': 'BatchList' },
  errors: ['invalid_request'],
};
export const BATCH_GET: OperationDoc = {
  tag: 'Batches',
  summary: 'Read a batch',
  answer: { 'application/json': 'Batch' },
  errors: ['batch_not_found'],
};
export const BATCH_CANCEL: OperationDoc = {
  tag: 'Batches',
  summary: 'Cancel a batch',
  description:
    'It ends `cancelled` with the finished part in its output; lines never run go to the error file as `batch_cancelled`.',
  answer: { 'application/json': 'Batch' },
  errors: ['batch_not_found', 'batch_not_cancellable'],
};

export const OPENAPI: OperationDoc = {
  tag: 'Pages',
  summary: 'This document (OpenAPI 3.1)',
  answer: { 'application/json': '' },
  errors: [],
};
export const DOCS: OperationDoc = {
  tag: 'Pages',
  summary: 'The API reference page (Swagger UI, served from the package)',
  answer: { 'text/html': '' },
  errors: [],
};
export const UI_ASSET: OperationDoc = {
  tag: 'Pages',
  summary: "The pages' scripts and styles",
  answer: { 'application/javascript': '', 'text/css': '' },
  errors: ['not_found'],
};
export const PLAYGROUND: OperationDoc = {
  tag: 'Pages',
  summary: 'A similarity playground: texts and images in, a cosine heat map out',
  answer: { 'text/html': '' },
  errors: [],
};
