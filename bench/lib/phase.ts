// What every bench:e2e phase shares: the timing constants, progress lines, one closed-loop load
// phase against a child process with its CPU accounting (from the JavaScript generator, or from wrk),
// and the figures' formatting.
import type { Child } from './children.js';
import { cpuMark, cpuSince, disturbed, type CpuShare } from './cpu.js';
import { runLoad, type LoadOptions, type LoadResult } from './load.js';
import { loadInThread } from './load-thread.js';
import { runWrk, type WrkResult, type WrkRun } from './wrk.js';

export const WARMUP_MS = 3000;
// BENCH_MEASURE_S shortens the run while working on the bench itself; reported figures use the default.
export const MEASURE_MS = Number(process.env['BENCH_MEASURE_S'] ?? '12') * 1000;
/** Per batch size of a raw ceiling. */
export const CEILING_MS = Math.min(3000, MEASURE_MS / 4);

export const progress = (line: string) => process.stderr.write(`[bench] ${line}\n`);

export const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '—');
export const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '—');
export const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '—');
export const pct = (n: number) => `${(n * 100).toFixed(0)}%`;

export interface Phase {
  readonly label: string;
  readonly load: LoadResult;
  readonly cpu: CpuShare;
}

export type PhaseLoad = Pick<LoadOptions, 'path' | 'concurrency' | 'contentType' | 'sampleHeader'> & {
  /**
   * A body per request made in the bench process, or a fixed set of bodies cycled by a generator in a
   * thread of its own (bench/lib/load-thread.ts), whose heap holds nothing else: for the phases whose
   * latencies are fractions of a millisecond.
   */
  readonly body: LoadOptions['body'] | readonly string[];
};

export async function loadPhase(label: string, target: Child, load: PhaseLoad): Promise<Phase> {
  progress(`${label}: ${load.concurrency} clients, ${WARMUP_MS / 1000} s warm-up + ${MEASURE_MS / 1000} s`);
  const mark = cpuMark(target.pid);
  const result = await runPhaseLoad(load, { port: target.port, warmupMs: WARMUP_MS, durationMs: MEASURE_MS });
  const cpu = cpuSince(mark, target.pid);
  progress(
    `${label}: ${result.throughput.toFixed(0)}/s (server ${cpu.target.toFixed(2)} cores, load gen ${cpu.loadGen.toFixed(2)}, other ${cpu.other.toFixed(2)}, steal ${cpu.steal.toFixed(2)}), p50 ${result.latencyMs.p50.toFixed(2)} ms, p99 ${result.latencyMs.p99.toFixed(2)} ms, errors ${result.non2xx + result.socketErrors}`,
  );
  return { label, load: result, cpu };
}

/** Runs `load` over `window`: here when its bodies are made per request, else in a thread of its own. */
export function runPhaseLoad(
  load: PhaseLoad,
  window: Pick<LoadOptions, 'port' | 'warmupMs' | 'durationMs'>,
): Promise<LoadResult> {
  const { body, ...rest } = load;
  return typeof body === 'function'
    ? runLoad({ ...rest, ...window, body })
    : loadInThread({ ...rest, ...window, bodies: { kind: 'cycle', bodies: body } });
}

/**
 * The same phase with Debian's wrk as the load generator (a warm-up run, then the measured one): a few
 * µs of CPU per request where the JavaScript generator takes more than the server it measures, so
 * latency under closed-loop load is the server's rather than the generator's. wrk is a process of
 * its own: its CPU is the phase's load gen, not one of the other programs.
 */
export async function wrkPhase(label: string, target: Child, run: Omit<WrkRun, 'port' | 'seconds'>): Promise<Phase> {
  progress(`${label}: ${run.concurrency} connections (wrk), ${WARMUP_MS / 1000} s warm-up + ${MEASURE_MS / 1000} s`);
  await runWrk({ ...run, port: target.port, seconds: WARMUP_MS / 1000 });
  const mark = cpuMark(target.pid);
  const result = await runWrk({ ...run, port: target.port, seconds: MEASURE_MS / 1000 });
  const share = cpuSince(mark, target.pid);
  const load = wrkLoad(result);
  const loadGen = result.cpuSeconds / load.seconds;
  const cpu: CpuShare = { ...share, loadGen, other: Math.max(0, share.other + share.loadGen - loadGen) };
  progress(
    `${label}: ${load.throughput.toFixed(0)}/s (server ${cpu.target.toFixed(2)} cores, wrk ${loadGen.toFixed(2)}), p50 ${load.latencyMs.p50.toFixed(2)} ms, p99 ${load.latencyMs.p99.toFixed(2)} ms, errors ${load.non2xx + load.socketErrors}`,
  );
  return { label, load, cpu };
}

/** wrk's figures in the load generator's terms (wrk counts only the measured run, so both are the window). */
function wrkLoad(r: WrkResult): LoadResult {
  const seconds = r.durationUs / 1e6;
  const socketErrors = r.connectErrors + r.readErrors + r.writeErrors + r.timeouts;
  const ok = r.requests - r.status429 - r.statusOther;
  const statuses: Record<string, number> = { '200': ok };
  if (r.status429 > 0) statuses['429'] = r.status429;
  if (r.statusOther > 0) statuses['other'] = r.statusOther;
  return {
    requests: r.requests,
    seconds,
    throughput: r.requests / seconds,
    latencyMs: {
      p50: r.p50Us / 1000,
      p95: r.p95Us / 1000,
      p99: r.p99Us / 1000,
      max: r.maxUs / 1000,
      mean: r.meanUs / 1000,
    },
    statuses,
    non2xx: r.status429 + r.statusOther,
    socketErrors,
    errorSamples:
      socketErrors > 0
        ? [
            `wrk: ${r.connectErrors} connect, ${r.readErrors} read, ${r.writeErrors} write errors, ${r.timeouts} timeouts`,
          ]
        : [],
    headerValues: {},
    lastBodyBytes: 0,
    notSent: 0,
    sent: r.requests,
    retried: { sent: 0, ok: 0 },
  };
}

export function errorNote(phase: Phase): string | null {
  const { non2xx, socketErrors, statuses, errorSamples } = phase.load;
  if (non2xx + socketErrors === 0) return null;
  return `- **${phase.label} had errors**: ${non2xx} non-2xx answers, ${socketErrors} socket errors; statuses ${JSON.stringify(statuses)}${errorSamples.length ? `; e.g. ${errorSamples.join(' | ')}` : ''}`;
}

/** µs of the measured process's CPU per answer. */
export const usPerItem = (cpu: CpuShare, perSecond: number) => f0((cpu.target * 1e6) / perSecond);

/** The CPU columns of a results row: measured process, its CPU per item, load gen, other programs, steal. */
export const cpuCells = (cpu: CpuShare, perSecond: number, loadGen: boolean) =>
  `${f2(cpu.target)} | ${usPerItem(cpu, perSecond)} | ${loadGen ? f2(cpu.loadGen) : '—'} | ${f2(cpu.other)} | ${f2(cpu.steal)}${disturbed(cpu) ? ' ⚠' : ''}`;

/** A results row for a load phase, in the columns of the results tables. */
export const phaseRow = (p: Phase) =>
  `| ${p.label} | ${f0(p.load.throughput)} | ${f2(p.load.latencyMs.p50)} | ${f2(p.load.latencyMs.p95)} | ${f2(p.load.latencyMs.p99)} | ${p.load.requests} | ${p.load.non2xx + p.load.socketErrors} | ${cpuCells(p.cpu, p.load.throughput, true)} |`;

/** The header of a results table whose items are `unit` (texts, images). */
export const resultsHeader = (unit: string) => [
  `| phase | ${unit}/s | p50 ms | p95 ms | p99 ms | answers | errors | measured process (cores) | µs CPU per ${unit.replace(/s$/, '')} | load gen (cores) | other programs (cores) | steal (cores) |`,
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
];
