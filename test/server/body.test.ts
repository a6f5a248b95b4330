// readBody on its own, through a real Exchange over a stand-in for uWS's request and response: bodies
// with a Content-Length (read into one buffer), without one (chunked), longer than announced, over the
// limit, and a client gone mid-body; the chunk buffers uWS reuses are copied; and the exchange hears
// once that its body has been read (the front gate's count of bodies in flight depends on it).
import { describe, expect, it } from 'vitest';
import { readBody } from '../../server/body.js';
import { Exchange, type ExchangeTracker } from '../../server/exchange.js';
import type { HttpRequest, HttpResponse } from '../../server/uws.js';
import { Metrics, TwinlaneError } from '../../src/index.js';

/** Hands the body to readBody in chunks the way uWS does: one reused ArrayBuffer, valid during the call. */
class FakeResponse {
  data: ((chunk: ArrayBuffer, isLast: boolean) => void) | null = null;
  aborted: (() => void) | null = null;
  onAborted(callback: () => void): this {
    this.aborted = callback;
    return this;
  }
  onData(callback: (chunk: ArrayBuffer, isLast: boolean) => void): this {
    this.data = callback;
    return this;
  }
  /** Sends `body` in chunks of `size` bytes through one reused buffer, scribbled over after each call. */
  send(body: Buffer, size: number): void {
    const reused = new ArrayBuffer(size);
    for (let at = 0; at < body.length; at += size) {
      const part = body.subarray(at, at + size);
      const chunk = part.length === size ? reused : new ArrayBuffer(part.length);
      new Uint8Array(chunk).set(part);
      this.data!(chunk, at + size >= body.length);
      new Uint8Array(chunk).fill(0x2a);
    }
  }
}

function exchange(headers: Record<string, string>) {
  const res = new FakeResponse();
  const req = {
    getMethod: () => 'post',
    getUrl: () => '/embed/image',
    getQuery: () => '',
    getHeader: (name: string) => headers[name] ?? '',
  };
  const tracker: ExchangeTracker = {
    metrics: new Metrics({
      lanes: () => [],
      cache: () => ({ l1Entries: 0, l1Bytes: 0, inFlight: 0, pendingWrites: 0 }),
    }),
    draining: false,
    opened() {},
    closed() {},
  };
  const ex = new Exchange(res as unknown as HttpResponse, req as unknown as HttpRequest, '/embed/image', tracker);
  let bodyReads = 0;
  ex.afterBody(() => bodyReads++);
  return { ex, res, reads: () => bodyReads };
}

const body = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));

describe('readBody', () => {
  it.each([
    ['with a Content-Length', { 'content-length': String(body.length) }],
    ['chunked, without a Content-Length', { 'transfer-encoding': 'chunked' }],
  ])('reads a body %s in chunks of a reused buffer, exactly, and reports it read once', async (_, headers) => {
    const { ex, res, reads } = exchange(headers);
    const read = readBody(ex, 1 << 20);
    res.send(body, 4096);
    expect(Buffer.compare(await read, body)).toBe(0);
    expect(reads()).toBe(1);
  });

  it('keeps every byte of a body longer than its Content-Length said', async () => {
    const { ex, res } = exchange({ 'content-length': '5000' });
    const read = readBody(ex, 1 << 20);
    res.send(body, 3000);
    expect(Buffer.compare(await read, body)).toBe(0);
  });

  it('refuses a body announced over the limit before reading it, and one that grows past it while read', async () => {
    const announced = exchange({ 'content-length': '20000' });
    await expect(readBody(announced.ex, 10_000 - 1)).rejects.toMatchObject({ code: 'payload_too_large' });
    expect(announced.reads()).toBe(1);
    const growing = exchange({ 'transfer-encoding': 'chunked' });
    const read = readBody(growing.ex, 6000);
    growing.res.send(body, 4096);
    await expect(read).rejects.toBeInstanceOf(TwinlaneError);
    expect(growing.reads()).toBe(1);
  });

  it('reports the body read once when the client goes away mid-body', async () => {
    const { ex, res, reads } = exchange({ 'content-length': String(body.length) });
    const read = readBody(ex, 1 << 20);
    res.data!(new ArrayBuffer(100), false);
    res.aborted!();
    await expect(read).rejects.toThrow('client aborted');
    expect(reads()).toBe(1);
  });
});
