// Overload with real sockets: deadlines (x-request-timeout-ms) that drop queued items before any model
// runs them, priorities (x-priority) that reorder a lane's queue and refuse low first, and a stormed
// lane shed when its requests' headers arrive, before their bodies are read.
import net from 'node:net';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { IMAGE_MODEL, metric, postJson, startServer } from '../helpers/server.js';

const computed = (url: string) => metric(url, /twinlane_lane_items_computed_total\{lane="text"\} (\S+)/);
const texts = (n: number, tag: string, words = 60) =>
  Array.from(
    { length: n },
    (_, i) => `${tag} ${i} ${'a long sentence that keeps the text worker busy for a while '.repeat(words / 10)}`,
  );

describe('deadlines', () => {
  it('drops the items of a request whose 50 ms deadline passes behind a full lane: 504 deadline_exceeded, never computed', async () => {
    const server = await startServer({ TWINLANE_IMAGE_MODEL: 'none', TWINLANE_TEXT_THREADS: '1' });
    try {
      // A fresh lane has no measured rate yet, so the short request is queued, not refused at admission.
      const before = await computed(server.url);
      const long = postJson(`${server.url}/embed/text`, { inputs: texts(96, 'backlog') });
      await new Promise((r) => setTimeout(r, 20));
      const started = performance.now();
      const late = await postJson(
        `${server.url}/embed/text`,
        { inputs: texts(8, 'deadline') },
        { 'x-request-timeout-ms': '50' },
      );
      const waited = performance.now() - started;
      expect(late.status).toBe(504);
      expect(await late.json()).toMatchObject({ error: { code: 'deadline_exceeded', type: 'server_error' } });
      expect(waited).toBeLessThan(2000);
      expect((await long).status).toBe(200);
      await expect
        .poll(() => metric(server.url, /twinlane_lane_items_dropped_total\{lane="text",reason="deadline"\} (\S+)/), {
          timeout: 5000,
        })
        .toBe(8);
      expect((await computed(server.url)) - before).toBe(96);

      // Now the lane has a rate: a deadline its backlog cannot meet is refused at once, before queuing.
      const again = postJson(`${server.url}/embed/text`, { inputs: texts(96, 'second backlog') });
      await new Promise((r) => setTimeout(r, 20));
      const refused = await postJson(
        `${server.url}/embed/text`,
        { inputs: texts(8, 'hopeless') },
        { 'x-request-timeout-ms': '30' },
      );
      expect(refused.status).toBe(504);
      expect(await metric(server.url, /twinlane_lane_rejections_total\{lane="text",reason="deadline"\} (\S+)/)).toBe(1);
      expect((await again).status).toBe(200);
    } finally {
      await server.stop();
    }
  });

  it('refuses malformed scheduling headers with 400, naming the header', async () => {
    const server = await startServer({ TWINLANE_IMAGE_MODEL: 'none' });
    try {
      for (const [header, value] of [
        ['x-request-timeout-ms', 'soon'],
        ['x-request-timeout-ms', '0'],
        ['x-request-timeout-ms', '99999999'],
        ['x-priority', 'urgent'],
      ] as const) {
        const res = await postJson(`${server.url}/embed/text`, { inputs: ['x'] }, { [header]: value });
        expect(res.status, `${header}: ${value}`).toBe(400);
        expect(await res.json()).toMatchObject({ error: { code: 'invalid_request', param: header } });
      }
      expect(
        (
          await postJson(
            `${server.url}/embed/text`,
            { inputs: ['fine'] },
            { 'x-priority': 'HIGH', 'x-request-timeout-ms': '5000' },
          )
        ).status,
      ).toBe(200);
    } finally {
      await server.stop();
    }
  });
});

describe('priorities', () => {
  it('lets a high-priority request overtake a queue of low ones', async () => {
    const server = await startServer({
      TWINLANE_IMAGE_MODEL: 'none',
      TWINLANE_TEXT_THREADS: '1',
      TWINLANE_TEXT_MAX_BATCH_ITEMS: '16',
      TWINLANE_TEXT_MAX_QUEUE: '512',
    });
    try {
      const order: string[] = [];
      const send = (name: string, priority: string) =>
        postJson(`${server.url}/embed/text`, { inputs: texts(16, name, 30) }, { 'x-priority': priority }).then((r) => {
          expect(r.status).toBe(200);
          order.push(name);
        });
      const lows = Array.from({ length: 6 }, (_, i) => send(`low-${i}`, 'low'));
      await new Promise((r) => setTimeout(r, 30));
      const high = send('high', 'high');
      await Promise.all([...lows, high]);
      // At most the batch already running (and one formed with it) finishes first.
      expect(order.indexOf('high')).toBeLessThanOrEqual(2);
      expect(order.filter((n) => n.startsWith('low')).length).toBe(6);
    } finally {
      await server.stop();
    }
  });

  it('refuses low priority first at a full lane: at half the queue bound, while normal is still taken', async () => {
    const server = await startServer({
      TWINLANE_IMAGE_MODEL: 'none',
      TWINLANE_TEXT_THREADS: '1',
      TWINLANE_TEXT_MAX_QUEUE: '64',
      TWINLANE_TEXT_MAX_BATCH_ITEMS: '8',
    });
    try {
      const backlog = [
        postJson(`${server.url}/embed/text`, { inputs: texts(8, 'running') }),
        postJson(`${server.url}/embed/text`, { inputs: texts(40, 'queued') }),
      ];
      await new Promise((r) => setTimeout(r, 30));
      const low = await postJson(`${server.url}/embed/text`, { inputs: texts(4, 'low one') }, { 'x-priority': 'low' });
      expect(low.status).toBe(429);
      expect(low.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(Number(low.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      const normal = await postJson(`${server.url}/embed/text`, { inputs: texts(4, 'normal one') });
      expect(normal.status).toBe(200);
      for (const res of await Promise.all(backlog)) expect(res.status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});

/**
 * A server whose image lane is held over its queue bound of 1 by one long request, and stormed by
 * eight clients that send a small image again as soon as each is refused (40 ms apart), until `calm()`.
 * `cached`, a tiny picture (`tiny(n)` makes more), was embedded before the storm.
 */
async function stormedImageLane(extraEnv: Record<string, string>, holderImages = 400) {
  const server = await startServer({
    TWINLANE_IMAGE_THREADS: '1',
    TWINLANE_IMAGE_MAX_QUEUE: '1',
    TWINLANE_IMAGE_MAX_BATCH_ITEMS: '1',
    TWINLANE_SHED_AFTER_REFUSALS_PER_S: '5',
    TWINLANE_SHED_PROBES_PER_S: '0',
    ...extraEnv,
  });
  const picture = (i: number) =>
    sharp({
      create: {
        width: 640,
        height: 480,
        channels: 3,
        background: { r: i % 256, g: Math.floor(i / 256) % 256, b: 160 },
      },
    })
      .png()
      .toBuffer();
  const tiny = (n: number) =>
    sharp({ create: { width: 64, height: 48, channels: 3, background: { r: n % 256, g: 40, b: 200 } } })
      .png()
      .toBuffer();
  const cached = await tiny(1);
  expect((await postRaw(server.url, cached)).status).toBe(200);
  const pictures = await Promise.all(Array.from({ length: holderImages }, (_, i) => picture(i)));
  const holder = postJson(`${server.url}/embed/image`, {
    inputs: pictures.map((p) => ({ b64: p.toString('base64') })),
  });
  await expect
    .poll(
      async () =>
        ((await (await fetch(`${server.url}/ready`)).json()) as { lanes: { image: { queued: number } } }).lanes.image
          .queued,
      { timeout: 5000, interval: 20 },
    )
    .toBeGreaterThan(1);
  const small = await picture(999);
  let storming = true;
  const refusedStatuses = new Set<number>();
  const client = async (c: number) => {
    for (let i = 0; storming; i++) {
      // A failed fetch (status 0) fails calm(): every one of these must be answered 429.
      const res = await fetch(`${server.url}/embed/image`, {
        method: 'POST',
        headers: { 'content-type': 'image/png' },
        body: Buffer.concat([small, Buffer.from(`${c} ${i}`)]),
      }).catch(() => null);
      // Answers that come after calm() was called may meet a server that is stopping.
      if (storming) refusedStatuses.add(res?.status ?? 0);
      await res?.arrayBuffer();
      await new Promise((r) => setTimeout(r, 40));
    }
  };
  const clients = Promise.all(Array.from({ length: 8 }, (_, c) => client(c)));
  await expect
    .poll(() => metric(server.url, /twinlane_lane_rejections_total\{lane="image",reason="shed"\} (\S+)/), {
      timeout: 10_000,
      interval: 100,
    })
    .toBeGreaterThan(0);
  const calm = async () => {
    storming = false;
    await clients;
    expect([...refusedStatuses]).toEqual([429]);
    expect((await holder).status).toBe(200);
  };
  return { server, small, calm, cached, tiny };
}

/** POST /embed/image with a raw PNG body. */
const postRaw = (url: string, png: Buffer) =>
  fetch(`${url}/embed/image`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png });

/** Sends a request's headers announcing a 5 MB image and 512 bytes of it; resolves with the answer's head and when it came. */
function announceLargeImage(port: number, firstBytes: Buffer): Promise<{ head: string; afterMs: number }> {
  return new Promise((resolve, reject) => {
    const sentAt = performance.now();
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(
        'POST /embed/image HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000000\r\n\r\n',
      );
      socket.write(firstBytes.subarray(0, 512));
    });
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.includes('\r\n\r\n')) {
        socket.destroy();
        resolve({ head: text, afterMs: performance.now() - sentAt });
      }
    });
    socket.on('error', reject);
    setTimeout(() => reject(new Error('no answer before the body was sent')), 5000);
  });
}

const shedCount = (url: string) => metric(url, /twinlane_lane_rejections_total\{lane="image",reason="shed"\} (\S+)/);

describe('a stormed lane', () => {
  it("is shed when a request's headers arrive, before its body is read, and counted as shed", async () => {
    const { server, small, calm } = await stormedImageLane({ TWINLANE_SHED_HOLD_MS: '0' });
    try {
      // A request announcing a large body gets its 429 after its headers and a few bytes: the server
      // never waited for the rest.
      const { head } = await announceLargeImage(server.port, small);
      expect(head).toMatch(/^HTTP\/1\.1 429/);
      expect(head.toLowerCase()).toMatch(/retry-after: \d+/);
      await calm();
    } finally {
      await server.stop();
    }
  });

  it('answers a small request from L1 when all its items are there, and refuses the others before the lane', async () => {
    const { server, calm, cached, tiny } = await stormedImageLane({ TWINLANE_SHED_HOLD_MS: '0' });
    try {
      const uncached = (url: string) =>
        metric(url, /twinlane_lane_rejections_total\{lane="image",reason="uncached"\} (\S+)/);
      const b64 = (png: Buffer) => ({ b64: png.toString('base64') });
      const hit = await postRaw(server.url, cached);
      expect(hit.status).toBe(200);
      expect(hit.headers.get('x-cache-hits')).toBe('1');
      expect((await postJson(`${server.url}/embed/image`, { inputs: [b64(cached)] })).status).toBe(200);
      const openAi = await postJson(`${server.url}/v1/embeddings`, { model: IMAGE_MODEL, input: [b64(cached)] });
      expect(openAi.status).toBe(200);
      const missing = await tiny(2);
      const miss = await postRaw(server.url, missing);
      expect(miss.status).toBe(429);
      expect(miss.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(await miss.json()).toMatchObject({ error: { code: 'lane_overloaded' } });
      const mixed = await postJson(`${server.url}/embed/image`, { inputs: [b64(cached), b64(missing)] });
      expect(mixed.status).toBe(429);
      const openAiMiss = await postJson(`${server.url}/v1/embeddings`, { model: IMAGE_MODEL, input: [b64(missing)] });
      expect(openAiMiss.status).toBe(429);
      // Counted with their own reason: the storm's larger pictures are shed unread.
      expect(await uncached(server.url)).toBe(3);
      await calm();
      // No refused request reached the lane: the picture is computed afresh now.
      const after = await postRaw(server.url, missing);
      expect(after.status).toBe(200);
      expect(after.headers.get('x-cache-hits')).toBe('0');
    } finally {
      await server.stop();
    }
  });

  it('with TWINLANE_SHED_READ_MAX_BYTES=0, refuses even a cached small request unread', async () => {
    const { server, calm, cached } = await stormedImageLane({
      TWINLANE_SHED_HOLD_MS: '0',
      TWINLANE_SHED_READ_MAX_BYTES: '0',
    });
    try {
      const refused = await postRaw(server.url, cached);
      expect(refused.status).toBe(429);
      expect(await refused.json()).toMatchObject({ error: { code: 'lane_overloaded' } });
      expect(await metric(server.url, /twinlane_lane_rejections_total\{lane="image",reason="uncached"\} (\S+)/)).toBe(
        0,
      );
      await calm();
    } finally {
      await server.stop();
    }
  });

  it('holds a shed 429 for TWINLANE_SHED_HOLD_MS, counts a client gone while held as 499, and writes held ones when stopping', async () => {
    // A longer holder request: this test keeps the lane stormed for several holds.
    const { server, small, calm } = await stormedImageLane({ TWINLANE_SHED_HOLD_MS: '1000' }, 1000);
    try {
      const shedBefore = await shedCount(server.url);
      // Several at once share the one timer; none is answered before its hold has passed. /v1/embeddings
      // names its model inside the body: shed once that is read, and held the same.
      const openAiStarted = performance.now();
      const openAiAnswer = postJson(`${server.url}/v1/embeddings`, {
        model: IMAGE_MODEL,
        input: [{ b64: small.toString('base64') }],
      }).then(async (res) => ({
        res,
        body: (await res.json()) as unknown,
        afterMs: performance.now() - openAiStarted,
      }));
      const answers = await Promise.all(Array.from({ length: 5 }, () => announceLargeImage(server.port, small)));
      for (const { head, afterMs } of answers) {
        expect(head).toMatch(/^HTTP\/1\.1 429/);
        expect(head.toLowerCase()).toMatch(/retry-after: \d+/);
        expect(afterMs).toBeGreaterThanOrEqual(990);
      }
      expect((await shedCount(server.url)) - shedBefore).toBeGreaterThanOrEqual(5);
      const openAi = await openAiAnswer;
      expect(openAi.res.status).toBe(429);
      expect(openAi.res.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(openAi.body).toMatchObject({ error: { code: 'lane_overloaded' } });
      expect(openAi.afterMs).toBeGreaterThanOrEqual(990);
      const gone = net.connect(server.port, '127.0.0.1', () =>
        gone.write('POST /embed/image HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 600\r\n\r\n'),
      );
      await new Promise((r) => setTimeout(r, 100));
      gone.destroy();
      await expect
        .poll(
          () =>
            metric(
              server.url,
              /twinlane_http_requests_total\{route="\/embed\/image",lane="image",status="499"\} (\S+)/,
            ),
          { timeout: 3000 },
        )
        .toBe(1);
      // Stopping writes a held answer at once rather than leaving it to its timer or a reset.
      const last = announceLargeImage(server.port, small);
      await new Promise((r) => setTimeout(r, 100));
      const calmed = calm();
      const stopped = server.stop();
      const { head, afterMs } = await last;
      expect(head).toMatch(/^HTTP\/1\.1 429/);
      expect(afterMs).toBeLessThan(900);
      expect(await stopped).toBe(0);
      await calmed;
    } finally {
      await server.stop();
    }
  });
});
