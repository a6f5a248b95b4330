import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startServer, type TestServer } from '../helpers/server.js';

const INPUTS = ['The company reported record profits this quarter.', 'She planted roses in her garden.'];

/** Reference BF16 conversion written independently of cache/bf16.ts: round-to-nearest-even on the bits. */
function bf16(value: number): number {
  const f = new Float32Array([value]);
  const bits = new Uint32Array(f.buffer)[0]!;
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return new Float32Array(new Uint32Array([(rounded >>> 16) << 16]).buffer)[0]!;
}

describe('native /embed/text answer formats', () => {
  let server: TestServer;
  let json: number[][];

  beforeAll(async () => {
    server = await startServer();
    json = (await (await postJson(`${server.url}/embed/text`, { inputs: INPUTS })).json()) as number[][];
  });
  afterAll(async () => {
    await server.stop();
  });

  it('answers JSON by default with one vector per input and timing headers', async () => {
    const res = await postJson(`${server.url}/embed/text`, { inputs: INPUTS });
    expect(res.headers.get('content-type')).toBe('application/json');
    for (const header of ['x-queue-time', 'x-inference-time', 'x-total-time', 'x-cache-hits'])
      expect(res.headers.get(header)).toMatch(/^\d+(\.\d+)?$/);
    expect(json).toHaveLength(2);
    expect(json[0]).toHaveLength(384);
  });

  it('answers little-endian float32 bytes for Accept: application/octet-stream', async () => {
    const res = await postJson(`${server.url}/embed/text`, { inputs: INPUTS }, { accept: 'application/octet-stream' });
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('x-embedding-dims')).toBe('384');
    expect(res.headers.get('x-embedding-count')).toBe('2');
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(bytes.length).toBe(2 * 384 * 4);
    for (let i = 0; i < 2 * 384; i++) expect(bytes.readFloatLE(i * 4)).toBe(json[Math.floor(i / 384)]![i % 384]);
  });

  it('answers little-endian BF16 for Accept: application/x-bfloat16', async () => {
    const res = await postJson(`${server.url}/embed/text`, { inputs: INPUTS }, { accept: 'application/x-bfloat16' });
    expect(res.headers.get('content-type')).toBe('application/x-bfloat16');
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(bytes.length).toBe(2 * 384 * 2);
    for (let i = 0; i < 2 * 384; i++) {
      const value = new Float32Array(new Uint32Array([bytes.readUInt16LE(i * 2) << 16]).buffer)[0]!;
      expect(value).toBe(bf16(json[Math.floor(i / 384)]![i % 384]!));
    }
  });

  it("truncates long texts to the model's max tokens by default and refuses them with truncate:false", async () => {
    const long = 'word '.repeat(600);
    const ok = await postJson(`${server.url}/embed/text`, { inputs: long });
    expect(ok.status).toBe(200);
    const refused = await postJson(`${server.url}/embed/text`, { inputs: long, truncate: false });
    expect(refused.status).toBe(422);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('input_too_long');
  });
});
