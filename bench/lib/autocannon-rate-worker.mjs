/**
 * Worker thread: autocannon at a fixed overall rate (a warm-up run, then the measured run), with
 * full-resolution latency samples, under the protocol of worker-run.mjs (`measure-start`, then one
 * `result` or `error`). The closed-loop twin is autocannon-worker.mjs.
 *
 * A fixed rate lets several servers be compared under the very same request rate: at saturation a
 * slower server serves fewer requests per event-loop turn, so everything it does per turn costs
 * more per request, and that would be charged to whatever made it slower.
 *
 * workerData: { url, method, headers, body, connections, rate (requests/s over all connections),
 *               warmupSeconds, durationSeconds, timeoutSeconds }
 * result: { responses, ok, non2xx, errors, timeouts, resets, durationSeconds, rps, latencyMs, statusCodes }
 */

import { parentPort, workerData } from 'node:worker_threads';
import autocannon from 'autocannon';
import { SampleBuffer, summarize } from './stats.mjs';

const { url, method = 'POST', headers = {}, body, connections, rate, warmupSeconds = 1, durationSeconds, timeoutSeconds = 10 } = workerData;

function run(duration, latencies) {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      { url, method, headers, body, connections, overallRate: rate, pipelining: 1, duration, timeout: timeoutSeconds },
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
  const r = await run(durationSeconds, latencies);
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
      durationSeconds: r.duration,
      rps: r['2xx'] / r.duration,
      latencyMs: summarize(latencies.values()),
      statusCodes: r.statusCodeStats ?? {},
    },
  });
} catch (err) {
  parentPort.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) });
}
