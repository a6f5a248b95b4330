// Fault injection for tests (TWINLANE_TEST_WORKER_FAULTS): a lane worker dies the way real ones do
// — an uncaught exception, the thread exiting, or its heap over TWINLANE_WORKER_MAX_HEAP_MB — when a
// batch holds an input containing a marker, so tests can show what a worker death costs (only its
// batch) and how the lane recovers. Empty in production: the workers call this only when it is not.

export type WorkerFault = 'throw' | 'exit' | 'oom';

export interface FaultSpec {
  readonly fault: WorkerFault;
  readonly marker: string;
}

const FAULTS: readonly WorkerFault[] = ['throw', 'exit', 'oom'];

/** `throw:<marker>,exit:<marker>,oom:<marker>` (any subset); throws naming the bad part. */
export function parseFaults(value: string): FaultSpec[] {
  if (value.trim() === '') return [];
  return value.split(',').map((part) => {
    const at = part.indexOf(':');
    const fault = part.slice(0, at).trim() as WorkerFault;
    const marker = part.slice(at + 1);
    if (at < 0 || !FAULTS.includes(fault) || marker.length < 4)
      throw new Error(`'${part}' is not <throw|exit|oom>:<marker of at least 4 characters>`);
    return { fault, marker };
  });
}

function dieOf(fault: WorkerFault, marker: string): Promise<never> {
  if (fault === 'exit') process.exit(70);
  return new Promise<never>(() => {
    if (fault === 'throw')
      setImmediate(() => {
        throw new Error(`injected worker fault: throw (${marker})`);
      });
    else {
      // Grows the heap until V8 ends the thread at its resourceLimits (ERR_WORKER_OUT_OF_MEMORY).
      const hog: number[][] = [];
      for (;;) hog.push(new Array<number>(1 << 20).fill(hog.length + 0.5));
    }
  });
}

/** Never returns when an input holds a fault's marker: the worker dies of that fault. */
export async function injectFaults(
  faults: readonly FaultSpec[],
  inputs: readonly (string | Uint8Array)[],
): Promise<void> {
  const holds = (input: string | Uint8Array, marker: string) =>
    typeof input === 'string'
      ? input.includes(marker)
      : Buffer.from(input.buffer, input.byteOffset, input.byteLength).includes(marker);
  for (const { fault, marker } of faults) if (inputs.some((input) => holds(input, marker))) await dieOf(fault, marker);
}
