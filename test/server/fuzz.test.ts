// Property-based fuzzing of every embedding route and of /ws frames with fast-check: random and
// mutated JSON (deep nesting, huge numbers, duplicate keys, lone surrogates, NUL bytes, long strings),
// random content types and headers, truncated and oversized bodies, random bytes as images. The
// properties: the server never exits; every answer is a 2xx or a documented 4xx in the error shape —
// never a 5xx; good requests interleaved with the fuzz get their correct vectors. Seeded: a failure
// prints fast-check's seed and path, and FUZZ_SEED=<seed> replays it.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';
import { sceneJpeg } from '../fixtures/images.js';
import { startServer, TEXT_MODEL, type TestServer } from '../helpers/server.js';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261202);
const HTTP_RUNS = Number(process.env['FUZZ_HTTP_RUNS'] ?? 10_000);
const WS_RUNS = Number(process.env['FUZZ_WS_RUNS'] ?? 2_000);
const MAX_BODY = 64 * 1024;
const MAX_IMAGE_BODY = 512 * 1024;

let server: TestServer;
let goodText: number[];
let goodImage: number[];
let jpeg: Buffer;

const ROUTES = ['/v1/embeddings', '/embed/text', '/embed/image', '/tokenize'] as const;

interface FuzzRequest {
  readonly route: (typeof ROUTES)[number];
  readonly contentType: string | null;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
}

const enc = (s: string) => new TextEncoder().encode(s);

/** Strings a JSON body may carry that break naive servers. */
const nasty = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('\uD800', '\uDFFF', 'a\uD83Dz', '\u0000', 'x\u0000y', '\uFEFF', '\u202E', '\u{10FFFF}', ''),
  fc.string({ unit: fc.constantFrom('a', ' ', '\u00e9', '\u4e2d', '\u{1F600}'), minLength: 1000, maxLength: 20_000 }),
);

const number = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, 1e308, -1e308, 2 ** 53 + 1, 0.5, 385, 1, 64, Number.MAX_SAFE_INTEGER),
);

/** A value for a field: right type, wrong type, or junk. */
const fieldValue = fc.oneof(
  nasty,
  number,
  fc.boolean(),
  fc.constant(null),
  fc.array(nasty, { maxLength: 5 }),
  fc.array(fc.oneof(nasty, number, fc.constant(null), fc.dictionary(fc.string(), nasty, { maxKeys: 3 })), {
    maxLength: 5,
  }),
  fc.dictionary(fc.constantFrom('text', 'image', 'url', 'b64', 'x'), nasty, { maxKeys: 3 }),
  fc.jsonValue({ maxDepth: 4 }),
);

/** A plausible request object with random values: exercises the field readers, not just the parser. */
const plausible = fc
  .record(
    {
      input: fieldValue,
      inputs: fieldValue,
      model: fc.oneof(fc.constant(TEXT_MODEL), fc.constant('twinlane/clip-vision-standin'), nasty),
      encoding_format: fc.oneof(fc.constantFrom('float', 'base64', 'int8', 'uint8', 'binary', 'ubinary', 'hex'), nasty),
      encoding: fc.oneof(fc.constantFrom('float', 'int8', 'binary'), nasty),
      dimensions: fc.oneof(number, nasty),
      normalize: fc.oneof(fc.boolean(), nasty, number),
      truncate: fc.oneof(fc.boolean(), nasty),
      add_special_tokens: fc.oneof(fc.boolean(), nasty),
    },
    { requiredKeys: [] },
  )
  .map((o) => JSON.stringify(o));

const texts = (s: string) => enc(s);

const jsonBody = fc.oneof(
  plausible.map(texts),
  fc.jsonValue().map((v) => texts(JSON.stringify(v))),
  // Deep nesting, in arrays and objects, beside a field the route reads.
  fc.integer({ min: 1, max: 100_000 }).map((n) => texts(`{"input":${'['.repeat(n)}${']'.repeat(n)}}`)),
  fc.integer({ min: 1, max: 20_000 }).map((n) => texts(`${'{"a":'.repeat(n)}1${'}'.repeat(n)}`)),
  // Huge and odd numbers, duplicate keys, literal escapes, a NUL, invalid UTF-8.
  fc
    .constantFrom(
      '{"input":"a","dimensions":1e400}',
      '{"input":"a","dimensions":-0}',
      '{"input":"a","dimensions":1.5}',
      '{"input":"a","input":["b","c"]}',
      '{"inputs":"x","inputs":null}',
      '{"input":"\\ud800"}',
      '{"inputs":["\\u0000"]}',
      '{"input":"a"}\u0000',
      '{"input":"a"} trailing',
      '{"input":[1,2,3]}',
      '{"input":[[101,2023]]}',
      '{"__proto__":{"input":"x"},"input":"a"}',
      '{"constructor":{"prototype":{}},"inputs":["a"]}',
    )
    .map(texts),
  fc.uint8Array({ maxLength: 2048 }).map((b) => Uint8Array.from([0x7b, 0x22, ...b])), // `{"` then bytes
);

/** Valid for every text route (each reads its own field), with strange but real texts: reaches the models. */
const validText = fc
  .array(
    nasty.filter((t) => t.length > 0),
    { minLength: 1, maxLength: 4 },
  )
  .map((inputs) => texts(JSON.stringify({ model: TEXT_MODEL, input: inputs, inputs })));

const body = fc.oneof(
  { weight: 4, arbitrary: validText },
  { weight: 6, arbitrary: jsonBody },
  // A valid-looking body cut short anywhere.
  { weight: 2, arbitrary: fc.tuple(plausible, fc.nat()).map(([s, n]) => texts(s).slice(0, n % (s.length + 1))) },
  // Random bytes (images for the image route), and real JPEG bytes damaged.
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 4096 }) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([cut, at, byte]) => {
      const b = Uint8Array.from(jpeg.subarray(0, Math.max(2, cut % jpeg.length)));
      b[at % b.length] = byte;
      return b;
    }),
  },
  // Over the byte limits.
  { weight: 1, arbitrary: fc.constantFrom(MAX_BODY + 1, MAX_IMAGE_BODY + 1).map((n) => new Uint8Array(n).fill(0x61)) },
);

const contentType = fc.oneof(
  fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'application/JSON',
    'text/plain',
    'image/jpeg',
    'image/png',
    'image/svg+xml',
    'multipart/form-data; boundary=x',
  ),
  fc.constant(null),
  fc.string({ maxLength: 60 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
);

const headerValue = fc.string({ maxLength: 40 }).filter((s) => /^[\x20-\x7e]*$/.test(s));
const headers = fc.record(
  {
    'x-priority': fc.oneof(fc.constantFrom('high', 'normal', 'low', 'HIGH', ''), headerValue),
    'x-request-timeout-ms': fc.oneof(fc.constantFrom('0', '1', '-5', '1e9', '999999999999999999', 'abc'), headerValue),
    accept: fc.oneof(
      fc.constantFrom('application/octet-stream', 'application/x-bfloat16', 'application/json', '*/*', 'text/html'),
      headerValue,
    ),
    'x-request-id': headerValue,
  },
  { requiredKeys: [] },
);

const request: fc.Arbitrary<FuzzRequest> = fc.record({
  route: fc.constantFrom(...ROUTES),
  // Mostly the right type, so bodies get past the content-type check to the parsers and the models.
  contentType: fc.oneof(
    { weight: 3, arbitrary: fc.constant('application/json') },
    { weight: 2, arbitrary: contentType },
  ),
  headers,
  body,
});

/** Runs a property; on failure, a short report (fast-check's own would print the whole counterexample). */
async function check<T>(
  arbitrary: fc.Arbitrary<T>,
  runs: number,
  property: (value: T) => Promise<void>,
): Promise<void> {
  const result = await fc.check(fc.asyncProperty(arbitrary, property), {
    seed: SEED,
    numRuns: runs,
    endOnFailure: true,
  });
  if (!result.failed) return;
  const example = JSON.stringify(result.counterexample, (_, v: unknown) =>
    v instanceof Uint8Array ? `<${v.length} bytes: ${Buffer.from(v.subarray(0, 80)).toString('latin1')}…>` : v,
  );
  throw new Error(
    `fuzz failure after ${result.numRuns} runs; replay with FUZZ_SEED=${result.seed} (path ${result.counterexamplePath}): ${String(result.errorInstance).slice(0, 600)}\ninput: ${example?.slice(0, 600)}`,
  );
}

interface Checked {
  readonly status: number;
  readonly problem: string | null;
}

/**
 * The answer's status, and what is wrong with it (null: a 2xx, or a documented 4xx in the error shape,
 * or the 504 of a deadline the request itself set).
 */
async function send(r: FuzzRequest): Promise<Checked> {
  const res = await fetch(`${server.url}${r.route}`, {
    method: 'POST',
    headers: { ...r.headers, ...(r.contentType === null ? {} : { 'content-type': r.contentType }) },
    body: r.body,
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  if (res.status >= 200 && res.status < 300) return { status: res.status, problem: null };
  // The one 5xx a request may earn itself: the deadline it set (x-request-timeout-ms) passed.
  const ownDeadline =
    res.status === 504 && 'x-request-timeout-ms' in r.headers && bytes.includes('"deadline_exceeded"');
  if (res.status >= 500 && !ownDeadline)
    return { status: res.status, problem: `a ${res.status}: ${bytes.toString().slice(0, 300)}` };
  let error: { message?: unknown; type?: unknown; code?: unknown; param?: unknown } | undefined;
  try {
    error = (JSON.parse(bytes.toString()) as { error?: typeof error }).error;
  } catch {
    return { status: res.status, problem: `a ${res.status} that is not JSON: ${bytes.toString().slice(0, 200)}` };
  }
  const code = error?.code;
  if (typeof code !== 'string' || !Object.hasOwn(ERROR_CODES, code))
    return { status: res.status, problem: `undocumented code ${JSON.stringify(code)}` };
  const spec = ERROR_CODES[code as ErrorCode];
  if (spec.status !== res.status)
    return { status: res.status, problem: `${code} answered ${res.status}, not ${spec.status}` };
  if (typeof error?.message !== 'string' || error.type !== spec.type || !('param' in error))
    return { status: res.status, problem: `not the error shape: ${bytes.toString().slice(0, 200)}` };
  return { status: res.status, problem: null };
}

async function goodRequestsStillWork(): Promise<void> {
  const text = await fetch(`${server.url}/embed/text`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: ['the reference sentence of the fuzz test'] }),
  });
  expect(text.status).toBe(200);
  expect(((await text.json()) as number[][])[0]).toEqual(goodText);
  const image = await fetch(`${server.url}/embed/image`, {
    method: 'POST',
    headers: { 'content-type': 'image/jpeg' },
    body: jpeg,
  });
  expect(image.status).toBe(200);
  expect(((await image.json()) as number[][])[0]).toEqual(goodImage);
}

beforeAll(async () => {
  server = await startServer({
    TWINLANE_MAX_BODY_BYTES: String(MAX_BODY),
    TWINLANE_MAX_IMAGE_BODY_BYTES: String(MAX_IMAGE_BODY),
    TWINLANE_MAX_INPUTS: '16',
  });
  jpeg = await sceneJpeg('circle');
  const text = await fetch(`${server.url}/embed/text`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: ['the reference sentence of the fuzz test'] }),
  });
  goodText = ((await text.json()) as number[][])[0]!;
  const image = await fetch(`${server.url}/embed/image`, {
    method: 'POST',
    headers: { 'content-type': 'image/jpeg' },
    body: jpeg,
  });
  goodImage = ((await image.json()) as number[][])[0]!;
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

describe(`fuzzing (seed ${SEED})`, () => {
  it(`answers ${HTTP_RUNS} generated HTTP requests with 2xx or a documented 4xx, and keeps serving good ones`, async () => {
    const statuses = new Map<number, number>();
    let runs = 0;
    await check(request, HTTP_RUNS, async (r) => {
      const { status, problem } = await send(r);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (problem !== null) throw new Error(`${r.route} (${r.contentType}): ${problem}`);
      if (++runs % 500 === 0) await goodRequestsStillWork();
    });
    expect(server.process.exitCode).toBeNull();
    await goodRequestsStillWork();
    // The fuzz reached both the success path and the refusals (it is not all 400s).
    expect(statuses.get(200) ?? 0).toBeGreaterThan(HTTP_RUNS / 100);
    expect([...statuses.keys()].filter((s) => s >= 400).length).toBeGreaterThanOrEqual(4);
  }, 600_000);

  it(`answers ${WS_RUNS} generated /ws frames with messages or errors, on a socket that stays usable`, async () => {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws`);
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    const messages: Record<string, unknown>[] = [];
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) messages.push(JSON.parse(data.toString()) as Record<string, unknown>);
    });
    let good = 0;
    const frame = fc.oneof(
      { weight: 4, arbitrary: plausible.map((s) => ({ text: true, data: s })) },
      {
        weight: 3,
        arbitrary: fc
          .record(
            {
              id: fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.constant(null), fc.double()),
              lane: fc.oneof(fc.constantFrom('text', 'image'), nasty),
              inputs: fieldValue,
              format: fc.oneof(fc.constantFrom('float', 'base64', 'binary'), nasty),
              cancel: fc.boolean(),
            },
            { requiredKeys: [] },
          )
          .map((o) => ({ text: true, data: JSON.stringify(o) })),
      },
      { weight: 2, arbitrary: fc.jsonValue().map((v) => ({ text: true, data: JSON.stringify(v) })) },
      { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => ({ text: false, data: Buffer.from(b) })) },
    );
    await check(frame, WS_RUNS, async (f) => {
      ws.send(f.data, { binary: !f.text });
      if (++good % 100 !== 0) return;
      // A good request on the same socket, answered in full, after everything sent before it.
      const id = `good-${good}`;
      ws.send(JSON.stringify({ id, lane: 'text', inputs: ['the reference sentence of the fuzz test'] }));
      const deadline = Date.now() + 20_000;
      while (!messages.some((m) => m['id'] === id && m['done'] === true)) {
        if (ws.readyState !== WebSocket.OPEN) throw new Error(`the socket closed (after frame ${good})`);
        if (Date.now() > deadline) throw new Error(`no answer to ${id}`);
        await new Promise((r) => setTimeout(r, 5));
      }
      const item = messages.find((m) => m['id'] === id && 'embedding' in m);
      expect(item?.['embedding']).toEqual(goodText);
    });
    // Every error the socket sent uses a documented code.
    const codes = messages.flatMap((m) => {
      const error = m['error'] as { code?: string } | undefined;
      return error ? [error.code] : [];
    });
    expect(codes.filter((c) => c === undefined || !Object.hasOwn(ERROR_CODES, c))).toEqual([]);
    expect(codes.length).toBeGreaterThan(WS_RUNS / 10);
    ws.close();
    expect(server.process.exitCode).toBeNull();
    await goodRequestsStillWork();
  }, 600_000);
});
