// Admission on the main thread, which both lanes share: it reads, parses and refuses every request,
// so a lane's flood of requests it cannot take (clients that retry a 429 at once) would otherwise
// spend the main thread on refusals and slow the other lane down. While a lane refuses new work (its
// queue is at its bound) and has refused more than `stormRefusalsPerSecond` requests in the last
// second (or as many in the second under way), it is stormed, and its requests do not take the
// whole path, except a trickle of `probesPerSecond` that let the gate see the lane recover:
// - one whose body is announced at most `readMaxBytes` is read and answered from L1 only
//   (src/ RequestPolicy.cachedOnly): its items all there, it is answered; else refused before Redis,
//   a fetch or the lane. Reading and hashing a few KB costs about what refusing it unread does, and
//   cached items stay answered through the storm;
// - any other is refused when its headers arrive, before its body is read or parsed
//   (uWebSockets.js drops the rest of the body).
// While a stormed lane has room, only as many requests as it has room for are let on to be read:
// the others' bodies would be read and parsed only to meet a full queue (≈ 0.5 ms of main thread
// each for a 100 KB image, against ≈ 30 µs to refuse one from its headers).
// While the lane is merely full, every request is read, so cached items are always answered.
import { LaneStormedError, type Metrics } from '../src/index.js';
import type { LaneHandle, LaneName } from '../lanes/index.js';
import type { HttpResponse } from './uws.js';
import { headerLines, NAMES, STATUS_LINE, type HeaderLines } from './wire.js';

export interface FrontGateOptions {
  readonly stormRefusalsPerSecond: number;
  readonly probesPerSecond: number;
  /** How long a shed request's 429 is held before it is written (0: at once); see ShedReplies. */
  readonly holdMs: number;
  /** The largest body a stormed lane's request may announce to be read and answered from L1 instead of refused unread (0: none). */
  readonly readMaxBytes: number;
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
  /** Requests let on while the lane was stormed whose bodies are still being read. */
  reading: number;
}

/** What the gate needs of an exchange it lets on: a call when its body has been read. */
export interface BodyReader {
  afterBody(callback: () => void): void;
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
        reading: 0,
      };
      this.#windows.set(name, window);
    } else if (now - window.startedAt >= WINDOW_MS) {
      const refused = lane.rejections - window.rejectionsAtStart + window.shed;
      window.stormed = (refused * WINDOW_MS) / (now - window.startedAt) > this.#options.stormRefusalsPerSecond;
      window.startedAt = now;
      window.rejectionsAtStart = lane.rejections;
      window.shed = 0;
    } else if (!window.stormed && lane.rejections - window.rejectionsAtStart > this.#options.stormRefusalsPerSecond) {
      // A storm is seen as soon as the window holds more refusals than a second may, not a second later.
      window.stormed = true;
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
   * Null when a request for the lane may go on; else the Retry-After (seconds) of its refusal: the
   * lane is stormed, it is full or the bodies being read fill its room, and this request is not a
   * probe. Counts nothing: the caller sheds it (`count`) or answers it from L1 only.
   */
  stormed(name: LaneName): number | null {
    const lane = this.#lane(name);
    // A calm lane (not refusing, not stormed) needs no clock or window: it refuses nothing to count.
    if (!lane || (!lane.refusing && !this.#windows.get(name)?.stormed)) return null;
    const now = performance.now();
    const window = this.#window(name, lane, now);
    if (!window.stormed) return null;
    if (!lane.refusing && window.reading < lane.room) return null;
    if (this.#probe(window, now)) return null;
    return lane.retryAfterSeconds();
  }

  /** Counts one request of a stormed lane refused without reaching it: unread (`shed`), or for an item not in L1 (`uncached`). */
  count(name: LaneName, reason: 'shed' | 'uncached' = 'shed'): void {
    const window = this.#windows.get(name);
    if (window) window.shed++;
    this.#metrics.onRejected(name, reason);
    this.#lane(name)?.noteShed(1);
  }

  /** `stormed`, counting the request as shed when it is. */
  shed(name: LaneName): number | null {
    const retryAfterSeconds = this.stormed(name);
    if (retryAfterSeconds !== null) this.count(name);
    return retryAfterSeconds;
  }

  /** Whether a stormed lane's request with a body of `bytes` (NaN when not announced) is read for L1. */
  readsWhenStormed(bytes: number): boolean {
    const { readMaxBytes } = this.#options;
    return readMaxBytes > 0 && bytes <= readMaxBytes;
  }

  /** Counts `request`'s body against the lane's room until it has been read, while the lane is stormed. */
  reading(name: LaneName, request: BodyReader): void {
    const window = this.#windows.get(name);
    if (!window?.stormed) return;
    window.reading++;
    request.afterBody(() => window.reading--);
  }

  /** Throws a LaneStormedError (429 lane_overloaded), counted as shed, when `stormed` says so (after the body was read). */
  admit(name: LaneName): void {
    const retryAfterSeconds = this.shed(name);
    if (retryAfterSeconds !== null) throw new LaneStormedError(name, retryAfterSeconds);
  }
}

/** What the 429 of a request shed from its headers says and counts. */
interface HeaderShed {
  readonly requestId: string;
  readonly route: string;
  readonly lane: LaneName;
  readonly retryAfterSeconds: number;
  readonly startedAt: number;
}

/** A shed 429's fixed part: every header but the request id, and the body. */
interface ShedAnswer {
  readonly lines: HeaderLines;
  readonly body: Buffer;
}

/** A shed request whose 429 waits for its hold to pass. */
interface Held {
  readonly startedAt: number;
  /** Writes the 429 (or, for a client gone meanwhile, only counts it). */
  readonly write: () => void;
}

/** Most 429s held at once: past it, a shed request is answered at once, so a flood over many sockets cannot grow the queue. */
const MAX_HELD = 8192;

/**
 * The 429 of a shed request, written from the request's headers: no Exchange, no body read, the error
 * body made once per lane and Retry-After. What a flood of retried requests costs is this. (A request
 * refused once its body was read, a LaneStormedError, is answered through `hold` with the same delay.)
 *
 * The 429 is held for `holdMs` first (a tarpit). A client that retries a 429 at once (as many do)
 * otherwise comes back within microseconds, so a few hundred of them made the main thread refuse
 * ≈ 10,000 requests a second (bench:isolation phase 3) and their load generator burn a fifth of the
 * machine; held, each connection can be refused at most 1000 / holdMs times a second. Clients that
 * honour Retry-After (≥ 1 s) lose nothing. One FIFO and one timer serve every held answer, since all
 * are held equally long.
 */
export class ShedReplies {
  readonly #metrics: Metrics;
  readonly #holdMs: number;
  readonly #answers = new Map<string, ShedAnswer>();
  readonly #held: Held[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(metrics: Metrics, holdMs: number) {
    this.#metrics = metrics;
    this.#holdMs = holdMs;
  }

  /** Answers a request shed from its headers now, or after the hold (onAborted is then attached, as uWS requires of a later answer). */
  send(res: HttpResponse, requestId: string, route: string, lane: LaneName, retryAfterSeconds: number): void {
    const startedAt = performance.now();
    let gone = false;
    const write = () => this.#write(res, { requestId, route, lane, retryAfterSeconds, startedAt }, gone);
    if (!this.#holding) {
      write();
      return;
    }
    res.onAborted(() => {
      gone = true;
    });
    this.#enqueue({ startedAt, write });
  }

  /** Runs `write` (the answer of a request shed after its body was read) now, or after the hold. */
  hold(write: () => void): void {
    if (this.#holding) this.#enqueue({ startedAt: performance.now(), write });
    else write();
  }

  get #holding(): boolean {
    return this.#holdMs > 0 && this.#held.length - this.#head < MAX_HELD;
  }

  #enqueue(held: Held): void {
    this.#held.push(held);
    this.#timer ??= setTimeout(() => this.#release(), this.#holdMs);
  }

  /** Writes every held answer whose hold has passed, then waits for the next one's. */
  #release(): void {
    this.#timer = null;
    const due = performance.now() - this.#holdMs;
    while (this.#head < this.#held.length && this.#held[this.#head]!.startedAt <= due)
      this.#held[this.#head++]!.write();
    if (this.#head === this.#held.length) {
      this.#held.length = 0;
      this.#head = 0;
      return;
    }
    if (this.#head > 1024) {
      this.#held.splice(0, this.#head);
      this.#head = 0;
    }
    const next = this.#held[this.#head]!.startedAt + this.#holdMs - performance.now();
    this.#timer = setTimeout(() => this.#release(), Math.max(1, Math.ceil(next)));
  }

  /**
   * The connection is kept: uWebSockets.js drops the rest of the body without handing it to
   * JavaScript. (Closing it instead spared the main thread that reading, but clients still uploading
   * then saw a reset instead of the 429: undici failed 10 of 56 such requests in a test.)
   */
  #write(res: HttpResponse, shed: HeaderShed, gone: boolean): void {
    const { lane, retryAfterSeconds, route } = shed;
    if (!gone) {
      const { lines, body } = this.#answer(lane, retryAfterSeconds);
      res.cork(() => {
        res
          .writeStatus(STATUS_LINE[429]!)
          .writeHeader(NAMES.requestId, shed.requestId)
          .writeHeader(lines.name, lines.rest)
          .end(body);
      });
    }
    this.#metrics.request(route, lane, gone ? 499 : 429, (performance.now() - shed.startedAt) / 1000);
    if (!gone) this.#metrics.error(route, 'lane_overloaded');
  }

  /** The 429's header lines and body for a lane and Retry-After, encoded once (a string is converted on every write). */
  #answer(lane: LaneName, retryAfterSeconds: number): ShedAnswer {
    const key = `${lane} ${retryAfterSeconds}`;
    let answer = this.#answers.get(key);
    if (answer === undefined) {
      const error = new LaneStormedError(lane, retryAfterSeconds);
      const body = JSON.stringify({
        error: { message: error.message, type: error.type, code: error.code, param: null },
      });
      const lines = headerLines({ 'content-type': 'application/json', 'retry-after': String(retryAfterSeconds) })!;
      answer = { lines, body: Buffer.from(body) };
      this.#answers.set(key, answer);
    }
    return answer;
  }

  /** Writes every held answer at once (the server is closing). */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    while (this.#head < this.#held.length) this.#held[this.#head++]!.write();
    this.#held.length = 0;
    this.#head = 0;
  }
}
