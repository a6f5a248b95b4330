// V8 settings the server makes for itself, before it serves. V8 flags cannot be passed on every
// command line that starts twinlane (`node dist/src/main.js`, `npx twinlane`, the Docker image), and
// NODE_OPTIONS refuses most of them; the ones here take effect when set at run time.
//
// Allocation-site pretenuring off: V8 allocates objects straight into the old generation from the
// code sites whose objects it has seen survive. A request that misses the cache lives for tens of
// milliseconds (its batch), long enough for the sites it shares with a cache hit (the exchange, its
// headers, promises, closures) to be marked long-lived; from then on every hit's garbage went to the
// old generation. Measured with wrk (64 connections, 64 repeated texts) after 7,000 unique texts:
// 57,500 hits/s, p99 6.2–6.4 ms, a full mark-compact every 0.8 s and 2.5–4.9 ms scavenges, against
// 70,200–73,600/s, p99 1.9–2.0 ms with pretenuring off (and 69,600–74,000/s, p99 1.9–2.1 ms on a
// fresh server, which had not learnt it yet). Unique texts were not slower (6,928–7,051 in the same
// 12 s, against 6,872).
import { setFlagsFromString } from 'node:v8';

/** A node command-line flag that turns pretenuring back on: an operator's explicit choice wins. */
const PRETENURING_ON = '--allocation-site-pretenuring';

/** Applies the server's V8 settings unless `execArgv` (node's own flags) asks otherwise; returns the flags set. */
export function tuneV8(
  execArgv: readonly string[] = process.execArgv,
  setFlags: (flag: string) => void = setFlagsFromString,
): string[] {
  if (execArgv.includes(PRETENURING_ON)) return [];
  const flags = ['--no-allocation-site-pretenuring'];
  for (const flag of flags) setFlags(flag);
  return flags;
}
