#!/usr/bin/env node
/**
 * Balancing bench: one provider with four replicas of different speed and reliability behind a
 * 2-worker gateway, loaded once per balancer (round_robin, then least_request by default).
 *
 * Replicas (standalone `sluice mock`, non-streamed 16-token answers):
 *   fast-1, fast-2  first byte after 20 ms
 *   flaky           40 ms, and every 10th request it receives answers 500 at once
 *   slow            BENCH_SLOW_MS (default 2000 ms: a replica 100× slower, as a loaded GPU answering
 *                   in seconds where the others take milliseconds; see the note on p99 below)
 * Model `bench` routes to the provider with `max_retries: 2` and no back-off, so a 500 from `flaky`
 * is retried on another replica before the client sees anything.
 *
 * Measured per balancer: client-side req/s and latency (autocannon, per-response samples), what
 * clients saw fail (non-2xx, socket errors, timeouts), and per replica, read from the gateway's
 * shared memory (see lib/endpoint-sampler.mjs): requests sent (retries included), failures, mean
 * and peak requests in flight over the measured window (sampled every BENCH_SAMPLE_MS). The
 * in-flight max/min ratio is max over replicas of the mean in-flight divided by the min.
 *
 * Goals (PASS/MISS): least_request p99 below round_robin's; 0 client-visible errors for every
 * balancer (the failing replica's errors are all retried away).
 *
 * On p99: the mock's slow replica is slow but never overloaded (its latency does not grow with its
 * load), so least-request, which equalizes requests in flight, still sends it a share of about
 * (1/slow) / Σ(1/latency_i). Its p99 leaves the slow replica's latency only when that share is under
 * 1 %, i.e. slow ≳ 800 ms next to 20/20/40 ms replicas. With BENCH_SLOW_MS=200 the share is ~5 % and
 * both balancers' p99 is the slow replica's ~200 ms (a tie, within a few ms); p90 then shows the
 * difference (≈ 40 vs ≈ 200 ms). A replica whose latency grows with its load, as a real one does,
 * is avoided far more by least-request.
 *
 * Environment: BENCH_DURATION (s, default 10), BENCH_WARMUP (s, 1), BENCH_CONNECTIONS (32),
 * BENCH_WORKERS (2), BENCH_ROUNDS (1), BENCH_SLOW_MS (2000), BENCH_SAMPLE_MS (5),
 * BENCH_BALANCERS (comma list, default round_robin,least_request).
 * Exit code: 0 when the bench ran (missed goals included), 1 when it broke.
 */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkChatCompletion } from './lib/chat-check.mjs';
import { BASE_HEADERS, CHAT_PATH, REQUEST } from './lib/chat-workloads.mjs';
import { EndpointSampler } from './lib/endpoint-sampler.mjs';
import { envList, envNumber } from './lib/env.mjs';
import { describeMachine, machineInfo } from './lib/machine.mjs';
import { fleetConfigYaml, startMockFleet } from './lib/mock-fleet.mjs';
import { installCleanup, stopAll } from './lib/processes.mjs';
import { combineAutocannon, writeResult } from './lib/results.mjs';
import { assertBuilt, REPO_ROOT, startSluice } from './lib/sluice.mjs';
import { median } from './lib/stats.mjs';
import { fixed, formatTable, grouped } from './lib/table.mjs';
import { runWorker } from './lib/worker-run.mjs';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const AUTOCANNON_WORKER = new URL('./lib/autocannon-worker.mjs', import.meta.url);

const DURATION_S = envNumber('BENCH_DURATION', 10, 1);
const WARMUP_S = envNumber('BENCH_WARMUP', 1, 0);
const CONNECTIONS = Math.round(envNumber('BENCH_CONNECTIONS', 32, 1));
const WORKERS = Math.round(envNumber('BENCH_WORKERS', 2, 1));
const ROUNDS = Math.round(envNumber('BENCH_ROUNDS', 1, 1));
const SLOW_MS = Math.round(envNumber('BENCH_SLOW_MS', 2000, 0));
const SAMPLE_MS = envNumber('BENCH_SAMPLE_MS', 5, 1);
const BALANCERS = envList('BENCH_BALANCERS') ?? ['round_robin', 'least_request'];
const KNOWN_BALANCERS = ['round_robin', 'weighted', 'least_request'];
for (const b of BALANCERS) if (!KNOWN_BALANCERS.includes(b)) throw new Error(`BENCH_BALANCERS: unknown balancer "${b}" (known: ${KNOWN_BALANCERS.join(', ')})`);

const PROVIDER = 'fleet';
const MODEL = 'bench';
const OUTPUT_TOKENS = 16;
const FLEET = [
  { name: 'fast-1', ttftMs: 20 },
  { name: 'fast-2', ttftMs: 20 },
  { name: 'flaky', ttftMs: 40, errorEvery: 10, errorStatus: 500 },
  { name: 'slow', ttftMs: SLOW_MS },
].map((spec) => ({ ...spec, outputTokens: OUTPUT_TOKENS }));

const BODY = JSON.stringify({ ...REQUEST, model: MODEL });
const log = (...args) => console.log(...args);

/** One balancer, one round: a fresh gateway (fresh counters and ejection state), loaded, stopped. */
async function measure(balancer, fleet, tmp) {
  const gateway = await startSluice({
    configPath: join(tmp, `sluice-${balancer}.yaml`),
    configYaml: fleetConfigYaml(fleet, { balancer, provider: PROVIDER, model: MODEL }),
    workers: WORKERS,
  });
  try {
    const check = await checkChatCompletion(gateway.origin, CHAT_PATH, BASE_HEADERS, BODY);
    if (!check.ok) throw new Error(`${balancer}: the gateway does not answer model "${MODEL}": ${check.problem}`);
    const sampler = await EndpointSampler.open({ port: gateway.port, supervisorPid: gateway.proc.pid, provider: PROVIDER, endpoints: fleet });
    let before = null;
    let stopSampling = () => undefined;
    const ac = await runWorker(
      AUTOCANNON_WORKER,
      {
        url: `${gateway.origin}${CHAT_PATH}`,
        method: 'POST',
        headers: BASE_HEADERS,
        body: BODY,
        connections: CONNECTIONS,
        warmupSeconds: WARMUP_S,
        durationSeconds: DURATION_S,
      },
      {
        onMeasureStart: () => {
          sampler.reset();
          before = sampler.snapshot();
          stopSampling = sampler.every(SAMPLE_MS);
        },
      },
    );
    stopSampling();
    const after = sampler.snapshot();
    const upstream = sampler.report(before ?? after, after);
    const workers = await fetch(`${gateway.adminOrigin}/admin/workers`)
      .then((r) => r.json())
      .catch(() => null);
    const clientErrors = ac.non2xx + ac.errors + ac.timeouts + (ac.resets ?? 0);
    return { balancer, autocannon: ac, clientErrors, upstream, workers };
  } finally {
    await gateway.proc.stop();
  }
}

/** Rounds of one balancer → one row: autocannon medians, per-replica sums and mean in-flight medians. */
function combine(runs) {
  const ac = combineAutocannon(runs.map((r) => r.autocannon));
  const endpoints = runs[0].upstream.endpoints.map((_, i) => {
    const rows = runs.map((r) => r.upstream.endpoints[i]);
    const requests = rows.reduce((s, r) => s + r.requests, 0);
    return {
      name: rows[0].name,
      requests,
      failures: rows.reduce((s, r) => s + r.failures, 0),
      meanInFlight: median(rows.map((r) => r.meanInFlight)),
      peakInFlight: Math.max(...rows.map((r) => r.peakInFlight)),
    };
  });
  const total = endpoints.reduce((s, e) => s + e.requests, 0);
  for (const e of endpoints) e.sharePercent = total ? (100 * e.requests) / total : NaN;
  return {
    autocannon: ac,
    clientErrors: runs.reduce((s, r) => s + r.clientErrors, 0),
    upstreamRequests: total,
    upstreamFailures: endpoints.reduce((s, e) => s + e.failures, 0),
    inFlightMaxMinRatio: median(runs.map((r) => r.upstream.inFlightMaxMinRatio)),
    endpoints,
  };
}

const ratio = (x) => (Number.isFinite(x) ? `${fixed(x, x < 10 ? 2 : 1)}×` : '∞');

async function main() {
  installCleanup((sig) => log(`\n${sig}: stopping every process the bench started ...`));
  assertBuilt();
  const startedAt = new Date();
  const machine = machineInfo();
  const tmp = mkdtempSync(join(os.tmpdir(), 'sluice-balance-'));
  process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

  log(`Sluice balancing bench — ${startedAt.toISOString()}`);
  log(`machine: ${describeMachine(machine)}`);
  log(
    `replicas: ${FLEET.map((m) => `${m.name} ${m.ttftMs} ms${m.errorEvery ? ` (500 every ${m.errorEvery}th)` : ''}`).join(', ')}; ` +
      `${WORKERS} workers; autocannon c=${CONNECTIONS}, ${WARMUP_S} s warm-up + ${DURATION_S} s; ${ROUNDS} round(s); balancers ${BALANCERS.join(', ')}`,
  );
  log(`note: autocannon, the four mocks and every Sluice process share these ${machine.cpuCount} cores.\n`);

  const fleet = await startMockFleet(FLEET);
  log(`mocks: ${fleet.map((m) => `${m.name} ${m.origin}`).join(', ')}`);

  const runs = Object.fromEntries(BALANCERS.map((b) => [b, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order so a slow phase of the machine does not always hit the same balancer.
    const order = round % 2 === 0 ? BALANCERS : [...BALANCERS].reverse();
    for (const balancer of order) {
      log(`round ${round + 1}/${ROUNDS}: ${balancer} ...`);
      const run = await measure(balancer, fleet, tmp);
      runs[balancer].push(run);
      const ac = run.autocannon;
      log(
        `  ${grouped(ac.rps)} req/s, p50 ${fixed(ac.latencyMs.p50, 1)} ms, p99 ${fixed(ac.latencyMs.p99, 1)} ms, client errors ${run.clientErrors}, ` +
          `in-flight max/min ${ratio(run.upstream.inFlightMaxMinRatio)}`,
      );
    }
  }
  const results = Object.fromEntries(BALANCERS.map((b) => [b, combine(runs[b])]));

  log(`\nResults — ${startedAt.toISOString()} — ${describeMachine(machine)}\n`);
  log(
    formatTable(
      ['balancer', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'client errors', 'upstream reqs', 'upstream failures', 'in-flight max/min'],
      BALANCERS.map((b) => {
        const r = results[b];
        const ac = r.autocannon;
        return [
          b,
          grouped(ac.rps),
          fixed(ac.latencyMs.p50, 1),
          fixed(ac.latencyMs.p90, 1),
          fixed(ac.latencyMs.p99, 1),
          String(r.clientErrors),
          grouped(r.upstreamRequests),
          grouped(r.upstreamFailures),
          ratio(r.inFlightMaxMinRatio),
        ];
      }),
    ),
  );
  log('\nPer replica (from the gateway\'s shared memory; requests include retries):\n');
  log(
    formatTable(
      ['balancer', 'replica', 'first byte', 'requests', 'share %', 'failures', 'mean in flight', 'peak in flight'],
      BALANCERS.flatMap((b) =>
        results[b].endpoints.map((e, i) => [
          i === 0 ? b : '',
          e.name,
          `${FLEET[i].ttftMs} ms`,
          grouped(e.requests),
          fixed(e.sharePercent, 1),
          grouped(e.failures),
          fixed(e.meanInFlight, 2),
          String(e.peakInFlight),
        ]),
      ),
      { left: [0, 1] },
    ),
  );

  const goals = [];
  const rr = results.round_robin;
  const lr = results.least_request;
  if (rr && lr) {
    goals.push({
      goal: 'least_request p99 below round_robin p99',
      value: `${fixed(lr.autocannon.latencyMs.p99, 1)} vs ${fixed(rr.autocannon.latencyMs.p99, 1)} ms`,
      target: '<',
      pass: lr.autocannon.latencyMs.p99 < rr.autocannon.latencyMs.p99,
    });
  }
  for (const b of BALANCERS) {
    goals.push({ goal: `${b}: errors seen by clients`, value: String(results[b].clientErrors), target: '0', pass: results[b].clientErrors === 0 });
  }
  log(`\nGoals:\n${formatTable(['goal', 'value', 'target', 'verdict'], goals.map((g) => [g.goal, g.value, g.target, g.pass ? 'PASS' : 'MISS']))}`);

  const notes = [
    'in flight: requests between the gateway acquiring a replica and the exchange ending, summed over every worker, read from shared memory every ' +
      `${SAMPLE_MS} ms during the measured window; max/min = the busiest replica's mean over the idlest's. Round-robin gives every replica the same request rate, so in-flight grows with latency (Little's law); least-request keeps the counts close.`,
    'requests and failures per replica are the gateway\'s own counters (one per attempt, so a retried request counts on both replicas); upstream failures are the 500s of the flaky replica that the retry hid from clients.',
    `the slow replica is slower but never overloaded, so least-request settles where in-flight counts are about equal and still sends it a share of about (1/${SLOW_MS}) / Σ(1/latency): p99 escapes its latency only when that share is under 1 % (slow ≳ 800 ms here); at BENCH_SLOW_MS=200 both p99s are the slow replica's ~200 ms and p90 shows the difference.`,
    `the load generator, four mocks, the supervisor and ${WORKERS} workers share ${machine.cpuCount} cores.`,
  ];
  log(`\nNotes:\n${notes.map((n) => `  - ${n}`).join('\n')}`);

  const report = {
    bench: 'balance',
    date: startedAt.toISOString(),
    machine: { ...machine, sluice: JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version },
    settings: {
      durationSeconds: DURATION_S,
      warmupSeconds: WARMUP_S,
      connections: CONNECTIONS,
      workers: WORKERS,
      rounds: ROUNDS,
      sampleMs: SAMPLE_MS,
      balancers: BALANCERS,
      fleet: FLEET,
      retry: { max_retries: 2, base_delay_ms: 0, max_delay_ms: 0 },
      request: 'POST /v1/chat/completions, non-streamed, model "bench"',
    },
    results,
    runs,
    goals,
    notes,
  };
  const file = writeResult(RESULTS_DIR, 'balance', startedAt, report);
  log(`\nJSON: ${file}`);
}

try {
  await main();
} catch (err) {
  console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
} finally {
  await stopAll();
}
