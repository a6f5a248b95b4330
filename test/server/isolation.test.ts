import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noisyJpeg } from '../fixtures/images.js';
import { postJson, startServer, type TestServer } from '../helpers/server.js';

/** How to send one slow, distinct item to each lane's native route, and one cheap item. */
interface LaneLoad {
  readonly lane: 'text' | 'image';
  readonly other: 'text' | 'image';
  readonly slowItem: (n: number) => Promise<unknown>;
  readonly cheapItem: (n: number) => Promise<unknown>;
}

// Large noisy JPEGs take tens of milliseconds each to decode; 250-token texts as long to embed.
const noisy = (n: number) => noisyJpeg(n).then((b) => ({ b64: b.toString('base64') }));
const small = (n: number) =>
  sharp({ create: { width: 64, height: 48, channels: 3, background: { r: n % 256, g: (n * 7) % 256, b: 90 } } })
    .png()
    .toBuffer()
    .then((b) => ({ b64: b.toString('base64') }));
const longText = async (n: number) =>
  `${n} ` + 'a long paragraph that keeps the text worker busy for a while '.repeat(20);
const shortText = async (n: number) => `short text number ${n}`;

const LOADS: readonly LaneLoad[] = [
  { lane: 'image', other: 'text', slowItem: noisy, cheapItem: small },
  { lane: 'text', other: 'image', slowItem: longText, cheapItem: shortText },
];

const path = (lane: 'text' | 'image') => `/embed/${lane}`;

describe.each(LOADS)('with the $lane lane saturated', (load) => {
  let server: TestServer;
  const cheapOf = (lane: 'text' | 'image', n: number) =>
    lane === load.lane ? load.cheapItem(n) : lane === 'text' ? shortText(n) : small(n);

  beforeAll(async () => {
    const cap = load.lane === 'text' ? 'TEXT' : 'IMAGE';
    // A lane that is merely full: eight clients refused at once exceed any storm threshold within
    // milliseconds, so it is set out of reach here (a stormed lane is tested in overload.test.ts).
    server = await startServer({
      [`TWINLANE_${cap}_MAX_QUEUE`]: '2',
      [`TWINLANE_${cap}_MAX_BATCH_ITEMS`]: '1',
      TWINLANE_SHED_AFTER_REFUSALS_PER_S: '1000000',
    });
  });
  afterAll(async () => {
    await server.stop();
  });

  it(`refuses new ${load.lane} work at once while the ${load.other} lane and cached ${load.lane} items are served`, async () => {
    const cached = await cheapOf(load.lane, 1);
    expect((await postJson(`${server.url}${path(load.lane)}`, { inputs: [cached] })).status).toBe(200);
    const slow = await Promise.all(Array.from({ length: 24 }, (_, i) => load.slowItem(i)));

    // Closed-loop clients keep the lane's queue full for the whole test.
    let flooding = true;
    const floodStatuses: number[] = [];
    const retryAfter: string[] = [];
    const rejectedMessages = new Set<string>();
    let next = 0;
    const flood = Array.from({ length: 8 }, async () => {
      while (flooding) {
        const res = await postJson(`${server.url}${path(load.lane)}`, { inputs: [slow[next++ % slow.length]] });
        floodStatuses.push(res.status);
        if (res.status === 429) {
          retryAfter.push(res.headers.get('retry-after') ?? '');
          rejectedMessages.add(((await res.json()) as { error: { code: string; message: string } }).error.code);
        } else await res.arrayBuffer();
      }
    });

    const probes = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        await new Promise((r) => setTimeout(r, 100 + i * 40));
        const [other, hit] = await Promise.all([
          postJson(`${server.url}${path(load.other)}`, { inputs: [await cheapOf(load.other, 1000 + i)] }),
          postJson(`${server.url}${path(load.lane)}`, { inputs: [cached] }),
        ]);
        return { other: other.status, hit: hit.status, hitCache: hit.headers.get('x-cache-hits') };
      }),
    );
    // A request mixing a hit with a miss is all-or-nothing: a full answer, or a 429 with no vectors.
    const mixed = await postJson(`${server.url}${path(load.lane)}`, { inputs: [cached, slow[0]] });
    const mixedBody = (await mixed.json()) as unknown;
    flooding = false;
    await Promise.all(flood);

    expect(probes.map((p) => p.other)).toEqual(Array(12).fill(200));
    expect(probes.map((p) => p.hit)).toEqual(Array(12).fill(200));
    expect(probes.map((p) => p.hitCache)).toEqual(Array(12).fill('1'));
    expect(floodStatuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect(new Set(floodStatuses)).toEqual(new Set([200, 429]));
    expect(rejectedMessages).toEqual(new Set(['lane_overloaded']));
    for (const value of retryAfter) expect(Number(value)).toBeGreaterThanOrEqual(1);
    if (mixed.status === 200) expect(mixedBody).toHaveLength(2);
    else {
      expect(mixed.status).toBe(429);
      expect(mixedBody).toMatchObject({ error: { code: 'lane_overloaded' } });
    }

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(
      new RegExp(`twinlane_lane_rejections_total\\{lane="${load.lane}",reason="queue_full"\\} [1-9]`),
    );
    expect(metrics).not.toMatch(new RegExp(`twinlane_lane_rejections_total\\{lane="${load.other}"`));
  });
});
