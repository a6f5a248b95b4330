// What the benches' bare uWebSockets.js servers (bench/workers/echo-server.ts, shed-floor-server.ts)
// share: the product's refusal of uWS's pure-JS fallback (a bare server on it would measure nothing),
// and a listen that logs its port the way bench/lib/children.ts startChild reads it.
import { assertNativeUws, uWS } from '../../server/uws.js';

/** A bare app on the native build; throws UwsFallbackError on the pure-JS fallback. */
export function bareApp(): uWS.TemplatedApp {
  assertNativeUws();
  return uWS.App();
}

/** Listens on 127.0.0.1:`port` (0: any free one), logs "listening on …", and exits 0 on SIGTERM. */
export function listenLogged(app: uWS.TemplatedApp, port: number, what: string): void {
  app.listen('127.0.0.1', port, (socket) => {
    if (!socket) {
      process.stderr.write(`${what} could not listen\n`);
      process.exit(1);
    }
    process.stdout.write(`listening on http://127.0.0.1:${uWS.us_socket_local_port(socket)}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}
