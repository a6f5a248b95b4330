// A lane worker dying mid-batch fails only its batch: its requests get 503 lane_failed with
// Retry-After, every other request is answered with its own correct vectors, nothing of the failed
// batch is cached, /ready reports the lane degraded until piscina's replacement has loaded its
// models, and deaths and restarts are counted. Workers die the three ways real ones do (an uncaught
// exception, the thread exiting, its heap limit), through TWINLANE_TEST_WORKER_FAULTS markers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withJpegComment } from '../../bench/fixtures/jpegs.js';
import { sceneJpeg } from '../fixtures/images.js';
import { waitFor } from '../helpers/redis.js';
import { startServer, type TestServer } from '../helpers/server.js';

const THROW = 'FAULT-THROW';
const EXIT = 'FAULT-EXIT';
const OOM = 'FAULT-OOM';

let server: TestServer;

interface Answer {
  status: number;
  /** Native routes answer `[[f32, …], …]`; errors `{"error": {…}}`. */
  vectors: number[][] | null;
  code: string | null;
  retryAfter: string | null;
}

async function embed(route: '/embed/text' | '/embed/image', body: unknown): Promise<Answer> {
  const raw = Buffer.isBuffer(body);
  const res = await fetch(`${server.url}${route}`, {
    method: 'POST',
    headers: { 'content-type': raw ? 'image/jpeg' : 'application/json' },
    body: raw ? body : JSON.stringify(body),
  });
  const json = (await res.json()) as number[][] | { error: { code: string } };
  return {
    status: res.status,
    vectors: Array.isArray(json) ? json : null,
    code: Array.isArray(json) ? null : json.error.code,
    retryAfter: res.headers.get('retry-after'),
  };
}

const texts = (inputs: string[], normalize = true) => embed('/embed/text', { inputs, normalize });

interface LaneView {
  degraded: boolean;
  workers: { live: number; configured: number; restarts: number; backoffMs: number };
}

async function ready(): Promise<{ status: number; lanes: Record<string, LaneView> }> {
  const res = await fetch(`${server.url}/ready`);
  return { status: res.status, lanes: ((await res.json()) as { lanes: Record<string, LaneView> }).lanes };
}

async function counter(name: string, lane: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{lane="${lane}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

const healed = (lane: string) =>
  waitFor(
    async () => {
      const view = (await ready()).lanes[lane]!;
      return !view.degraded && view.workers.live === view.workers.configured;
    },
    60_000,
    `the ${lane} lane to have all its workers again`,
  );

const unit = (v: readonly number[]) => {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
};
const close = (a: readonly number[], b: readonly number[]) => a.every((x, i) => Math.abs(x - b[i]!) < 1e-5);

beforeAll(async () => {
  server = await startServer({
    TWINLANE_TEXT_THREADS: '2',
    TWINLANE_IMAGE_THREADS: '1',
    TWINLANE_WORKER_MAX_HEAP_MB: '512',
    TWINLANE_TEST_WORKER_FAULTS: `throw:${THROW},exit:${EXIT},oom:${OOM}`,
  });
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

describe('a lane worker dying', () => {
  it('fails only the requests of its batch, under concurrent good traffic on both lanes, and the lane heals', async () => {
    const image = await sceneJpeg('circle');
    const imageReference = (await embed('/embed/image', image)).vectors![0]!;
    // Every vector a good request got during the fault, to check afterwards against a fresh computation.
    const answered = new Map<string, number[]>();
    const outcomes: { status: number; code: string | null }[] = [];
    let running = true;
    const textTraffic = async (client: number) => {
      for (let round = 0; running; round++) {
        const batch = Array.from({ length: 4 }, (_, i) => `client ${client} round ${round} item ${i} of good traffic`);
        const answer = await texts(batch);
        outcomes.push({ status: answer.status, code: answer.code });
        answer.vectors?.forEach((v, i) => answered.set(batch[i]!, v));
      }
    };
    const imageTraffic = async () => {
      for (let round = 0; running; round++) {
        // New bytes (a comment segment), the same pixels: a cache miss with a known vector.
        const answer = await embed('/embed/image', withJpegComment(image, `good ${round}`));
        outcomes.push({ status: answer.status, code: answer.code });
        if (answer.vectors) expect(close(answer.vectors[0]!, imageReference)).toBe(true);
      }
    };
    const traffic = Promise.all([textTraffic(0), textTraffic(1), imageTraffic()]);
    await new Promise((r) => setTimeout(r, 300));

    const deathsBefore = await counter('twinlane_lane_worker_deaths_total', 'text');
    const crash = await texts(['a normal first item', `${THROW} kills its worker`, 'a normal last item']);
    expect([crash.status, crash.code]).toEqual([503, 'lane_failed']);
    expect(Number(crash.retryAfter)).toBeGreaterThanOrEqual(1);
    const degraded = (await ready()).lanes['text']!;
    expect(degraded.degraded).toBe(true);
    expect(degraded.workers.live).toBe(1);
    await healed('text');
    await new Promise((r) => setTimeout(r, 300));
    running = false;
    await traffic;

    // Good requests either got vectors or — only when their items shared the dead batch — the same
    // 503 lane_failed; nothing else, and most of them succeeded.
    expect(outcomes.filter((o) => o.status !== 200 && o.code !== 'lane_failed')).toEqual([]);
    expect(outcomes.filter((o) => o.status === 200).length).toBeGreaterThan(outcomes.length / 2);
    expect(await counter('twinlane_lane_worker_deaths_total', 'text')).toBe(deathsBefore + 1);
    expect(await counter('twinlane_lane_worker_restarts_total', 'text')).toBeGreaterThanOrEqual(1);

    // Each text got its own vector: computed again now (normalize:false is another cache key), it is the same.
    const all = [...answered.keys()];
    expect(all.length).toBeGreaterThan(16);
    for (let i = 0; i < all.length; i += 32) {
      const chunk = all.slice(i, i + 32);
      const fresh = await texts(chunk, false);
      fresh.vectors!.forEach((v, k) =>
        expect([chunk[k], close(unit(v), answered.get(chunk[k]!)!)]).toEqual([chunk[k], true]),
      );
    }
  });

  it('fails every request that joined the dead batch (single flight) and caches none of it', async () => {
    const poisoned = `${THROW} joined by two requests`;
    const [a, b] = await Promise.all([texts([poisoned]), texts([poisoned])]);
    expect([a.status, a.code, b.status, b.code]).toEqual([503, 'lane_failed', 503, 'lane_failed']);
    await healed('text');
    // Not cached: the same text is computed again, and kills a worker again.
    const again = await texts([poisoned]);
    expect(again.code).toBe('lane_failed');
    await healed('text');
  });

  it('survives a worker whose thread exits and one that runs out of its heap limit', async () => {
    for (const marker of [EXIT, OOM]) {
      const answer = await texts([`${marker} this one`]);
      expect([marker, answer.status, answer.code]).toEqual([marker, 503, 'lane_failed']);
      await healed('text');
      const fine = await texts([`a fine text after ${marker.toLowerCase()}`]);
      expect([marker, fine.status, fine.code]).toEqual([marker, 200, null]);
    }
  });

  it('backs off after consecutive deaths, and a good batch clears it', async () => {
    for (let i = 0; i < 2; i++) {
      expect((await texts([`${THROW} in a row ${i}`])).status).toBe(503);
    }
    // Two deaths without a good batch between: the next batch waits.
    expect((await ready()).lanes['text']!.workers.backoffMs).toBeGreaterThan(0);
    await healed('text');
    expect((await texts(['a good batch after the back-off'])).status).toBe(200);
    expect((await ready()).lanes['text']!.workers.backoffMs).toBe(0);
  });

  it('an image worker dying: the image lane (one worker) is not ready until replaced, text serves throughout', async () => {
    const poisoned = withJpegComment(await sceneJpeg('square'), THROW);
    const [dead, text] = await Promise.all([embed('/embed/image', poisoned), texts(['text during an image death'])]);
    expect([dead.status, dead.code]).toEqual([503, 'lane_failed']);
    expect(text.status).toBe(200);
    const view = await ready();
    if (view.lanes['image']!.workers.live === 0) expect(view.status).toBe(503);
    await healed('image');
    expect((await ready()).status).toBe(200);
    expect((await embed('/embed/image', await sceneJpeg('stripes'))).status).toBe(200);
    expect(await counter('twinlane_lane_worker_deaths_total', 'image')).toBe(1);
    expect(server.process.exitCode).toBeNull();
  });
});
