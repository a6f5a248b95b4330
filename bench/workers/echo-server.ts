// The HTTP ceiling: a bare uWebSockets.js server that reads the whole POST body and answers a fixed
// body as large as the real embedding answer. Run as a child process, like the real server.
// Env: ECHO_REPLY_BYTES (answer size), ECHO_PORT (0 = any free port; the chosen one is logged).
import uWS from 'uWebSockets.js';

const replyBytes = Number(process.env['ECHO_REPLY_BYTES'] ?? '2200');
const reply = Buffer.alloc(replyBytes, 'a');

if (typeof uWS.us_socket_local_port !== 'function') {
  throw new Error('uWebSockets.js fell back to its pure-JS server; the echo ceiling would be meaningless');
}

uWS
  .App()
  .post('/echo', (res) => {
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
  })
  .listen('127.0.0.1', Number(process.env['ECHO_PORT'] ?? '0'), (socket) => {
    if (!socket) {
      process.stderr.write('echo server could not listen\n');
      process.exit(1);
    }
    process.stdout.write(`listening on http://127.0.0.1:${uWS.us_socket_local_port(socket)}\n`);
  });

process.on('SIGTERM', () => process.exit(0));
