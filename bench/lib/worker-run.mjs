/**
 * Runs a load generator in a worker thread, so it has an event loop to itself (the bench's main
 * thread only reads /proc between phases).
 *
 * Protocol of the worker scripts in this folder: they read `workerData`, post
 * `{ type: 'measure-start' }` when the measured window begins (after warm-up), then exactly one
 * `{ type: 'result', result }` or `{ type: 'error', message }`.
 */

import { Worker } from 'node:worker_threads';

/**
 * @param {URL} script worker module
 * @param {object} data its workerData
 * @param {{ onMeasureStart?: () => void }} hooks
 */
export function runWorker(script, data, { onMeasureStart } = {}) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(script, { workerData: data });
    let settled = false;
    const finish = (fn, value) => {
      if (settled) return;
      settled = true;
      worker.terminate().finally(() => fn(value));
    };
    worker.on('message', (msg) => {
      if (msg?.type === 'measure-start') onMeasureStart?.();
      else if (msg?.type === 'result') finish(resolve, msg.result);
      else if (msg?.type === 'error') finish(reject, new Error(msg.message));
    });
    worker.once('error', (err) => finish(reject, err));
    worker.once('exit', (code) => finish(reject, new Error(`load worker exited (code ${code}) without a result`)));
  });
}
