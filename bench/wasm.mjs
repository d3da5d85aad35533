#!/usr/bin/env node
/**
 * Wasm plugin overhead through the running gateway (`npm run bench:wasm`): Sluice gateways of one
 * worker each, side by side on the same mock upstream, differing only in their `plugins`:
 *   none      no plugin (the baseline)
 *   none-b    no plugin either: its difference from `none` is the method's noise on this machine
 *   noop      the no-op plugin (every callback continues): the host's own cost per request
 *   rewriter  the header rewriter (sets a request and a response header, removes one)
 * All are loaded at the same time, each with the same chat load at a fixed rate (autocannon's
 * overallRate, well below what one worker serves), so whatever else the machine does hits them
 * alike; measured one after the other on a shared box, two identical gateways differed by ±40 µs.
 * A fixed rate matters too: at saturation a slower variant serves fewer requests per event-loop
 * turn, so everything else it does per request costs more, and that would be charged to the plugin.
 * CPU time comes from /proc/PID/task/TID/schedstat (nanoseconds), not the clock ticks of
 * /proc/PID/stat, whose 10 ms steps are several µs per request over a window of a few thousand.
 *
 * Reported per variant: CPU time of the gateway's process tree per request, throughput, latency;
 * and the CPU each variant adds over `none`, as the median over rounds of the per-round differences.
 * Goal: the no-op plugin and the header rewriter each add ≤ 5 µs per request.
 *
 * Also runs plugins/bench.mjs (the host alone, through the filter contract, no server) for the
 * same two plugins, as a cross-check with far less noise.
 *
 * Environment: BENCH_DURATION (s per round, default 5), BENCH_WARMUP (s, default 1), BENCH_ROUNDS
 * (default 7), BENCH_CONNECTIONS (per gateway, default 10), BENCH_RATE (requests/s to each gateway,
 * default 800), BENCH_HOST_ONLY (0 skips the host-only bench).
 * Exit code: 0 when the bench ran (a missed goal included), 1 when it broke.
 */

import { execFileSync } from 'node:child_process';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import autocannon from 'autocannon';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE_HEADERS, CHAT_BODY, CHAT_PATH } from './lib/chat-workloads.mjs';
import { envNumber } from './lib/env.mjs';
import { describeMachine, machineInfo } from './lib/machine.mjs';
import { processTree } from './lib/proc-cpu.mjs';
import { installCleanup, stopAll } from './lib/processes.mjs';
import { writeResult } from './lib/results.mjs';
import { assertBuilt, REPO_ROOT, startMock, startSluice, upstreamConfigYaml } from './lib/sluice.mjs';
import { median, SampleBuffer, summarize } from './lib/stats.mjs';
import { fixed, formatTable, grouped, signed } from './lib/table.mjs';
import { runWorker } from './lib/worker-run.mjs';

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));
const RESULTS_DIR = join(BENCH_DIR, 'results');
/** This file is also the load generator, run on a worker thread (see `fixedRateLoad`). */
const LOAD_WORKER = new URL(import.meta.url);
const PLUGINS = join(REPO_ROOT, 'plugins', 'dist');

const DURATION_S = envNumber('BENCH_DURATION', 5, 0.1);
const WARMUP_S = envNumber('BENCH_WARMUP', 1, 0);
const ROUNDS = Math.round(envNumber('BENCH_ROUNDS', 7, 1));
const CONNECTIONS = Math.round(envNumber('BENCH_CONNECTIONS', 10, 1));
const RATE = Math.round(envNumber('BENCH_RATE', 800, 1));
const HOST_ONLY = envNumber('BENCH_HOST_ONLY', 1, 0) !== 0;
const GOAL_US = 5;

const log = (...args) => console.log(...args);

/** Each variant's `plugins:` section (YAML, appended to the one-provider config). */
const VARIANTS = [
  { name: 'none', plugins: '' },
  { name: 'none-b', plugins: '' },
  {
    name: 'noop',
    plugins: `plugins:
  - name: noop
    path: ${join(PLUGINS, 'noop.wasm')}
`,
  },
  {
    name: 'rewriter',
    plugins: `plugins:
  - name: header-rewriter
    path: ${join(PLUGINS, 'header-rewriter.wasm')}
    config:
      request: { set: { x-team: ml }, remove: [x-debug] }
      response: { set: { x-served-by: sluice } }
`,
  },
];

/** One request through `origin`: 200, and for the rewriter its response header, or the bench is wrong. */
async function check(variant, origin) {
  const res = await fetch(`${origin}${CHAT_PATH}`, { method: 'POST', headers: BASE_HEADERS, body: CHAT_BODY });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${variant}: answered ${res.status}`);
  if (variant === 'rewriter' && res.headers.get('x-served-by') !== 'sluice') throw new Error('rewriter: the plugin did not run');
  if (variant !== 'rewriter' && res.headers.get('x-served-by') !== null) throw new Error(`${variant}: unexpected plugin header`);
}

/** One round: every gateway under its own load, all at once. */
async function measureRound(gateways) {
  const results = await Promise.all(gateways.map((g) => measure(g)));
  return Object.fromEntries(gateways.map((g, i) => [g.name, results[i]]));
}

/** CPU time (ns) of every thread of a process tree so far, by thread id. */
function threadRuntimes(rootPid) {
  const ns = new Map();
  for (const pid of processTree(rootPid)) {
    let tids = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        ns.set(tid, Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]));
      } catch {
        // the thread ended in between
      }
    }
  }
  return ns;
}

/** CPU seconds a process tree uses between start() and stop(), at nanosecond resolution. */
class SchedMeter {
  constructor(pid) {
    this.pid = pid;
    this.before = new Map();
    this.startedAt = 0;
  }

  start() {
    this.before = threadRuntimes(this.pid);
    this.startedAt = performance.now();
  }

  stop() {
    const after = threadRuntimes(this.pid);
    const wallSeconds = (performance.now() - this.startedAt) / 1000;
    let ns = 0;
    for (const [tid, t] of after) ns += t - (this.before.get(tid) ?? 0);
    return { cpuSeconds: ns / 1e9, utilization: wallSeconds > 0 ? ns / 1e9 / wallSeconds : 0 };
  }
}

async function measure(running) {
  const cpu = new SchedMeter(running.proc.pid);
  const load = await runWorker(
    LOAD_WORKER,
    { url: `${running.origin}${CHAT_PATH}`, connections: CONNECTIONS, rate: RATE, warmupSeconds: WARMUP_S, durationSeconds: DURATION_S },
    { onMeasureStart: () => cpu.start() },
  );
  // Stopped as soon as this load ends, so the window matches the requests it counts.
  const used = cpu.stop();
  if (load.non2xx > 0 || load.errors > 0) throw new Error(`${running.name}: ${load.non2xx} non-2xx answers, ${load.errors} errors`);
  return {
    responses: load.responses,
    rps: load.rps,
    latencyMs: load.latencyMs,
    cpuSeconds: used.cpuSeconds,
    cpuUsPerRequest: load.responses > 0 ? (used.cpuSeconds * 1e6) / load.responses : null,
    utilization: used.utilization,
  };
}

function hostOnly() {
  const out = execFileSync(process.execPath, [join(REPO_ROOT, 'plugins', 'bench.mjs')], { cwd: REPO_ROOT, encoding: 'utf8' });
  return JSON.parse(out);
}

async function main() {
  assertBuilt();
  installCleanup((sig) => log(`\n${sig}: stopping every process the bench started ...`));
  const startedAt = new Date();
  const machine = machineInfo();
  log(`bench/wasm: ${describeMachine(machine)}`);
  log(
    `chat at ${RATE} req/s over ${CONNECTIONS} connections to each gateway at once, ${ROUNDS} rounds × ${DURATION_S} s ` +
      `(+${WARMUP_S} s warm-up), 1 worker per gateway\n`,
  );

  const tmp = mkdtempSync(join(os.tmpdir(), 'sluice-bench-wasm-'));
  try {
    const mock = await startMock();
    const gateways = [];
    for (const v of VARIANTS) {
      const running = await startSluice({
        configPath: join(tmp, `${v.name}.yaml`),
        configYaml: upstreamConfigYaml(`${mock.origin}/v1`) + v.plugins,
      });
      await check(v.name, running.origin);
      gateways.push({ ...running, name: v.name });
    }

    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) {
      const round = await measureRound(gateways);
      rounds.push(round);
      log(
        `round ${r + 1}/${ROUNDS}: ` +
          VARIANTS.map((v) => `${v.name} ${fixed(round[v.name].cpuUsPerRequest, 1)} µs/req @ ${grouped(round[v.name].rps)} rps`).join(', '),
      );
    }

    const summary = {};
    for (const v of VARIANTS) {
      const per = rounds.map((r) => r[v.name]);
      summary[v.name] = {
        cpuUsPerRequest: median(per.map((m) => m.cpuUsPerRequest)),
        rps: median(per.map((m) => m.rps)),
        latencyP50Ms: median(per.map((m) => m.latencyMs.p50)),
        latencyP99Ms: median(per.map((m) => m.latencyMs.p99)),
      };
    }
    const added = {};
    for (const v of VARIANTS.filter((x) => x.name !== 'none')) {
      const diffs = rounds.map((r) => r[v.name].cpuUsPerRequest - r.none.cpuUsPerRequest);
      const goal = v.name === 'none-b' ? {} : { goalUs: GOAL_US, met: median(diffs) <= GOAL_US };
      added[v.name] = { medianUs: median(diffs), perRoundUs: diffs, ...goal };
    }

    log('');
    log(
      formatTable(
        ['variant', 'CPU µs/req', 'added µs/req', 'rps', 'p50 ms', 'p99 ms'],
        VARIANTS.map((v) => [
          v.name,
          fixed(summary[v.name].cpuUsPerRequest, 1),
          v.name === 'none' ? '' : signed(added[v.name].medianUs, 1),
          grouped(summary[v.name].rps),
          fixed(summary[v.name].latencyP50Ms, 3),
          fixed(summary[v.name].latencyP99Ms, 3),
        ]),
      ),
    );
    const noise = added['none-b'];
    log(`noise: two identical gateways differ by ${signed(noise.medianUs, 2)} µs (per round: ${noise.perRoundUs.map((d) => signed(d, 1)).join(' ')})`);
    for (const v of VARIANTS.filter((x) => x.name === 'noop' || x.name === 'rewriter')) {
      log(`goal: ${v.name} adds ≤ ${GOAL_US} µs CPU per request → ${fixed(added[v.name].medianUs, 2)} µs ${added[v.name].met ? 'met' : 'MISSED'}`);
    }

    let host = null;
    if (HOST_ONLY) {
      host = hostOnly();
      log(
        `\nhost only (plugins/bench.mjs, no server): noop +${fixed(host.added_cpu_us.noop, 2)} µs, ` +
          `header rewriter +${fixed(host.added_cpu_us.header_rewriter, 2)} µs per request`,
      );
    }

    const file = writeResult(RESULTS_DIR, 'wasm', startedAt, {
      bench: 'wasm',
      startedAt: startedAt.toISOString(),
      machine,
      settings: { durationSeconds: DURATION_S, warmupSeconds: WARMUP_S, rounds: ROUNDS, connections: CONNECTIONS, rate: RATE, workers: 1 },
      summary,
      addedCpuUsPerRequest: added,
      rounds,
      hostOnly: host,
    });
    log(`\nresults: ${file}`);
  } finally {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Worker thread: autocannon at a fixed overall rate (warm-up run, then the measured run), with the
 * protocol of bench/lib/worker-run.mjs (`measure-start`, then one `result` or `error`).
 */
async function fixedRateLoad({ url, connections, rate, warmupSeconds, durationSeconds }) {
  const run = (duration, latencies) =>
    new Promise((resolve, reject) => {
      const instance = autocannon(
        { url, method: 'POST', headers: BASE_HEADERS, body: CHAT_BODY, connections, overallRate: rate, pipelining: 1, duration, timeout: 10 },
        (err, result) => (err ? reject(err) : resolve(result)),
      );
      if (latencies) {
        instance.on('response', (_client, statusCode, _bytes, ms) => {
          if (statusCode >= 200 && statusCode < 300) latencies.push(ms);
        });
      }
    });
  try {
    if (warmupSeconds > 0) await run(warmupSeconds, null);
    const latencies = new SampleBuffer();
    parentPort.postMessage({ type: 'measure-start' });
    const r = await run(durationSeconds, latencies);
    const responses = r['1xx'] + r['2xx'] + r['3xx'] + r['4xx'] + r['5xx'];
    parentPort.postMessage({
      type: 'result',
      result: { responses, non2xx: r.non2xx, errors: r.errors, rps: r['2xx'] / r.duration, latencyMs: summarize(latencies.values()) },
    });
  } catch (err) {
    parentPort.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  }
}

if (isMainThread) {
  main().then(
    () => process.exit(0),
    async (err) => {
      console.error(`bench/wasm failed: ${err instanceof Error ? err.stack : String(err)}`);
      await stopAll();
      process.exit(1);
    },
  );
} else {
  await fixedRateLoad(workerData);
}
