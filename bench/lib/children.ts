// Child processes for benchmarks: the server (or the bare echo) runs as its own program, so the
// load generator in the bench process and the measured server are scheduled like separate programs.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Child {
  readonly process: ChildProcess;
  readonly port: number;
  readonly pid: number;
}

const children = new Set<ChildProcess>();

/** Kills every child still running; for a bench that failed half-way. */
export function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
}
// Last resort if the bench dies between spawn and its finally block: never leave a server behind.
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

/** The server's environment in the benches that run it with the stand-ins: both lanes, offline, no access log. */
export function standInServerEnv(modelsDir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    TWINLANE_PORT: '0',
    TWINLANE_HOST: '127.0.0.1',
    TWINLANE_MODELS_DIR: modelsDir,
    TWINLANE_TEXT_MODEL: 'twinlane/minilm-l6-standin',
    TWINLANE_IMAGE_MODEL: 'twinlane/clip-vision-standin',
    TWINLANE_OFFLINE: 'true',
    TWINLANE_ACCESS_LOG: 'false',
    ...extra,
  };
}

/**
 * Starts `node script`; `wrapper` runs it under a command that execs it, such as
 * `['taskset', '-c', '0']` (the child's pid is then node's own, so CPU accounting still sees it).
 */
export function startChild(script: string, env: NodeJS.ProcessEnv, wrapper: readonly string[] = []): Promise<Child> {
  const [command, ...args] = [...wrapper, process.execPath, path.join(ROOT, script)];
  const child = spawn(command!, args, {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const tail: string[] = [];
  const keep = (line: string) => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
  };
  // Both pipes are read for the child's whole life: a full pipe would stall its logging, and it.
  createInterface({ input: child.stderr! }).on('line', keep);
  const stdout = createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${script} did not log "listening on" within 60 s:\n${tail.join('\n')}`)),
      60_000,
    );
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code ?? signal}) before listening:\n${tail.join('\n')}`));
    });
    stdout.on('line', (line) => {
      keep(line);
      const match = /listening on http:\/\/[^\s"]+:(\d+)/.exec(line);
      if (match && child.pid !== undefined) {
        clearTimeout(timer);
        resolve({ process: child, port: Number(match[1]), pid: child.pid });
      }
    });
  });
}

export async function stopChild(child: Child | undefined): Promise<void> {
  if (!child || child.process.exitCode !== null || child.process.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.process.once('exit', () => resolve()));
  child.process.kill('SIGTERM');
  const timer = setTimeout(() => child.process.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export async function waitReady(port: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/ready`);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not accepting yet
    }
    if (Date.now() > deadline) throw new Error('server did not become ready within 120 s');
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function post(port: number, pathname: string, body: string): Promise<Response> {
  const res = await fetch(`http://127.0.0.1:${port}${pathname}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  await res.arrayBuffer();
  return res;
}
