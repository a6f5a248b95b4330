// What every results file says about where it was measured: the CPU, cores, memory, Node and ONNX
// Runtime versions, and how busy the machine was before the run (1 s of other programs' CPU).
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './children.js';
import { cpuMark, cpuSince, disturbed, type CpuShare } from './cpu.js';
import { f2 } from './phase.js';

export function cpuModel(): string {
  return /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
}

/** One second of other programs' CPU and steal, warned about on stderr when the machine is busy. */
export async function quietSample(warn: (line: string) => void): Promise<CpuShare> {
  const mark = cpuMark();
  await new Promise((r) => setTimeout(r, 1000));
  const quiet = cpuSince(mark);
  if (disturbed(quiet))
    warn(
      `warning: other programs use ${quiet.other.toFixed(2)} cores and steal is ${quiet.steal.toFixed(2)} cores; figures will be noisy`,
    );
  return quiet;
}

/** The machine lines of a results file's header. */
export function machineLines(quiet: CpuShare): string[] {
  const ortVersion = (
    JSON.parse(readFileSync(path.join(ROOT, 'node_modules/onnxruntime-node/package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
  return [
    `- Machine: ${cpuModel()}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; Node ${process.version}, onnxruntime-node ${ortVersion}`,
    `- Before the run, other programs used ${f2(quiet.other)} cores and steal was ${f2(quiet.steal)} cores (1 s sample)`,
  ];
}
