/**
 * Worker thread: closed-loop HTTP load with autocannon (warm-up run, then the measured run).
 *
 * autocannon's own latency histogram has 1 ms resolution, too coarse for sub-millisecond overheads,
 * so every response time of the measured run (hrtime-based, in ms) is kept and summarized here.
 *
 * workerData: { url, method, headers, body, connections, warmupSeconds, durationSeconds, timeoutSeconds }
 * result: { responses, ok, non2xx, errors, timeouts, durationSeconds, rps, latencyMs, statusCodes }
 */

import { parentPort, workerData } from 'node:worker_threads';
import autocannon from 'autocannon';
import { SampleBuffer, summarize } from './stats.mjs';

const { url, method = 'POST', headers = {}, body, connections, warmupSeconds = 1, durationSeconds, timeoutSeconds = 10 } = workerData;

function run(duration, latencies) {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      { url, method, headers, body, connections, pipelining: 1, duration, timeout: timeoutSeconds },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
    if (latencies) {
      instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
        if (statusCode >= 200 && statusCode < 300) latencies.push(responseTimeMs);
      });
    }
  });
}

try {
  if (warmupSeconds > 0) await run(warmupSeconds, null);
  const latencies = new SampleBuffer();
  parentPort.postMessage({ type: 'measure-start' });
  const started = performance.now();
  const r = await run(durationSeconds, latencies);
  const elapsed = (performance.now() - started) / 1000;
  // autocannon's `duration` is its own run time; our wall clock also includes connection set-up.
  const seconds = r.duration > 0 ? r.duration : elapsed;
  const responses = r['1xx'] + r['2xx'] + r['3xx'] + r['4xx'] + r['5xx'];
  parentPort.postMessage({
    type: 'result',
    result: {
      responses,
      ok: r['2xx'],
      non2xx: r.non2xx,
      errors: r.errors,
      timeouts: r.timeouts,
      resets: r.resets ?? 0,
      durationSeconds: seconds,
      rps: r['2xx'] / seconds,
      latencyMs: summarize(latencies.values()),
      statusCodes: r.statusCodeStats ?? {},
    },
  });
} catch (err) {
  parentPort.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) });
}
