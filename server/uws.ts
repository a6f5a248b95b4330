// The only import of uWebSockets.js. The npm build we use silently falls back to a slow pure-JS
// server when its native binary does not load; twinlane refuses to run on that fallback.
import uWS from 'uWebSockets.js';

export class UwsFallbackError extends Error {
  constructor() {
    super(
      'uWebSockets.js did not load its native binary and fell back to its pure-JS server. twinlane refuses to run on it. ' +
        `Use Node.js 20 (ABI 115) on linux/darwin/win32 x64 or arm64, and unset UWS_USE_FALLBACK (Node ABI here: ${process.versions.modules}).`,
    );
    this.name = 'UwsFallbackError';
  }
}

/** The native module exports low-level socket helpers that the fallback lacks. */
export function assertNativeUws(module: object = uWS): void {
  const native = module as Partial<typeof uWS>;
  if (typeof native.us_socket_local_port !== 'function' || typeof native.us_listen_socket_close !== 'function') {
    throw new UwsFallbackError();
  }
}

type ListenCallback = (socket: uWS.us_listen_socket | false) => void;

/**
 * uSockets sets SO_REUSEPORT by default, which lets a second process listen on a taken port and
 * silently split connections with the first; `exclusive` asks for LIBUS_LISTEN_EXCLUSIVE_PORT.
 * The native binding takes (host, port, options, callback), an overload its typings leave out.
 */
export function listenOn(
  app: uWS.TemplatedApp,
  host: string,
  port: number,
  exclusive: boolean,
  callback: ListenCallback,
): void {
  const listen = app.listen as unknown as (
    host: string,
    port: number,
    options: number,
    callback: ListenCallback,
  ) => void;
  listen.call(app, host, port, exclusive ? 1 : 0, callback);
}

export { uWS };
export type {
  HttpRequest,
  HttpResponse,
  TemplatedApp,
  WebSocket,
  us_listen_socket,
  us_socket_context_t,
} from 'uWebSockets.js';
