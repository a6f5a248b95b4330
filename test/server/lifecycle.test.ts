import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { postJson, startServer, waitUntilReady } from '../helpers/server.js';

describe('lifecycle', () => {
  it('finishes every in-flight request on SIGTERM, refuses new connections, then exits 0', async () => {
    const server = await startServer({ TWINLANE_L1_BYTES: '0' });
    // Long distinct texts keep the single text worker busy for a while.
    const inFlight = Array.from({ length: 24 }, (_, i) =>
      postJson(`${server.url}/embed/text`, {
        inputs: [`${i} ` + 'many words make a long paragraph for the model '.repeat(30)],
      }),
    );
    await new Promise((r) => setTimeout(r, 150));
    const exited = server.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 50));
    // A fresh TCP connection (fetch would reuse a pooled keep-alive one, which stays served).
    const late = await new Promise<string>((resolve) => {
      const socket = net.connect(server.port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    });
    const answers = await Promise.all(inFlight);
    expect(answers.map((r) => r.status)).toEqual(Array(24).fill(200));
    for (const res of answers) expect(((await res.json()) as number[][])[0]).toHaveLength(384);
    expect(late).toBe('ECONNREFUSED');
    expect(await exited).toBe(0);
    expect(server.output()).toContain('"msg":"draining"');
  });

  it('answers /health at once and /ready 503 until the model is warm', async () => {
    const server = await startServer({}, { waitReady: false });
    try {
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
      await waitUntilReady(server.url);
      const ready = (await (await fetch(`${server.url}/ready`)).json()) as {
        lanes: { text: { ready: boolean; queued: number } };
        cache: { l1: string; redis: string };
      };
      expect(ready.lanes.text.ready).toBe(true);
      expect(ready.lanes.text.queued).toBe(0);
      expect(ready.cache).toMatchObject({ l1: 'up', redis: 'disabled' });
    } finally {
      await server.stop();
    }
  });

  it('refuses to start with an invalid option and names it', async () => {
    await expect(startServer({ TWINLANE_PORT: 'eighty' })).rejects.toThrow(/TWINLANE_PORT must be a whole number/);
  });

  it('fails start-up clearly when the model is missing and downloads are off', async () => {
    await expect(startServer({ TWINLANE_TEXT_MODEL: 'acme/missing-model' })).rejects.toThrow(/acme\/missing-model/);
  });
});
