// Admission on the main thread, which both lanes share: it reads, parses and refuses every request,
// so a lane's flood of requests it cannot take (clients that retry a 429 at once) would otherwise
// spend the main thread on refusals and slow the other lane down. While a lane refuses new work (its
// queue is at its bound) and has refused more than `stormRefusalsPerSecond` requests in the last
// second, it is stormed: its requests are refused when their headers arrive, before their bodies are
// read or parsed (uWebSockets.js drops the rest of the body), except a trickle of `probesPerSecond`
// that take the whole path, so cached items are still answered and the gate sees the lane recover.
// While the lane is merely full, every request is read, so cached items are always answered.
import { TwinlaneError, type Metrics } from '../src/index.js';
import type { LaneHandle, LaneName } from '../lanes/index.js';
import type { HttpResponse } from './uws.js';

export interface FrontGateOptions {
  readonly stormRefusalsPerSecond: number;
  readonly probesPerSecond: number;
}

interface LaneWindow {
  startedAt: number;
  /** The lane's refusal count when the window started, and sheds made since. */
  rejectionsAtStart: number;
  shed: number;
  /** Whether the last full window counted a storm. */
  stormed: boolean;
  probeTokens: number;
  probeAt: number;
}

const WINDOW_MS = 1000;

export class FrontGate {
  readonly #lane: (name: LaneName) => LaneHandle | null;
  readonly #options: FrontGateOptions;
  readonly #metrics: Metrics;
  readonly #windows = new Map<LaneName, LaneWindow>();

  constructor(lane: (name: LaneName) => LaneHandle | null, options: FrontGateOptions, metrics: Metrics) {
    this.#lane = lane;
    this.#options = options;
    this.#metrics = metrics;
  }

  #window(name: LaneName, lane: LaneHandle, now: number): LaneWindow {
    let window = this.#windows.get(name);
    if (!window) {
      window = {
        startedAt: now,
        rejectionsAtStart: lane.rejections,
        shed: 0,
        stormed: false,
        probeTokens: this.#options.probesPerSecond,
        probeAt: now,
      };
      this.#windows.set(name, window);
    } else if (now - window.startedAt >= WINDOW_MS) {
      const refused = lane.rejections - window.rejectionsAtStart + window.shed;
      window.stormed = (refused * WINDOW_MS) / (now - window.startedAt) > this.#options.stormRefusalsPerSecond;
      window.startedAt = now;
      window.rejectionsAtStart = lane.rejections;
      window.shed = 0;
    }
    return window;
  }

  #probe(window: LaneWindow, now: number): boolean {
    const { probesPerSecond } = this.#options;
    window.probeTokens = Math.min(
      probesPerSecond,
      window.probeTokens + ((now - window.probeAt) / 1000) * probesPerSecond,
    );
    window.probeAt = now;
    if (window.probeTokens < 1) return false;
    window.probeTokens--;
    return true;
  }

  /**
   * Null when a request for the lane may go on; else the Retry-After (seconds) of the 429 it is shed
   * with: the lane is stormed and this request is not a probe. Counted as `shed`.
   */
  shed(name: LaneName): number | null {
    const lane = this.#lane(name);
    if (!lane || !lane.refusing) return null;
    const now = performance.now();
    const window = this.#window(name, lane, now);
    if (!window.stormed || this.#probe(window, now)) return null;
    window.shed++;
    this.#metrics.onRejected(name, 'shed');
    lane.noteShed(1);
    return lane.retryAfterSeconds();
  }

  /** Throws 429 lane_overloaded when the lane is stormed and this request is not a probe (after its body was read). */
  admit(name: LaneName): void {
    const retryAfterSeconds = this.shed(name);
    if (retryAfterSeconds !== null) throw shedError(name, retryAfterSeconds);
  }
}

function shedError(lane: LaneName, retryAfterSeconds: number): TwinlaneError {
  return new TwinlaneError(
    'lane_overloaded',
    `The ${lane} lane is at capacity and refusing a flood of requests; retry after ${retryAfterSeconds} s.`,
    { retryAfterSeconds },
  );
}

/**
 * The 429 of a shed request, written at once from the request's headers: no Exchange, no body read,
 * the error body made once per lane and Retry-After. What a flood of retried requests costs is this.
 */
export class ShedReplies {
  readonly #metrics: Metrics;
  readonly #bodies = new Map<string, string>();

  constructor(metrics: Metrics) {
    this.#metrics = metrics;
  }

  /**
   * The connection is kept: uWebSockets.js drops the rest of the body without handing it to
   * JavaScript. (Closing it instead spared the main thread that reading, but clients still uploading
   * then saw a reset instead of the 429: undici failed 10 of 56 such requests in a test.)
   */
  send(res: HttpResponse, requestId: string, route: string, lane: LaneName, retryAfterSeconds: number): void {
    const key = `${lane} ${retryAfterSeconds}`;
    let body = this.#bodies.get(key);
    if (body === undefined) {
      const error = shedError(lane, retryAfterSeconds);
      body = JSON.stringify({ error: { message: error.message, type: error.type, code: error.code, param: null } });
      this.#bodies.set(key, body);
    }
    const retryAfter = String(retryAfterSeconds);
    res.cork(() => {
      res
        .writeStatus('429 Too Many Requests')
        .writeHeader('x-request-id', requestId)
        .writeHeader('content-type', 'application/json')
        .writeHeader('retry-after', retryAfter)
        .end(body);
    });
    this.#metrics.request(route, lane, 429, 0);
    this.#metrics.error(route, 'lane_overloaded');
  }
}
