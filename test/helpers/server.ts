// Starts the real, built server (`dist/src/main.js`) as a child process on a free port, the way an
// operator runs it, and stops it again. Tests talk to it over real sockets.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { once } from 'node:events';

export const MODELS_DIR = path.resolve(process.env.TWINLANE_MODELS_DIR ?? '../shared/models');
export const TEXT_MODEL = process.env.TWINLANE_TEXT_MODEL ?? 'twinlane/minilm-l6-standin';
export const IMAGE_MODEL = process.env.TWINLANE_IMAGE_MODEL ?? 'twinlane/clip-vision-standin';
const MAIN = path.resolve('dist/src/main.js');

export interface TestServer {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcessWithoutNullStreams;
  /** Everything the server has written so far (stdout and stderr). */
  output(): string;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startServer(env: Record<string, string> = {}, { waitReady = true } = {}): Promise<TestServer> {
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      TWINLANE_MODELS_DIR: MODELS_DIR,
      TWINLANE_TEXT_MODEL: TEXT_MODEL,
      TWINLANE_IMAGE_MODEL: IMAGE_MODEL,
      TWINLANE_OFFLINE: 'true',
      TWINLANE_HOST: '127.0.0.1',
      TWINLANE_PORT: '0',
      ...env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not listen within 30 s:\n${output}`)), 30_000);
    const onData = () => {
      const match = /listening on http:\/\/[^:]+:(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        resolve(Number(match[1]));
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${output}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  if (waitReady) await waitUntilReady(url);
  return {
    url,
    port,
    process: child,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

export async function waitUntilReady(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await fetch(`${url}/ready`).catch(() => null);
    if (res?.status === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`server at ${url} was not ready within ${timeoutMs} ms`);
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** The first group of `pattern` in the server's /metrics text (a sample's value), or 0 when the sample is absent. */
export async function metric(url: string, pattern: RegExp, headers: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers })).text();
  return Number(pattern.exec(text)?.[1] ?? 0);
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

export function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
