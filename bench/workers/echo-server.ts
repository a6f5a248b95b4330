// The HTTP ceiling: a bare uWebSockets.js server that reads the whole POST body and answers a fixed
// body as large as the real embedding answer. Run as a child process, like the real server.
// Env: ECHO_REPLY_BYTES (answer size), ECHO_PORT (0 = any free port; the chosen one is logged).
import { bareApp, listenLogged } from '../lib/bare-uws.js';

const replyBytes = Number(process.env['ECHO_REPLY_BYTES'] ?? '2200');
const reply = Buffer.alloc(replyBytes, 'a');

const app = bareApp().post('/echo', (res) => {
  let aborted = false;
  let received = 0;
  res.onAborted(() => {
    aborted = true;
  });
  res.onData((chunk, isLast) => {
    // The chunk is only valid during this call; counting its bytes is all the echo needs of it.
    received += chunk.byteLength;
    if (!isLast || aborted) return;
    res.cork(() => {
      res
        .writeStatus('200 OK')
        .writeHeader('content-type', 'application/json')
        .writeHeader('x-received-bytes', String(received))
        .end(reply);
    });
  });
});

listenLogged(app, Number(process.env['ECHO_PORT'] ?? '0'), 'echo server');
