// Fetching image URLs for /embed/image with an SSRF guard (SPEC.md §4, "Image inputs").
// Every hop is vetted (scheme, DNS, address ranges, allowlist) before any socket is opened, and
// the socket then connects to exactly the addresses that were vetted, so a DNS answer that
// changes between check and connect (rebinding) cannot reach a refused address.

import { promises as dns, type LookupAddress } from 'node:dns';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { TwinlaneError } from './errors.js';

export interface ImageFetchOptions {
  /** TWINLANE_IMAGE_FETCH_ALLOWLIST entries: "host" or "host:port", IPv6 in brackets ("[::1]:8080"). */
  readonly allowlist: readonly string[];
  readonly connectTimeoutMs: number;
  /** Covers DNS, connect, every redirect and the body. */
  readonly totalTimeoutMs: number;
  readonly maxBytes: number;
  readonly maxRedirects: number;
}

export interface FetchedImage {
  readonly bytes: Buffer;
  readonly contentType: string;
  readonly finalUrl: string;
}

export type LookupFn = (hostname: string) => Promise<readonly LookupAddress[]>;

const systemLookup: LookupFn = (hostname) => dns.lookup(hostname, { all: true, verbatim: true });

const ALLOWLIST_VARIABLE = 'TWINLANE_IMAGE_FETCH_ALLOWLIST';
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

function blockList(ipv4: readonly string[], ipv6: readonly string[]): BlockList {
  const list = new BlockList();
  for (const [entries, family] of [
    [ipv4, 'ipv4'],
    [ipv6, 'ipv6'],
  ] as const) {
    for (const cidr of entries) {
      const [network = '', prefix = ''] = cidr.split('/');
      list.addSubnet(network, Number(prefix), family);
    }
  }
  return list;
}

// One list per kind so that a refusal can say which kind of address it met.
const REFUSED: readonly (readonly [string, BlockList])[] = [
  ['loopback', blockList(['127.0.0.0/8'], ['::1/128'])],
  ['unspecified', blockList(['0.0.0.0/8'], ['::/128'])],
  ['private', blockList(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'], ['fc00::/7'])],
  ['link-local (cloud metadata lives here)', blockList(['169.254.0.0/16'], ['fe80::/10'])],
  ['carrier-grade NAT', blockList(['100.64.0.0/10'], [])],
  ['multicast', blockList(['224.0.0.0/4'], ['ff00::/8'])],
  ['reserved or broadcast', blockList(['240.0.0.0/4', '255.255.255.255/32'], [])],
  ['IETF protocol assignment', blockList(['192.0.0.0/24'], [])],
  ['benchmarking', blockList(['198.18.0.0/15'], [])],
  // Teredo hides the IPv4 address it reaches (XOR-ed), so it cannot be judged: refused whole.
  [
    'tunnelled (Teredo) or documentation',
    blockList(['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24'], ['2001::/32', '2001:db8::/32', '100::/64']),
  ],
];

/** The eight 16-bit groups of a valid IPv6 address (a trailing dotted quad is allowed). */
function ipv6Groups(address: string): number[] {
  const hex = address.replace(
    /(\d+)\.(\d+)\.(\d+)\.(\d+)$/,
    (_, a: string, b: string, c: string, d: string) =>
      `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`,
  );
  const [head = '', tail] = hex.split('::');
  const parse = (part: string | undefined): number[] => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const front = parse(head);
  const back = parse(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}

// Mapped (::ffff:a.b.c.d), translated (::ffff:0:a.b.c.d), compatible (::a.b.c.d), NAT64
// (64:ff9b::a.b.c.d and the local-use 64:ff9b:1::/48) and 6to4 (2002:aabb:ccdd::/48) addresses reach
// the embedded IPv4 address, so that address is what must be judged.
function embeddedIpv4(address: string): string | null {
  const g = ipv6Groups(address);
  const zeros = (from: number, to: number): boolean => g.slice(from, to).every((x) => x === 0);
  const quad = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  if (g[0] === 0x2002) return quad(g[1] ?? 0, g[2] ?? 0);
  const mapped = zeros(0, 5) && g[5] === 0xffff;
  const translated = zeros(0, 4) && g[4] === 0xffff && g[5] === 0;
  const compatible = zeros(0, 6) && !(g[6] === 0 && (g[7] ?? 0) <= 1); // :: and ::1 are not IPv4
  const nat64 = g[0] === 0x64 && g[1] === 0xff9b && (zeros(2, 6) || g[2] === 1);
  if (!mapped && !translated && !compatible && !nat64) return null;
  return quad(g[6] ?? 0, g[7] ?? 0);
}

/** Why an address is refused, or null when it may be fetched from. */
export function refusedAddressKind(address: string): string | null {
  const bare = address.split('%')[0] ?? address; // a zone id says nothing about the range
  const family = isIP(bare);
  if (family === 0) return 'unparsable';
  const check = (ip: string, type: 'ipv4' | 'ipv6'): string | null =>
    REFUSED.find(([, list]) => list.check(ip, type))?.[0] ?? null;
  if (family === 4) return check(bare, 'ipv4');
  const v4 = embeddedIpv4(bare);
  const inner = v4 === null ? null : check(v4, 'ipv4');
  return inner === null ? check(bare, 'ipv6') : `${inner} (IPv4 ${v4} embedded in IPv6)`;
}

function shown(url: string): string {
  return url.length > 200 ? `${url.slice(0, 200)}…` : url;
}

interface Vetted {
  readonly url: URL;
  readonly addresses: readonly LookupAddress[];
}

type Hop = { readonly redirect: string } | { readonly image: FetchedImage };

export class ImageFetcher {
  readonly #options: ImageFetchOptions;
  readonly #lookup: LookupFn;
  readonly #allowlist: ReadonlySet<string>;
  /** One fetch per URL at a time: requests naming the same URL share it. */
  readonly #inFlight = new Map<string, Promise<FetchedImage>>();

  constructor(options: ImageFetchOptions, lookup: LookupFn = systemLookup) {
    this.#options = options;
    this.#lookup = lookup;
    this.#allowlist = new Set(options.allowlist.map((entry) => entry.trim().toLowerCase()).filter(Boolean));
  }

  fetch(url: string): Promise<FetchedImage> {
    const pending = this.#inFlight.get(url);
    if (pending) return pending;
    const promise = this.#fetchOnce(url).finally(() => this.#inFlight.delete(url));
    this.#inFlight.set(url, promise);
    return promise;
  }

  async #fetchOnce(url: string): Promise<FetchedImage> {
    const controller = new AbortController();
    const timer = setTimeout(
      () =>
        controller.abort(
          new TwinlaneError(
            'image_fetch_timeout',
            `Image URL ${shown(url)} did not finish within ${this.#options.totalTimeoutMs} ms.`,
          ),
        ),
      this.#options.totalTimeoutMs,
    );
    try {
      let current = url;
      for (let redirects = 0; ; redirects += 1) {
        const label =
          current === url ? `Image URL ${shown(url)}` : `Image URL ${shown(url)} (redirected to ${shown(current)})`;
        const target = await this.#vet(current, label, controller.signal);
        const hop = await this.#request(target, label, controller.signal);
        if ('image' in hop) return hop.image;
        if (redirects >= this.#options.maxRedirects) {
          throw new TwinlaneError(
            'image_fetch_failed',
            `Image URL ${shown(url)} redirected more than ${this.#options.maxRedirects} times (too many redirects).`,
          );
        }
        current = hop.redirect;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  async #vet(raw: string, label: string, signal: AbortSignal): Promise<Vetted> {
    const forbid = (why: string): TwinlaneError => new TwinlaneError('image_fetch_forbidden', `${label} ${why}.`);
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw forbid('is not an absolute http(s) URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw forbid(`uses the ${url.protocol} scheme; only http: and https: URLs can be fetched`);
    }
    if (url.username !== '' || url.password !== '') {
      throw new TwinlaneError('image_fetch_forbidden', 'Image URLs must not carry credentials (user:password@).');
    }
    const host = url.hostname; // lower-cased by the URL parser; IPv6 keeps its brackets
    const bare = host.startsWith('[') ? host.slice(1, -1) : host;
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    const allowed = this.#allowlist.has(host) || this.#allowlist.has(`${host}:${port}`);
    const literal = isIP(bare) !== 0;
    let addresses: readonly LookupAddress[];
    if (literal) {
      addresses = [{ address: bare, family: isIP(bare) }];
    } else {
      try {
        addresses = await untilAborted(this.#lookup(bare), signal);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        const code = (error as NodeJS.ErrnoException).code ?? String(error);
        throw new TwinlaneError('image_fetch_failed', `${label}: host ${bare} could not be resolved (${code}).`, {
          cause: error,
        });
      }
      if (addresses.length === 0)
        throw new TwinlaneError('image_fetch_failed', `${label}: host ${bare} has no addresses.`);
    }
    if (!allowed) {
      for (const { address } of addresses) {
        const kind = refusedAddressKind(address);
        if (kind !== null) {
          throw forbid(
            `${literal ? 'points at' : 'resolves to'} ${address}, a ${kind} address; ` +
              `add "${host}" or "${host}:${port}" to ${ALLOWLIST_VARIABLE} to allow it`,
          );
        }
      }
    }
    return { url, addresses };
  }

  #request({ url, addresses }: Vetted, label: string, signal: AbortSignal): Promise<Hop> {
    const { connectTimeoutMs, maxBytes } = this.#options;
    return new Promise<Hop>((resolve, reject) => {
      let settled = false;
      const settle = (error: unknown, hop?: Hop): void => {
        if (settled) return;
        settled = true;
        clearTimeout(connectTimer);
        signal.removeEventListener('abort', onAbort);
        req.destroy(); // also after success: the socket must not outlive the fetch
        if (hop) resolve(hop);
        else reject(error);
      };
      const fail = (message: string): void => settle(new TwinlaneError('image_fetch_failed', `${label} ${message}.`));
      const onAbort = (): void => settle(signal.reason);

      // Hands the socket only the vetted addresses, whatever DNS would answer now.
      const pinned: LookupFunction = (_hostname, lookupOptions, callback) => {
        const first = addresses[0] ?? { address: '', family: 4 };
        process.nextTick(() =>
          lookupOptions.all
            ? callback(
                null,
                addresses.map((a) => ({ address: a.address, family: a.family })),
              )
            : callback(null, first.address, first.family),
        );
      };
      const bare = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
      const req = (url.protocol === 'https:' ? https : http).request({
        protocol: url.protocol,
        hostname: bare, // also the TLS servername and the name the certificate is checked against
        port: url.port || undefined,
        path: `${url.pathname}${url.search}`,
        method: 'GET',
        agent: false,
        lookup: pinned,
        headers: { host: url.host, accept: 'image/*', 'user-agent': 'twinlane' },
      });
      const connectTimer = setTimeout(
        () =>
          settle(new TwinlaneError('image_fetch_timeout', `${label} did not connect within ${connectTimeoutMs} ms.`)),
        connectTimeoutMs,
      );
      req.once('socket', (socket) => socket.once('connect', () => clearTimeout(connectTimer)));
      req.on('error', (error: NodeJS.ErrnoException) => fail(`could not be fetched: ${error.message}`));
      req.on('response', (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (REDIRECT_STATUSES.has(status)) {
          const location = res.headers.location;
          if (!location) return fail(`answered HTTP ${status} without a Location header`);
          let next: string;
          try {
            next = new URL(location, url).href;
          } catch {
            return fail(`redirected to an invalid Location ${JSON.stringify(shown(location))}`);
          }
          return settle(null, { redirect: next });
        }
        if (status < 200 || status > 299) return fail(`answered HTTP ${status}`);
        const contentType = (res.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
        if (!/^image\/[^/\s]+$/.test(contentType) && contentType !== 'application/octet-stream') {
          return fail(
            `answered with ${contentType ? `content type ${contentType}` : 'no content type'}; ` +
              'expected image/* or application/octet-stream',
          );
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > maxBytes) {
          return fail(`declares ${declared} bytes (Content-Length), over the ${maxBytes}-byte cap`);
        }
        const chunks: Buffer[] = [];
        let received = 0;
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > maxBytes) return fail(`sent more than the ${maxBytes}-byte cap`);
          chunks.push(chunk);
        });
        res.on('error', (error) => fail(`could not be fetched: ${error.message}`));
        res.on('end', () =>
          settle(null, { image: { bytes: Buffer.concat(chunks, received), contentType, finalUrl: url.href } }),
        );
        res.on('close', () => fail('closed the connection before the body was complete'));
      });
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      req.end();
    });
  }
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
