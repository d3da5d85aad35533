#!/usr/bin/env node
/**
 * Worker scaling bench: the same chat workloads through Sluice with `--workers 1` and `--workers 2`
 * (and the mock alone, as the ceiling of this machine), against the standalone mock upstream.
 * Per cell: throughput, latency, CPU time per request of the whole Sluice process tree (supervisor +
 * workers) and how that CPU split between the workers; then the 2-worker / 1-worker ratios.
 * See bench/README.md for how to read it.
 *
 * Both gateways run side by side (idle while the other is measured); each workload is measured on
 * every target back to back, and the order of the targets alternates between rounds.
 *
 * Environment: BENCH_DURATION (s, default 5), BENCH_WARMUP (s, default 1), BENCH_ROUNDS (default 1;
 * more rounds report per-cell medians), BENCH_WORKERS (comma list of worker counts, default 1,2),
 * BENCH_DIRECT (1 = also measure the mock alone, default 1).
 * Exit code: 0 when the bench ran, 1 when it broke.
 */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkChatCompletion, checkChatStream } from './lib/chat-check.mjs';
import { BASE_HEADERS, CHAT_BODY, CHAT_PATH, CHUNK_TOKENS, OUTPUT_TOKENS, STREAM_BODY } from './lib/chat-workloads.mjs';
import { envList, envNumber } from './lib/env.mjs';
import { describeMachine, machineInfo } from './lib/machine.mjs';
import { CpuMeter, treeTicks, CLOCK_TICKS_PER_SECOND } from './lib/proc-cpu.mjs';
import { installCleanup, stopAll } from './lib/processes.mjs';
import { combineAutocannon, writeResult } from './lib/results.mjs';
import { assertBuilt, REPO_ROOT, startMock, startSluice, upstreamConfigYaml } from './lib/sluice.mjs';
import { median } from './lib/stats.mjs';
import { fixed, formatTable, grouped } from './lib/table.mjs';
import { runWorker } from './lib/worker-run.mjs';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const AUTOCANNON_WORKER = new URL('./lib/autocannon-worker.mjs', import.meta.url);

const DURATION_S = envNumber('BENCH_DURATION', 5, 0.1);
const WARMUP_S = envNumber('BENCH_WARMUP', 1, 0);
const ROUNDS = Math.round(envNumber('BENCH_ROUNDS', 1, 1));
const WORKER_COUNTS = (envList('BENCH_WORKERS') ?? ['1', '2']).map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`BENCH_WORKERS: "${s}" is not a worker count`);
  return n;
});
const WITH_DIRECT = envNumber('BENCH_DIRECT', 1, 0) !== 0;

const WORKLOADS = [
  { id: 'chat c=50', stream: false, connections: 50 },
  { id: 'stream c=50', stream: true, connections: 50 },
];

const log = (...args) => console.log(...args);

/** CPU seconds per pid of the tree rooted at `rootPid`, between two `treeTicks` readings. */
function perProcessSeconds(before, after) {
  const out = new Map();
  for (const [pid, t] of after) out.set(pid, (t - (before.get(pid) ?? 0)) / CLOCK_TICKS_PER_SECOND);
  return out;
}

async function measureCell(target, mock, workload) {
  const sluiceCpu = target.proc ? new CpuMeter(target.proc.pid) : null;
  const mockCpu = new CpuMeter(mock.proc.pid);
  let ticksBefore = null;
  let generatorCpu = null;
  const load = await runWorker(
    AUTOCANNON_WORKER,
    {
      url: `${target.origin}${CHAT_PATH}`,
      method: 'POST',
      headers: BASE_HEADERS,
      body: workload.stream ? STREAM_BODY : CHAT_BODY,
      connections: workload.connections,
      warmupSeconds: WARMUP_S,
      durationSeconds: DURATION_S,
    },
    {
      onMeasureStart: () => {
        sluiceCpu?.start();
        mockCpu.start();
        if (target.proc) ticksBefore = treeTicks(target.proc.pid);
        generatorCpu = process.cpuUsage();
      },
    },
  );
  const sluice = sluiceCpu?.stop() ?? null;
  const upstream = mockCpu.stop();
  const generator = process.cpuUsage(generatorCpu);
  const perRequestUs = (seconds) => (load.responses > 0 ? (seconds * 1e6) / load.responses : null);

  // Each worker's share of the tree's CPU: how evenly the kernel spread the connections.
  let workerSplit = null;
  if (target.proc && ticksBefore) {
    const seconds = perProcessSeconds(ticksBefore, treeTicks(target.proc.pid));
    const supervisor = seconds.get(target.proc.pid) ?? 0;
    seconds.delete(target.proc.pid);
    const total = [...seconds.values()].reduce((a, b) => a + b, 0);
    workerSplit = {
      supervisorSeconds: supervisor,
      workers: [...seconds.entries()].map(([pid, s]) => ({ pid, cpuSeconds: s, share: total > 0 ? s / total : null })),
    };
  }
  return {
    target: target.name,
    workers: target.workers,
    workload: workload.id,
    stream: workload.stream,
    connections: workload.connections,
    autocannon: load,
    cpu: {
      sluiceUsPerRequest: sluice ? perRequestUs(sluice.cpuSeconds) : null,
      sluiceUtilization: sluice?.utilization ?? null,
      mockUsPerRequest: perRequestUs(upstream.cpuSeconds),
      mockUtilization: upstream.utilization,
      generatorUtilization: (generator.user + generator.system) / 1e6 / load.durationSeconds,
    },
    workerSplit,
  };
}

function combineRounds(rounds) {
  if (rounds.length === 1) return { ...rounds[0], rounds: 1 };
  const med = (pick) => median(rounds.map(pick));
  const first = rounds[0];
  return {
    target: first.target,
    workers: first.workers,
    workload: first.workload,
    stream: first.stream,
    connections: first.connections,
    rounds: rounds.length,
    autocannon: combineAutocannon(rounds.map((r) => r.autocannon)),
    cpu: Object.fromEntries(Object.keys(first.cpu).map((k) => [k, first.cpu[k] === null ? null : med((r) => r.cpu[k])])),
    workerSplit: first.workerSplit,
    perRound: rounds,
  };
}

function problems(cell) {
  const a = cell.autocannon;
  return [a.non2xx && `non2xx ${a.non2xx}`, a.errors && `err ${a.errors}`, a.timeouts && `timeout ${a.timeouts}`].filter(Boolean);
}

function splitText(cell) {
  if (!cell.workerSplit || cell.workerSplit.workers.length < 2) return '';
  return cell.workerSplit.workers.map((w) => fixed((w.share ?? 0) * 100, 0)).join('/');
}

function resultTable(cells) {
  const header = ['target', 'workload', 'req/s', 'p50 ms', 'p99 ms', 'Sluice CPU µs/req', 'Sluice CPU %', 'worker split %', 'mock CPU %', 'loadgen CPU %', 'errors'];
  const rows = cells.map((c) => [
    c.target,
    c.workload,
    grouped(c.autocannon.rps),
    fixed(c.autocannon.latencyMs.p50, 2),
    fixed(c.autocannon.latencyMs.p99, 2),
    fixed(c.cpu.sluiceUsPerRequest, 1),
    c.cpu.sluiceUtilization === null ? '-' : fixed(c.cpu.sluiceUtilization * 100, 0),
    splitText(c),
    fixed(c.cpu.mockUtilization * 100, 0),
    fixed(c.cpu.generatorUtilization * 100, 0),
    problems(c).join(', ') || '0',
  ]);
  return formatTable(header, rows, { left: [0, 1, 10] });
}

/** For each workload: the N-worker row against the 1-worker row. */
function ratios(cells) {
  const out = [];
  for (const w of WORKLOADS) {
    const one = cells.find((c) => c.workload === w.id && c.workers === 1);
    if (!one) continue;
    for (const c of cells.filter((x) => x.workload === w.id && x.workers !== null && x.workers > 1)) {
      out.push({
        workload: w.id,
        workers: c.workers,
        throughput: c.autocannon.rps / one.autocannon.rps,
        p50: c.autocannon.latencyMs.p50 / one.autocannon.latencyMs.p50,
        p99: c.autocannon.latencyMs.p99 / one.autocannon.latencyMs.p99,
        cpuPerRequest: c.cpu.sluiceUsPerRequest / one.cpu.sluiceUsPerRequest,
      });
    }
  }
  return out;
}

function ratioTable(rs) {
  return formatTable(
    ['workload', 'workers', 'req/s ×', 'p50 ×', 'p99 ×', 'CPU/req ×'],
    rs.map((r) => [r.workload, `${r.workers} vs 1`, fixed(r.throughput, 2), fixed(r.p50, 2), fixed(r.p99, 2), fixed(r.cpuPerRequest, 2)]),
    { left: [0, 1] },
  );
}

async function main() {
  installCleanup((sig) => log(`\n${sig}: stopping every process the bench started ...`));
  assertBuilt();
  const startedAt = new Date();
  const machine = machineInfo();
  const tmp = mkdtempSync(join(os.tmpdir(), 'sluice-scaling-'));
  process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

  log(`Sluice worker scaling bench — ${startedAt.toISOString()}`);
  log(`machine: ${describeMachine(machine)}`);
  log(`each cell: ${WARMUP_S} s warm-up + ${DURATION_S} s measured, ${ROUNDS} round(s); the mock answers ${OUTPUT_TOKENS} tokens (streams: ${OUTPUT_TOKENS / CHUNK_TOKENS} chunks)`);
  log(`note: autocannon (a worker thread of this process), the mock and every Sluice process share these ${machine.cpuCount} cores.\n`);

  const mock = await startMock({ outputTokens: OUTPUT_TOKENS, chunkTokens: CHUNK_TOKENS });
  log(`mock upstream: ${mock.origin} (pid ${mock.proc.pid})`);
  const targets = [];
  if (WITH_DIRECT) targets.push({ name: 'mock alone', workers: null, origin: mock.origin, proc: null });
  for (const n of WORKER_COUNTS) {
    const s = await startSluice({ configPath: join(tmp, `sluice-${n}.yaml`), configYaml: upstreamConfigYaml(`${mock.origin}/v1`), workers: n });
    targets.push({ name: `sluice ×${n}`, workers: n, origin: s.origin, proc: s.proc });
  }
  const checks = {};
  for (const t of targets) {
    const chat = await checkChatCompletion(t.origin, CHAT_PATH, BASE_HEADERS, CHAT_BODY).catch((e) => ({ ok: false, problem: e.message }));
    const stream = await checkChatStream(t.origin, CHAT_PATH, BASE_HEADERS, STREAM_BODY).catch((e) => ({ ok: false, problem: e.message }));
    checks[t.name] = { chat, stream };
    log(`  ${t.name.padEnd(11)} ${t.origin}${t.proc ? ` pid ${t.proc.pid}` : ''}; check: chat ${chat.ok ? 'ok' : `FAILED (${chat.problem})`}, stream ${stream.ok ? 'ok' : `FAILED (${stream.problem})`}`);
    if (!chat.ok || !stream.ok) throw new Error(`${t.name} answered wrongly; not measuring a fast wrong answer`);
  }

  const measured = new Map();
  for (let round = 1; round <= ROUNDS; round++) {
    // Alternate the order so that a drift of the machine over a round hits every target alike.
    const order = round % 2 === 1 ? targets : [...targets].reverse();
    for (const workload of WORKLOADS) {
      log(`\n${workload.id}${ROUNDS > 1 ? ` (round ${round}/${ROUNDS})` : ''}:`);
      for (const t of order) {
        if (t.proc?.exited) throw new Error(`${t.name} exited; last output:\n${t.proc.output()}`);
        const cell = await measureCell(t, mock, workload);
        const key = `${t.name}\u0000${workload.id}`;
        if (!measured.has(key)) measured.set(key, []);
        measured.get(key).push(cell);
        const p = problems(cell);
        log(
          `  ${t.name.padEnd(11)} ${grouped(cell.autocannon.rps)} req/s, p50 ${fixed(cell.autocannon.latencyMs.p50, 2)} ms, p99 ${fixed(cell.autocannon.latencyMs.p99, 2)} ms` +
            (cell.cpu.sluiceUsPerRequest !== null ? `, Sluice ${fixed(cell.cpu.sluiceUsPerRequest, 1)} µs/req` : '') +
            (p.length ? `, PROBLEMS ${p.join(', ')}` : ''),
        );
      }
    }
  }
  await stopAll();

  const cells = [];
  for (const t of targets) for (const w of WORKLOADS) cells.push(combineRounds(measured.get(`${t.name}\u0000${w.id}`)));
  const rs = ratios(cells);

  log(`\nResults — ${startedAt.toISOString()} — ${describeMachine(machine)}; ${DURATION_S} s per cell${ROUNDS > 1 ? `, median of ${ROUNDS} rounds` : ''}\n`);
  log(resultTable(cells));
  log(`\nScaling (N workers ÷ 1 worker, same workload):\n`);
  log(ratioTable(rs));
  const notes = [
    `Shared box: autocannon, the mock and Sluice share ${machine.cpuCount} cores. A second worker can only use CPU the load generator and the mock leave free, so the ratio here is a floor, not what 2 workers give on a machine of their own; compare "mock alone" (the ceiling of this box) with the Sluice rows.`,
    'Sluice CPU µs/req = utime+stime of the whole Sluice tree (supervisor + workers) over the measured window ÷ responses: the cost of a request, whoever else was busy. Sluice CPU % = that ÷ wall time (100 = one core).',
    'worker split % = each worker\'s share of the workers\' CPU: the kernel spreads connections over the SO_REUSEPORT listeners by hash, so 50 connections rarely split exactly evenly.',
    'mock CPU % and loadgen CPU % (this process: autocannon\'s worker thread) show where the rest of the cores went.',
  ];
  log(`\nNotes:\n${notes.map((n) => `  - ${n}`).join('\n')}`);

  const report = {
    bench: 'scaling',
    date: startedAt.toISOString(),
    machine: { ...machine, sluice: JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version },
    settings: {
      durationSeconds: DURATION_S,
      warmupSeconds: WARMUP_S,
      rounds: ROUNDS,
      workerCounts: WORKER_COUNTS,
      workloads: WORKLOADS,
      mock: { outputTokens: OUTPUT_TOKENS, chunkTokens: CHUNK_TOKENS },
      sharedMachine: true,
    },
    checks,
    cells,
    ratios: rs,
    notes,
  };
  const file = writeResult(RESULTS_DIR, 'scaling', startedAt, report);
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
