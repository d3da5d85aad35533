/**
 * A fleet of simulated vLLM replicas (bench/vllm-sim, one process each) for routing benches, and
 * reading what their /metrics say: prefix-cache hits and queries, requests finished, the queue.
 */

import { fileURLToPath } from 'node:url';
import { spawnReady } from './processes.mjs';
import { REPO_ROOT } from './sluice.mjs';

const SIM_MAIN = fileURLToPath(new URL('../../dist/bench/vllm-sim/main.js', import.meta.url));

/** Simulator flags by option name (see bench/vllm-sim/README.md). */
const FLAGS = [
  ['kvBlocks', '--kv-blocks'],
  ['prefillUsPerToken', '--prefill-us-per-token'],
  ['decodeMs', '--decode-ms'],
  ['decodeMsPerSeq', '--decode-ms-per-seq'],
  ['maxRunning', '--max-running'],
  ['maxBatchedTokens', '--max-batched-tokens'],
];

/**
 * Starts `count` replicas in parallel, each on a port it picks.
 * @returns {Promise<Array<{ name: string, proc, origin: string, url: string }>>} `url` is the base URL
 *   as configured in the gateway (origin + `/v1`).
 */
export async function startVllmFleet(count, options = {}) {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const args = [SIM_MAIN, '--port', '0'];
      for (const [key, flag] of FLAGS) if (options[key] !== undefined) args.push(flag, String(options[key]));
      const { proc, match } = await spawnReady(`vllm-sim ${i}`, process.execPath, args, {
        cwd: REPO_ROOT,
        ready: /vllm-sim listening on (http:\/\/[^\s]+)/,
      });
      return { name: `replica-${i}`, proc, origin: match[1], url: `${match[1]}/v1` };
    }),
  );
}

/** Sum of a metric's samples in a Prometheus text (every label set), or 0. */
function metric(text, name) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

/** One replica's counters from its /metrics. */
export async function readSimMetrics(replica) {
  const text = await fetch(`${replica.origin}/metrics`).then((r) => r.text());
  return {
    hitTokens: metric(text, 'vllm:prefix_cache_hits_total'),
    queryTokens: metric(text, 'vllm:prefix_cache_queries_total'),
    requests: metric(text, 'vllm:request_success_total'),
    preemptions: metric(text, 'vllm:num_preemptions_total'),
    running: metric(text, 'vllm:num_requests_running'),
    waiting: metric(text, 'vllm:num_requests_waiting'),
  };
}

/** Every replica's counters, in fleet order. */
export function readFleetMetrics(fleet) {
  return Promise.all(fleet.map(readSimMetrics));
}

/**
 * Samples each replica's queue (running + waiting) every `intervalMs` until the returned function is
 * called, which resolves to the mean per replica.
 */
export function sampleFleetLoad(fleet, intervalMs) {
  const sums = fleet.map(() => 0);
  let samples = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      const rows = await readFleetMetrics(fleet).catch(() => null);
      if (rows) {
        samples++;
        rows.forEach((r, i) => (sums[i] += r.running + r.waiting));
      }
      await new Promise((r) => setTimeout(r, Math.max(0, intervalMs - (Date.now() - started))));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    return sums.map((s) => (samples ? s / samples : NaN));
  };
}
