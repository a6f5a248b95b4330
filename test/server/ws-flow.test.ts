// /ws flow control with real sockets: a client that never reads, cancellation (of a request, of a
// whole socket, of an aborted HTTP request), SIGTERM with items in flight, and the client helper.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { TwinlaneStream } from 'twinlane/client';
import { maxAbsDiff, metric, postJson, startServer, type TestServer } from '../helpers/server.js';
import { openSocket } from '../helpers/ws.js';

function rssMiB(server: TestServer): number {
  const status = readFileSync(`/proc/${server.process.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

const computed = (server: TestServer) => metric(server.url, /twinlane_lane_items_computed_total\{lane="text"\} (\S+)/);
const texts = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => `${tag} item ${i} with a few words to embed`);

describe('/ws flow control', () => {
  it('pauses a socket whose client never reads, closes it past its limit, keeps its memory bounded and other sockets fast', async () => {
    const server = await startServer({ TWINLANE_IMAGE_MODEL: 'none', TWINLANE_WS_SLOW_READER_MS: '3000' });
    try {
      const baseline = rssMiB(server);
      const flood = await openSocket(server.url);
      const probe = await openSocket(server.url);
      // The flooding client stops reading: its TCP window closes and the server's buffer fills.
      flood.ws.pause();
      for (let r = 0; r < 500; r++) flood.send({ id: `flood-${r}`, lane: 'text', inputs: texts(100, `flood ${r}`) });
      let peak = baseline;
      const latencies: number[] = [];
      for (let i = 0; i < 25; i++) {
        const sent = performance.now();
        probe.send({ id: `probe-${i}`, lane: 'text', inputs: [`probe text ${i}`] });
        await probe.done(`probe-${i}`, 5000);
        latencies.push(performance.now() - sent);
        peak = Math.max(peak, rssMiB(server));
        await new Promise((r) => setTimeout(r, 150));
      }
      await expect
        .poll(() => metric(server.url, /twinlane_ws_closed_total\{reason="slow_reader"\} (\S+)/), { timeout: 10_000 })
        .toBe(1);
      const pauses = await metric(server.url, /^twinlane_ws_backpressure_pauses_total (\S+)$/m);
      const refused = await metric(server.url, /twinlane_ws_requests_refused_total\{code="too_many_in_flight"\} (\S+)/);
      const lanes = await computed(server);
      console.log(
        `[ws flood] 50,000 texts sent unread: RSS ${baseline.toFixed(0)} → peak ${peak.toFixed(0)} MiB; ${pauses} pause(s); ${refused} requests refused too_many_in_flight; the lane computed ${lanes} texts; probe latency max ${Math.max(...latencies).toFixed(0)} ms, median ${latencies.sort((a, b) => a - b)[12]!.toFixed(0)} ms`,
      );
      expect(pauses).toBeGreaterThanOrEqual(1);
      expect(refused).toBeGreaterThan(400);
      // The socket's in-flight bound (4096 items) and its pause keep the lane from computing the flood.
      expect(lanes).toBeLessThan(5000);
      expect(peak - baseline).toBeLessThan(150);
      expect(Math.max(...latencies)).toBeLessThan(1000);
      flood.ws.resume();
      expect((await flood.closed).code).toBe(4008);
      await probe.close();
    } finally {
      await server.stop();
    }
  });

  it('cancels a request with 2,000 items queued: fewer are computed, done says cancelled, the server stays healthy', async () => {
    const server = await startServer({ TWINLANE_IMAGE_MODEL: 'none' });
    try {
      const socket = await openSocket(server.url);
      const before = await computed(server);
      socket.send({ id: 'big', lane: 'text', inputs: texts(2000, 'cancel me') });
      await socket.next((m) => m['id'] === 'big' && 'embedding' in m);
      socket.send({ id: 'big', cancel: true });
      const done = await socket.done('big');
      const answered = socket.of('big').filter((m) => 'embedding' in m).length;
      expect(done).toMatchObject({ count: 2000, failed: 0, cancelled: true, dropped: 2000 - answered });
      // Nothing of the request arrives after done.
      expect(socket.of('big').at(-1)).toBe(done);
      await new Promise((r) => setTimeout(r, 500));
      const lane = (await computed(server)) - before;
      console.log(`[ws cancel] 2,000 queued, ${answered} answered before cancel, the lane computed ${lane}`);
      expect(lane).toBeLessThan(400);
      socket.send({ id: 'after', lane: 'text', inputs: ['still healthy'] });
      expect(await socket.done('after')).toMatchObject({ failed: 0 });
      await socket.close();
    } finally {
      await server.stop();
    }
  });

  it('cancels everything a socket had queued when it closes', async () => {
    const server = await startServer({ TWINLANE_IMAGE_MODEL: 'none' });
    try {
      const socket = await openSocket(server.url);
      const before = await computed(server);
      socket.send({ id: 'gone', lane: 'text', inputs: texts(2000, 'closing socket') });
      await socket.next((m) => m['id'] === 'gone' && 'embedding' in m);
      await socket.close();
      await new Promise((r) => setTimeout(r, 800));
      const lane = (await computed(server)) - before;
      console.log(`[ws close] 2,000 queued, the lane computed ${lane} after the socket closed`);
      expect(lane).toBeLessThan(400);
      expect(await metric(server.url, /twinlane_ws_requests_total\{end="cancelled"\} (\S+)/)).toBe(1);
      expect((await postJson(`${server.url}/embed/text`, { inputs: ['healthy'] })).status).toBe(200);
    } finally {
      await server.stop();
    }
  });

  it('drops the queued items of an HTTP request whose client went away', async () => {
    const server = await startServer({ TWINLANE_IMAGE_MODEL: 'none' });
    try {
      const before = await computed(server);
      const body = JSON.stringify({ inputs: texts(2000, 'aborted http') });
      await new Promise<void>((resolve) => {
        const req = http.request(`${server.url}/embed/text`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        });
        req.on('error', () => resolve());
        req.end(body);
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 400);
      });
      await new Promise((r) => setTimeout(r, 800));
      const lane = (await computed(server)) - before;
      const dropped = await metric(
        server.url,
        /twinlane_lane_items_dropped_total\{lane="text",reason="cancelled"\} (\S+)/,
      );
      console.log(`[http abort] 2,000 texts, the lane computed ${lane}, dropped ${dropped}`);
      expect(lane).toBeLessThan(600);
      expect(dropped).toBeGreaterThan(1400);
      expect(lane + dropped).toBe(2000);
    } finally {
      await server.stop();
    }
  });

  it('on SIGTERM delivers every item in flight on two sockets, refuses new requests, closes with 1001 and exits 0', async () => {
    const server = await startServer({ TWINLANE_IMAGE_MODEL: 'none' });
    const sockets = await Promise.all([openSocket(server.url), openSocket(server.url)]);
    sockets.forEach((s, k) => s.send({ id: 'inflight', lane: 'text', inputs: texts(300, `sigterm ${k}`) }));
    await Promise.all(sockets.map((s) => s.next((m) => m['id'] === 'inflight' && 'embedding' in m)));
    const exited = server.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    sockets[0]!.send({ id: 'late', lane: 'text', inputs: ['too late'] });
    for (const socket of sockets) {
      expect(await socket.done('inflight')).toMatchObject({ count: 300, failed: 0 });
      expect(socket.of('inflight').filter((m) => 'embedding' in m)).toHaveLength(300);
      expect((await socket.closed).code).toBe(1001);
    }
    expect(sockets[0]!.of('late')[0]).toMatchObject({ error: { code: 'shutting_down' } });
    expect(await exited).toBe(0);
  });
});

describe('twinlane/client', () => {
  it('embed() returns vectors in input order, equal to HTTP; stream() yields 5,000 texts once each in a bounded window', async () => {
    const server = await startServer({ TWINLANE_IMAGE_MODEL: 'none' });
    try {
      const client = await TwinlaneStream.connect({ url: server.url });
      const inputs = ['client one', 'client two', 'client three'];
      const vectors = await client.embed(inputs);
      const expected = (await (await postJson(`${server.url}/embed/text`, { inputs })).json()) as number[][];
      vectors.forEach((v, i) => expect(maxAbsDiff(v, expected[i]!)).toBeLessThanOrEqual(1e-5));
      await expect(client.embed(['fine', ''])).rejects.toMatchObject({ code: 'empty_input' });

      let maxOutstanding = 0;
      const seen = new Uint8Array(5000);
      async function* source() {
        for (let i = 0; i < 5000; i++) yield `streamed text ${i % 1000} number ${i}`;
      }
      let count = 0;
      for await (const result of client.stream(source(), {
        maxInFlight: 256,
        requestSize: 32,
        onProgress: (p) => (maxOutstanding = Math.max(maxOutstanding, p.sent - p.answered - p.failed)),
      })) {
        expect(result.ok).toBe(true);
        seen[result.index]! += 1;
        count++;
      }
      expect(count).toBe(5000);
      expect(seen.every((n) => n === 1)).toBe(true);
      expect(maxOutstanding).toBeLessThanOrEqual(256);
      await client.close();
    } finally {
      await server.stop();
    }
  });
});
