// GET /ws: WebSocket streaming (SPEC.md §5). The upgrade is an HTTP request like any other (an
// Exchange: request id, metrics, errors in OpenAI's shape): the API key is checked there, from
// `Authorization: Bearer` or, for browsers that cannot set headers, from a `bearer.<key>` entry in
// Sec-WebSocket-Protocol next to `twinlane` (the server selects `twinlane`, never echoing the key).
// Each open socket is a StreamConnection; this file owns the set of sockets: the slow-reader sweep,
// the connection bound, and closing them all with 1001 at the end of a drain.
import { log, TwinlaneError, type Metrics, type Orchestrator } from '../../src/index.js';
import type { Drain } from '../drain.js';
import { Exchange, UPGRADE_HEADERS, type ExchangeTracker } from '../exchange.js';
import type { Guard } from '../guard.js';
import { replyError } from '../reply.js';
import type { TemplatedApp, WebSocket } from '../uws.js';
import { StreamConnection, type WsLimits } from './connection.js';
import { WS_BEARER_PREFIX, WS_CLOSE, WS_SUBPROTOCOL } from './protocol.js';
import { requestErrorMessage } from './request.js';

export type { WsLimits } from './connection.js';

export interface WsOptions {
  readonly orchestrator: Orchestrator;
  readonly metrics: Metrics;
  readonly guard: Guard;
  readonly drain: Drain;
  readonly tracker: ExchangeTracker;
  readonly limits: WsLimits;
  readonly maxFrameBytes: number;
  readonly maxBackpressureBytes: number;
  readonly slowReaderMs: number;
  readonly idleTimeoutSeconds: number;
  readonly maxConnections: number;
}

/** What the server keeps of its WebSocket route: the way to close every socket at the end of a drain. */
export interface WsRoute {
  readonly open: number;
  closeAll(): void;
}

interface SocketData {
  readonly client: string;
  connection: StreamConnection | null;
  /** Set when the server closes the socket itself, for the close metric. */
  closing: 'slow_reader' | 'shutdown' | null;
}

/** The key a browser offers as a subprotocol, as an Authorization header value; and whether it offered `twinlane`. */
function offeredProtocols(header: string | undefined): { authorization: string | undefined; twinlane: boolean } {
  const offered = (header ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const bearer = offered.find((p) => p.startsWith(WS_BEARER_PREFIX));
  return {
    authorization: bearer === undefined ? undefined : `Bearer ${bearer.slice(WS_BEARER_PREFIX.length)}`,
    twinlane: offered.includes(WS_SUBPROTOCOL),
  };
}

export function registerWebSocket(app: TemplatedApp, options: WsOptions): WsRoute {
  const { orchestrator, metrics, guard, drain, limits } = options;
  const sockets = new Set<WebSocket<SocketData>>();

  const sweep = setInterval(
    () => {
      const now = performance.now();
      for (const ws of sockets) {
        const since = ws.getUserData().connection?.pausedSince;
        if (since === null || since === undefined || now - since < options.slowReaderMs) continue;
        ws.getUserData().closing = 'slow_reader';
        ws.end(WS_CLOSE.slowReader, 'slow reader: answers were not read in time');
      }
    },
    Math.min(1000, options.slowReaderMs),
  );
  sweep.unref();

  app.ws<SocketData>('/ws', {
    // uWebSockets.js drops a connection whose frame passes maxPayloadLength without a close frame
    // (the client sees 1006). Frames up to twice the limit are read, so that one over the limit is
    // answered with a proper 1009; only beyond that does uWS's hard drop apply.
    maxPayloadLength: options.maxFrameBytes * 2,
    maxBackpressure: options.maxBackpressureBytes,
    closeOnBackpressureLimit: 1,
    idleTimeout: options.idleTimeoutSeconds,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const ex = new Exchange(res, req, '/ws', options.tracker, UPGRADE_HEADERS);
      try {
        const offered = offeredProtocols(ex.header('sec-websocket-protocol'));
        guard.authenticate(ex, 'api', ex.header('authorization') ?? offered.authorization);
        if (drain.draining)
          throw new TwinlaneError('shutting_down', 'The server is shutting down; connect to another instance.');
        if (sockets.size >= options.maxConnections)
          throw new TwinlaneError(
            'too_many_connections',
            `The server holds its bound of ${options.maxConnections} open sockets; retry later.`,
            { retryAfterSeconds: 1 },
          );
        ex.upgrade<SocketData>(
          { client: guard.clientOf(ex), connection: null, closing: null },
          offered.twinlane ? WS_SUBPROTOCOL : '',
          context,
        );
      } catch (error) {
        replyError(ex, error);
      }
    },
    open: (ws) => {
      const data = ws.getUserData();
      data.connection = new StreamConnection({
        orchestrator,
        metrics,
        limits,
        drain,
        spend: (items) => guard.decide(data.client, items),
        socket: {
          send: (message, binary) => void ws.send(message, binary),
          bufferedAmount: () => ws.getBufferedAmount(),
        },
      });
      sockets.add(ws);
      metrics.wsConnection(1);
    },
    message: (ws, message, isBinary) => {
      // The ArrayBuffer lives until this callback returns: parsing reads it now, images are copied.
      const connection = ws.getUserData().connection!;
      const bytes = Buffer.from(message);
      if (bytes.length > options.maxFrameBytes) {
        metrics.wsRefused('payload_too_large');
        ws.end(WS_CLOSE.tooBig, `frame of ${bytes.length} bytes over the limit of ${options.maxFrameBytes}`);
        return;
      }
      try {
        if (isBinary) connection.binary(bytes);
        else connection.text(bytes);
      } catch (error) {
        // A bug must not take the process (and every other socket) down: log it, answer, go on.
        log.error('internal error on /ws', {
          error: error instanceof Error ? (error.stack ?? error.message) : String(error),
        });
        ws.send(requestErrorMessage(undefined, new TwinlaneError('internal_error', 'Internal error.')), false);
      }
    },
    drain: (ws) => ws.getUserData().connection?.drained(),
    close: (ws, code) => {
      const data = ws.getUserData();
      data.connection?.close();
      sockets.delete(ws);
      metrics.wsConnection(-1);
      metrics.wsClosed(data.closing ?? (code === 1000 || code === 1001 ? 'client' : 'abnormal'));
    },
  });

  return {
    get open() {
      return sockets.size;
    },
    closeAll() {
      clearInterval(sweep);
      for (const ws of sockets) {
        ws.getUserData().closing = 'shutdown';
        ws.end(WS_CLOSE.goingAway, 'server shutting down');
      }
    },
  };
}
