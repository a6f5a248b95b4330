// GET /openapi.json against a real server: a valid OpenAPI 3.1 document (@readme/openapi-parser),
// every route SPEC.md lists in it and every operation in it served (not 404/405), the error
// catalogue's every code under its status, and real answers to sample requests — successes and
// errors — valid against the schemas the document gives them (ajv, JSON Schema 2020-12). The pages
// can be turned off, and stay open when keys are configured.
import { validate, compileErrors } from '@readme/openapi-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { IMAGE_MODEL, startServer, TEXT_MODEL, type TestServer } from '../helpers/server.js';

interface Operation {
  readonly responses: Record<string, { description: string; content?: Record<string, { schema: unknown }> }>;
  readonly security: unknown[];
}
type Document = {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown> };
};

const SPEC_ROUTES = [
  'post /v1/embeddings',
  'post /embeddings',
  'post /embed/text',
  'post /embed/image',
  'get /ws',
  'get /health',
  'get /ready',
  'get /info',
  'get /v1/models',
  'get /metrics',
  'post /tokenize',
  'post /v1/files',
  'get /v1/files/{id}',
  'delete /v1/files/{id}',
  'get /v1/files/{id}/content',
  'post /v1/batches',
  'get /v1/batches',
  'get /v1/batches/{id}',
  'post /v1/batches/{id}/cancel',
  'get /openapi.json',
  'get /docs',
  'get /playground',
];

let server: TestServer;
let doc: Document;
const ajv = new Ajv2020({ strict: false, allErrors: true });

beforeAll(async () => {
  server = await startServer();
  const res = await fetch(`${server.url}/openapi.json`);
  expect(res.status).toBe(200);
  doc = (await res.json()) as Document;
  ajv.addSchema({ $id: 'twinlane', components: doc.components });
}, 60_000);
afterAll(() => server?.stop());

/** Checks a real answer against the schema the document gives `method path` at its status. */
async function conforms(method: string, path: string, res: Response): Promise<unknown> {
  const operation = doc.paths[path]?.[method];
  expect(operation, `${method} ${path}`).toBeDefined();
  const response = operation!.responses[String(res.status)];
  expect(response, `${method} ${path} answered ${res.status}, which the document does not list`).toBeDefined();
  const type = (res.headers.get('content-type') ?? '').split(';')[0]!;
  const schema = response!.content?.[type]?.schema as { $ref?: string } | undefined;
  expect(schema, `${method} ${path} ${res.status} ${type}`).toBeDefined();
  const body = (await res.json()) as unknown;
  const check = ajv.compile({ $ref: `twinlane${schema!.$ref}` });
  expect(check(body), `${method} ${path}: ${ajv.errorsText(check.errors)}`).toBe(true);
  if (res.status >= 400) {
    const code = (body as { error: { code: string } }).error.code;
    expect(response!.description, `${code} listed under ${res.status}`).toContain(`\`${code}\``);
  }
  return body;
}

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true);
    expect((doc as unknown as { openapi: string }).openapi).toBe('3.1.0');
  });

  it('describes every route SPEC.md lists, and the server serves every operation it describes', async () => {
    const described = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    for (const route of SPEC_ROUTES) expect(described).toContain(route);
    for (const route of described) {
      const [method, path] = route.split(' ') as [string, string];
      const url = `${server.url}${path.replace('{id}', 'missing').replace('{name}', 'docs.js')}`;
      const res = await fetch(url, {
        method: method.toUpperCase(),
        ...(method === 'get' || method === 'delete' ? {} : { body: '{}' }),
      });
      const body = res.headers.get('content-type')?.includes('json')
        ? ((await res.json()) as { error?: { code: string } })
        : {};
      expect([res.status, body.error?.code], route).not.toEqual([404, 'not_found']);
      expect(res.status, route).not.toBe(405);
    }
  });

  it('lists every error code of the catalogue under its status, with the auth and timing headers', () => {
    const listed = new Set<string>();
    for (const ops of Object.values(doc.paths))
      for (const op of Object.values(ops))
        for (const [status, response] of Object.entries(op.responses))
          for (const [, code] of response.description.matchAll(/(?:^|; )`(\w+)`:/g)) {
            expect(ERROR_CODES[code as keyof typeof ERROR_CODES]?.status, code).toBe(Number(status));
            listed.add(code!);
          }
    // Every code but those of no route (unknown path, wrong method) and those of settings this server
    // has off (keys, rate limits: the keyed server's document below lists invalid_api_key).
    const unlisted = ['not_found', 'method_not_allowed', 'invalid_api_key', 'rate_limited'];
    for (const code of Object.keys(ERROR_CODES).filter((c) => !unlisted.includes(c)))
      expect(listed, code).toContain(code);
    const embeddings = doc.paths['/v1/embeddings']!['post']! as unknown as {
      responses: { '200': { headers: Record<string, unknown> } };
    };
    expect(Object.keys(embeddings.responses['200'].headers)).toEqual(
      expect.arrayContaining(['x-request-id', 'x-queue-time', 'x-inference-time', 'x-total-time', 'x-cache-hits']),
    );
    expect((doc.components as unknown as { securitySchemes: unknown }).securitySchemes).toEqual({
      bearer: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
    });
  });

  it('real answers validate against their schemas: embeddings, native routes, /tokenize, operator routes', async () => {
    await conforms('post', '/v1/embeddings', await post('/v1/embeddings', { input: ['a', 'b'], model: TEXT_MODEL }));
    await conforms('post', '/v1/embeddings', await post('/v1/embeddings', { input: 'a', encoding_format: 'base64' }));
    await conforms('post', '/v1/embeddings', await post('/v1/embeddings', { input: 'a', encoding_format: 'int8' }));
    await conforms('post', '/embed/text', await post('/embed/text', { inputs: ['a red bicycle'] }));
    await conforms('post', '/embed/text', await post('/embed/text', { inputs: 'a', encoding: 'binary' }));
    const png = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#c33' } })
      .png()
      .toBuffer();
    const image = `data:image/png;base64,${png.toString('base64')}`;
    await conforms('post', '/embed/image', await post('/embed/image', { inputs: [image], model: IMAGE_MODEL }));
    await conforms('post', '/v1/embeddings', await post('/v1/embeddings', { input: [image], model: IMAGE_MODEL }));
    await conforms('post', '/tokenize', await post('/tokenize', { inputs: ['a red bicycle'], offsets: 'byte' }));
    for (const path of ['/health', '/ready', '/info', '/v1/models'])
      await conforms('get', path, await fetch(`${server.url}${path}`));
  });

  it('real error answers validate and carry a code listed under their status', async () => {
    await conforms('post', '/v1/embeddings', await post('/v1/embeddings', '{not json'));
    await conforms('post', '/v1/embeddings', await post('/v1/embeddings', { input: 'a', model: 'no/such-model' }));
    await conforms('post', '/v1/embeddings', await post('/v1/embeddings', { input: [] }));
    await conforms('post', '/v1/embeddings', await post('/v1/embeddings', { input: 'a', dimensions: 100_000 }));
    await conforms('post', '/embed/text', await post('/embed/text', { inputs: 'a' }, { 'x-priority': 'urgent' }));
    await conforms('post', '/embed/image', await post('/embed/image', { inputs: ['data:image/png;base64,AAAA'] }));
    await conforms('get', '/v1/batches/{id}', await fetch(`${server.url}/v1/batches/batch_nope`));
    await conforms('get', '/v1/files/{id}', await fetch(`${server.url}/v1/files/file-nope`));
    await conforms('get', '/v1/batches', await fetch(`${server.url}/v1/batches?limit=0`));
  });

  it('files and batches answers validate', async () => {
    const form = new FormData();
    form.set('purpose', 'batch');
    const line = { custom_id: 'a', method: 'POST', url: '/v1/embeddings', body: { input: 'x' } };
    form.set('file', new Blob([JSON.stringify(line)]), 'in.jsonl');
    const file = (await conforms(
      'post',
      '/v1/files',
      await fetch(`${server.url}/v1/files`, { method: 'POST', body: form }),
    )) as {
      id: string;
    };
    await conforms('get', '/v1/files/{id}', await fetch(`${server.url}/v1/files/${file.id}`));
    await conforms('get', '/v1/files', await fetch(`${server.url}/v1/files`));
    const batch = (await conforms(
      'post',
      '/v1/batches',
      await post('/v1/batches', { input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' }),
    )) as { id: string };
    await conforms('get', '/v1/batches/{id}', await fetch(`${server.url}/v1/batches/${batch.id}`));
    await conforms('get', '/v1/batches', await fetch(`${server.url}/v1/batches?limit=5`));
  });
});

describe('the pages', () => {
  it('are open when keys are configured, and the document says which routes need one', async () => {
    const keyed = await startServer({ TWINLANE_API_KEYS: 'sk-docs-test', TWINLANE_IMAGE_MODEL: 'none' });
    try {
      for (const path of ['/openapi.json', '/docs', '/playground', '/ui/playground.js'])
        expect((await fetch(`${keyed.url}${path}`)).status, path).toBe(200);
      const keyedDoc = (await (await fetch(`${keyed.url}/openapi.json`)).json()) as Document;
      expect(keyedDoc.paths['/v1/embeddings']!['post']!.security).toEqual([{ bearer: [] }]);
      expect(keyedDoc.paths['/health']!['get']!.security).toEqual([]);
      expect(Object.keys(keyedDoc.paths['/v1/embeddings']!['post']!.responses)).toContain('401');
    } finally {
      await keyed.stop();
    }
  }, 60_000);

  it('answer 404 with TWINLANE_UI=false', async () => {
    const off = await startServer({ TWINLANE_UI: 'false', TWINLANE_IMAGE_MODEL: 'none' });
    try {
      for (const path of ['/openapi.json', '/docs', '/playground', '/ui/docs.js']) {
        const res = await fetch(`${off.url}${path}`);
        expect([res.status, ((await res.json()) as { error: { code: string } }).error.code], path).toEqual([
          404,
          'not_found',
        ]);
      }
    } finally {
      await off.stop();
    }
  }, 60_000);
});
