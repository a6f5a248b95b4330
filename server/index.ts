// The HTTP front: uWebSockets.js on the main thread. It owns sockets only: it reads and bounds
// bodies, maps routes to handlers, and hands every embedding to the orchestrator.
import { TwinlaneError, type Metrics, type Orchestrator } from '../src/index.js';
import { Exchange, type ExchangeTracker } from './exchange.js';
import { Guard, type Access, type GuardOptions } from './guard.js';
import { replyError } from './reply.js';
import { embedImage, embedText } from './routes/embed.js';
import { openAiEmbeddings } from './routes/embeddings.js';
import * as ops from './routes/ops.js';
import { assertNativeUws, uWS, type HttpRequest, type HttpResponse, type us_listen_socket } from './uws.js';

export { assertNativeUws, UwsFallbackError } from './uws.js';

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
}

export interface RunningServer {
  readonly host: string;
  readonly port: number;
  /** Closes the listen socket; requests already on open connections are still answered (embedding routes with 503). */
  stopAccepting(): void;
  /** Resolves true when no request is in flight, or false when `timeoutMs` passed first. */
  drained(timeoutMs: number): Promise<boolean>;
}

type Handler = (ex: Exchange) => void | Promise<void>;

interface Route {
  readonly path: string;
  readonly method: 'get' | 'post';
  /** Embedding routes refuse new work while draining and spend the client's budget; operator routes keep answering. */
  readonly embedding: boolean;
  readonly access: Access;
  readonly handler: Handler;
}

export function startServer(options: ServerOptions, host: string, port: number): Promise<RunningServer> {
  assertNativeUws();
  const { orchestrator, metrics, maxBodyBytes } = options;
  const guard = new Guard({ apiKeys: null, limiter: null, authOps: false, ...options.access, metrics });
  const imageLaneOn = orchestrator.models().some((m) => m.lane === 'image');
  const openAi = { orchestrator, guard, maxBodyBytes, readLimitBytes: imageLaneOn ? Math.max(maxBodyBytes, options.maxImageBodyBytes) : maxBodyBytes };
  const opsOptions: ops.OpsRouteOptions = {
    orchestrator,
    metrics,
    version: options.version,
    limits: options.limits,
    startedAt: Date.now(),
  };
  let inFlight = 0;
  let draining = false;
  let waiters: (() => void)[] = [];
  const tracker: ExchangeTracker = {
    metrics,
    opened: () => void inFlight++,
    closed: () => {
      if (--inFlight === 0) for (const resolve of waiters.splice(0)) resolve();
    },
  };

  const routes: Route[] = [
    { path: '/v1/embeddings', method: 'post', embedding: true, access: 'api', handler: (ex) => openAiEmbeddings(ex, openAi) },
    { path: '/embeddings', method: 'post', embedding: true, access: 'api', handler: (ex) => openAiEmbeddings(ex, openAi) },
    { path: '/embed/text', method: 'post', embedding: true, access: 'api', handler: (ex) => embedText(ex, { orchestrator, guard, maxBodyBytes }) },
    { path: '/embed/image', method: 'post', embedding: true, access: 'api', handler: (ex) => embedImage(ex, { orchestrator, guard, maxBodyBytes: options.maxImageBodyBytes }) },
    { path: '/health', method: 'get', embedding: false, access: 'ops', handler: ops.health },
    { path: '/ready', method: 'get', embedding: false, access: 'ops', handler: (ex) => ops.ready(ex, opsOptions) },
    { path: '/info', method: 'get', embedding: false, access: 'api', handler: (ex) => ops.info(ex, opsOptions) },
    { path: '/v1/models', method: 'get', embedding: false, access: 'api', handler: (ex) => ops.models(ex, opsOptions) },
    { path: '/metrics', method: 'get', embedding: false, access: 'ops', handler: (ex) => ops.metrics(ex, opsOptions) },
  ];

  const dispatch = (route: Omit<Route, 'method'>) => (res: HttpResponse, req: HttpRequest) => {
    // Exchange registers onAborted and copies the request before anything can await.
    const ex = new Exchange(res, req, route.path, tracker);
    const budgeted = route.embedding && guard.rateLimited;
    void (async () => {
      try {
        guard.authenticate(ex, route.access);
        if (route.embedding && draining) throw new TwinlaneError('shutting_down', 'The server is shutting down; retry on another instance.');
        await route.handler(ex);
      } catch (error) {
        if (budgeted) guard.reportBudget(ex);
        replyError(ex, error);
      }
    })();
  };

  const app = uWS.App();
  const methodsByPath = new Map<string, string[]>();
  for (const route of routes) {
    app[route.method](route.path, dispatch(route));
    methodsByPath.set(route.path, [...(methodsByPath.get(route.path) ?? []), route.method.toUpperCase()]);
  }
  for (const [path, methods] of methodsByPath) {
    app.any(path, dispatch({ path, embedding: false, access: 'open', handler: (ex) => {
      throw new TwinlaneError('method_not_allowed', `${ex.method} is not allowed on ${path}; use ${methods.join(' or ')}.`);
    } }));
  }
  app.any('/*', dispatch({ path: 'unknown', embedding: false, access: 'open', handler: (ex) => {
    throw new TwinlaneError('not_found', `No route for ${ex.method} ${ex.url}.`);
  } }));

  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket: us_listen_socket | false) => {
      if (!socket) {
        reject(new Error(`Could not listen on ${host}:${port} (address in use or not available).`));
        return;
      }
      resolve({
        host,
        port: uWS.us_socket_local_port(socket),
        stopAccepting() {
          if (draining) return;
          draining = true;
          uWS.us_listen_socket_close(socket);
        },
        drained(timeoutMs) {
          if (inFlight === 0) return Promise.resolve(true);
          return new Promise((done) => {
            const timer = setTimeout(() => {
              waiters = waiters.filter((w) => w !== finish);
              done(false);
            }, timeoutMs);
            const finish = () => {
              clearTimeout(timer);
              done(true);
            };
            waiters.push(finish);
          });
        },
      });
    });
  });
}
