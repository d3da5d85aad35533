/**
 * Added CPU per request of a config change, measured in ONE gateway process that is switched between
 * the variants' configs (PUT /admin/config, the zero-downtime reload) round after round.
 *
 * Why one process: two identical gateway processes started side by side differ persistently by up
 * to ~25 µs per request on the 2-core box (JIT decisions, memory placement, which core they share
 * with a load generator), which is five times the 5 µs targets these benches check. Switching one
 * process's config removes that term; what remains is drift over time, which the rounds handle:
 * the variants are measured back to back in each round, the starting variant rotates from round to
 * round (each holds each position equally often when `rounds` is a multiple of the variant count),
 * and the added cost is the median over rounds of the per-round difference from the baseline.
 * A variant listed twice under two names (same config) measures the method's own noise.
 *
 * Load: autocannon at a fixed rate in a worker thread (a warm-up run after each switch, then the
 * measured run). A fixed rate matters: at saturation a slower variant batches less per event-loop
 * turn, and that would be charged to it. CPU: every thread of the gateway's worker processes, from
 * /proc/…/schedstat in ns (the supervisor is reported apart: its housekeeping comes in bursts that
 * have nothing to do with requests and only add noise to a per-request figure).
 */

import { SchedMeter } from './sched-cpu.mjs';
import { median } from './stats.mjs';
import { runWorker } from './worker-run.mjs';

const RATE_WORKER = new URL('./autocannon-rate-worker.mjs', import.meta.url);

/** Replaces the running config of the gateway at `adminOrigin` with `yaml`; throws with the gateway's reason. */
export async function applyConfig(adminOrigin, yaml) {
  const res = await fetch(`${adminOrigin}/admin/config`, { method: 'PUT', headers: { 'content-type': 'application/yaml' }, body: yaml });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`PUT /admin/config answered ${res.status}: ${text.slice(0, 500)}`);
}

/**
 * @param {object} o
 * @param {{ proc: { pid: number }, origin: string, adminOrigin: string }} o.gateway a running gateway (bench/lib/sluice.mjs)
 * @param {Array<{ name: string, yaml: string, check?: () => Promise<void> }>} o.variants first = the baseline
 * @param {{ path: string, method?: string, headers: object, body?: string }} o.request
 * @param {number} o.rounds
 * @param {number} [o.warmupRounds] rounds run first and left out (default 1: the first variant measured would otherwise be the one that JITs the gateway)
 * @param {number} o.rate requests/s
 * @param {number} o.connections
 * @param {number} o.warmupSeconds after each switch
 * @param {number} o.durationSeconds measured per variant per round
 * @param {(name: string) => ({ start(): void, stop(): Promise<object> | object }) | null} [o.extraMeter] e.g. Redis counters for one variant
 * @param {(line: string) => void} [o.log]
 * @returns {Promise<Array<Record<string, Cell>>>} one object per round, by variant name
 *
 * Cell: { responses, rps, latencyMs, problems, cpuUsPerRequest (workers), treeCpuUsPerRequest, supervisorCpuUsPerRequest, extra }
 */
export async function measureByReload(o) {
  const { gateway, variants, request, rounds, rate, connections, warmupSeconds, durationSeconds, extraMeter, log = () => {} } = o;
  const warmupRounds = o.warmupRounds ?? 1;
  const out = [];
  for (let r = -warmupRounds; r < rounds; r++) {
    const order = variants.map((_, i) => variants[(((i + r) % variants.length) + variants.length) % variants.length]);
    const round = {};
    for (const v of order) {
      await applyConfig(gateway.adminOrigin, v.yaml);
      await v.check?.();
      round[v.name] = await measureOne(gateway, request, { rate, connections, warmupSeconds, durationSeconds }, extraMeter?.(v.name) ?? null);
    }
    if (r < 0) {
      log(`warm-up round ${r + warmupRounds + 1}/${warmupRounds} done`);
      continue;
    }
    out.push(round);
    log(
      `round ${r + 1}/${rounds}: ` +
        variants.map((v) => `${v.name} ${round[v.name].cpuUsPerRequest.toFixed(1)} µs/req @ ${Math.round(round[v.name].rps)}/s`).join(', '),
    );
  }
  return out;
}

async function measureOne(gateway, request, load, extra) {
  const cpu = new SchedMeter(gateway.proc.pid);
  const result = await runWorker(
    RATE_WORKER,
    {
      url: `${gateway.origin}${request.path}`,
      method: request.method ?? 'POST',
      headers: request.headers,
      body: request.body,
      connections: load.connections,
      rate: load.rate,
      warmupSeconds: load.warmupSeconds,
      durationSeconds: load.durationSeconds,
    },
    {
      onMeasureStart: () => {
        cpu.start();
        extra?.start();
      },
    },
  );
  const used = cpu.stop();
  const extraResult = extra ? await extra.stop() : null;
  const n = result.responses;
  const perRequest = (seconds) => (n > 0 ? (seconds * 1e6) / n : NaN);
  const supervisor = used.perProcess.find((p) => p.pid === gateway.proc.pid)?.cpuSeconds ?? 0;
  return {
    responses: n,
    rps: result.rps,
    latencyMs: result.latencyMs,
    problems: result.non2xx + result.errors + result.timeouts + result.resets,
    cpuUsPerRequest: perRequest(used.cpuSeconds - supervisor),
    treeCpuUsPerRequest: perRequest(used.cpuSeconds),
    supervisorCpuUsPerRequest: perRequest(supervisor),
    extra: extraResult,
  };
}

/** Median over rounds of `pick(variant) − pick(base)` per round, with the per-round values. */
export function addedOver(rounds, variant, base, pick = (cell) => cell.cpuUsPerRequest) {
  const perRound = rounds.filter((r) => r[variant] && r[base]).map((r) => pick(r[variant]) - pick(r[base]));
  return { medianUs: perRound.length ? median(perRound) : null, perRoundUs: perRound };
}

/** Per variant: the median over rounds of each number of its cells. */
export function summarizeVariants(rounds, names) {
  const med = (name, pick) => median(rounds.map((r) => pick(r[name])));
  return Object.fromEntries(
    names.map((name) => [
      name,
      {
        cpuUsPerRequest: med(name, (c) => c.cpuUsPerRequest),
        treeCpuUsPerRequest: med(name, (c) => c.treeCpuUsPerRequest),
        supervisorCpuUsPerRequest: med(name, (c) => c.supervisorCpuUsPerRequest),
        rps: med(name, (c) => c.rps),
        latencyP50Ms: med(name, (c) => c.latencyMs.p50),
        latencyP99Ms: med(name, (c) => c.latencyMs.p99),
        problems: rounds.reduce((s, r) => s + r[name].problems, 0),
      },
    ]),
  );
}
