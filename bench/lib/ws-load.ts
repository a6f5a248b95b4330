// Closed-loop WebSocket load for bench:load: `concurrency` sockets, each with one single-item
// request in flight at a time (the HTTP steps' unit of concurrency), vectors as binary frames.
// Hand-written on the `ws` client because no well-kept load generator speaks this protocol (wrk and
// autocannon are HTTP only; artillery's WebSocket engine cannot tell a request's `done` from its
// items). Latency is a request's send to its `done` message.
import WebSocket from 'ws';
import { percentiles } from './load.js';

export interface WsLoadOptions {
  readonly port: number;
  readonly concurrency: number;
  readonly durationMs: number;
  /** The lane and the input of request `n` (a text, or `{ b64 }`). */
  readonly next: (n: number) => { readonly lane: 'text' | 'image'; readonly input: unknown };
}

export interface WsLoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  /** Items refused with a code HTTP answers 429 (lane_overloaded, rate_limited, too_many_in_flight). */
  readonly refused429: number;
  readonly errors: number;
}

const CODES_429 = new Set(['lane_overloaded', 'rate_limited', 'too_many_in_flight']);

interface Client {
  readonly ws: WebSocket;
  /** The request in flight: messages of an earlier one (a `done` after a refusal) are not its. */
  id: number;
  sentAt: number;
  failed: boolean;
}

function open(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { perMessageDeflate: false });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

export async function runWsLoad(options: WsLoadOptions): Promise<WsLoadResult> {
  const sockets = await Promise.all(Array.from({ length: options.concurrency }, () => open(options.port)));
  const latencies: number[] = [];
  let n = 0;
  let refused429 = 0;
  let errors = 0;
  let running = true;
  const started = performance.now();
  const send = (client: Client) => {
    const { lane, input } = options.next(n);
    client.id = n++;
    client.sentAt = performance.now();
    client.failed = false;
    client.ws.send(JSON.stringify({ id: client.id, lane, inputs: [input], format: 'binary' }));
  };
  const finished = new Promise<void>((resolve) => {
    let closed = 0;
    for (const ws of sockets) {
      const client: Client = { ws, id: -1, sentAt: 0, failed: false };
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) return;
        const message = JSON.parse(data.toString()) as { id?: number; done?: boolean; error?: { code: string } };
        if (message.id !== client.id) return;
        if (message.error) {
          client.failed = true;
          if (CODES_429.has(message.error.code)) refused429++;
          else errors++;
        }
        // A request refused as a whole gets one error and no `done`; an item error comes before it.
        const ended = message.done === true || (message.error !== undefined && !('index' in message));
        if (!ended) return;
        if (!client.failed) latencies.push(performance.now() - client.sentAt);
        if (running) send(client);
        else ws.close();
      });
      ws.on('close', () => {
        if (++closed === sockets.length) resolve();
      });
      send(client);
    }
  });
  await new Promise((r) => setTimeout(r, options.durationMs));
  running = false;
  const seconds = (performance.now() - started) / 1000;
  const counted = latencies.length;
  await finished;
  const p = percentiles(Float64Array.from(latencies.slice(0, counted)));
  return { requests: counted, seconds, meanMs: p.mean, p50Ms: p.p50, p95Ms: p.p95, p99Ms: p.p99, refused429, errors };
}
