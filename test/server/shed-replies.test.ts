// ShedReplies on its own, with a stand-in for uWS's HttpResponse: a shed 429 written at once or held
// for its hold, one timer for all, clients gone while held, the bound on held answers, and the flush a
// stopping server makes. (test/server/overload.test.ts drives the same through real sockets.)
import { describe, expect, it } from 'vitest';
import { ShedReplies } from '../../server/front-gate.js';
import type { HttpResponse } from '../../server/uws.js';
import { Metrics } from '../../src/index.js';

type RecognizedString = string | Uint8Array;
const text = (value: RecognizedString) => (typeof value === 'string' ? value : Buffer.from(value).toString('latin1'));

/** Records what a shed reply writes, and when; header lines are parsed from the bytes uWS would write (`name: value\r\n`). */
class FakeResponse {
  status: string | null = null;
  readonly headers: Record<string, string> = {};
  body: string | null = null;
  writtenAt: number | null = null;
  abort: (() => void) | null = null;

  onAborted(callback: () => void): this {
    this.abort = callback;
    return this;
  }
  cork(callback: () => void): this {
    callback();
    return this;
  }
  writeStatus(status: RecognizedString): this {
    this.status = text(status);
    return this;
  }
  writeHeader(name: RecognizedString, value: RecognizedString): this {
    for (const line of `${text(name)}: ${text(value)}`.split('\r\n')) {
      const colon = line.indexOf(': ');
      this.headers[line.slice(0, colon)] = line.slice(colon + 2);
    }
    return this;
  }
  end(body: RecognizedString): this {
    this.body = text(body);
    this.writtenAt = performance.now();
    return this;
  }
  get res(): HttpResponse {
    return this as unknown as HttpResponse;
  }
}

function metrics(): Metrics {
  return new Metrics({
    lanes: () => [],
    cache: () => ({ l1Entries: 0, l1Bytes: 0, inFlight: 0, pendingWrites: 0 }),
  });
}

async function requestsWith(m: Metrics, status: number): Promise<number> {
  const text = await m.registry.metrics();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`twinlane_http_requests_total{route="/embed/image",lane="image",status="${status}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ShedReplies', () => {
  it('writes the 429 at once without a hold: status, request id, Retry-After and the error body', async () => {
    const m = metrics();
    const replies = new ShedReplies(m, 0);
    const res = new FakeResponse();
    replies.send(res.res, 'req-1', '/embed/image', 'image', 3);
    expect(res.status).toBe('429 Too Many Requests');
    expect(res.headers).toEqual({ 'x-request-id': 'req-1', 'content-type': 'application/json', 'retry-after': '3' });
    expect(JSON.parse(res.body!)).toEqual({
      error: {
        message: 'The image lane is at capacity and refusing a flood of requests; retry after 3 s.',
        type: 'rate_limit_error',
        code: 'lane_overloaded',
        param: null,
      },
    });
    expect(res.abort).toBeNull();
    expect(await requestsWith(m, 429)).toBe(1);
  });

  it('holds each 429 for its hold, in arrival order, and counts a client gone while held as 499', async () => {
    const m = metrics();
    const replies = new ShedReplies(m, 60);
    const first = new FakeResponse();
    const sentFirst = performance.now();
    replies.send(first.res, 'a', '/embed/image', 'image', 1);
    await sleep(30);
    const second = new FakeResponse();
    const gone = new FakeResponse();
    const sentSecond = performance.now();
    replies.send(second.res, 'b', '/embed/image', 'image', 1);
    replies.send(gone.res, 'c', '/embed/image', 'image', 1);
    expect(first.body).toBeNull();
    gone.abort!();
    await sleep(150);
    expect(first.writtenAt! - sentFirst).toBeGreaterThanOrEqual(59);
    expect(second.writtenAt! - sentSecond).toBeGreaterThanOrEqual(59);
    expect(second.writtenAt!).toBeGreaterThan(first.writtenAt!);
    expect(gone.body).toBeNull();
    expect(await requestsWith(m, 429)).toBe(2);
    expect(await requestsWith(m, 499)).toBe(1);
  });

  it('runs a held write (a request shed after its body was read) after the hold, or at once without one', async () => {
    const held = new ShedReplies(metrics(), 40);
    let writtenAfter: number | null = null;
    const started = performance.now();
    held.hold(() => (writtenAfter = performance.now() - started));
    expect(writtenAfter).toBeNull();
    await sleep(100);
    expect(writtenAfter).toBeGreaterThanOrEqual(39);
    let atOnce = false;
    new ShedReplies(metrics(), 0).hold(() => (atOnce = true));
    expect(atOnce).toBe(true);
  });

  it('answers at once past 8,192 held, and flush writes every held one', async () => {
    const replies = new ShedReplies(metrics(), 10_000);
    const held = Array.from({ length: 8192 }, () => new FakeResponse());
    for (const res of held) replies.send(res.res, 'x', '/embed/image', 'image', 1);
    expect(held.every((res) => res.body === null)).toBe(true);
    const overflow = new FakeResponse();
    replies.send(overflow.res, 'y', '/embed/image', 'image', 1);
    expect(overflow.status).toBe('429 Too Many Requests');
    replies.flush();
    expect(held.every((res) => res.status === '429 Too Many Requests')).toBe(true);
  });
});
