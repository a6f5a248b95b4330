// A local HTTP server standing in for the web that image URLs point at: real sockets on 127.0.0.1,
// with routes that misbehave on purpose. It counts requests so tests can see single flight.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ImageHost {
  readonly port: number;
  readonly base: string;
  readonly hits: Map<string, number>;
  /** Serves `bytes` at `/path` with the given content type. */
  put(path: string, bytes: Buffer, contentType?: string): void;
  close(): Promise<void>;
}

export async function startImageHost(): Promise<ImageHost> {
  const files = new Map<string, { bytes: Buffer; type: string }>();
  const hits = new Map<string, number>();
  const hanging = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const file = files.get(path);
    if (file) {
      // A short delay keeps concurrent fetches of one URL overlapping, so single flight shows.
      setTimeout(
        () => res.writeHead(200, { 'content-type': file.type, 'content-length': file.bytes.length }).end(file.bytes),
        30,
      );
    } else if (path === '/redirect-forbidden') {
      res.writeHead(302, { location: 'http://10.0.0.1/inside.png' }).end();
    } else if (path === '/hang') {
      hanging.add(res);
    } else if (path === '/endless') {
      res.writeHead(200, { 'content-type': 'image/png' });
      const chunk = Buffer.alloc(64 * 1024, 1);
      const timer = setInterval(() => {
        if (!res.write(chunk)) return;
      }, 2);
      res.on('close', () => clearInterval(timer));
    } else if (path === '/page.html') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html></html>');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    hits,
    put: (path, bytes, type = 'image/jpeg') => void files.set(path, { bytes, type }),
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
