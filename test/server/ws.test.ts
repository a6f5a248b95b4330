// /ws streaming with the `ws` package as a real client against a real server: interleaved requests,
// cached items first, malformed frames, per-item failures, binary frames both ways, auth and limits.
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeImageFrame, type VectorFrame } from '../../server/ws/protocol.js';
import { maxAbsDiff, metric, postJson, startServer, type TestServer } from '../helpers/server.js';
import { openSocket } from '../helpers/ws.js';

let server: TestServer;

async function http(inputs: string[], extra: Record<string, unknown> = {}): Promise<number[][]> {
  return (await (await postJson(`${server.url}/embed/text`, { inputs, ...extra })).json()) as number[][];
}

async function png(seed: number): Promise<Buffer> {
  return sharp({
    create: {
      width: 48 + seed,
      height: 40,
      channels: 3,
      background: { r: (seed * 37) % 256, g: (seed * 91) % 256, b: 120 },
    },
  })
    .png()
    .toBuffer();
}

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

describe('/ws protocol', () => {
  it('answers three interleaved requests: every (id, index) once, done last, vectors equal to HTTP', async () => {
    const socket = await openSocket(server.url);
    const texts = {
      r1: ['alpha one', 'alpha two', 'alpha three', 'alpha four'],
      2: ['beta one', 'beta two'],
      r3: ['gamma one', 'gamma two', 'gamma three'],
    };
    for (const [id, inputs] of Object.entries(texts)) socket.send({ id: id === '2' ? 2 : id, lane: 'text', inputs });
    for (const [id, inputs] of Object.entries(texts)) {
      const key = id === '2' ? 2 : id;
      const done = await socket.done(key);
      expect(done).toEqual({ id: key, done: true, count: inputs.length, failed: 0 });
      const items = socket.of(key).filter((m) => 'embedding' in m);
      expect(items.map((m) => m['index']).sort()).toEqual(inputs.map((_, i) => i));
      // done comes after the request's last item.
      expect(socket.of(key).at(-1)).toBe(done);
      const expected = await http(inputs);
      for (const m of items)
        expect(maxAbsDiff(m['embedding'] as number[], expected[m['index'] as number]!)).toBeLessThanOrEqual(1e-5);
    }
    await socket.close();
  });

  it('completes 20 requests in flight on one socket', async () => {
    const socket = await openSocket(server.url);
    for (let r = 0; r < 20; r++)
      socket.send({
        id: `many-${r}`,
        lane: 'text',
        inputs: [`request ${r} text a`, `request ${r} text b`, `request ${r} text c`],
      });
    const dones = await Promise.all(Array.from({ length: 20 }, (_, r) => socket.done(`many-${r}`)));
    for (const d of dones) expect(d).toMatchObject({ count: 3, failed: 0 });
    expect(socket.received.filter((r) => r.kind === 'json' && 'embedding' in r.value)).toHaveLength(60);
    await socket.close();
  });

  it('answers the cached items of a request before any of its misses, flagged cached', async () => {
    const cached = ['already seen one', 'already seen two'];
    await http(cached);
    const socket = await openSocket(server.url);
    socket.send({
      id: 'mix',
      lane: 'text',
      inputs: ['fresh text number one', cached[0], 'fresh text number two', cached[1]],
    });
    await socket.done('mix');
    const items = socket.of('mix').filter((m) => 'embedding' in m);
    expect(items.slice(0, 2).map((m) => [m['index'], m['cached']])).toEqual([
      [1, true],
      [3, true],
    ]);
    expect(items.slice(2).map((m) => m['cached'])).toEqual([false, false]);
    await socket.close();
  });

  it('answers each malformed frame with one error, then serves a valid request on the same socket', async () => {
    const socket = await openSocket(server.url);
    const frames: [unknown, string, string | null, unknown][] = [
      ['not json at all', 'invalid_json', null, undefined],
      ['[1, 2]', 'invalid_request', null, undefined],
      [{ lane: 'text', inputs: ['x'] }, 'invalid_request', 'id', undefined],
      [{ id: { nested: true }, lane: 'text', inputs: ['x'] }, 'invalid_request', 'id', undefined],
      [{ id: 'badlane', lane: 'audio', inputs: ['x'] }, 'invalid_request', 'lane', 'badlane'],
      [{ id: 'badtype', lane: 'text', inputs: 'x', normalize: 'yes' }, 'invalid_request', 'normalize', 'badtype'],
      [{ id: 'nums', lane: 'text', inputs: [1, 2] }, 'invalid_request', 'inputs[0]', 'nums'],
      [{ id: 'nomodel', lane: 'text', model: 'acme/none', inputs: ['x'] }, 'model_not_found', 'model', 'nomodel'],
      [{ id: 'fmt', lane: 'text', inputs: ['x'], format: 'xml' }, 'invalid_request', 'format', 'fmt'],
      [{ id: 'dims', lane: 'text', inputs: ['x'], dimensions: 9999 }, 'invalid_dimensions', 'dimensions', 'dims'],
      [{ id: 'empty', lane: 'text', inputs: [] }, 'empty_input', 'inputs', 'empty'],
      [{ id: 'nothing', cancel: true }, 'invalid_request', 'id', 'nothing'],
    ];
    for (const [frame, code, param, id] of frames) {
      const before = socket.received.length;
      socket.send(frame);
      const error = await socket.next(
        (m) => socket.received.findIndex((r) => r.kind === 'json' && r.value === m) >= before && 'error' in m,
      );
      expect(error, JSON.stringify(frame)).toMatchObject({
        error: { code, param, type: expect.any(String), message: expect.any(String) },
      });
      expect(error['id']).toBe(id);
    }
    socket.send({ id: 'ok', lane: 'text', inputs: ['still works'] });
    expect(await socket.done('ok')).toMatchObject({ count: 1, failed: 0 });
    await socket.close();
  });

  it('refuses a second request with an id still in flight, for that id only', async () => {
    const socket = await openSocket(server.url);
    const long = Array.from({ length: 64 }, (_, i) => `a long running request text number ${i}`);
    socket.send({ id: 'dup', lane: 'text', inputs: long });
    socket.send({ id: 'dup', lane: 'text', inputs: ['second'] });
    const refusal = await socket.next((m) => m['id'] === 'dup' && 'error' in m && !('index' in m));
    expect(refusal).toMatchObject({ error: { code: 'invalid_request', param: 'id' } });
    expect(await socket.done('dup')).toMatchObject({ count: 64, failed: 0 });
    await socket.close();
  });

  it('fails bad items alone and answers the good ones of the same request', async () => {
    const socket = await openSocket(server.url);
    socket.send({
      id: 'texts',
      lane: 'text',
      truncate: false,
      inputs: ['good text', '', 'word '.repeat(400), 'another good text'],
    });
    const done = await socket.done('texts');
    expect(done).toMatchObject({ count: 4, failed: 2 });
    const byIndex = new Map(
      socket
        .of('texts')
        .filter((m) => 'index' in m)
        .map((m) => [m['index'], m]),
    );
    expect(byIndex.get(1)).toMatchObject({ error: { code: 'empty_input', param: 'inputs[1]' } });
    expect(byIndex.get(2)).toMatchObject({ error: { code: 'input_too_long' } });
    expect(byIndex.get(0)).toHaveProperty('embedding');
    expect(byIndex.get(3)).toHaveProperty('embedding');

    const good = (await png(1)).toString('base64');
    socket.send({
      id: 'images',
      lane: 'image',
      inputs: [
        { b64: good },
        { b64: Buffer.from('not an image at all').toString('base64') },
        'http://127.0.0.1:9/forbidden.png',
        { b64: '!!!' },
        `data:image/png;base64,${good}`,
      ],
    });
    expect(await socket.done('images')).toMatchObject({ count: 5, failed: 3 });
    const images = new Map(
      socket
        .of('images')
        .filter((m) => 'index' in m)
        .map((m) => [m['index'], m]),
    );
    expect(images.get(1)).toMatchObject({ error: { code: 'unsupported_image' } });
    expect(images.get(2)).toMatchObject({ error: { code: 'image_fetch_forbidden' } });
    expect(images.get(3)).toMatchObject({ error: { code: 'invalid_request', param: 'inputs[3].b64' } });
    expect(images.get(0)).toHaveProperty('embedding');
    expect(images.get(4)).toHaveProperty('embedding');
    await socket.close();
  });

  it('takes images as binary frames and answers vectors as binary frames, equal to HTTP', async () => {
    const socket = await openSocket(server.url);
    const pictures = await Promise.all([2, 3, 4].map(png));
    const expected = (await (
      await postJson(`${server.url}/embed/image`, { inputs: pictures.map((p) => ({ b64: p.toString('base64') })) })
    ).json()) as number[][];
    // Announced with options (binary answers, f32), then one frame per image.
    socket.send({ id: 'bin', lane: 'image', binary_inputs: 3, format: 'binary' });
    pictures.forEach((p, i) => socket.send(encodeImageFrame('bin', i, 3, p)));
    expect(await socket.done('bin')).toMatchObject({ count: 3, failed: 0 });
    const frames = socket.received.flatMap((r) => (r.kind === 'binary' && r.value.id === 'bin' ? [r.value] : []));
    expect(frames.map((f) => f.index).sort()).toEqual([0, 1, 2]);
    for (const f of frames) {
      expect(f.dtype).toBe('f32');
      expect(maxAbsDiff(f.vector, expected[f.index]!)).toBeLessThanOrEqual(1e-5);
    }
    // An unannounced id (binary frames carry ids as text): the image lane's defaults, JSON answers; the
    // same pictures are cache hits now.
    pictures.forEach((p, i) => socket.send(encodeImageFrame('77', i, 3, p)));
    expect(await socket.done('77')).toMatchObject({ count: 3, failed: 0 });
    const json = socket.of('77').filter((m) => 'embedding' in m);
    expect(json.every((m) => m['cached'] === true)).toBe(true);
    for (const m of json)
      expect(maxAbsDiff(m['embedding'] as number[], expected[m['index'] as number]!)).toBeLessThanOrEqual(1e-5);
    await socket.close();
  });

  it('answers texts as BF16 binary frames and base64, each equal to the float answer within its precision', async () => {
    const socket = await openSocket(server.url);
    const inputs = ['binary answers one', 'binary answers two'];
    const expected = await http(inputs);
    socket.send({ id: 'bf', lane: 'text', inputs, format: 'binary', dtype: 'bf16' });
    socket.send({ id: 'b64', lane: 'text', inputs, format: 'base64', dimensions: 64 });
    await Promise.all([socket.done('bf'), socket.done('b64')]);
    const frames = socket.received.flatMap((r) =>
      r.kind === 'binary' && r.value.id === 'bf' ? [r.value as VectorFrame] : [],
    );
    expect(frames).toHaveLength(2);
    for (const f of frames) {
      expect(f.dtype).toBe('bf16');
      expect(maxAbsDiff(f.vector, expected[f.index]!)).toBeLessThanOrEqual(0.004);
    }
    const cut = (
      (await (await postJson(`${server.url}/v1/embeddings`, { input: inputs, dimensions: 64 })).json()) as {
        data: { embedding: number[] }[];
      }
    ).data.map((d) => d.embedding);
    for (const m of socket.of('b64').filter((x) => 'embedding' in x)) {
      const bytes = Buffer.from(m['embedding'] as string, 'base64');
      const vector = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
      expect(vector).toHaveLength(64);
      expect(maxAbsDiff(vector, cut[m['index'] as number]!)).toBeLessThanOrEqual(1e-5);
    }
    await socket.close();
  });

  it('closes the socket with 1009 for a frame over the frame limit, and answers GET /ws without an upgrade with 426', async () => {
    const small = await startServer({ TWINLANE_IMAGE_MODEL: 'none', TWINLANE_WS_MAX_FRAME_BYTES: '4096' });
    try {
      const socket = await openSocket(small.url);
      socket.send({ id: 'big', lane: 'text', inputs: ['x'.repeat(5000)] });
      expect((await socket.closed).code).toBe(1009);
      // Past twice the limit uWebSockets.js drops the connection itself, without a close frame.
      const other = await openSocket(small.url);
      other.send({ id: 'huge', lane: 'text', inputs: ['x'.repeat(9000)] });
      expect((await other.closed).code).toBe(1006);
      const plain = await fetch(`${small.url}/ws`);
      expect(plain.status).toBe(426);
      expect(await plain.json()).toMatchObject({ error: { code: 'upgrade_required' } });
    } finally {
      await small.stop();
    }
  });
});

describe('/ws auth and limits', () => {
  it('checks the API key on the upgrade (header or subprotocol) and spends the rate limit per request', async () => {
    const guarded = await startServer({
      TWINLANE_IMAGE_MODEL: 'none',
      TWINLANE_API_KEYS: 'ws-key',
      TWINLANE_RATE_LIMIT: '0.5',
      TWINLANE_RATE_BURST: '3',
    });
    try {
      await expect(openSocket(guarded.url)).rejects.toThrow('upgrade answered 401');
      await expect(openSocket(guarded.url, { headers: { authorization: 'Bearer wrong' } })).rejects.toThrow(
        'upgrade answered 401',
      );
      const viaHeader = await openSocket(guarded.url, { headers: { authorization: 'Bearer ws-key' } });
      const viaProtocol = await openSocket(guarded.url, { protocols: ['twinlane', 'bearer.ws-key'] });
      expect(viaProtocol.ws.protocol).toBe('twinlane');
      viaHeader.send({ id: 1, lane: 'text', inputs: ['one', 'two'] });
      expect(await viaHeader.done(1)).toMatchObject({ failed: 0 });
      // The same key on the other socket: one budget. One item is left, two are asked.
      viaProtocol.send({ id: 2, lane: 'text', inputs: ['three', 'four'] });
      expect(await viaProtocol.next((m) => m['id'] === 2 && 'error' in m)).toMatchObject({
        error: { code: 'rate_limited' },
        retry_after: expect.any(Number),
      });
      expect(await viaProtocol.done(2)).toMatchObject({ count: 2, dropped: 2 });
      expect(await metric(guarded.url, /twinlane_auth_failures_total\{reason="missing"\} (\S+)/)).toBe(1);
      await Promise.all([viaHeader.close(), viaProtocol.close()]);
    } finally {
      await guarded.stop();
    }
  });

  it('refuses a request that would take a socket past its in-flight bound, with too_many_in_flight and a retry hint', async () => {
    const bounded = await startServer({ TWINLANE_IMAGE_MODEL: 'none', TWINLANE_WS_MAX_IN_FLIGHT_ITEMS: '40' });
    try {
      const socket = await openSocket(bounded.url);
      socket.send({
        id: 'first',
        lane: 'text',
        inputs: Array.from({ length: 30 }, (_, i) => `in flight ${i} ${'pad '.repeat(20)}`),
      });
      socket.send({ id: 'second', lane: 'text', inputs: Array.from({ length: 20 }, (_, i) => `over the bound ${i}`) });
      expect(await socket.next((m) => m['id'] === 'second' && 'error' in m)).toMatchObject({
        error: { code: 'too_many_in_flight', type: 'rate_limit_error' },
        retry_after: 1,
      });
      expect(await socket.done('first')).toMatchObject({ count: 30, failed: 0 });
      socket.send({ id: 'third', lane: 'text', inputs: ['fits now'] });
      expect(await socket.done('third')).toMatchObject({ failed: 0 });
      expect(await metric(bounded.url, /twinlane_ws_requests_refused_total\{code="too_many_in_flight"\} (\S+)/)).toBe(
        1,
      );
      await socket.close();
    } finally {
      await bounded.stop();
    }
  });
});
