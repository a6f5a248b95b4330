// Running twinlane as an operator does: through `npm start`, on a port of its own, with request ids
// to follow in the logs, and a drain that a balancer can see.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { MODELS_DIR, postJson, startServer, TEXT_MODEL } from '../helpers/server.js';

const baseEnv = {
  PATH: process.env.PATH ?? '',
  HOME: process.env.HOME ?? '/tmp',
  TWINLANE_MODELS_DIR: MODELS_DIR,
  TWINLANE_TEXT_MODEL: TEXT_MODEL,
  TWINLANE_IMAGE_MODEL: 'none',
  TWINLANE_OFFLINE: 'true',
  TWINLANE_PORT: '0',
};

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts `npm start` and resolves once the server inside logged its port and pid. */
async function npmStart() {
  const npm = spawn('npm', ['start', '--silent'], { env: baseEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  npm.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  npm.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await expect.poll(() => output, { timeout: 30_000, interval: 50 }).toContain('"msg":"ready"');
  const listening = JSON.parse(output.split('\n').find((line) => line.includes('listening on'))!) as {
    pid: number;
    msg: string;
  };
  return { npm, output: () => output, serverPid: listening.pid, port: Number(/:(\d+)$/.exec(listening.msg)![1]) };
}

describe('npm start', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`delivers ${signal} sent to npm's own pid to the server, which drains and exits 0 with npm`, async () => {
      const { npm, output, serverPid, port } = await npmStart();
      expect(serverPid).not.toBe(npm.pid);
      const exited = once(npm, 'exit');
      npm.kill(signal);
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
      expect(output()).toContain(`"signal":"${signal}"`);
      expect(output()).toContain('"msg":"stopped"');
      // No orphan keeps the port: the server process is gone and nothing answers there.
      expect(alive(serverPid)).toBe(false);
      await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
    });
  }
});

describe('the twinlane bin', () => {
  it('runs through npx without building: `npx twinlane --help` lists the options and exits 0', async () => {
    const npx = spawn('npx', ['twinlane', '--help'], { env: baseEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    npx.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const [code] = (await once(npx, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(out).toContain('Usage: twinlane');
    expect(out).toContain('TWINLANE_REUSE_PORT');
  });
});

describe('the listen port', () => {
  it('is taken exclusively: a second instance on it fails start-up with "address in use" and the first keeps every connection', async () => {
    const first = await startServer({ TWINLANE_IMAGE_MODEL: 'none' });
    try {
      const second = startServer(
        { TWINLANE_IMAGE_MODEL: 'none', TWINLANE_PORT: String(first.port) },
        { waitReady: false },
      );
      await expect(second).rejects.toThrow(/exited with 1 before listening[\s\S]*address in use/);
      for (let i = 0; i < 5; i++)
        expect((await fetch(`${first.url}/health`, { headers: { connection: 'close' } })).status).toBe(200);
    } finally {
      await first.stop();
    }
  });

  it('is shared on purpose with TWINLANE_REUSE_PORT=true, by instances that both ask for it', async () => {
    // A fixed port: uSockets does not set SO_REUSEPORT on a port the kernel picks (TWINLANE_PORT=0).
    const port = String(await freePort());
    const first = await startServer({ TWINLANE_IMAGE_MODEL: 'none', TWINLANE_REUSE_PORT: 'true', TWINLANE_PORT: port });
    const second = await startServer({
      TWINLANE_IMAGE_MODEL: 'none',
      TWINLANE_REUSE_PORT: 'true',
      TWINLANE_PORT: port,
      TWINLANE_ACCESS_LOG: 'true',
    });
    try {
      expect(second.port).toBe(first.port);
      // The kernel spreads new connections over both listeners; the second logs the ones it got.
      for (let i = 0; i < 40; i++)
        expect((await fetch(`${first.url}/health`, { headers: { connection: 'close' } })).status).toBe(200);
      expect(second.output()).toContain('"route":"/health"');
    } finally {
      await Promise.all([first.stop(), second.stop()]);
    }
  });
});

describe('request ids', () => {
  it('are on every answer, made when the client sent none, echoed when it sent a usable one, and in the access log line', async () => {
    const server = await startServer({ TWINLANE_IMAGE_MODEL: 'none', TWINLANE_ACCESS_LOG: 'true' });
    try {
      const answers = await Promise.all([
        fetch(`${server.url}/health`),
        fetch(`${server.url}/metrics`),
        fetch(`${server.url}/nowhere`),
        fetch(`${server.url}/embed/text`),
        postJson(`${server.url}/embed/text`, { inputs: ['an id for me'] }),
        postJson(`${server.url}/embed/text`, { inputs: [] }),
      ]);
      const ids = answers.map((res) => res.headers.get('x-request-id'));
      expect(answers.map((res) => res.status)).toEqual([200, 200, 404, 405, 200, 422]);
      for (const id of ids) expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(new Set(ids).size).toBe(ids.length);

      const echoed = await postJson(
        `${server.url}/embed/text`,
        { inputs: ['traced'] },
        { 'x-request-id': 'trace-42/abc' },
      );
      expect(echoed.headers.get('x-request-id')).toBe('trace-42/abc');
      // An id with spaces or over 128 characters is not echoed (header and log hygiene): a fresh one is made.
      const unusable = await postJson(
        `${server.url}/embed/text`,
        { inputs: ['traced'] },
        { 'x-request-id': 'x'.repeat(200) },
      );
      expect(unusable.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

      await expect.poll(() => server.output(), { timeout: 5000 }).toContain('"requestId":"trace-42/abc"');
      const line = JSON.parse(
        server
          .output()
          .split('\n')
          .find((l) => l.includes('"requestId":"trace-42/abc"'))!,
      ) as Record<string, unknown>;
      expect(line).toMatchObject({ msg: 'request', method: 'POST', route: '/embed/text', status: 200 });
      for (const id of ids) expect(server.output()).toContain(`"requestId":"${id}"`);
    } finally {
      await server.stop();
    }
  });
});

describe('draining', () => {
  it('turns /ready 503 at once, serves everything during the drain delay with connections closing, then closes the port and exits 0', async () => {
    const server = await startServer({ TWINLANE_IMAGE_MODEL: 'none', TWINLANE_DRAIN_DELAY_MS: '1500' });
    expect((await fetch(`${server.url}/ready`)).status).toBe(200);
    const exited = server.stop('SIGTERM');
    await expect
      .poll(async () => (await fetch(`${server.url}/ready`)).status, { timeout: 1000, interval: 20 })
      .toBe(503);
    const ready = (await (await fetch(`${server.url}/ready`)).json()) as { status: string; ready: boolean };
    expect(ready).toMatchObject({ status: 'draining', ready: false });
    // Still served during the delay, on new connections too; each answer closes its connection.
    const during = await postJson(`${server.url}/embed/text`, { inputs: ['still served'] });
    expect(during.status).toBe(200);
    expect(during.headers.get('connection')).toBe('close');
    // After the delay the port is closed.
    await expect
      .poll(
        () =>
          new Promise<string>((resolve) => {
            const socket = net.connect(server.port, '127.0.0.1');
            socket.once('connect', () => {
              socket.destroy();
              resolve('connected');
            });
            socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
          }),
        { timeout: 5000, interval: 50 },
      )
      .toBe('ECONNREFUSED');
    expect(await exited).toBe(0);
  });
});
