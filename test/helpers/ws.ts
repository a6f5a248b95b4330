// A real `ws` client against the server's /ws route, recording every message so tests can assert
// on order, and waiting for the messages a test needs.
import WebSocket from 'ws';
import { decodeVectorFrame, type VectorFrame } from '../../server/ws/protocol.js';

export type Received =
  | { readonly kind: 'json'; readonly value: Record<string, unknown>; readonly at: number }
  | { readonly kind: 'binary'; readonly value: VectorFrame; readonly at: number };

export interface TestSocket {
  readonly ws: WebSocket;
  readonly received: Received[];
  send(value: unknown): void;
  /** Resolves with the first message (seen before or after the call) that `match` accepts. */
  next(match: (message: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the `done` message of request `id`. */
  done(id: unknown, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** JSON messages of request `id`, in arrival order. */
  of(id: unknown): Record<string, unknown>[];
  closed: Promise<{ code: number; reason: string }>;
  close(): Promise<void>;
}

export async function openSocket(
  url: string,
  options: { headers?: Record<string, string>; protocols?: string[] } = {},
): Promise<TestSocket> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, options.protocols ?? [], {
    headers: options.headers ?? {},
  });
  const received: Received[] = [];
  const waiters: (() => void)[] = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    const at = performance.now();
    if (isBinary) received.push({ kind: 'binary', value: decodeVectorFrame(new Uint8Array(data)), at });
    else received.push({ kind: 'json', value: JSON.parse(data.toString()) as Record<string, unknown>, at });
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
  });
  const json = () => received.flatMap((r) => (r.kind === 'json' ? [r.value] : []));
  const next = async (match: (message: Record<string, unknown>) => boolean, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = json().find(match);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(
          `no matching message within ${timeoutMs} ms; got ${JSON.stringify(json().slice(-5)).slice(0, 2000)}`,
        );
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  };
  return {
    ws,
    received,
    send: (value) => ws.send(typeof value === 'string' || value instanceof Uint8Array ? value : JSON.stringify(value)),
    next,
    done: (id, timeoutMs) => next((m) => m['id'] === id && m['done'] === true, timeoutMs),
    of: (id) => json().filter((m) => m['id'] === id),
    closed,
    async close() {
      if (ws.readyState === WebSocket.CLOSED) return;
      ws.close();
      await closed;
    },
  };
}
