// The HTTP front: uWebSockets.js on the main thread. It owns sockets only: it reads and bounds
// bodies, maps routes to handlers, and hands every embedding to the orchestrator.
import net from 'node:net';
import { LaneStormedError, log, TwinlaneError, type Metrics, type Orchestrator } from '../src/index.js';
import { Drain } from './drain.js';
import { Exchange, requestIdOf, type ExchangeTracker } from './exchange.js';
import { NAMES } from './wire.js';
import { Guard, type Access, type GuardOptions } from './guard.js';
import { FrontGate, ShedReplies, type FrontGateOptions } from './front-gate.js';
import { HotAnswers } from './hot-answers.js';
import type { LaneName } from '../lanes/index.js';
import { replyError } from './reply.js';
import { embedImage, embedText } from './routes/embed.js';
import { openAiEmbeddings } from './routes/embeddings.js';
import * as batch from './routes/batch.js';
import type { BatchRouteOptions } from './routes/batch.js';
import * as ops from './routes/ops.js';
import { tokenize } from './routes/tokenize.js';
import { createPages } from './routes/pages.js';
import * as doc from './openapi/operations.js';
import { openApiDocument, type DocumentContext } from './openapi/document.js';
import { registerWebSocket, type WsOptions } from './ws/index.js';
import {
  assertNativeUws,
  listenOn,
  uWS,
  type HttpRequest,
  type HttpResponse,
  type TemplatedApp,
  type us_listen_socket,
} from './uws.js';

export { assertNativeUws, UwsFallbackError } from './uws.js';
export { embeddingsForBatch } from './routes/embeddings.js';
export type { BatchRouteOptions } from './routes/batch.js';

export interface ServerOptions {
  readonly orchestrator: Orchestrator;
  readonly metrics: Metrics;
  readonly version: string;
  readonly maxBodyBytes: number;
  readonly maxImageBodyBytes: number;
  /** Reported by /info. */
  readonly limits: ops.InfoLimits;
  /** API keys and rate limits; absent: neither. */
  readonly access?: Omit<GuardOptions, 'metrics'> | undefined;
  /** One log line per answer (request id, route, status, time). */
  readonly accessLog?: boolean;
  /** Bytes of encoded answers kept for requests repeated exactly (server/hot-answers.ts); 0 keeps none. */
  readonly hotAnswerBytes: number;
  /** When a stormed lane's requests are shed before their bodies are read (server/front-gate.ts). */
  readonly frontGate: FrontGateOptions;
  /** GET /ws: bounds and flow control of the WebSocket route. */
  readonly ws: Omit<WsOptions, 'orchestrator' | 'metrics' | 'guard' | 'drain' | 'tracker'>;
  /** The Files and Batches API; absent: those routes answer 404. */
  readonly batch?: BatchRouteOptions | undefined;
  /** GET /openapi.json, /docs and /playground; false: those routes answer 404. */
  readonly ui: boolean;
}

export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  /** Share the port with other processes (SO_REUSEPORT) instead of taking it exclusively. */
  readonly reusePort: boolean;
}

export interface RunningServer {
  readonly host: string;
  readonly port: number;
  /** First drain step: /ready answers 503 and answers close their connections; everything is still served. */
  beginDrain(): void;
  /** Second step: closes the listen socket; embedding requests on open connections get 503 shutting_down. */
  stopAccepting(): void;
  /** Resolves true when no request is in flight (HTTP or WebSocket), or false when `timeoutMs` passed first. */
  drained(timeoutMs: number): Promise<boolean>;
  /** Last step: closes every WebSocket with 1001 (their requests in flight were answered first). */
  closeSockets(): void;
}

export class ListenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ListenError';
  }
}

type Handler = (ex: Exchange) => void | Promise<void>;

interface Route {
  readonly path: string;
  readonly method: 'get' | 'post' | 'del';
  /** Embedding routes refuse new work once the listen socket is closed and spend the client's budget; operator routes keep answering. */
  readonly embedding: boolean;
  readonly access: Access;
  /** The lane a route's requests go to, when its path says so: shed at header time while that lane is stormed. */
  readonly lane?: LaneName;
  /** What the route is, for /openapi.json (server/openapi). */
  readonly doc: doc.OperationDoc;
  readonly handler: Handler;
}

function routeTable(options: ServerOptions, guard: Guard, drain: Drain, gate: FrontGate): Route[] {
  const { orchestrator, metrics, maxBodyBytes } = options;
  const imageLaneOn = orchestrator.registry.imageTowers().length > 0;
  const hot = options.hotAnswerBytes > 0 ? new HotAnswers(options.hotAnswerBytes) : null;
  const openAi = {
    orchestrator,
    guard,
    hot,
    gate,
    maxBodyBytes,
    readLimitBytes: imageLaneOn ? Math.max(maxBodyBytes, options.maxImageBodyBytes) : maxBodyBytes,
  };
  const opsOptions: ops.OpsRouteOptions = {
    orchestrator,
    metrics,
    version: options.version,
    limits: options.limits,
    startedAt: Date.now(),
    draining: () => drain.draining,
  };
  const routes: Route[] = [
    {
      path: '/v1/embeddings',
      method: 'post',
      embedding: true,
      access: 'api',
      doc: doc.EMBEDDINGS,
      handler: (ex) => openAiEmbeddings(ex, openAi),
    },
    {
      path: '/embeddings',
      method: 'post',
      embedding: true,
      access: 'api',
      doc: doc.EMBEDDINGS,
      handler: (ex) => openAiEmbeddings(ex, openAi),
    },
    {
      path: '/embed/text',
      method: 'post',
      embedding: true,
      access: 'api',
      doc: doc.EMBED_TEXT,
      lane: 'text',
      handler: (ex) => embedText(ex, { orchestrator, guard, hot, maxBodyBytes }),
    },
    {
      path: '/embed/image',
      method: 'post',
      embedding: true,
      access: 'api',
      doc: doc.EMBED_IMAGE,
      lane: 'image',
      handler: (ex) => embedImage(ex, { orchestrator, guard, hot: null, maxBodyBytes: options.maxImageBodyBytes }),
    },
    {
      path: '/tokenize',
      method: 'post',
      embedding: true,
      access: 'api',
      doc: doc.TOKENIZE,
      handler: (ex) => tokenize(ex, { orchestrator, guard, maxBodyBytes }),
    },
    operator('/health', 'ops', doc.HEALTH, ops.health),
    operator('/ready', 'ops', doc.READY, (ex) => ops.ready(ex, opsOptions)),
    operator('/info', 'api', doc.INFO, (ex) => ops.info(ex, opsOptions)),
    operator('/v1/models', 'api', doc.MODELS, (ex) => ops.models(ex, opsOptions)),
    operator('/metrics', 'ops', doc.METRICS, (ex) => ops.metrics(ex, opsOptions)),
    ...(options.batch ? batchRoutes(options.batch) : []),
    // Reached only by a GET /ws that is not a WebSocket upgrade (upgrades go to server/ws).
    {
      path: '/ws',
      method: 'get',
      embedding: false,
      access: 'open',
      doc: doc.WEBSOCKET,
      handler: () => {
        throw new TwinlaneError(
          'upgrade_required',
          'GET /ws is a WebSocket route: send Connection: Upgrade and Upgrade: websocket.',
        );
      },
    },
  ];
  if (options.ui) routes.push(...pageRoutes(routes, documentContext(options, guard)));
  return routes;
}

function documentContext(options: ServerOptions, guard: Guard): DocumentContext {
  return {
    version: options.version,
    keys: (options.access?.apiKeys ?? null) !== null,
    authOps: options.access?.authOps ?? false,
    rateLimited: guard.rateLimited,
    limits: { maxInputs: options.limits.maxInputs, maxChars: options.limits.maxChars },
  };
}

/** A GET route that embeds nothing. */
function operator(path: string, access: Access, about: doc.OperationDoc, handler: Handler): Route {
  return { path, method: 'get', embedding: false, access, doc: about, handler };
}

/** OpenAI's Files and Batches API (server/routes/batch.ts): keys like the embedding routes, no lane at request time. */
function batchRoutes(o: BatchRouteOptions): Route[] {
  const route = (
    method: Route['method'],
    path: string,
    about: doc.OperationDoc,
    handler: (ex: Exchange, o: BatchRouteOptions) => Promise<void>,
  ): Route => ({
    path,
    method,
    embedding: false,
    access: 'api',
    doc: about,
    handler: (ex) => handler(ex, o),
  });
  return [
    route('post', '/v1/files', doc.FILE_CREATE, batch.createFile),
    route('get', '/v1/files', doc.FILE_LIST, batch.listFiles),
    route('get', '/v1/files/:id', doc.FILE_GET, batch.getFile),
    route('del', '/v1/files/:id', doc.FILE_DELETE, batch.deleteFile),
    route('get', '/v1/files/:id/content', doc.FILE_CONTENT, batch.fileContent),
    route('post', '/v1/batches', doc.BATCH_CREATE, batch.createBatch),
    route('get', '/v1/batches', doc.BATCH_LIST, batch.listBatches),
    route('get', '/v1/batches/:id', doc.BATCH_GET, batch.getBatch),
    route('post', '/v1/batches/:id/cancel', doc.BATCH_CANCEL, batch.cancelBatch),
  ];
}

/**
 * The API description and the pages (server/routes/pages.ts), open like /health. The document is
 * built from `routes` — the table being registered, these routes included — on its first request.
 */
function pageRoutes(routes: readonly Route[], context: DocumentContext): Route[] {
  const pages = createPages(() => openApiDocument(routes, context));
  return [
    operator('/openapi.json', 'open', doc.OPENAPI, (ex) => pages.openApi(ex)),
    operator('/docs', 'open', doc.DOCS, (ex) => pages.docs(ex)),
    operator('/playground', 'open', doc.PLAYGROUND, (ex) => pages.playground(ex)),
    operator('/ui/:name', 'open', doc.UI_ASSET, (ex) => pages.asset(ex)),
  ];
}

/** What every Exchange reports to: metrics, the drain's in-flight count, and the access log when on. */
function exchangeTracker(drain: Drain, metrics: Metrics, accessLog: boolean): ExchangeTracker {
  return {
    metrics,
    get draining() {
      return drain.draining;
    },
    opened: () => drain.opened(),
    closed(ex, status, seconds) {
      drain.closed();
      if (accessLog)
        log.info('request', {
          requestId: ex.requestId,
          method: ex.method,
          url: ex.url,
          route: ex.route,
          status,
          ms: Number((seconds * 1000).toFixed(2)),
        });
    },
  };
}

/** The body size a request's Content-Length announces; NaN when it announces none. */
function announcedBytes(req: HttpRequest): number {
  const length = req.getHeader(NAMES.contentLength);
  return length === '' ? Number.NaN : Number(length);
}

/** One route's uWS handler: an Exchange (onAborted first), then auth, the drain check and the route, with every failure answered once. */
function dispatcher(guard: Guard, drain: Drain, gate: FrontGate, shed: ShedReplies, tracker: ExchangeTracker) {
  return (route: Omit<Route, 'method' | 'doc'>) => (res: HttpResponse, req: HttpRequest) => {
    // A stormed lane's request is refused from its headers alone, before anything else is made for
    // it, unless its body is small enough to be answered from L1 (with rate limits on, it takes the
    // usual path, whose answers carry the client's budget).
    let cachedOnly = false;
    if (route.lane && !guard.rateLimited) {
      const retryAfterSeconds = gate.stormed(route.lane);
      if (retryAfterSeconds !== null && !gate.readsWhenStormed(announcedBytes(req))) {
        gate.count(route.lane);
        shed.send(res, requestIdOf(req.getHeader(NAMES.requestId)), route.path, route.lane, retryAfterSeconds);
        return;
      }
      cachedOnly = retryAfterSeconds !== null;
    }
    const ex = new Exchange(res, req, route.path, tracker);
    ex.cachedOnly = cachedOnly;
    const budgeted = route.embedding && guard.rateLimited;
    void (async () => {
      try {
        guard.authenticate(ex, route.access);
        if (route.embedding && drain.refusing)
          throw new TwinlaneError('shutting_down', 'The server is shutting down; retry on another instance.');
        // With rate limits the shed is answered here instead, with the client's budget headers.
        if (route.lane && guard.rateLimited) gate.admit(route.lane);
        // Let on to the lane: while it is stormed, its body holds a place of its room until read.
        if (route.lane && !ex.cachedOnly) gate.reading(route.lane, ex);
        await route.handler(ex);
      } catch (error) {
        if (budgeted) guard.reportBudget(ex);
        // A stormed lane's request refused after its body was read is held like one shed from its
        // headers; one answered from L1 only is counted as shed here, when it could not be.
        if (error instanceof LaneStormedError) {
          if (ex.cachedOnly) gate.count(error.lane, 'uncached');
          shed.hold(() => replyError(ex, error));
        } else replyError(ex, error);
      }
    })();
  };
}

/** Registers every route, a 405 naming the allowed methods for known paths, and a 404 for the rest. */
function registerRoutes(app: TemplatedApp, routes: readonly Route[], dispatch: ReturnType<typeof dispatcher>): void {
  const methodsByPath = new Map<string, string[]>();
  for (const route of routes) {
    app[route.method](route.path, dispatch(route));
    const method = route.method === 'del' ? 'DELETE' : route.method.toUpperCase();
    methodsByPath.set(route.path, [...(methodsByPath.get(route.path) ?? []), method]);
  }
  for (const [path, methods] of methodsByPath) {
    app.any(
      path,
      dispatch({
        path,
        embedding: false,
        access: 'open',
        handler: (ex) => {
          throw new TwinlaneError(
            'method_not_allowed',
            `${ex.method} is not allowed on ${path}; use ${methods.join(' or ')}.`,
          );
        },
      }),
    );
  }
  app.any(
    '/*',
    dispatch({
      path: 'unknown',
      embedding: false,
      access: 'open',
      handler: (ex) => {
        throw new TwinlaneError('not_found', `No route for ${ex.method} ${ex.url}.`);
      },
    }),
  );
}

/** uWS only says that listening failed; binding the same address with Node says why (in use, not available, no permission). */
function listenFailure(host: string, port: number): Promise<ListenError> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    const explain = (reason: string) => resolve(new ListenError(`Could not listen on ${host}:${port}: ${reason}.`));
    probe.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE')
        explain(
          'address in use (another process holds the port; set TWINLANE_REUSE_PORT=true only to share it on purpose)',
        );
      else explain(`${error.code ?? 'error'} (${error.message})`);
    });
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => explain('the address could not be bound')));
  });
}

function listen(app: TemplatedApp, at: ListenOptions): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    listenOn(app, at.host, at.port, !at.reusePort, (socket) => {
      if (socket) resolve(socket);
      else void listenFailure(at.host, at.port).then(reject);
    });
  });
}

interface App {
  readonly app: TemplatedApp;
  readonly drain: Drain;
  readonly ws: ReturnType<typeof registerWebSocket>;
  /** Shed requests' 429s, some of them held (written at once when the server stops accepting). */
  readonly shed: ShedReplies;
}

/** The uWS app with every HTTP route and the WebSocket route registered, sharing one guard, drain and gate. */
function buildApp(options: ServerOptions): App {
  const drain = new Drain();
  const guard = new Guard({
    apiKeys: null,
    limiter: null,
    authOps: false,
    ...options.access,
    metrics: options.metrics,
  });
  const app = uWS.App();
  const tracker = exchangeTracker(drain, options.metrics, options.accessLog ?? false);
  const gate = new FrontGate((name) => options.orchestrator.lane(name), options.frontGate, options.metrics);
  const ws = registerWebSocket(app, {
    ...options.ws,
    orchestrator: options.orchestrator,
    metrics: options.metrics,
    guard,
    drain,
    tracker,
  });
  const shed = new ShedReplies(options.metrics, options.frontGate.holdMs);
  registerRoutes(app, routeTable(options, guard, drain, gate), dispatcher(guard, drain, gate, shed, tracker));
  return { app, drain, ws, shed };
}

/** The drain steps of a listening app (src/serve.ts runs them in order on SIGTERM). */
function running({ drain, ws, shed }: App, at: ListenOptions, socket: us_listen_socket): RunningServer {
  return {
    host: at.host,
    port: uWS.us_socket_local_port(socket),
    beginDrain: () => drain.begin(),
    stopAccepting() {
      if (drain.refusing) return;
      drain.close();
      shed.flush();
      uWS.us_listen_socket_close(socket);
    },
    drained: (timeoutMs) => drain.idle(timeoutMs),
    closeSockets: () => ws.closeAll(),
  };
}

/** Refuses uWS's pure-JS fallback → builds the app → listens (exclusively unless reusePort) → hands back the drain steps. */
export async function startServer(options: ServerOptions, at: ListenOptions): Promise<RunningServer> {
  assertNativeUws();
  const built = buildApp(options);
  const socket = await listen(built.app, at);
  return running(built, at, socket);
}
