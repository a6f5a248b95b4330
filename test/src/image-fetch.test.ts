import diagnostics from 'node:diagnostics_channel';
import type { LookupAddress } from 'node:dns';
import http from 'node:http';
import net, { type AddressInfo, type LookupFunction } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TwinlaneError } from '../../src/errors.js';
import { ImageFetcher, refusedAddressKind, type ImageFetchOptions, type LookupFn } from '../../src/image-fetch.js';

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);
const CAP = 4096;

// Every client socket this process opens goes through this guard: a connection to anything but
// loopback is refused before it leaves, so a regression in the SSRF guard can never put traffic
// on this machine's network; `opened` lets tests assert that no connection was even attempted.
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const opened: string[] = [];
const escaped: string[] = [];
function guardSocket(message: unknown): void {
  const { socket } = message as { socket: net.Socket };
  const connect = socket.connect;
  socket.connect = function (this: net.Socket, ...args: unknown[]) {
    const first = args[0];
    const options = (Array.isArray(first) ? first[0] : first) as { host?: string; lookup?: LookupFunction };
    const host = options.host ?? 'localhost';
    opened.push(host);
    if (net.isIP(host) !== 0 && !LOOPBACK.has(host)) {
      escaped.push(host);
      throw new Error(`test guard: refused a connection to ${host}`);
    }
    const lookup = options.lookup;
    if (net.isIP(host) === 0) {
      options.lookup = (name, lookupOptions, callback) => {
        if (!lookup) return callback(new Error(`test guard: ${name} would use system DNS`), '', 4);
        lookup(name, lookupOptions, (error, address, family) => {
          const all = typeof address === 'string' ? [address] : address.map((a) => a.address);
          const bad = all.filter((a) => !LOOPBACK.has(a));
          if (bad.length > 0) escaped.push(...bad);
          if (bad.length > 0)
            return callback(new Error(`test guard: refused a connection to ${bad.join(', ')}`), '', 4);
          callback(error, address, family);
        });
      };
    }
    return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof socket.connect;
}

const requests: { path: string; host: string | undefined }[] = [];
const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://local');
  requests.push({ path: url.pathname, host: req.headers.host });
  const chain = /^\/chain\/(\d+)$/.exec(url.pathname);
  if (chain) {
    const n = Number(chain[1]);
    if (n > 0) return res.writeHead(302, { location: `/chain/${n - 1}` }).end();
    return res.writeHead(200, { 'content-type': 'image/png' }).end(PNG);
  }
  switch (url.pathname) {
    case '/img.png':
      return res.writeHead(200, { 'content-type': 'image/png' }).end(PNG);
    case '/octet':
      return res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(PNG);
    case '/html':
      return res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<html></html>');
    case '/404':
      return res.writeHead(404, { 'content-type': 'text/plain' }).end('nope');
    case '/redirect-to':
      return res.writeHead(302, { location: url.searchParams.get('url') ?? '/' }).end();
    case '/declared-big':
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(CAP * 10) });
      return res.write(PNG);
    case '/big': {
      res.writeHead(200, { 'content-type': 'image/png' });
      const timer = setInterval(() => res.write(Buffer.alloc(1024)), 20);
      return res.on('close', () => clearInterval(timer));
    }
    case '/hang':
      return;
    default:
      return res.writeHead(404).end();
  }
});

let port = 0;
let base = '';
const lookups: string[] = [];
const names: Record<string, string[]> = {
  'public.example': ['127.0.0.1'],
  'private.example': ['10.0.0.1'],
  'mixed.example': ['93.184.216.34', '10.0.0.1'],
  'images.internal': ['127.0.0.1'],
};
const lookup: LookupFn = async (hostname) => {
  lookups.push(hostname);
  const found = names[hostname];
  if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  return found.map((address): LookupAddress => ({ address, family: net.isIP(address) }));
};

function fetcher(overrides: Partial<ImageFetchOptions> = {}): ImageFetcher {
  return new ImageFetcher(
    {
      allowlist: [`127.0.0.1:${port}`],
      connectTimeoutMs: 2000,
      totalTimeoutMs: 5000,
      maxBytes: CAP,
      maxRedirects: 3,
      ...overrides,
    },
    lookup,
  );
}

async function failure(promise: Promise<unknown>): Promise<TwinlaneError> {
  const error: unknown = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TwinlaneError);
  return error as TwinlaneError;
}

async function serverConnections(): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
}

async function settledConnections(): Promise<number> {
  for (let i = 0; i < 50 && (await serverConnections()) > 0; i += 1) await new Promise((r) => setTimeout(r, 10));
  return serverConnections();
}

beforeAll(async () => {
  diagnostics.subscribe('net.client.socket', guardSocket);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  diagnostics.unsubscribe('net.client.socket', guardSocket);
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

afterEach(() => {
  const left = escaped.splice(0);
  requests.length = 0;
  opened.length = 0;
  lookups.length = 0;
  expect(left, 'a connection tried to leave loopback').toEqual([]);
});

describe('ImageFetcher', () => {
  it('fetches the bytes and content type of an allowlisted loopback URL', async () => {
    const image = await fetcher().fetch(`${base}/img.png`);
    expect(image).toEqual({ bytes: PNG, contentType: 'image/png', finalUrl: `${base}/img.png` });
    expect(requests).toEqual([{ path: '/img.png', host: `127.0.0.1:${port}` }]);
    expect(await settledConnections()).toBe(0);
  });

  it('accepts application/octet-stream as an image body', async () => {
    expect((await fetcher().fetch(`${base}/octet`)).contentType).toBe('application/octet-stream');
  });

  it('refuses loopback when it is not on the allowlist, naming the address and the allowlist variable', async () => {
    const error = await failure(fetcher({ allowlist: [] }).fetch(`${base}/img.png`));
    expect(error.code).toBe('image_fetch_forbidden');
    expect(error.param).toBeNull();
    expect(error.message).toContain('127.0.0.1, a loopback address');
    expect(error.message).toContain('TWINLANE_IMAGE_FETCH_ALLOWLIST');
    expect(opened).toEqual([]);
    expect(requests).toEqual([]);
  });

  it.each([
    ['http://10.0.0.1/x', 'private'],
    ['http://169.254.169.254/latest/meta-data', 'link-local'],
    ['http://[::1]:PORT/', 'loopback'],
    ['http://[::ffff:127.0.0.1]:PORT/', 'loopback (IPv4 127.0.0.1 embedded'],
    ['http://[64:ff9b::a00:1]/', 'private (IPv4 10.0.0.1 embedded'],
    ['http://100.64.0.1/', 'carrier-grade NAT'],
    ['http://224.0.0.1/', 'multicast'],
    ['http://0x7f.1/', 'loopback'],
  ])('refuses the literal address in %s without opening a connection or asking DNS', async (template, kind) => {
    const error = await failure(fetcher().fetch(template.replace('PORT', String(port))));
    expect(error.code).toBe('image_fetch_forbidden');
    expect(error.message).toContain(`a ${kind}`);
    expect(opened).toEqual([]);
    expect(lookups).toEqual([]);
    expect(requests).toEqual([]);
  });

  it('refuses a public-looking name that resolves to loopback when it is not allowlisted', async () => {
    const error = await failure(fetcher().fetch(`http://public.example:${port}/img.png`));
    expect(error.code).toBe('image_fetch_forbidden');
    expect(error.message).toContain('resolves to 127.0.0.1, a loopback address');
    expect(lookups).toEqual(['public.example']);
    expect(opened).toEqual([]);
  });

  it('refuses a name when any one of its addresses is refused', async () => {
    const error = await failure(fetcher().fetch('http://mixed.example/a.png'));
    expect(error.code).toBe('image_fetch_forbidden');
    expect(error.message).toContain('10.0.0.1, a private address');
    expect(opened).toEqual([]);
  });

  it('connects an allowlisted name to the address it vetted and keeps the original Host header', async () => {
    const image = await fetcher({ allowlist: [`images.internal:${port}`] }).fetch(
      `http://images.internal:${port}/img.png`,
    );
    expect(image.bytes).toEqual(PNG);
    expect(requests).toEqual([{ path: '/img.png', host: `images.internal:${port}` }]);
  });

  it('answers image_fetch_failed when a name does not resolve', async () => {
    const error = await failure(fetcher().fetch('http://nowhere.example/a.png'));
    expect(error.code).toBe('image_fetch_failed');
    expect(error.message).toContain('nowhere.example could not be resolved (ENOTFOUND)');
  });

  it.each([
    'file:///etc/passwd',
    'ftp://x/',
    'data:image/png;base64,iVBORw0KGgo=',
    'gopher://x/',
    '/relative.png',
    'not a url',
  ])('refuses %s as not an http(s) URL', async (url) => {
    const error = await failure(fetcher().fetch(url));
    expect(error.code).toBe('image_fetch_forbidden');
    expect(opened).toEqual([]);
  });

  it('refuses URLs with credentials without echoing the password', async () => {
    const error = await failure(fetcher().fetch(`http://user:pw@127.0.0.1:${port}/img.png`));
    expect(error.code).toBe('image_fetch_forbidden');
    expect(error.message).toContain('credentials');
    expect(error.message).not.toContain('pw');
    expect(opened).toEqual([]);
  });

  it('re-checks every redirect hop and refuses a redirect to a private address', async () => {
    const error = await failure(fetcher().fetch(`${base}/redirect-to?url=${encodeURIComponent('http://10.0.0.1/')}`));
    expect(error.code).toBe('image_fetch_forbidden');
    expect(error.message).toContain('redirected to http://10.0.0.1/');
    expect(opened).toEqual(['127.0.0.1']);
  });

  it('refuses a redirect to a scheme other than http(s)', async () => {
    const error = await failure(fetcher().fetch(`${base}/redirect-to?url=${encodeURIComponent('file:///etc/passwd')}`));
    expect(error.code).toBe('image_fetch_forbidden');
  });

  it('follows a redirect chain up to maxRedirects and fails beyond it', async () => {
    const image = await fetcher().fetch(`${base}/chain/3`);
    expect(image.finalUrl).toBe(`${base}/chain/0`);
    const error = await failure(fetcher().fetch(`${base}/chain/4`));
    expect(error.code).toBe('image_fetch_failed');
    expect(error.message).toContain('too many redirects');
  });

  it('fails on a non-2xx status, naming it', async () => {
    const error = await failure(fetcher().fetch(`${base}/404`));
    expect(error.code).toBe('image_fetch_failed');
    expect(error.message).toContain('HTTP 404');
  });

  it('fails on a content type that is not an image, naming it', async () => {
    const error = await failure(fetcher().fetch(`${base}/html`));
    expect(error.code).toBe('image_fetch_failed');
    expect(error.message).toContain('content type text/html');
  });

  it('aborts a body as soon as it streams past the byte cap', async () => {
    const started = Date.now();
    const error = await failure(fetcher({ totalTimeoutMs: 10_000 }).fetch(`${base}/big`));
    expect(error.code).toBe('image_fetch_failed');
    expect(error.message).toContain(`more than the ${CAP}-byte cap`);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await settledConnections()).toBe(0);
  });

  it('fails at once when Content-Length declares more than the byte cap', async () => {
    const error = await failure(fetcher().fetch(`${base}/declared-big`));
    expect(error.code).toBe('image_fetch_failed');
    expect(error.message).toContain(`declares ${CAP * 10} bytes`);
    expect(await settledConnections()).toBe(0);
  });

  it('times out a server that never answers and closes the socket', async () => {
    const started = Date.now();
    const error = await failure(fetcher({ totalTimeoutMs: 300 }).fetch(`${base}/hang`));
    expect(error.code).toBe('image_fetch_timeout');
    expect(error.message).toContain('within 300 ms');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await settledConnections()).toBe(0);
  });

  it('fails with the reason when the connection is refused', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const error = await failure(
      fetcher({ allowlist: [`127.0.0.1:${closedPort}`] }).fetch(`http://127.0.0.1:${closedPort}/`),
    );
    expect(error.code).toBe('image_fetch_failed');
    expect(error.message).toContain('ECONNREFUSED');
  });

  it('fails with the reason when the TLS handshake fails', async () => {
    const error = await failure(fetcher().fetch(`https://127.0.0.1:${port}/img.png`));
    expect(error.code).toBe('image_fetch_failed');
    expect(error.message).toContain('could not be fetched');
  });

  it('fetches identical URLs in flight only once', async () => {
    const images = fetcher();
    const all = await Promise.all(Array.from({ length: 10 }, () => images.fetch(`${base}/img.png`)));
    expect(new Set(all).size).toBe(1);
    expect(requests).toHaveLength(1);
  });

  it('fetches the same URL again once the first fetch has settled', async () => {
    const images = fetcher();
    await images.fetch(`${base}/img.png`);
    await images.fetch(`${base}/img.png`);
    expect(requests).toHaveLength(2);
  });
});

describe('refusedAddressKind', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['172.20.1.1', 'private'],
    ['192.168.1.1', 'private'],
    ['fd00::1', 'private'],
    ['fe80::1%eth0', 'link-local'],
    ['255.255.255.255', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['192.0.0.8', 'IETF'],
    ['198.19.0.1', 'benchmarking'],
    ['ff02::1', 'multicast'],
    ['::127.0.0.1', 'loopback (IPv4'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['2002:7f00:1::1', 'loopback (IPv4 127.0.0.1'],
    ['2002:a9fe:a9fe::', 'link-local (cloud metadata lives here) (IPv4 169.254.169.254'],
    ['::ffff:0:10.1.2.3', 'private (IPv4 10.1.2.3'],
    ['64:ff9b:1::c0a8:101', 'private (IPv4 192.168.1.1'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo'],
    ['2001:db8::1', 'documentation'],
    ['203.0.113.9', 'documentation'],
  ])('refuses %s as %s', (address, kind) => {
    expect(refusedAddressKind(address)).toContain(kind);
  });

  it.each([
    '93.184.216.34',
    '2606:2800:220:1::1',
    '::ffff:93.184.216.34',
    '64:ff9b::5db8:d822',
    '172.32.0.1',
    '2002:5db8:d822::1',
    '::ffff:0:93.184.216.34',
  ])('allows the public address %s', (address) => {
    expect(refusedAddressKind(address)).toBeNull();
  });
});
