import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';
import { IMAGE_MODEL, startServer, TEXT_MODEL, type TestServer } from '../helpers/server.js';

interface Case {
  readonly name: string;
  readonly path?: string;
  readonly method?: string;
  readonly body?: string | Uint8Array;
  readonly headers?: Record<string, string>;
  readonly status: number;
  readonly code: ErrorCode;
  readonly param?: string | null;
}

const json = (value: unknown): string => JSON.stringify(value);
const model = TEXT_MODEL;

const CASES: readonly Case[] = [
  { name: 'malformed JSON', body: '{"input": "a",', status: 400, code: 'invalid_json' },
  {
    name: 'invalid UTF-8',
    body: Buffer.concat([Buffer.from('{"input":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]),
    status: 400,
    code: 'invalid_json',
  },
  { name: 'a JSON array body', body: json(['a']), status: 400, code: 'invalid_request' },
  { name: 'missing input', body: json({ model }), status: 400, code: 'invalid_request', param: 'input' },
  {
    name: 'input of the wrong type',
    body: json({ model, input: 42 }),
    status: 400,
    code: 'invalid_request',
    param: 'input',
  },
  {
    name: 'an object of no known shape inside input',
    body: json({ model, input: ['ok', { content: 'x' }] }),
    status: 400,
    code: 'invalid_request',
    param: 'input[1]',
  },
  {
    name: 'a {"text"} object whose text is not a string',
    body: json({ model, input: ['ok', { text: 5 }] }),
    status: 400,
    code: 'invalid_request',
    param: 'input[1].text',
  },
  {
    name: 'an {"image"} object for a model without a vision tower',
    body: json({ model, input: ['ok', { image: 'data:image/png;base64,iVBORw0KGgo=' }] }),
    status: 400,
    code: 'invalid_request',
    param: 'input[1]',
  },
  {
    name: 'a quantized encoding_format of no known kind',
    body: json({ model, input: 'x', encoding_format: 'int4' }),
    status: 400,
    code: 'invalid_request',
    param: 'encoding_format',
  },
  {
    name: 'token-id input',
    body: json({ model, input: [[101, 102]] }),
    status: 400,
    code: 'invalid_request',
    param: 'input[0]',
  },
  {
    name: 'a model id of the wrong type',
    body: json({ model: 7, input: 'x' }),
    status: 400,
    code: 'invalid_request',
    param: 'model',
  },
  {
    name: 'an unknown encoding_format',
    body: json({ model, input: 'x', encoding_format: 'hex' }),
    status: 400,
    code: 'invalid_request',
    param: 'encoding_format',
  },
  {
    name: 'a non-boolean normalize',
    path: '/embed/text',
    body: json({ inputs: 'x', normalize: 'yes' }),
    status: 400,
    code: 'invalid_request',
    param: 'normalize',
  },
  { name: 'empty input list', body: json({ model, input: [] }), status: 422, code: 'empty_input', param: 'input' },
  {
    name: 'an empty string',
    body: json({ model, input: ['fine', ''] }),
    status: 422,
    code: 'empty_input',
    param: 'input[1]',
  },
  {
    name: 'too many items',
    body: json({ model, input: Array.from({ length: 9 }, (_, i) => `t${i}`) }),
    status: 422,
    code: 'too_many_inputs',
    param: 'input',
  },
  {
    name: 'a text over the character limit',
    body: json({ model, input: 'x'.repeat(3001) }),
    status: 422,
    code: 'input_too_long',
    param: 'input[0]',
  },
  {
    name: 'too many tokens with truncate:false',
    path: '/embed/text',
    body: json({ inputs: 'word '.repeat(400), truncate: false }),
    status: 422,
    code: 'input_too_long',
    param: 'inputs[0]',
  },
  {
    name: 'dimensions of 0',
    body: json({ model, input: 'x', dimensions: 0 }),
    status: 422,
    code: 'invalid_dimensions',
    param: 'dimensions',
  },
  {
    name: "dimensions over the model's dims",
    body: json({ model, input: 'x', dimensions: 385 }),
    status: 422,
    code: 'invalid_dimensions',
    param: 'dimensions',
  },
  {
    name: 'fractional dimensions',
    body: json({ model, input: 'x', dimensions: 12.5 }),
    status: 422,
    code: 'invalid_dimensions',
    param: 'dimensions',
  },
  {
    name: 'dimensions as a string',
    body: json({ model, input: 'x', dimensions: '12' }),
    status: 400,
    code: 'invalid_request',
    param: 'dimensions',
  },
  {
    name: 'an unknown model',
    body: json({ model: 'acme/unknown', input: 'x' }),
    status: 404,
    code: 'model_not_found',
    param: 'model',
  },
  {
    name: 'an oversize body',
    body: json({ model, input: 'y'.repeat(70_000) }),
    status: 413,
    code: 'payload_too_large',
  },
  {
    name: 'a wrong content type',
    body: json({ model, input: 'x' }),
    headers: { 'content-type': 'text/plain' },
    status: 415,
    code: 'unsupported_media_type',
  },
  {
    name: 'a form-encoded body',
    body: 'input=x',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    status: 415,
    code: 'unsupported_media_type',
  },
  { name: 'the wrong method', method: 'GET', status: 405, code: 'method_not_allowed' },
  { name: 'an unknown path', path: '/v2/nothing', method: 'GET', status: 404, code: 'not_found' },
  {
    name: 'an unknown native encoding',
    path: '/embed/text',
    body: json({ inputs: 'x', encoding: 'base32' }),
    status: 400,
    code: 'invalid_request',
    param: 'encoding',
  },
  {
    name: 'a quantized encoding with a binary Accept',
    path: '/embed/text',
    body: json({ inputs: 'x', encoding: 'int8' }),
    headers: { accept: 'application/octet-stream' },
    status: 400,
    code: 'invalid_request',
    param: 'encoding',
  },
  {
    name: '/tokenize without inputs',
    path: '/tokenize',
    body: json({ model }),
    status: 400,
    code: 'invalid_request',
    param: 'inputs',
  },
  {
    name: '/tokenize with an image model',
    path: '/tokenize',
    body: json({ model: IMAGE_MODEL, inputs: 'x' }),
    status: 400,
    code: 'invalid_request',
    param: 'model',
  },
  {
    name: '/tokenize with an empty text',
    path: '/tokenize',
    body: json({ inputs: ['a', ''] }),
    status: 422,
    code: 'empty_input',
    param: 'inputs[1]',
  },
  {
    name: '/tokenize with too many texts',
    path: '/tokenize',
    body: json({ inputs: Array.from({ length: 9 }, () => 'a') }),
    status: 422,
    code: 'too_many_inputs',
    param: 'inputs',
  },
  {
    name: '/tokenize with an unknown offset unit',
    path: '/tokenize',
    body: json({ inputs: 'a', offsets: 'bits' }),
    status: 400,
    code: 'invalid_request',
    param: 'offsets',
  },
  {
    name: '/tokenize with a non-boolean add_special_tokens',
    path: '/tokenize',
    body: json({ inputs: 'a', add_special_tokens: 1 }),
    status: 400,
    code: 'invalid_request',
    param: 'add_special_tokens',
  },
];

describe('bad input', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({
      TWINLANE_MAX_INPUTS: '8',
      TWINLANE_MAX_CHARS: '3000',
      TWINLANE_MAX_BODY_BYTES: '65536',
    });
  });
  afterAll(async () => {
    await server.stop();
  });

  async function good(): Promise<number> {
    const res = await fetch(`${server.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: json({ model, input: 'still serving' }),
    });
    return res.status;
  }

  it.each(CASES)("answers $name with $status $code in OpenAI's error shape", async (c) => {
    const goodBefore = good();
    const res = await fetch(`${server.url}${c.path ?? '/v1/embeddings'}`, {
      method: c.method ?? 'POST',
      headers: { 'content-type': 'application/json', ...c.headers },
      ...(c.body === undefined ? {} : { body: c.body }),
    });
    expect(res.status).toBe(c.status);
    const body = (await res.json()) as { error: { message: string; type: string; code: string; param: string | null } };
    expect(Object.keys(body)).toEqual(['error']);
    expect(body.error.code).toBe(c.code);
    expect(body.error.type).toBe(ERROR_CODES[c.code].type);
    expect(body.error.message.length).toBeGreaterThan(5);
    if (c.param !== undefined) expect(body.error.param).toBe(c.param);
    expect(await goodBefore).toBe(200);
    expect(await good()).toBe(200);
  });

  it('keeps answering good requests while every bad request arrives at once', async () => {
    const bad = CASES.map((c) =>
      fetch(`${server.url}${c.path ?? '/v1/embeddings'}`, {
        method: c.method ?? 'POST',
        headers: { 'content-type': 'application/json', ...c.headers },
        ...(c.body === undefined ? {} : { body: c.body }),
      }).then((r) => r.status),
    );
    const goods = Array.from({ length: 10 }, () => good());
    expect(await Promise.all(bad)).toEqual(CASES.map((c) => c.status));
    expect(await Promise.all(goods)).toEqual(Array(10).fill(200));
    expect(server.process.exitCode).toBeNull();
  });
});
