import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distinctJpeg } from '../fixtures/images.js';
import { IMAGE_MODEL, startServer, TEXT_MODEL, type TestServer } from '../helpers/server.js';

/** One behaviour, both lanes: each lane says how to send n distinct inputs to its native route. */
interface LaneCase {
  readonly lane: 'text' | 'image';
  readonly model: string;
  readonly dims: number;
  readonly path: string;
  readonly body: (inputs: unknown[]) => unknown;
  readonly inputs: (n: number, seed: number) => Promise<unknown[]>;
}

const LANES: readonly LaneCase[] = [
  {
    lane: 'text',
    model: TEXT_MODEL,
    dims: 384,
    path: '/embed/text',
    body: (inputs) => ({ inputs }),
    inputs: async (n, seed) => Array.from({ length: n }, (_, i) => `lane test sentence ${seed} number ${i}`),
  },
  {
    lane: 'image',
    model: IMAGE_MODEL,
    dims: 512,
    path: '/embed/image',
    body: (inputs) => ({ inputs }),
    inputs: async (n, seed) =>
      Promise.all(
        Array.from({ length: n }, async (_, i) => ({ b64: (await distinctJpeg(seed * 100 + i)).toString('base64') })),
      ),
  },
];

describe.each(LANES)('the $lane lane', (lane) => {
  let server: TestServer;
  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${server.url}${lane.path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    server = await startServer({ TWINLANE_MAX_INPUTS: '4' });
  });
  afterAll(async () => {
    await server.stop();
  });

  it('answers JSON, float32 and BF16 that agree with each other', async () => {
    const inputs = await lane.inputs(2, 1);
    const json = (await (await post(lane.body(inputs))).json()) as number[][];
    const f32 = await post(lane.body(inputs), { accept: 'application/octet-stream' });
    expect(f32.headers.get('x-embedding-dims')).toBe(String(lane.dims));
    expect(f32.headers.get('x-embedding-count')).toBe('2');
    const floats = new Float32Array(await f32.arrayBuffer());
    expect(Array.from(floats)).toEqual([...json[0]!, ...json[1]!]);
    const bf16 = Buffer.from(await (await post(lane.body(inputs), { accept: 'application/x-bfloat16' })).arrayBuffer());
    expect(bf16.length).toBe(2 * lane.dims * 2);
    for (let i = 0; i < 2 * lane.dims; i++) {
      const value = new Float32Array(new Uint32Array([bf16.readUInt16LE(i * 2) << 16]).buffer)[0]!;
      expect(Math.abs(value - floats[i]!)).toBeLessThanOrEqual(Math.abs(floats[i]!) * 2 ** -8 + 1e-30);
    }
  });

  it('serves a repeat from the cache, bit-identical', async () => {
    const inputs = await lane.inputs(1, 2);
    const first = await post(lane.body(inputs), { accept: 'application/octet-stream' });
    const second = await post(lane.body(inputs), { accept: 'application/octet-stream' });
    expect(first.headers.get('x-cache-hits')).toBe('0');
    expect(second.headers.get('x-cache-hits')).toBe('1');
    expect(Buffer.from(await second.arrayBuffer()).equals(Buffer.from(await first.arrayBuffer()))).toBe(true);
  });

  it('keeps normalised and raw vectors apart in the cache', async () => {
    const inputs = await lane.inputs(1, 5);
    const unit = await post({ ...(lane.body(inputs) as object), normalize: true });
    const raw = await post({ ...(lane.body(inputs) as object), normalize: false });
    expect(raw.headers.get('x-cache-hits')).toBe('0');
    const [u] = (await unit.json()) as number[][];
    const [r] = (await raw.json()) as number[][];
    const length = Math.hypot(...r!);
    expect(Math.hypot(...u!)).toBeCloseTo(1, 5);
    expect(Math.abs(length - 1)).toBeGreaterThan(1e-3);
    u!.forEach((v, i) => expect(v).toBeCloseTo(r![i]! / length, 5));
    const again = await post({ ...(lane.body(inputs) as object), normalize: false });
    expect(again.headers.get('x-cache-hits')).toBe('1');
    expect(await again.json()).toEqual([r]);
  });

  it('refuses more items than the per-request limit and an empty list', async () => {
    const tooMany = await post(lane.body(await lane.inputs(5, 3)));
    expect(tooMany.status).toBe(422);
    expect(((await tooMany.json()) as { error: { code: string } }).error.code).toBe('too_many_inputs');
    const empty = await post(lane.body([]));
    expect(empty.status).toBe(422);
    expect(((await empty.json()) as { error: { code: string } }).error.code).toBe('empty_input');
  });

  it('cuts vectors to OpenAI `dimensions` and re-normalises', async () => {
    const [input] = await lane.inputs(1, 4);
    const openAiInput = typeof input === 'string' ? input : `data:image/jpeg;base64,${(input as { b64: string }).b64}`;
    const res = await fetch(`${server.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: lane.model, input: openAiInput, dimensions: 64, encoding_format: 'float' }),
    });
    expect(res.status).toBe(200);
    const vector = ((await res.json()) as { data: { embedding: number[] }[] }).data[0]!.embedding;
    expect(vector).toHaveLength(64);
    expect(Math.hypot(...vector)).toBeCloseTo(1, 5);
  });

  it('lists its model in /info and reports itself in /ready', async () => {
    const info = (await (await fetch(`${server.url}/info`)).json()) as {
      models: { id: string; lane: string; dims: number }[];
    };
    expect(info.models).toContainEqual(expect.objectContaining({ id: lane.model, lane: lane.lane, dims: lane.dims }));
    const ready = (await (await fetch(`${server.url}/ready`)).json()) as {
      lanes: Record<string, { ready: boolean; model: string }>;
    };
    expect(ready.lanes[lane.lane]).toMatchObject({ ready: true, model: lane.model });
  });
});
