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
      window = { startedAt: now, rejectionsAtStart: lane.rejections, shed: 0, stormed: false, probeTokens: this.#options.probesPerSecond, probeAt: now };
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
    window.probeTokens = Math.min(probesPerSecond, window.probeTokens + ((now - window.probeAt) / 1000) * probesPerSecond);
    window.probeAt = now;
    if (window.probeTokens < 1) return false;
    window.probeTokens--;
    return true;
  }

  /** Throws 429 lane_overloaded (counted as `shed`) when the lane is stormed and this request is not a probe. */
  admit(name: LaneName): void {
    const lane = this.#lane(name);
    if (!lane || !lane.refusing) return;
    const now = performance.now();
    const window = this.#window(name, lane, now);
    if (!window.stormed || this.#probe(window, now)) return;
    window.shed++;
    this.#metrics.onRejected(name, 'shed');
    const retryAfterSeconds = lane.retryAfterSeconds();
    throw new TwinlaneError('lane_overloaded', `The ${name} lane is at capacity and refusing a flood of requests; retry after ${retryAfterSeconds} s.`, { retryAfterSeconds });
  }
}
