// Driving a benchmark worker thread from the bench process: start it and wait for its "ready",
// then send one task at a time and await its one report.
import { Worker } from 'node:worker_threads';

export function startWorker(file: URL, workerData: unknown): Promise<Worker> {
  const worker = new Worker(file, { workerData });
  return new Promise((resolve, reject) => {
    worker.once('message', () => resolve(worker));
    worker.once('error', reject);
  });
}

export function runTask<Task, Report>(worker: Worker, task: Task): Promise<Report> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    worker.once('error', onError);
    worker.once('message', (report: Report) => {
      worker.off('error', onError);
      resolve(report);
    });
    worker.postMessage(task);
  });
}
