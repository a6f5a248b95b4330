// CPU priority of a lane's threads. On Linux a nice value belongs to a thread, and a new thread takes
// the nice of the thread that starts it. A lane worker's own thread and what it starts itself (ONNX
// Runtime's intra-op pool, made at session creation) follow the worker's nice. libvips does not: sharp
// runs its pipelines on libuv's process-wide pool, whose threads the main thread started at nice 0,
// and libvips starts its "libvips worker" threads from there, also at nice 0 — measured on 200
// distinct JPEGs, about a fifth of the image lane's CPU ran in them. Nothing in sharp or libvips sets
// their priority, so the image worker finds them by name in /proc after each batch and lowers them
// (hand-written: no library renices threads by name). libuv's own pool threads cannot be told apart
// from V8's (all are named "node") and stay at nice 0; the README's thread-budget section says so.
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

/** Lowers the calling thread's priority; on Linux only this worker and the threads it starts later. */
export function lowerThreadPriority(nice: number, lane: string): void {
  if (nice === 0) return;
  try {
    os.setPriority(nice);
  } catch (error) {
    process.emitWarning(`${lane} lane: could not set nice ${nice}: ${(error as Error).message}`);
  }
}

export interface ThreadInfo {
  readonly tid: number;
  /** The thread's name (`comm`), as libvips or Node set it. */
  readonly name: string;
  readonly nice: number;
}

function readThread(tasks: string, tid: string): ThreadInfo | undefined {
  try {
    // "tid (name) state …": the name may hold spaces ("libvips worker") or parentheses, so it runs to
    // the last ")"; the fields after it start at state (field 3), and nice is field 19.
    const stat = readFileSync(`${tasks}/${tid}/stat`, 'latin1');
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    return { tid: Number(tid), name: stat.slice(stat.indexOf('(') + 1, close), nice: Number(fields[19 - 3]) };
  } catch {
    return undefined; // the thread ended while it was being read
  }
}

/** The threads of a process (this one by default) from /proc; empty where there is no /proc. */
export function listThreads(pid: number | 'self' = 'self'): ThreadInfo[] {
  const tasks = `/proc/${pid}/task`;
  let tids: string[];
  try {
    tids = readdirSync(tasks);
  } catch {
    return [];
  }
  return tids.map((tid) => readThread(tasks, tid)).filter((thread) => thread !== undefined);
}

/**
 * Finds this process's threads named `name` that run above `nice` and lowers them to it. Reads one
 * small file per thread (about 0.1–0.2 ms for the server's ≈ 25 threads), so a lane may call it after
 * every batch: libvips starts threads when a pipeline needs more. Where there is no /proc (off
 * Linux) there is nothing to list, so it does nothing.
 */
export function lowerThreadsNamed(name: string, nice: number): void {
  if (nice === 0) return;
  for (const thread of listThreads()) {
    if (thread.name !== name || thread.nice >= nice) continue;
    try {
      os.setPriority(thread.tid, nice);
    } catch {
      // The thread ended between the read and the call: nothing left to lower.
    }
  }
}
