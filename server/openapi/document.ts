// The OpenAPI 3.1 document of a running server, built from its own route table: every registered
// route with its description (./operations.ts), the error catalogue's codes grouped by status, the
// auth scheme when keys are configured, and the scheduling, rate-limit and timing headers.
import { ERROR_CODES, type ErrorCode } from '../../src/index.js';
import type { Access } from '../guard.js';
import type { OperationDoc } from './operations.js';
import { componentSchemas, ref, type Schema, type SchemaLimits } from './schemas.js';

/** The parts of a route the document needs. */
export interface DescribedRoute {
  readonly path: string;
  readonly method: 'get' | 'post' | 'del';
  readonly access: Access;
  readonly embedding: boolean;
  readonly doc: OperationDoc;
}

export interface DocumentContext {
  readonly version: string;
  /** API keys are configured: `api` routes (and `ops` ones with authOps) need a bearer key. */
  readonly keys: boolean;
  readonly authOps: boolean;
  readonly rateLimited: boolean;
  readonly limits: SchemaLimits;
}

/** Codes any embedding request may meet, whatever its body: scheduling, overload, shutdown. */
const EMBEDDING_ERRORS: readonly ErrorCode[] = [
  'invalid_request',
  'not_ready',
  'shutting_down',
  'lane_overloaded',
  'lane_failed',
  'deadline_exceeded',
];

const header = (description: string, schema: Schema = { type: 'string' }) => ({ description, schema });
const TIMING = {
  'x-queue-time': header('ms the items waited for a lane (the longest of the request)', { type: 'number' }),
  'x-inference-time': header('ms of the model calls that carried the items', { type: 'number' }),
  'x-total-time': header('ms from arrival to answer', { type: 'number' }),
  'x-cache-hits': header('items answered from the cache', { type: 'integer' }),
};
const RATE = {
  'x-ratelimit-limit': header("the client's budget in items per second", { type: 'integer' }),
  'x-ratelimit-remaining': header('items left in the budget now', { type: 'integer' }),
  'x-ratelimit-reset': header('seconds until the budget is full again', { type: 'number' }),
};
const REQUEST_ID = { 'x-request-id': header("the request's id (the client's own when it sent one)") };
const RETRY_AFTER = { 'retry-after': header('seconds to wait before retrying', { type: 'integer' }) };

/** The route answers only with a key: keys are configured and the guard checks this route's access. */
function needsKey(route: DescribedRoute, context: DocumentContext): boolean {
  return context.keys && (route.access === 'api' || (route.access === 'ops' && context.authOps));
}

const httpMethod = (route: DescribedRoute) => (route.method === 'del' ? 'delete' : route.method);

function errorCodes(route: DescribedRoute, context: DocumentContext): ErrorCode[] {
  return [
    ...new Set<ErrorCode>([
      ...route.doc.errors,
      ...(route.embedding ? EMBEDDING_ERRORS : []),
      ...(route.embedding && context.rateLimited ? (['rate_limited'] as const) : []),
      ...(needsKey(route, context) ? (['invalid_api_key'] as const) : []),
      'internal_error',
    ]),
  ];
}

/** One response per status, listing its codes with their meaning; 429 and 503 carry Retry-After. */
function errorResponses(codes: readonly ErrorCode[]): Record<string, unknown> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes)
    byStatus.set(ERROR_CODES[code].status, [...(byStatus.get(ERROR_CODES[code].status) ?? []), code]);
  const responses: Record<string, unknown> = {};
  for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    const first = list[0]!;
    responses[String(status)] = {
      description: list.map((c) => `\`${c}\`: ${ERROR_CODES[c].when}`).join('; '),
      headers: { ...REQUEST_ID, ...(status === 429 || status === 503 ? RETRY_AFTER : {}) },
      content: {
        'application/json': {
          schema: ref('Error'),
          example: {
            error: { message: ERROR_CODES[first].when, type: ERROR_CODES[first].type, code: first, param: null },
          },
        },
      },
    };
  }
  return responses;
}

function media(types: Readonly<Record<string, string>>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(types).map(([type, schema]) => [
      type,
      { schema: schema === '' ? { type: 'string', contentMediaType: type } : ref(schema) },
    ]),
  );
}

function parameters(route: DescribedRoute): unknown[] {
  const path = [...route.path.matchAll(/:(\w+)/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    schema: { type: 'string' },
  }));
  const query = (route.doc.query ?? []).map((q) => ({
    name: q.name,
    in: 'query',
    schema: q.schema,
    description: q.description,
  }));
  const scheduling = route.embedding
    ? [
        {
          name: 'x-priority',
          in: 'header',
          schema: { enum: ['high', 'normal', 'low'], default: 'normal' },
          description: 'Scheduling priority; low is for bulk work.',
        },
        {
          name: 'x-request-timeout-ms',
          in: 'header',
          schema: { type: 'integer', minimum: 0 },
          description: "The request's deadline, counted from its arrival (else the lane's queue timeout).",
        },
      ]
    : [];
  const id = {
    name: 'x-request-id',
    in: 'header',
    schema: { type: 'string' },
    description: 'Echoed back; made up when absent.',
  };
  return [...path, ...query, ...scheduling, id];
}

function operation(route: DescribedRoute, context: DocumentContext): Record<string, unknown> {
  const { doc } = route;
  const okHeaders = {
    ...REQUEST_ID,
    ...(doc.timed ? TIMING : {}),
    ...(route.embedding && context.rateLimited ? RATE : {}),
  };
  const body = doc.body && {
    required: true,
    content: { ...(doc.body.json ? media({ 'application/json': doc.body.json }) : {}), ...media(doc.body.other ?? {}) },
  };
  return {
    tags: [doc.tag],
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    operationId: operationId(route),
    parameters: parameters(route),
    ...(body ? { requestBody: body } : {}),
    responses: {
      [String(doc.status ?? 200)]: {
        description: doc.status === 101 ? 'Switching Protocols' : 'OK',
        headers: okHeaders,
        ...(Object.keys(doc.answer).length > 0 ? { content: media(doc.answer) } : {}),
      },
      ...errorResponses(errorCodes(route, context)),
    },
    security: needsKey(route, context) ? [{ bearer: [] }] : [],
  };
}

/** A stable id from method and path: `post_v1_embeddings`, `get_v1_files_id`. */
function operationId(route: DescribedRoute): string {
  return `${httpMethod(route)}${route.path.replace(/[/:]+/g, '_').replace(/_$/, '')}`;
}

/** OpenAPI's path for a uWS pattern: `/v1/files/:id` → `/v1/files/{id}`. */
function openApiPath(path: string): string {
  return path.replace(/:(\w+)/g, '{$1}');
}

export function openApiDocument(routes: readonly DescribedRoute[], context: DocumentContext): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    (paths[openApiPath(route.path)] ??= {})[httpMethod(route)] = operation(route, context);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'twinlane',
      version: context.version,
      description:
        "Text and image embeddings: OpenAI-compatible and native routes, WebSocket streaming, and OpenAI's Files and Batches API for bulk jobs. Errors use OpenAI's shape; each `code` is listed under its status.",
    },
    servers: [{ url: '/' }],
    tags: ['Embeddings', 'Streaming', 'Files', 'Batches', 'Operations', 'Pages'].map((name) => ({ name })),
    paths,
    components: {
      schemas: componentSchemas(context.limits),
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'Authorization: Bearer <key>, one of TWINLANE_API_KEYS.',
        },
      },
    },
  };
}
