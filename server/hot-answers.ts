// Hot answers: the encoded body of an answer whose every item was a cache hit, kept by the exact
// request (route, answer format, body bytes) so that the same request again skips parsing, key
// hashing, the cache's promises and encoding (the profile of a cache hit showed those at half of its
// main-thread time). It is sent again only while every one of its items is still in L1, and it then
// counts, refreshes and rate-limits as the L1 hit it is; only its request id and total time are new. A
// request that differs by one byte simply takes the whole flow. Bounded in bytes, least recently
// used first; bodies over MAX_KEY_BYTES are never kept (they would cost more memory than they save).
import { LRUCache } from 'lru-cache';
import type { LaneName } from '../lanes/index.js';
import type { EmbedResult, Orchestrator } from '../src/index.js';
import { receiveBody } from './body.js';
import type { Exchange } from './exchange.js';
import { headerLines, type HeaderLines } from './wire.js';
import type { Guard } from './guard.js';

/** Largest request body that can key a hot answer. */
const MAX_KEY_BYTES = 4096;
/** lru-cache's per-entry bookkeeping and the entry object, estimated. */
const ENTRY_OVERHEAD_BYTES = 160;

export interface HotAnswer {
  readonly lane: LaneName;
  /** The items' cache keys, in order (also what a rate limit charges: one per item). */
  readonly cacheKeys: readonly string[];
  /** Its headers but the request id and x-total-time, made once (content type, shape, zero queue and inference times, hits). */
  readonly lines: HeaderLines;
  /** Encoded once when kept: a string body would be converted to UTF-8 on every send. */
  readonly body: Buffer;
}

const answerBytes = (answer: HotAnswer, key: string): number =>
  key.length * 2 + answer.body.length + answer.cacheKeys.reduce((n, k) => n + k.length * 2, 0) + ENTRY_OVERHEAD_BYTES;

export class HotAnswers {
  readonly #lru: LRUCache<string, HotAnswer>;

  constructor(maxBytes: number) {
    this.#lru = new LRUCache<string, HotAnswer>({ maxSize: maxBytes, sizeCalculation: answerBytes });
  }

  /** The key of a request, or null when its body is too large to be one. latin1 maps bytes 1:1, so distinct bodies stay distinct. */
  key(route: string, format: string, body: Buffer): string | null {
    if (body.length > MAX_KEY_BYTES) return null;
    return `${route}\n${format}\n${body.toString('latin1')}`;
  }

  get(key: string): HotAnswer | undefined {
    return this.#lru.get(key);
  }

  set(key: string, answer: HotAnswer): void {
    this.#lru.set(key, answer);
  }

  get entries(): number {
    return this.#lru.size;
  }
}

export interface HotRoute {
  readonly hot: HotAnswers | null;
  readonly orchestrator: Orchestrator;
  readonly guard: Guard;
}

/**
 * Reads a request's body and, when a hot answer is kept for it and all its items are still in L1,
 * answers it within the uWS callback that delivers the body's last bytes: no promise or await lies
 * between those bytes and the answer unless a rate limit must be charged (measured on a cache hit:
 * 0.85 µs of main-thread CPU less than reading, looking up and answering through promises). Any other
 * request goes on to `rest` with its body and hot key. The promise settles once the request is
 * answered, or with the error it is to be answered with.
 */
export function readOrAnswerHot(
  ex: Exchange,
  limit: number,
  format: string,
  route: HotRoute,
  rest: (raw: Buffer, hotKey: string | null) => Promise<void>,
): Promise<void> {
  return new Promise((resolve, reject) =>
    receiveBody(
      ex,
      limit,
      (raw) => {
        try {
          const hotKey = route.hot?.key(ex.route, format, raw) ?? null;
          const sent = answerHot(ex, hotKey, route);
          if (sent === true) resolve();
          else if (sent === false) rest(raw, hotKey).then(resolve, reject);
          else sent.then((hot) => (hot ? undefined : rest(raw, hotKey))).then(resolve, reject);
        } catch (error) {
          reject(error as Error);
        }
      },
      reject,
    ),
  );
}

/**
 * Sends the hot answer kept under `key` if there is one and all its items are still in L1; false when
 * the request must take the whole flow. The client's budget is charged first, as for any request, so
 * a refused request counts no cache lookup; only that charge (a rate limit's store) makes it wait.
 */
function answerHot(ex: Exchange, key: string | null, route: HotRoute): boolean | Promise<boolean> {
  const answer = key === null ? undefined : route.hot?.get(key);
  if (!answer) return false;
  ex.lane = answer.lane;
  if (!route.guard.rateLimited) return sendHot(ex, answer, route);
  return route.guard.spend(ex, answer.cacheKeys.length).then(() => sendHot(ex, answer, route));
}

function sendHot(ex: Exchange, answer: HotAnswer, route: HotRoute): boolean {
  if (!route.orchestrator.touchCached(answer.lane, answer.cacheKeys)) return false;
  ex.sendLines(200, answer.lines, answer.body);
  return true;
}

/** An answer as its route sent it. */
export interface SentAnswer {
  readonly contentType: string;
  /** Headers of the answer's shape (`x-embedding-dims`, …), without the timing ones. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | Buffer;
}

/** Keeps the answer just sent when every item of it was a cache hit. */
export function keepHot(route: HotRoute, key: string | null, result: EmbedResult, answer: SentAnswer): void {
  if (key === null || route.hot === null || result.hotKeys === null) return;
  const lines = headerLines({
    'content-type': answer.contentType,
    ...answer.headers,
    'x-queue-time': '0.00',
    'x-inference-time': '0.00',
    'x-cache-hits': String(result.hotKeys.length),
  });
  if (lines === null) return;
  const body = typeof answer.body === 'string' ? Buffer.from(answer.body) : answer.body;
  route.hot.set(key, { lane: result.lane, cacheKeys: result.hotKeys, lines, body });
}
