// Runs one load of the benches in a thread of its own (bench/lib/load-thread.ts starts it), so that its
// latencies are the server's, not the bench process's:
// - bench:isolation's image floods: making and sending thousands of large bodies a second would delay
//   the text clients' event loop in the bench process;
// - bench:e2e's sub-millisecond phases (cache hits, the bare echo): this thread's heap holds only the
//   generator. In the bench process, after the raw ceiling and the unique-text phase, V8 ran a
//   mark-compact after nearly every scavenge of the generator (65 in 9 s of (c), 1–5.6 ms each), and
//   those pauses were (c)'s and (d)'s p99 (5.3 and 4.7 ms, against 1.8 and 1.1 ms from wrk).
import { parentPort, workerData } from 'node:worker_threads';
import { imageBodies } from '../fixtures/flood-bodies.js';
import { runLoad } from '../lib/load.js';
import type { LoadTask } from '../lib/load-thread.js';

const { bodies, ...options } = workerData as LoadTask;

async function bodySource(): Promise<() => string> {
  if (bodies.kind !== 'cycle') return imageBodies(bodies.kind);
  const set = bodies.bodies;
  let turn = 0;
  return () => set[turn++ % set.length]!;
}

parentPort!.postMessage(await runLoad({ ...options, body: await bodySource() }));
