#!/usr/bin/env node
/**
 * Config reload bench: 100 pushes of a new config through `PUT /admin/config` while autocannon loads
 * a 2-worker gateway. Each push flips the route of model `bench` between provider `a` and provider
 * `b` (two standalone mocks); the providers themselves never change, so only routing is reloaded.
 *
 * Measured:
 *  (a) requests that failed during the run (non-2xx, socket errors and resets, timeouts): target 0;
 *  (b) per push, the PUT round trip: it answers only after every worker acknowledged the new
 *      snapshot, so it bounds the time until every worker routes to the new target (target p99
 *      ≤ 100 ms); then a check on fresh connections (new connections are spread over the workers)
 *      that every answer comes from the new provider (`x-sluice-provider`); an old one there is a
 *      "stale" answer (target 0).
 * The same pushes are first made on the idle gateway, as the baseline.
 *
 * Environment: BENCH_PUSHES (default 100), BENCH_IDLE_PUSHES (default 20), BENCH_INTERVAL_MS (time
 * between push starts, default 100), BENCH_CONNECTIONS (autocannon, default 32), BENCH_WORKERS
 * (default 2), BENCH_CHECKS (fresh-connection requests per push, default 8).
 * Exit code: 0 when the bench ran (missed targets included), 1 when it broke.
 */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from 'undici';
import { BASE_HEADERS, CHAT_PATH, REQUEST } from './lib/chat-workloads.mjs';
import { envNumber } from './lib/env.mjs';
import { describeMachine, machineInfo } from './lib/machine.mjs';
import { installCleanup, stopAll } from './lib/processes.mjs';
import { writeResult } from './lib/results.mjs';
import { assertBuilt, REPO_ROOT, startMock, startSluice } from './lib/sluice.mjs';
import { summarize } from './lib/stats.mjs';
import { fixed, formatTable, grouped } from './lib/table.mjs';
import { runWorker } from './lib/worker-run.mjs';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const AUTOCANNON_WORKER = new URL('./lib/autocannon-worker.mjs', import.meta.url);

const PUSHES = Math.round(envNumber('BENCH_PUSHES', 100, 1));
const IDLE_PUSHES = Math.round(envNumber('BENCH_IDLE_PUSHES', 20, 0));
const INTERVAL_MS = envNumber('BENCH_INTERVAL_MS', 100, 0);
const CONNECTIONS = Math.round(envNumber('BENCH_CONNECTIONS', 32, 1));
const WORKERS = Math.round(envNumber('BENCH_WORKERS', 2, 1));
const CHECKS = Math.round(envNumber('BENCH_CHECKS', 8, 1));
const TARGET_P99_MS = 100;
/** Load before the first push and after the last: the run starts and ends in a steady state. */
const MARGIN_S = 1;

const BODY = JSON.stringify({ ...REQUEST, model: 'bench' });
const log = (...args) => console.log(...args);

/** The whole config, with model `bench` routed to `target` ('a' or 'b'). */
function configFor(target, mocks) {
  return JSON.stringify({
    log: { level: 'warn' },
    // The file is not what changes here; the watcher has nothing to do.
    admin: { watch: false },
    providers: ['a', 'b'].map((name) => ({ name, type: 'openai-compatible', base_url: `${mocks[name].origin}/v1`, models: ['*'] })),
    models: [{ name: 'bench', targets: [{ provider: target }] }],
  });
}

/** One chat request on a connection of its own (no keep-alive): which provider answered. */
function freshRequest(origin) {
  return new Promise((resolve, reject) => {
    const r = httpRequest(
      `${origin}${CHAT_PATH}`,
      { method: 'POST', agent: false, headers: { ...BASE_HEADERS, connection: 'close', 'content-length': Buffer.byteLength(BODY) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, provider: res.headers['x-sluice-provider'] }));
        res.on('error', reject);
      },
    );
    r.on('error', reject);
    r.setTimeout(10_000, () => r.destroy(new Error('check request timed out')));
    r.end(BODY);
  });
}

/**
 * One push: PUT, then `CHECKS` requests at once on fresh connections. Returns the timings and how
 * many answers still came from the old target.
 */
async function push(adminClient, gateway, mocks, target, expectGeneration) {
  const t0 = performance.now();
  const res = await adminClient.request({ path: '/admin/config', method: 'PUT', headers: { 'content-type': 'application/json' }, body: configFor(target, mocks) });
  const text = await res.body.text();
  const putMs = performance.now() - t0;
  if (res.statusCode !== 200) throw new Error(`PUT /admin/config answered ${res.statusCode}: ${text.slice(0, 300)}`);
  const generation = JSON.parse(text).applied_generation;
  const answers = await Promise.all(Array.from({ length: CHECKS }, () => freshRequest(gateway.origin).catch((e) => ({ status: 0, provider: undefined, error: e.message }))));
  const checkedMs = performance.now() - t0;
  return {
    target,
    generation,
    generationOk: generation === expectGeneration,
    putMs,
    checkedMs,
    stale: answers.filter((a) => a.status === 200 && a.provider !== target).length,
    checkFailures: answers.filter((a) => a.status !== 200).length,
  };
}

async function pushes(count, adminClient, gateway, mocks, state) {
  const results = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    state.target = state.target === 'a' ? 'b' : 'a';
    state.generation++;
    results.push(await push(adminClient, gateway, mocks, state.target, state.generation));
    const wait = INTERVAL_MS - (performance.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  return results;
}

function summarizePushes(results) {
  return {
    pushes: results.length,
    putMs: summarize(results.map((r) => r.putMs)),
    checkedMs: summarize(results.map((r) => r.checkedMs)),
    staleAnswers: results.reduce((s, r) => s + r.stale, 0),
    checkFailures: results.reduce((s, r) => s + r.checkFailures, 0),
    generationSkips: results.filter((r) => !r.generationOk).length,
  };
}

async function main() {
  installCleanup((sig) => log(`\n${sig}: stopping every process the bench started ...`));
  assertBuilt();
  const startedAt = new Date();
  const machine = machineInfo();
  const tmp = mkdtempSync(join(os.tmpdir(), 'sluice-reload-'));
  process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

  log(`Sluice config reload bench — ${startedAt.toISOString()}`);
  log(`machine: ${describeMachine(machine)}`);
  log(
    `${IDLE_PUSHES} pushes idle, then ${PUSHES} under autocannon (c=${CONNECTIONS}, chat, model "bench"), one every ${INTERVAL_MS} ms; ` +
      `${WORKERS} workers; ${CHECKS} fresh-connection checks per push`,
  );
  log(`note: autocannon, both mocks and every Sluice process share these ${machine.cpuCount} cores.\n`);

  const mocks = { a: await startMock({ outputTokens: 16 }), b: await startMock({ outputTokens: 16 }) };
  const configPath = join(tmp, 'sluice.json');
  const gateway = await startSluice({ configPath, configYaml: configFor('a', mocks), workers: WORKERS });
  log(`mocks: a ${mocks.a.origin}, b ${mocks.b.origin}; gateway ${gateway.origin} (pid ${gateway.proc.pid}), admin ${gateway.adminOrigin}`);
  const first = await freshRequest(gateway.origin);
  if (first.status !== 200 || first.provider !== 'a') throw new Error(`the gateway does not route "bench" to a: ${JSON.stringify(first)}`);

  const adminClient = new Client(gateway.adminOrigin);
  const state = { target: 'a', generation: 1 };
  try {
    log('idle pushes ...');
    const idle = await pushes(IDLE_PUSHES, adminClient, gateway, mocks, state);

    log('pushes under load ...');
    let loaded = null;
    let pushError = null;
    let pushesStartedAt = 0;
    let pushesEndedAt = 0;
    let measureStartedAt = 0;
    const durationSeconds = (PUSHES * INTERVAL_MS) / 1000 + 2 * MARGIN_S + 1;
    const load = runWorker(
      AUTOCANNON_WORKER,
      { url: `${gateway.origin}${CHAT_PATH}`, method: 'POST', headers: BASE_HEADERS, body: BODY, connections: CONNECTIONS, warmupSeconds: 1, durationSeconds },
      {
        onMeasureStart: () => {
          measureStartedAt = performance.now();
          // Pushes begin once the measured run is in a steady state.
          setTimeout(() => {
            pushesStartedAt = performance.now();
            loaded = pushes(PUSHES, adminClient, gateway, mocks, state)
              .catch((err) => {
                pushError = err;
                return [];
              })
              .finally(() => (pushesEndedAt = performance.now()));
          }, MARGIN_S * 1000);
        },
      },
    );
    const ac = await load;
    const loadedResults = await (loaded ?? Promise.resolve([]));
    if (pushError) throw pushError;
    const inWindow = pushesEndedAt - measureStartedAt <= ac.durationSeconds * 1000;

    const idleSummary = summarizePushes(idle);
    const loadSummary = summarizePushes(loadedResults);
    const failed = { non2xx: ac.non2xx, errors: ac.errors, timeouts: ac.timeouts, resets: ac.resets ?? 0 };
    const failedTotal = failed.non2xx + failed.errors + failed.timeouts + failed.resets;
    const verdicts = [
      { goal: 'failed or reset requests during the run', value: failedTotal, target: '0', pass: failedTotal === 0 },
      { goal: 'PUT → every worker acknowledged, p99 under load', value: `${fixed(loadSummary.putMs.p99, 1)} ms`, target: `≤ ${TARGET_P99_MS} ms`, pass: loadSummary.putMs.p99 <= TARGET_P99_MS },
      { goal: 'old target answered after the PUT returned', value: loadSummary.staleAnswers + idleSummary.staleAnswers, target: '0', pass: loadSummary.staleAnswers + idleSummary.staleAnswers === 0 },
    ];

    log(`\nResults — ${startedAt.toISOString()} — ${describeMachine(machine)}\n`);
    log(
      formatTable(
        ['phase', 'pushes', 'PUT p50 ms', 'PUT p99 ms', 'PUT max ms', 'PUT+check p50', 'PUT+check p99', 'stale', 'check failures'],
        [
          ['idle', idleSummary],
          [`load c=${CONNECTIONS}`, loadSummary],
        ].map(([name, s]) => [
          name,
          String(s.pushes),
          fixed(s.putMs.p50, 1),
          fixed(s.putMs.p99, 1),
          fixed(s.putMs.max, 1),
          fixed(s.checkedMs.p50, 1),
          fixed(s.checkedMs.p99, 1),
          String(s.staleAnswers),
          String(s.checkFailures),
        ]),
      ),
    );
    log(
      `\nLoad during the pushes: ${grouped(ac.rps)} req/s, p50 ${fixed(ac.latencyMs.p50, 2)} ms, p99 ${fixed(ac.latencyMs.p99, 2)} ms, ` +
        `${grouped(ac.responses)} responses; non2xx ${failed.non2xx}, errors ${failed.errors}, timeouts ${failed.timeouts}, resets ${failed.resets}` +
        (inWindow ? '' : '\nWARNING: the pushes outlasted the measured load window; the last ones ran without load.'),
    );
    log(`\nGoals:\n${formatTable(['goal', 'value', 'target', 'verdict'], verdicts.map((v) => [v.goal, String(v.value), v.target, v.pass ? 'PASS' : 'MISS']))}`);
    const notes = [
      'PUT = the admin round trip; the supervisor answers only after every worker swapped its snapshot, so this is an upper bound of the time until every worker routes to the new target.',
      `PUT+check = PUT, then ${CHECKS} requests at once on fresh connections (under load they queue behind autocannon's); each must come from the new provider (x-sluice-provider), else it counts as stale. The kernel spreads new connections over the workers by hash: ${CHECKS} of them miss one of 2 workers with probability 2^-${CHECKS - 1} per push.`,
      `generation went up by exactly one per push: ${loadSummary.generationSkips + idleSummary.generationSkips === 0 ? 'yes' : `NO (${loadSummary.generationSkips + idleSummary.generationSkips} skips)`}.`,
      `the load generator, two mocks, the supervisor and ${WORKERS} workers share ${machine.cpuCount} cores: PUT latency under load is mostly waiting for a CPU.`,
    ];
    log(`\nNotes:\n${notes.map((n) => `  - ${n}`).join('\n')}`);

    const report = {
      bench: 'reload',
      date: startedAt.toISOString(),
      machine: { ...machine, sluice: JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version },
      settings: { pushes: PUSHES, idlePushes: IDLE_PUSHES, intervalMs: INTERVAL_MS, connections: CONNECTIONS, workers: WORKERS, checksPerPush: CHECKS, sharedMachine: true },
      load: { ...ac, failed, pushesInsideWindow: inWindow, pushesStartedAfterMs: pushesStartedAt - measureStartedAt },
      idle: { summary: idleSummary, pushes: idle },
      underLoad: { summary: loadSummary, pushes: loadedResults },
      goals: verdicts,
      notes,
    };
    const file = writeResult(RESULTS_DIR, 'reload', startedAt, report);
    log(`\nJSON: ${file}`);
  } finally {
    await adminClient.close().catch(() => undefined);
  }
}

try {
  await main();
} catch (err) {
  console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
} finally {
  await stopAll();
}
