// TWINLANE_EXECUTION_PROVIDER=cuda on a machine that cannot run it: one clear start-up error naming
// what is missing, before any lane starts. There is no GPU here, so the "CUDA library missing" case
// is made real with stand-in provider libraries (built with the machine's C compiler) whose CUDA
// provider needs a libcublasLt.so.12 that does not exist, as on a machine without CUDA 12.
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { describeProbeFailure, missingLibraries } from '../../lanes/index.js';
import { ortBinaryDir } from '../../lanes/provider-check.js';
import { startServer } from '../helpers/server.js';

const run = promisify(execFile);
const ORT_LOG =
  '\x1b[1;31m2026-12-01 22:40:56.07 [E:onnxruntime:onnxruntime-node, provider_bridge_ort.cc:2146 Create] /onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:1988 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library libonnxruntime_providers_cuda.so with error: libcudnn.so.9: cannot open shared object file: No such file or directory\x1b[m\nOrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library\n';

describe('execution provider check', () => {
  it("names the libraries the dynamic loader could not open, from ONNX Runtime's own log", () => {
    expect(missingLibraries(ORT_LOG)).toEqual(['libcudnn.so.9']);
    expect(
      missingLibraries(
        '/x/libcublasLt.so.12: cannot open shared object file\nlibcublasLt.so.12: cannot open shared object file',
      ),
    ).toEqual(['libcublasLt.so.12']);
    expect(describeProbeFailure({ name: 'cuda', deviceId: 0 }, ORT_LOG)).toMatch(
      /could not load libcudnn\.so\.9\. onnxruntime-node 1\.30 needs CUDA 12\.x and cuDNN 9/,
    );
    // Anything else (no GPU, a driver too old) is quoted without colour codes.
    const other = describeProbeFailure(
      { name: 'cuda', deviceId: 1 },
      '\x1b[1;31mCUDA failure 100: no CUDA-capable device is detected\x1b[m\n',
    );
    expect(other).toBe(
      'TWINLANE_EXECUTION_PROVIDER=cuda:1: ONNX Runtime could not start its CUDA provider: CUDA failure 100: no CUDA-capable device is detected',
    );
  });

  it('fails start-up naming `npm run install:cuda` when the CUDA provider libraries are not installed', async () => {
    const started = startServer(
      { TWINLANE_EXECUTION_PROVIDER: 'cuda', TWINLANE_IMAGE_MODEL: 'none' },
      { waitReady: false },
    );
    await expect(started).rejects.toThrow(
      /exited with 1 before listening[\s\S]*libonnxruntime_providers_cuda\.so[\s\S]*npm run install:cuda/,
    );
  });

  it('fails start-up naming the missing CUDA library when the provider is installed but CUDA is not', async () => {
    const dir = ortBinaryDir();
    const build = await mkdtemp(path.join(os.tmpdir(), 'twinlane-cuda-stub-'));
    const installed = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'].map((lib) =>
      path.join(dir, lib),
    );
    try {
      await writeFile(path.join(build, 'shared.c'), 'void Provider_SetHost(void* host) { (void)host; }\n');
      await writeFile(path.join(build, 'cuda.c'), 'int twinlane_stub(void) { return 0; }\n');
      // The CUDA provider stand-in records a dependency on libcublasLt.so.12, which is then removed.
      await run('gcc', ['-shared', '-fPIC', '-o', 'libcublasLt.so.12', '-Wl,-soname,libcublasLt.so.12', 'cuda.c'], {
        cwd: build,
      });
      await run(
        'gcc',
        [
          '-shared',
          '-fPIC',
          '-o',
          'libonnxruntime_providers_cuda.so',
          'cuda.c',
          '-Wl,--no-as-needed',
          './libcublasLt.so.12',
        ],
        { cwd: build },
      );
      await run('gcc', ['-shared', '-fPIC', '-o', 'libonnxruntime_providers_shared.so', 'shared.c'], { cwd: build });
      await rm(path.join(build, 'libcublasLt.so.12'));
      for (const target of installed) await copyFile(path.join(build, path.basename(target)), target);
      const started = startServer(
        { TWINLANE_EXECUTION_PROVIDER: 'cuda:0', TWINLANE_IMAGE_MODEL: 'none' },
        { waitReady: false },
      );
      await expect(started).rejects.toThrow(
        /exited with 1 before listening[\s\S]*CUDA provider could not load libcublasLt\.so\.12/,
      );
    } finally {
      await Promise.all(installed.map((file) => rm(file, { force: true })));
      await rm(build, { recursive: true, force: true });
    }
  });
});
