// Who used the CPU during a measurement: the measured process, the load generator (this process),
// other programs, or the hypervisor (steal). On a small shared machine this decides whether a figure
// says something about twinlane or about its neighbours.
import { readFileSync } from 'node:fs';
import os from 'node:os';

// Linux reports /proc times in clock ticks; USER_HZ is 100 on every mainstream architecture.
const CLOCK_TICKS = 100;

export interface CpuMark {
  readonly at: number;
  readonly self: NodeJS.CpuUsage;
  readonly target: number;
  readonly busy: number;
  readonly steal: number;
  readonly total: number;
}

/** Cores' worth of CPU (CPU seconds per wall second) during a measurement. */
export interface CpuShare {
  /** The measured process: a server child, or this process itself when it is what is measured. */
  readonly target: number;
  /** This process, when it only generates load; 0 when it is the target. */
  readonly loadGen: number;
  /** Every other program on the machine. */
  readonly other: number;
  /** Time the hypervisor ran someone else on our virtual CPUs. */
  readonly steal: number;
}

/** CPU seconds of one thread of a process (on Linux the main thread's id is the process id). */
export function threadCpuSeconds(pid: number, tid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

function processCpuSeconds(pid: number): number {
  // utime and stime are fields 14 and 15, counted after the parenthesised command name.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

function machineTicks(): { busy: number; steal: number; total: number } {
  // user nice system idle iowait irq softirq steal (guest time is already inside user).
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = readFileSync(
    '/proc/stat',
    'utf8',
  )
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const busy = user + nice + system + irq + softirq;
  return { busy, steal, total: busy + steal + idle + iowait };
}

/** `targetPid` undefined: this process is what is measured (its worker threads included). */
export function cpuMark(targetPid?: number): CpuMark {
  const self = process.cpuUsage();
  const target = targetPid === undefined ? (self.user + self.system) / 1e6 : processCpuSeconds(targetPid);
  return { at: performance.now(), self, target, ...machineTicks() };
}

export function cpuSince(mark: CpuMark, targetPid?: number): CpuShare {
  const now = cpuMark(targetPid);
  const seconds = (now.at - mark.at) / 1000;
  const cores = os.cpus().length;
  const target = (now.target - mark.target) / seconds;
  const self = process.cpuUsage(mark.self);
  const loadGen = targetPid === undefined ? 0 : (self.user + self.system) / 1e6 / seconds;
  const total = now.total - mark.total;
  const busy = ((now.busy - mark.busy) / total) * cores;
  return {
    target,
    loadGen,
    other: Math.max(0, busy - target - loadGen),
    steal: ((now.steal - mark.steal) / total) * cores,
  };
}

/** More than this many cores' worth of other programs or steal makes a figure suspect. */
export const DISTURBED_CORES = 0.15;

export function disturbed(share: CpuShare): boolean {
  return share.other > DISTURBED_CORES || share.steal > DISTURBED_CORES;
}
