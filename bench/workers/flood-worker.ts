// Runs one image flood of bench:isolation in its own thread, so that making and sending thousands of
// large bodies a second does not delay the text clients' event loop in the bench process (their
// latencies must be the server's, not the generator's).
import { parentPort, workerData } from 'node:worker_threads';
import { imageBodies, type BodyKind } from '../fixtures/flood-bodies.js';
import { runLoad, type LoadOptions } from '../lib/load.js';

export interface FloodTask extends Omit<LoadOptions, 'body'> {
  readonly kind: BodyKind;
}

const task = workerData as FloodTask;
const body = await imageBodies(task.kind);
parentPort!.postMessage(await runLoad({ ...task, body }));
