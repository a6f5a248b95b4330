import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listThreads } from '../../lanes/thread-priority.js';
import { noisyJpeg } from '../fixtures/images.js';
import { postJson, startServer, type TestServer } from '../helpers/server.js';

// Large distinct JPEGs make libvips start its worker threads (from libuv's pool, at nice 0); the
// image lane must bring them down to its own nice. Linux-only, as thread nice values are.
describe.runIf(process.platform === 'linux')('thread priorities', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({
      TWINLANE_IMAGE_NICE: '15',
      TWINLANE_IMAGE_THREADS: '2',
      TWINLANE_IMAGE_INTRA_OP_THREADS: '1',
    });
  });
  afterAll(async () => {
    await server.stop();
  });

  it("runs every libvips thread at the image lane's nice and leaves the main thread and text lane at 0", async () => {
    const images = await Promise.all(Array.from({ length: 12 }, (_, n) => noisyJpeg(n)));
    const answers = await Promise.all(
      [0, 4, 8].map((from) =>
        postJson(`${server.url}/embed/image`, {
          inputs: images.slice(from, from + 4).map((b) => ({ b64: b.toString('base64') })),
        }),
      ),
    );
    expect(answers.map((res) => res.status)).toEqual([200, 200, 200]);

    const threads = listThreads(server.process.pid!);
    const libvips = threads.filter((t) => t.name === 'libvips worker');
    expect(libvips.length).toBeGreaterThan(0);
    expect(libvips.filter((t) => t.nice !== 15)).toEqual([]);
    // Nothing outside the image lane was lowered: the main thread and at least the two text workers
    // stay at 0 (the image workers and what they started themselves are at 15).
    const niced = (list: typeof threads) => list.filter((t) => t.nice === 15 && t.name !== 'libvips worker');
    expect(niced(threads).length).toBeGreaterThanOrEqual(2);
    expect(threads.find((t) => t.tid === server.process.pid)?.nice).toBe(0);
    expect(threads.filter((t) => t.nice === 0).length).toBeGreaterThanOrEqual(3);

    // Text work after images leaves the text lane where it was.
    const text = await postJson(`${server.url}/embed/text`, { inputs: ['after the images'] });
    expect(text.status).toBe(200);
    expect(niced(listThreads(server.process.pid!)).map((t) => t.tid)).toEqual(niced(threads).map((t) => t.tid));
  });
});
