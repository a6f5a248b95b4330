// A lean HTTP/1.1 load generator: one keep-alive `node:net` socket per client, one request in flight
// per socket (no pipelining), a warm-up that is not recorded, then a timed window. Closed loop (each
// client sends again when answered) by default; with `arrivalsPerSecond`, open loop: requests are
// started at that rate on whichever socket is free, whatever the answers, and those that find no free
// socket are counted as not sent. Raw sockets instead of fetch/undici (or autocannon) so that the
// generator spends as little CPU as possible: on a small machine every cycle it burns is taken from
// the server it measures (measured when bench:e2e was written: undici's pool cost about twice the CPU
// per request).
import net from 'node:net';

export interface LoadOptions {
  readonly port: number;
  readonly path: string;
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Called once per request, so every request may carry a different body (text, or raw bytes such as an image). */
  readonly body: () => string | Uint8Array;
  /** application/json unless given. */
  readonly contentType?: string;
  /** A response header (lower case) whose values are counted in the measured window. */
  readonly sampleHeader?: string;
  /** Longest wait for answers still in flight when the window closes; then sockets are destroyed. */
  readonly drainMs?: number;
  /** After a 429, wait the answer's Retry-After seconds before the next request, as the official openai client does. */
  readonly honorRetryAfter?: boolean;
  /** A fixed workload instead of a timed window: stop after this many requests (use warmupMs 0); the run lasts until the last answer. */
  readonly requests?: number;
  /** The Accept header (absent unless given). */
  readonly accept?: string;
  /** Open loop: start this many requests per second in all, on `concurrency` sockets at most. */
  readonly arrivalsPerSecond?: number;
}

export interface Percentiles {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export interface LoadResult {
  /** Answers completed inside the measured window. */
  readonly requests: number;
  readonly seconds: number;
  readonly throughput: number;
  readonly latencyMs: Percentiles;
  /** Status codes of every answer in the phase, warm-up included, so no error hides in the warm-up. */
  readonly statuses: Readonly<Record<string, number>>;
  readonly non2xx: number;
  /** Socket errors, early closes, malformed answers and answers still missing after the drain. */
  readonly socketErrors: number;
  readonly errorSamples: readonly string[];
  readonly headerValues: Readonly<Record<string, number>>;
  /** Body size of the last answer, to size stand-in answers elsewhere. */
  readonly lastBodyBytes: number;
  /** Open loop: requests due that found every socket busy, so were never sent. */
  readonly notSent: number;
  /** Requests sent over the whole phase (warm-up included). */
  readonly sent: number;
  /** With honorRetryAfter: requests sent again after waiting a 429's Retry-After, and how many of those got a 2xx. */
  readonly retried: { readonly sent: number; readonly ok: number };
}

const HOST = '127.0.0.1';
const HEAD_END = Buffer.from('\r\n\r\n');

export function percentiles(samples: Float64Array): Percentiles {
  if (samples.length === 0) return { p50: NaN, p95: NaN, p99: NaN, max: NaN, mean: NaN };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  let sum = 0;
  for (const v of sorted) sum += v;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted[sorted.length - 1]!, mean: sum / sorted.length };
}

export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { port, path, concurrency } = options;
  const headPrefix =
    `POST ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nContent-Type: ${options.contentType ?? 'application/json'}\r\n` +
    (options.accept ? `Accept: ${options.accept}\r\n` : '') +
    'Connection: keep-alive\r\nContent-Length: ';
  const sampleRe = options.sampleHeader ? new RegExp(`\r\n${options.sampleHeader}:[ \t]*([^\r]*)`, 'i') : null;
  const start = performance.now();
  const windowStart = start + options.warmupMs;
  const windowEnd = windowStart + options.durationMs;

  let latencies = new Float64Array(1 << 16);
  let recorded = 0;
  const statuses: Record<string, number> = {};
  const headerValues: Record<string, number> = {};
  const errorSamples: string[] = [];
  let non2xx = 0;
  let socketErrors = 0;
  let lastBodyBytes = 0;
  let issued = 0;
  let lastAnswerAt = start;
  let notSent = 0;
  const retried = { sent: 0, ok: 0 };
  /** Open loop: sockets waiting for their next request. */
  const idle: (() => void)[] = [];

  const fail = (why: string) => {
    socketErrors++;
    if (errorSamples.length < 5) errorSamples.push(why);
  };

  return new Promise((resolve) => {
    const sockets = new Set<net.Socket>();
    let inFlight = 0;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(hardStop);
      for (const socket of sockets) socket.destroy();
      const seconds = options.requests === undefined ? options.durationMs / 1000 : (lastAnswerAt - windowStart) / 1000;
      resolve({
        requests: recorded,
        seconds,
        throughput: recorded / seconds,
        latencyMs: percentiles(latencies.subarray(0, recorded)),
        statuses,
        non2xx,
        socketErrors,
        errorSamples,
        headerValues,
        lastBodyBytes,
        notSent,
        sent: issued,
        retried,
      });
    };
    // Bounded whatever the server does: answers still missing after the drain count as errors.
    const hardStop = setTimeout(
      () => {
        for (let i = 0; i < inFlight; i++) fail('no answer before the drain deadline');
        finish();
      },
      options.warmupMs + options.durationMs + (options.drainMs ?? 5000),
    );

    let clients = concurrency;
    const retire = () => {
      if (--clients === 0) finish();
    };

    const connect = () => {
      const socket = net.connect({ host: HOST, port, noDelay: true });
      sockets.add(socket);
      let pending: Buffer | null = null;
      let head = '';
      let status = 0;
      let bodyLeft = -1; // -1: still reading the head
      let retrying = false;
      let sentAt = 0;
      let busy = false;
      let done = false;
      let failed = false;
      const broken = (why: string) => {
        if (!failed) fail(why);
        failed = true;
        socket.destroy();
      };

      const send = () => {
        if (
          finished ||
          performance.now() >= windowEnd ||
          (options.requests !== undefined && issued >= options.requests)
        ) {
          done = true;
          socket.end();
          return;
        }
        issued++;
        const body = options.body();
        busy = true;
        inFlight++;
        sentAt = performance.now();
        const requestHead = headPrefix + Buffer.byteLength(body) + '\r\n\r\n';
        if (typeof body === 'string') {
          socket.write(requestHead + body);
        } else {
          // Corked, so head and bytes leave in one segment when they fit, as one string write would.
          socket.cork();
          socket.write(requestHead);
          socket.write(body);
          socket.uncork();
        }
      };

      const complete = () => {
        const now = performance.now();
        lastAnswerAt = now;
        busy = false;
        inFlight--;
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status < 200 || status > 299) non2xx++;
        if (now >= windowStart && now < windowEnd) {
          if (recorded === latencies.length) {
            const grown = new Float64Array(latencies.length * 2);
            grown.set(latencies);
            latencies = grown;
          }
          latencies[recorded++] = now - sentAt;
          if (sampleRe) {
            const value = sampleRe.exec(head)?.[1] ?? '(absent)';
            headerValues[value] = (headerValues[value] ?? 0) + 1;
          }
        }
        if (retrying) {
          retrying = false;
          if (status >= 200 && status < 300) retried.ok++;
        }
        const retryAfter =
          options.honorRetryAfter && status === 429 ? Number(/\r\nretry-after:[ \t]*(\d+)/i.exec(head)?.[1] ?? 1) : 0;
        if (retryAfter > 0) {
          retrying = true;
          retried.sent++;
        }
        if (retryAfter > 0) setTimeout(send, retryAfter * 1000);
        else if (options.arrivalsPerSecond) idle.push(send);
        else send();
      };

      socket.on('connect', () => (options.arrivalsPerSecond ? idle.push(send) : send()));
      socket.on('data', (chunk: Buffer) => {
        let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
        pending = null;
        if (bodyLeft < 0) {
          const end = buf.indexOf(HEAD_END);
          if (end < 0) {
            pending = buf;
            return;
          }
          head = buf.toString('latin1', 0, end);
          status = Number(head.slice(9, 12));
          const length = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head)?.[1];
          if (length === undefined) return broken(`answer without Content-Length (status ${status})`);
          bodyLeft = Number(length);
          lastBodyBytes = bodyLeft;
          buf = buf.subarray(end + HEAD_END.length);
        }
        if (buf.length < bodyLeft) {
          bodyLeft -= buf.length;
          return;
        }
        if (buf.length > bodyLeft) return broken('bytes after the answer body (unexpected without pipelining)');
        bodyLeft = -1;
        complete();
      });
      socket.on('error', (error) => broken(error.message));
      socket.on('close', () => {
        sockets.delete(socket);
        if (busy) inFlight--;
        if (done || finished) return retire();
        if (!failed) fail(busy ? 'connection closed before the answer' : 'connection closed by the server');
        // Keep the offered load: a lost connection is replaced while the window is still open.
        if (performance.now() < windowEnd) setTimeout(connect, 20);
        else retire();
      });
    };

    for (let i = 0; i < concurrency; i++) connect();
    if (options.arrivalsPerSecond) {
      const rate = options.arrivalsPerSecond;
      // Every 2 ms, start what is due since the phase began on free sockets; the rest is not sent.
      const ticker = setInterval(() => {
        const now = performance.now();
        if (finished || now >= windowEnd) {
          clearInterval(ticker);
          for (const send of idle.splice(0)) send();
          return;
        }
        const due = Math.floor(((now - start) / 1000) * rate) - issued - notSent;
        for (let i = 0; i < due; i++) {
          const send = idle.pop();
          if (send) send();
          else notSent++;
        }
      }, 2);
    }
  });
}
