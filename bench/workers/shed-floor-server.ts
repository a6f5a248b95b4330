// The floor of refusing a request unread: a bare uWebSockets.js server that answers every POST with
// the 429 twinlane sheds with (same headers and body size), held as long (SHED_HOLD_MS, one timer for
// all), the connection kept so uWS drops the body. bench:isolation floods it as it floods the server,
// so the main-thread CPU per refusal is compared with what the HTTP library itself costs on this
// machine. Run as a child process, like the real server. Env: SHED_HOLD_MS (100), SHED_FLOOR_PORT (0 = any).
import type { HttpResponse } from '../../server/uws.js';
import { bareApp, listenLogged } from '../lib/bare-uws.js';

const holdMs = Number(process.env['SHED_HOLD_MS'] ?? '100');
const body = JSON.stringify({
  error: {
    message: 'The image lane is at capacity and refusing a flood of requests; retry after 1 s.',
    type: 'rate_limit_error',
    code: 'lane_overloaded',
    param: null,
  },
});

interface Held {
  readonly res: HttpResponse;
  readonly at: number;
  gone: boolean;
}

const held: Held[] = [];
let timer: NodeJS.Timeout | null = null;

function answer(res: HttpResponse): void {
  res.cork(() => {
    res
      .writeStatus('429 Too Many Requests')
      .writeHeader('content-type', 'application/json')
      .writeHeader('retry-after', '1')
      .end(body);
  });
}

function release(): void {
  timer = null;
  const due = performance.now() - holdMs;
  let n = 0;
  while (n < held.length && held[n]!.at <= due) {
    const h = held[n++]!;
    if (!h.gone) answer(h.res);
  }
  held.splice(0, n);
  if (held.length > 0) timer = setTimeout(release, Math.max(1, held[0]!.at + holdMs - performance.now()));
}

const app = bareApp().post('/*', (res) => {
  if (holdMs === 0) {
    answer(res);
    return;
  }
  const h: Held = { res, at: performance.now(), gone: false };
  res.onAborted(() => {
    h.gone = true;
  });
  held.push(h);
  timer ??= setTimeout(release, holdMs);
});

listenLogged(app, Number(process.env['SHED_FLOOR_PORT'] ?? '0'), 'shed floor server');
