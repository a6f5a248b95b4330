// Socket-level misbehaviour: hundreds of slowloris connections dripping headers a byte at a time,
// connections that open and never send, bodies that stop half-way, header blocks and header counts
// over uWebSockets.js's limits, clients that go away mid-request, pipelined requests. The server keeps
// answering other clients, closes idle and stalled connections after uWebSockets.js's idle timeout
// (10 s), and its memory stays bounded. Latency is logged, not asserted (benchmarks measure it).
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';

let server: TestServer;

const rssMiB = () =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.process.pid}/status`, 'utf8'))![1]) / 1024;

interface Probe {
  readonly socket: net.Socket;
  /** Resolves when the server closes the connection, with what it sent before. */
  readonly closed: Promise<{ afterMs: number; received: string }>;
}

function connect(onConnect: (socket: net.Socket) => void = () => undefined): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, '127.0.0.1');
    const started = Date.now();
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    const closed = new Promise<{ afterMs: number; received: string }>((done) =>
      socket.on('close', () => done({ afterMs: Date.now() - started, received })),
    );
    socket.once('connect', () => {
      onConnect(socket);
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });
}

async function embedOnce(text: string): Promise<{ status: number; ms: number; vector: number[] | null }> {
  const started = performance.now();
  const res = await fetch(`${server.url}/embed/text`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [text] }),
  });
  const body = (await res.json()) as number[][];
  return { status: res.status, ms: performance.now() - started, vector: res.status === 200 ? body[0]! : null };
}

/** Writes `raw` on a new connection and returns what came back once `done` says so (or after 5 s). */
async function exchange(raw: string, done: (received: string) => boolean): Promise<string> {
  const probe = await connect((socket) => socket.write(raw));
  let received = '';
  probe.socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  const deadline = Date.now() + 5_000;
  while (!done(received) && Date.now() < deadline && !probe.socket.destroyed)
    await new Promise((r) => setTimeout(r, 10));
  probe.socket.destroy();
  return received;
}

const head = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: twinlane\r\n${extra}\r\n`;

beforeAll(async () => {
  server = await startServer();
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

describe('socket-level misbehaviour', () => {
  it('serves other clients while 300 connections drip headers, stay silent or stall a body, and closes them all at the idle timeout', async () => {
    const rssBefore = rssMiB();
    const drips: NodeJS.Timeout[] = [];
    const slowloris = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        connect((socket) => {
          const header = `POST /embed/text HTTP/1.1\r\nHost: twinlane\r\nX-Slow-${i}: ${'a'.repeat(200)}`;
          let at = 0;
          drips.push(setInterval(() => socket.destroyed || socket.write(header[at++ % header.length]!), 250));
        }),
      ),
    );
    const silent = await Promise.all(Array.from({ length: 60 }, () => connect()));
    const stalled = await Promise.all(
      Array.from({ length: 40 }, () =>
        connect((socket) =>
          socket.write(
            'POST /embed/text HTTP/1.1\r\nHost: twinlane\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{"inputs": ["half',
          ),
        ),
      ),
    );

    // Good traffic for as long as the misbehaving connections are held open.
    const latencies: number[] = [];
    const deadline = Date.now() + 12_000;
    for (let i = 0; Date.now() < deadline; i++) {
      const answer = await embedOnce(`a well-behaved client's text number ${i % 40}`);
      expect(answer.status).toBe(200);
      latencies.push(answer.ms);
      await new Promise((r) => setTimeout(r, 20));
    }
    const everyone = [...slowloris, ...silent, ...stalled];
    const closes = await Promise.all(everyone.map((p) => p.closed));
    for (const drip of drips) clearInterval(drip);
    // Closed by the server, with no answer, at its idle timeout (10 s, checked in 4 s ticks: 8–12 s).
    expect(closes.filter((c) => c.afterMs < 5_000 || c.received !== '')).toEqual([]);
    latencies.sort((a, b) => a - b);
    console.log(
      `good requests during the misbehaviour: ${latencies.length}, p50 ${latencies[Math.floor(latencies.length / 2)]!.toFixed(1)} ms, p99 ${latencies[Math.floor(latencies.length * 0.99)]!.toFixed(1)} ms; RSS ${rssBefore.toFixed(0)} → ${rssMiB().toFixed(0)} MiB`,
    );
    expect(rssMiB() - rssBefore).toBeLessThan(100);
  }, 60_000);

  it('answers a 3 KiB header block that arrives in pieces, closes a connection whose headers pass uWebSockets.js limits, and goes on serving', async () => {
    // uWebSockets.js keeps at most 4 KiB of a header block that has not arrived whole.
    const inPieces = async (bytes: number) => {
      const raw = head('/health', `X-Big: ${'b'.repeat(bytes)}\r\n`);
      const probe = await connect((socket) => {
        socket.write(raw.slice(0, 1000));
        setTimeout(() => socket.write(raw.slice(1000)), 50);
      });
      setTimeout(() => probe.socket.destroy(), 2_000);
      return (await probe.closed).received;
    };
    expect(await inPieces(3 * 1024)).toMatch(/^HTTP\/1\.1 200/);
    expect(await inPieces(16 * 1024)).toBe('');
    // Over what it buffers even in one read (measured: 100 KiB answered, 128 KiB refused): closed at once.
    const huge = await connect((s) => s.write(head('/health', `X-Huge: ${'h'.repeat(1024 * 1024)}\r\n`)));
    const hugeClosed = await huge.closed;
    expect(hugeClosed.received).toBe('');
    expect(hugeClosed.afterMs).toBeLessThan(5_000);
    // Over 48 header fields uWebSockets.js answers nothing; the connection goes at the idle timeout.
    const fields = Array.from({ length: 60 }, (_, i) => `X-Field-${i}: v\r\n`).join('');
    const many = await connect((s) => s.write(head('/health', fields)));
    const manyClosed = await many.closed;
    expect(manyClosed.received).toBe('');
    expect(manyClosed.afterMs).toBeGreaterThan(5_000);
    expect((await embedOnce('still serving after oversized headers')).status).toBe(200);
  }, 30_000);

  it('answers pipelined requests in order, each with its own vector', async () => {
    const texts = ['the first pipelined text', 'the second pipelined text', 'the third pipelined text'];
    const expected = await Promise.all(texts.map(async (t) => (await embedOnce(t)).vector));
    const requests = texts
      .map((t) => {
        const body = JSON.stringify({ inputs: [t] });
        return `POST /embed/text HTTP/1.1\r\nHost: twinlane\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      })
      .join('');
    const received = await exchange(requests, (got) => (got.match(/HTTP\/1\.1 /g) ?? []).length === 3);
    const statuses = received.match(/HTTP\/1\.1 \d+/g);
    const answers: number[][] = [];
    expect(statuses).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200']);
    for (const part of received.split(/HTTP\/1\.1 200 OK\r\n/).slice(1)) {
      const body = part.slice(part.indexOf('\r\n\r\n') + 4);
      answers.push((JSON.parse(body) as number[][])[0]!);
    }
    expect(answers).toEqual(expected);
  });

  it('forgets clients that go away mid-request, HTTP and WebSocket, and counts them as 499', async () => {
    const metric = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return text
        .split('\n')
        .filter((l) => l.startsWith('twinlane_http_requests_total{') && l.includes('status="499"'))
        .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
    };
    const before = await metric();
    const gone = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        connect((s) => {
          const body = JSON.stringify({ inputs: Array.from({ length: 16 }, (_, k) => `going away ${i} ${k}`) });
          s.write(
            `POST /embed/text HTTP/1.1\r\nHost: twinlane\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
          );
          setTimeout(() => s.destroy(), 5);
        }),
      ),
    );
    await Promise.all(gone.map((p) => p.closed));
    const ws = await connect((s) =>
      s.write(
        head(
          '/ws',
          'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n',
        ),
      ),
    );
    ws.socket.destroy();
    await new Promise((r) => setTimeout(r, 1000));
    expect(await metric()).toBeGreaterThan(before);
    expect((await embedOnce('served after clients went away')).status).toBe(200);
    expect(server.process.exitCode).toBeNull();
  });
});
