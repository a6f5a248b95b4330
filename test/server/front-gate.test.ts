// FrontGate's decisions on their own, with a stand-in lane whose queue and refusals the test sets: a
// storm is seen within the second it starts, a stormed lane with room lets on only as many requests as
// fit that room while their bodies are read, probes pass, and a calm lane passes everything.
// (test/server/overload.test.ts drives shedding through real sockets.)
import { describe, expect, it } from 'vitest';
import { FrontGate, type BodyReader } from '../../server/front-gate.js';
import type { LaneHandle, LaneStats } from '../../lanes/index.js';
import { Metrics } from '../../src/index.js';

/** A lane whose queue bound, queue depth and refusal count the test moves by hand. */
class FakeLane implements LaneHandle {
  readonly name = 'image' as const;
  readonly ready = true;
  queued = 0;
  rejections = 0;
  constructor(readonly maxQueue: number) {}
  get refusing(): boolean {
    return this.queued >= this.maxQueue;
  }
  get room(): number {
    return Math.max(0, this.maxQueue - this.queued);
  }
  retryAfterSeconds(): number {
    return 2;
  }
  noteShed(): void {}
  stats(): LaneStats {
    throw new Error('not used by the gate');
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A request let on: its body is "read" when the test calls `read()`. */
class Reader implements BodyReader {
  #done: (() => void) | null = null;
  afterBody(callback: () => void): void {
    this.#done = callback;
  }
  read(): void {
    this.#done?.();
    this.#done = null;
  }
}

const metrics = () =>
  new Metrics({
    lanes: () => [],
    cache: () => ({ l1Entries: 0, l1Bytes: 0, inFlight: 0, pendingWrites: 0 }),
  });

function gate(lane: FakeLane, probesPerSecond = 0) {
  return new FrontGate(
    (name) => (name === 'image' ? lane : null),
    { stormRefusalsPerSecond: 5, probesPerSecond, holdMs: 0, readMaxBytes: 4096 },
    metrics(),
  );
}

/** Lets a request on through the gate as the dispatcher does, or returns the Retry-After it is shed with. */
function arrive(g: FrontGate, reader = new Reader()): { shed: number | null; reader: Reader } {
  const shed = g.shed('image');
  if (shed === null) g.reading('image', reader);
  return { shed, reader };
}

describe('FrontGate', () => {
  it('passes every request of a full lane until its refusals pass the threshold, then sheds within the same second', () => {
    const lane = new FakeLane(4);
    const g = gate(lane);
    lane.queued = 4;
    expect(arrive(g).shed).toBeNull();
    lane.rejections = 5;
    expect(arrive(g).shed).toBeNull();
    lane.rejections = 6;
    expect(arrive(g).shed).toBe(2);
    expect(arrive(g).shed).toBe(2);
  });

  it('lets on only as many requests as a stormed lane has room for while their bodies are read', () => {
    const lane = new FakeLane(4);
    const g = gate(lane);
    lane.queued = 4;
    g.shed('image');
    lane.rejections = 6;
    expect(g.shed('image')).toBe(2);
    // Two places free up: two requests are let on; the third would only meet a full queue.
    lane.queued = 2;
    const first = arrive(g);
    const second = arrive(g);
    expect([first.shed, second.shed]).toEqual([null, null]);
    expect(arrive(g).shed).toBe(2);
    // One body read and refused by a full lane elsewhere: its place is free again.
    first.reader.read();
    expect(arrive(g).shed).toBeNull();
    expect(arrive(g).shed).toBe(2);
    // A body reported twice frees its place once.
    first.reader.read();
    expect(arrive(g).shed).toBe(2);
  });

  it('lets probes through a stormed full lane', () => {
    const lane = new FakeLane(1);
    const g = gate(lane, 2);
    lane.queued = 1;
    g.shed('image');
    lane.rejections = 10;
    const answers = Array.from({ length: 5 }, () => arrive(g).shed);
    expect(answers.filter((a) => a === null)).toHaveLength(2);
    expect(answers.filter((a) => a === 2)).toHaveLength(3);
  });

  it('decides without counting (stormed), counts only when told (count), and both at once (shed)', async () => {
    const lane = new FakeLane(1);
    const m = metrics();
    const g = new FrontGate(
      () => lane,
      { stormRefusalsPerSecond: 5, probesPerSecond: 0, holdMs: 0, readMaxBytes: 4096 },
      m,
    );
    const shedMetric = async () =>
      Number(
        /twinlane_lane_rejections_total\{lane="image",reason="shed"\} (\S+)/.exec(await m.registry.metrics())?.[1] ?? 0,
      );
    lane.queued = 1;
    g.stormed('image');
    lane.rejections = 6;
    expect(g.stormed('image')).toBe(2);
    expect(g.stormed('image')).toBe(2);
    expect(await shedMetric()).toBe(0);
    g.count('image');
    expect(g.shed('image')).toBe(2);
    expect(await shedMetric()).toBe(2);
  });

  it('reads a stormed request for L1 only when its body is announced and small, and none with readMaxBytes 0', () => {
    const g = gate(new FakeLane(1));
    expect(g.readsWhenStormed(4096)).toBe(true);
    expect(g.readsWhenStormed(0)).toBe(true);
    expect(g.readsWhenStormed(4097)).toBe(false);
    expect(g.readsWhenStormed(Number.NaN)).toBe(false);
    expect(g.readsWhenStormed(Number('12abc'))).toBe(false);
    const none = new FrontGate(
      () => null,
      { stormRefusalsPerSecond: 5, probesPerSecond: 0, holdMs: 0, readMaxBytes: 0 },
      metrics(),
    );
    expect(none.readsWhenStormed(0)).toBe(false);
    expect(none.readsWhenStormed(1)).toBe(false);
  });

  it('passes everything, without counting bodies, while the lane is calm', () => {
    const lane = new FakeLane(2);
    const g = gate(lane);
    for (let i = 0; i < 10; i++) expect(arrive(g).shed).toBeNull();
    lane.queued = 2;
    expect(arrive(g).shed).toBeNull();
  });
});
