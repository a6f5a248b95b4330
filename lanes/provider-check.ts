// Checks at start-up that the configured ONNX Runtime execution provider can load, so that a missing
// CUDA library is one clear message before any worker starts, instead of a lane that never warms
// up. onnxruntime-node's CPU binaries are bundled; its CUDA provider libraries are not (they come
// from NuGet, see `npm run install:cuda`), and they need CUDA 12 and cuDNN 9 from the system.
// ONNX Runtime names the library it could not load only in its native log on stderr, so the probe
// runs in a child process whose stderr is read here.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { workerPath } from './lane.js';
import type { Provider } from './session.js';

export class ProviderUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProviderUnavailableError';
  }
}

/** The provider libraries `npm run install:cuda` puts beside onnxruntime-node's own binary. */
const CUDA_PROVIDER_LIBRARIES = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'];

/** onnxruntime-node's folder of native binaries for this platform (where its CUDA libraries must be). */
export function ortBinaryDir(): string {
  const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
  return path.resolve(path.dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

/** The libraries ONNX Runtime's log says the dynamic loader could not open, in order, without repeats. */
export function missingLibraries(log: string): string[] {
  const found = [...log.matchAll(/([\w.+-]+\.so(?:\.[\d.]+)?): cannot open shared object file/g)].map((m) =>
    path.basename(m[1]!),
  );
  return [...new Set(found)];
}

/** The message for a probe that failed, from what ONNX Runtime wrote. */
export function describeProbeFailure(provider: Provider, log: string): string {
  const missing = missingLibraries(log);
  const name = `TWINLANE_EXECUTION_PROVIDER=cuda:${provider.deviceId}`;
  if (missing.length > 0) {
    return (
      `${name}: ONNX Runtime's CUDA provider could not load ${missing.join(', ')}. ` +
      'onnxruntime-node 1.30 needs CUDA 12.x and cuDNN 9 installed, with their lib folders on LD_LIBRARY_PATH (see the README, "GPU").'
    );
  }
  const lines = log
    .split('\n')
    .map((l) => stripVTControlCharacters(l).trim())
    .filter((l) => l !== '');
  return `${name}: ONNX Runtime could not start its CUDA provider: ${lines.slice(-3).join(' | ') || 'no message'}`;
}

function probe(onnxPath: string, provider: Provider): Promise<{ ok: boolean; log: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [workerPath('provider-probe'), onnxPath, String(provider.deviceId)],
      { timeout: 120_000 },
      (error, stdout, stderr) => {
        resolve({ ok: error === null, log: `${stderr}\n${stdout}` });
      },
    );
  });
}

/** Resolves when `provider` can run `onnxPath`; throws a ProviderUnavailableError naming what is missing otherwise. */
export async function checkProvider(provider: Provider, onnxPath: string): Promise<void> {
  if (provider.name === 'cpu') return;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new ProviderUnavailableError(
      `TWINLANE_EXECUTION_PROVIDER=cuda: onnxruntime-node ships CUDA support for linux/x64 only (this is ${process.platform}/${process.arch}).`,
    );
  }
  const dir = ortBinaryDir();
  const absent = CUDA_PROVIDER_LIBRARIES.filter((lib) => !existsSync(path.join(dir, lib)));
  if (absent.length > 0) {
    throw new ProviderUnavailableError(
      `TWINLANE_EXECUTION_PROVIDER=cuda: ONNX Runtime's CUDA provider is not installed (${absent.join(', ')} missing in ${dir}). ` +
        'Run `npm run install:cuda` once (it downloads them from NuGet), or use TWINLANE_EXECUTION_PROVIDER=cpu.',
    );
  }
  const result = await probe(onnxPath, provider);
  if (!result.ok) throw new ProviderUnavailableError(describeProbeFailure(provider, result.log));
}
