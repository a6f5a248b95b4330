// JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of every request and answer body. The values a
// field may take come from the code that parses it (the routes' encodings, /tokenize's offsets, the
// error catalogue's codes and types) and the limits from the running server's own, so the document
// cannot drift from what the parsers accept.
import { ERROR_CODES } from '../../src/index.js';
import { OPENAI_ENCODINGS } from '../routes/embeddings.js';
import { NATIVE_ENCODINGS } from '../routes/embed.js';
import { TOKENIZE_OFFSETS } from '../routes/tokenize.js';
import { BATCH_STATUSES } from '../../batch/index.js';

export type Schema = Readonly<Record<string, unknown>>;

/** The limits the parsers enforce, as the running server has them. */
export interface SchemaLimits {
  readonly maxInputs: number;
  readonly maxChars: number;
}

export const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const nullable = (schema: Schema): Schema => ({ anyOf: [schema, { type: 'null' }] });
const vector: Schema = { type: 'array', items: { type: 'number' } };

function errorSchemas(): Record<string, Schema> {
  const types = [...new Set(Object.values(ERROR_CODES).map((e) => e.type))];
  return {
    Error: {
      type: 'object',
      description: "OpenAI's error shape; `code` is a contract (the README lists each with its status).",
      required: ['error'],
      properties: {
        error: {
          type: 'object',
          required: ['message', 'type', 'code', 'param'],
          properties: {
            message: { type: 'string' },
            type: { enum: types },
            code: { enum: Object.keys(ERROR_CODES) },
            param: nullable({ type: 'string' }),
          },
        },
      },
      example: {
        error: {
          message: "'input' is required.",
          type: 'invalid_request_error',
          code: 'invalid_request',
          param: 'input',
        },
      },
    },
  };
}

function embeddingSchemas(limits: SchemaLimits): Record<string, Schema> {
  const list = (item: Schema): Schema => ({ type: 'array', minItems: 1, maxItems: limits.maxInputs, items: item });
  /** One input or a list of them, as the parsers take `input` / `inputs`. */
  const oneOrList = (item: Schema): Schema => ({ anyOf: [item, list(item)] });
  const text: Schema = { type: 'string', maxLength: limits.maxChars };
  const image: Schema = {
    description: 'An image: an http(s) URL, a data URI, `{"url"}` or `{"b64"}`.',
    anyOf: [
      { type: 'string' },
      { type: 'object', required: ['url'], properties: { url: { type: 'string' } }, additionalProperties: false },
      { type: 'object', required: ['b64'], properties: { b64: { type: 'string' } }, additionalProperties: false },
    ],
  };
  const item: Schema = {
    description: 'A text for a text model, an image for an image model, or either tagged for a model with both towers.',
    anyOf: [
      text,
      image,
      { type: 'object', required: ['text'], properties: { text }, additionalProperties: false },
      { type: 'object', required: ['image'], properties: { image }, additionalProperties: false },
    ],
  };
  return {
    EmbeddingsRequest: {
      type: 'object',
      required: ['input'],
      properties: {
        input: oneOrList(item),
        model: { type: 'string', description: "A served model id (GET /v1/models); absent: the text lane's default." },
        encoding_format: { enum: [...OPENAI_ENCODINGS], default: 'float' },
        dimensions: { type: 'integer', minimum: 1, description: 'Matryoshka truncation, then re-normalisation.' },
        user: { type: 'string' },
      },
      example: { input: ['a red bicycle', 'a bike painted red'] },
    },
    EmbeddingsResponse: {
      type: 'object',
      required: ['object', 'data', 'model', 'usage'],
      properties: {
        object: { const: 'list' },
        data: {
          type: 'array',
          items: {
            type: 'object',
            required: ['object', 'index', 'embedding'],
            properties: {
              object: { const: 'embedding' },
              index: { type: 'integer', minimum: 0 },
              embedding: {
                description: 'Floats, or base64 of little-endian float32, or a quantized encoding.',
                anyOf: [vector, { type: 'string' }, { type: 'array', items: { type: 'integer' } }],
              },
            },
          },
        },
        model: { type: 'string' },
        usage: {
          type: 'object',
          required: ['prompt_tokens', 'total_tokens'],
          properties: { prompt_tokens: { type: 'integer' }, total_tokens: { type: 'integer' } },
        },
      },
      example: {
        object: 'list',
        data: [{ object: 'embedding', index: 0, embedding: [0.0421, -0.0135, 0.0873] }],
        model: 'sentence-transformers/all-MiniLM-L6-v2',
        usage: { prompt_tokens: 5, total_tokens: 5 },
      },
    },
    EmbedTextRequest: {
      type: 'object',
      required: ['inputs'],
      properties: {
        inputs: oneOrList(text),
        model: { type: 'string' },
        normalize: { type: 'boolean', default: true },
        truncate: { type: 'boolean', default: true },
        encoding: { enum: [...NATIVE_ENCODINGS], default: 'float' },
      },
      example: { inputs: ['a red bicycle', 'a bike painted red'], normalize: true },
    },
    EmbedImageRequest: {
      type: 'object',
      required: ['inputs'],
      properties: {
        inputs: list(image),
        model: { type: 'string' },
        normalize: { type: 'boolean', default: true },
        encoding: { enum: [...NATIVE_ENCODINGS], default: 'float' },
      },
    },
    Vectors: {
      description: 'One vector per input, in order (with `encoding` other than float: the quantized form).',
      anyOf: [
        { type: 'array', items: vector },
        {
          type: 'object',
          required: ['encoding', 'embeddings'],
          properties: {
            encoding: { enum: NATIVE_ENCODINGS.filter((e) => e !== 'float') },
            embeddings: { type: 'array', items: { type: 'array', items: { type: 'integer' } } },
            scales: { type: 'array', items: { type: 'number' } },
          },
        },
      ],
      example: [
        [0.0421, -0.0135, 0.0873],
        [0.0398, -0.0102, 0.0911],
      ],
    },
    TokenizeRequest: {
      type: 'object',
      required: ['inputs'],
      properties: {
        inputs: oneOrList(text),
        model: { type: 'string' },
        add_special_tokens: { type: 'boolean', default: true },
        offsets: { enum: [...TOKENIZE_OFFSETS], default: 'utf16' },
      },
      example: { inputs: 'a red bicycle' },
    },
    TokenizeResponse: {
      type: 'object',
      required: ['model', 'max_tokens', 'offsets', 'data'],
      properties: {
        model: { type: 'string' },
        max_tokens: { type: 'integer' },
        offsets: { enum: [...TOKENIZE_OFFSETS] },
        data: {
          type: 'array',
          items: {
            type: 'object',
            required: ['index', 'count', 'ids', 'tokens', 'special', 'offsets'],
            properties: {
              index: { type: 'integer' },
              count: { type: 'integer' },
              ids: { type: 'array', items: { type: 'integer' } },
              tokens: { type: 'array', items: { type: 'string' } },
              special: { type: 'array', items: { type: 'boolean' } },
              offsets: {
                type: 'array',
                items: { type: 'array', items: { type: 'integer' }, minItems: 2, maxItems: 2 },
              },
            },
          },
        },
      },
    },
  };
}

function operatorSchemas(): Record<string, Schema> {
  return {
    Health: { type: 'object', required: ['status'], properties: { status: { const: 'ok' } } },
    Ready: {
      type: 'object',
      required: ['status', 'ready', 'lanes', 'cache'],
      properties: {
        status: { enum: ['ready', 'not_ready', 'draining'] },
        ready: { type: 'boolean' },
        degraded: { type: 'boolean' },
        lanes: { type: 'object', additionalProperties: { type: 'object' } },
        cache: { type: 'object' },
      },
    },
    Info: {
      type: 'object',
      required: ['name', 'version', 'models', 'limits'],
      properties: {
        name: { const: 'twinlane' },
        version: { type: 'string' },
        models: {
          type: 'array',
          items: {
            type: 'object',
            required: ['id', 'lane', 'lanes', 'dims'],
            properties: {
              id: { type: 'string' },
              lane: { enum: ['text', 'image'] },
              lanes: { type: 'array', items: { enum: ['text', 'image'] } },
              dims: { type: 'integer' },
              max_tokens: nullable({ type: 'integer' }),
              towers: { type: 'object' },
            },
          },
        },
        limits: { type: 'object' },
      },
    },
    ModelList: {
      type: 'object',
      required: ['object', 'data'],
      properties: {
        object: { const: 'list' },
        data: {
          type: 'array',
          items: {
            type: 'object',
            required: ['id', 'object', 'created', 'owned_by'],
            properties: {
              id: { type: 'string' },
              object: { const: 'model' },
              created: { type: 'integer' },
              owned_by: { type: 'string' },
            },
          },
        },
      },
    },
  };
}

function batchSchemas(): Record<string, Schema> {
  const counts: Schema = {
    type: 'object',
    required: ['total', 'completed', 'failed'],
    properties: { total: { type: 'integer' }, completed: { type: 'integer' }, failed: { type: 'integer' } },
  };
  const time = nullable({ type: 'integer' });
  const list = (item: string): Schema => ({
    type: 'object',
    required: ['object', 'data'],
    properties: {
      object: { const: 'list' },
      data: { type: 'array', items: ref(item) },
      has_more: { type: 'boolean' },
      first_id: nullable({ type: 'string' }),
      last_id: nullable({ type: 'string' }),
    },
  });
  return {
    FileObject: {
      type: 'object',
      required: ['id', 'object', 'bytes', 'created_at', 'filename', 'purpose'],
      properties: {
        id: { type: 'string' },
        object: { const: 'file' },
        bytes: { type: 'integer' },
        created_at: { type: 'integer' },
        expires_at: time,
        filename: { type: 'string' },
        purpose: { enum: ['batch', 'batch_output'] },
      },
    },
    FileList: list('FileObject'),
    FileDeleted: {
      type: 'object',
      required: ['id', 'object', 'deleted'],
      properties: { id: { type: 'string' }, object: { const: 'file' }, deleted: { const: true } },
    },
    FileUpload: {
      type: 'object',
      required: ['purpose', 'file'],
      properties: {
        purpose: { const: 'batch' },
        file: {
          type: 'string',
          contentMediaType: 'application/octet-stream',
          description: 'JSONL, one request per line.',
        },
      },
    },
    BatchCreate: {
      type: 'object',
      required: ['input_file_id', 'endpoint', 'completion_window'],
      properties: {
        input_file_id: { type: 'string' },
        endpoint: { const: '/v1/embeddings' },
        completion_window: { const: '24h' },
        metadata: nullable({ type: 'object', additionalProperties: { type: 'string' } }),
      },
      example: { input_file_id: 'file-0123456789abcdef', endpoint: '/v1/embeddings', completion_window: '24h' },
    },
    Batch: {
      type: 'object',
      required: ['id', 'object', 'endpoint', 'input_file_id', 'status', 'created_at', 'request_counts'],
      properties: {
        id: { type: 'string' },
        object: { const: 'batch' },
        endpoint: { const: '/v1/embeddings' },
        errors: nullable({ type: 'object' }),
        input_file_id: { type: 'string' },
        completion_window: { const: '24h' },
        status: { enum: [...BATCH_STATUSES] },
        output_file_id: nullable({ type: 'string' }),
        error_file_id: nullable({ type: 'string' }),
        created_at: { type: 'integer' },
        in_progress_at: time,
        expires_at: time,
        finalizing_at: time,
        completed_at: time,
        failed_at: time,
        expired_at: time,
        cancelling_at: time,
        cancelled_at: time,
        request_counts: counts,
        metadata: nullable({ type: 'object' }),
      },
    },
    BatchList: list('Batch'),
  };
}

/** Every component schema of the document. */
export function componentSchemas(limits: SchemaLimits): Record<string, Schema> {
  return { ...errorSchemas(), ...embeddingSchemas(limits), ...operatorSchemas(), ...batchSchemas() };
}
