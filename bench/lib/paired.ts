// A server ÷ ceiling ratio measured in the same minutes: short windows of the raw ceiling (the sweep's
// winning layout and batch) and of the server under the phase's load, alternated in ABBA order so a
// steady drift weighs on both alike. This machine runs in fast and slow spells of minutes: a ceiling
// measured again a few minutes after its sweep read 1,509 against 1,658 texts/s (q8) and 122 against
// 151 images/s, enough on its own to decide a ≥ 0.85 verdict either way. The long phases stay the
// source of every latency figure; these windows give only the throughput ratio.
import type { Child } from './children.js';
import { f0, f2, progress, runPhaseLoad, type PhaseLoad } from './phase.js';

export const PAIRED_ROUNDS = 4;
/** Each server window: a short unrecorded warm-up (the closed loop refills), then the timed part. */
export const PAIRED_WARMUP_MS = 1000;
export const PAIRED_WINDOW_MS = 3000;

export interface PairedRound {
  /** Which of the two ran first in this round. */
  readonly first: 'ceiling' | 'server';
  readonly ceiling: number;
  readonly server: number;
  /** Non-2xx answers and socket errors in the server window (a paired ratio is void with any). */
  readonly errors: number;
}

export interface Paired {
  readonly rounds: readonly PairedRound[];
  /** Mean server rate ÷ mean ceiling rate over the rounds (every window is as long as the others). */
  readonly ratio: number;
  readonly errors: number;
}

/** One timed server window under `load`: items/s and errors. */
export function serverWindow(target: Child, load: PhaseLoad): () => Promise<{ rate: number; errors: number }> {
  return async () => {
    const result = await runPhaseLoad(load, {
      port: target.port,
      warmupMs: PAIRED_WARMUP_MS,
      durationMs: PAIRED_WINDOW_MS,
    });
    return { rate: result.throughput, errors: result.non2xx + result.socketErrors };
  };
}

export async function pairedRatio(
  label: string,
  ceiling: () => Promise<number>,
  server: () => Promise<{ rate: number; errors: number }>,
  rounds = PAIRED_ROUNDS,
): Promise<Paired> {
  const done: PairedRound[] = [];
  for (let i = 0; i < rounds; i++) {
    // ABBA: ceiling first in rounds 0 and 3, server first in rounds 1 and 2.
    const first = i % 4 === 0 || i % 4 === 3 ? 'ceiling' : 'server';
    let c: number;
    let s: { rate: number; errors: number };
    if (first === 'ceiling') {
      c = await ceiling();
      s = await server();
    } else {
      s = await server();
      c = await ceiling();
    }
    progress(`${label} round ${i + 1}/${rounds}: ceiling ${f0(c)}/s, server ${f0(s.rate)}/s, ${f2(s.rate / c)}`);
    done.push({ first, ceiling: c, server: s.rate, errors: s.errors });
  }
  const mean = (pick: (r: PairedRound) => number) => done.reduce((sum, r) => sum + pick(r), 0) / done.length;
  return {
    rounds: done,
    ratio: mean((r) => r.server) / mean((r) => r.ceiling),
    errors: done.reduce((n, r) => n + r.errors, 0),
  };
}

/**
 * The report's section on a paired ratio: how it was measured (`phase` the server phase, `ceiling`
 * what one ceiling window ran), then one row per round in `unit` (texts, images).
 */
export function pairedSection(paired: Paired, phase: string, ceiling: string, unit: string): string[] {
  return [
    `After ${phase}, on the same server: ${paired.rounds.length} rounds of one window of the raw ceiling (${ceiling}, its own workers, ≥ ${PAIRED_WINDOW_MS / 1000} s after its warm-up runs) and one of the server under ${phase}'s load (${PAIRED_WARMUP_MS / 1000} s warm-up, ${PAIRED_WINDOW_MS / 1000} s timed), in ABBA order; the ratio is the mean server rate ÷ the mean ceiling rate. ${paired.errors} errors in the server windows.`,
    '',

    `| round | first | ceiling ${unit}/s | server ${unit}/s | server ÷ ceiling |`,
    '|---:|---|---:|---:|---:|',
    ...paired.rounds.map(
      (r, i) => `| ${i + 1} | ${r.first} | ${f0(r.ceiling)} | ${f0(r.server)} | ${f2(r.server / r.ceiling)} |`,
    ),
  ];
}
