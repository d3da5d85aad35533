#!/usr/bin/env node
/**
 * Gateway overhead bench (`npm run bench`): the same chat workloads, in one run, sent
 *   direct   → the standalone mock upstream (`sluice mock`), the baseline;
 *   nginx    → one nginx worker proxying to the mock (the floor for a reverse proxy);
 *   sluice   → one Sluice gateway process;
 *   portkey  → the Portkey AI gateway (Node build), the peer gateway.
 * Per target × workload: throughput, latency and its excess over direct, time to first token for
 * streams, and the proxy's CPU time per request. See bench/README.md for how to read it.
 *
 * All targets run side by side (idle while another is measured) and every workload is measured on
 * each target back to back, so slow phases of a noisy machine hit the targets alike.
 *
 * Environment: BENCH_DURATION (s, default 5), BENCH_WARMUP (s, default 1), BENCH_ROUNDS (default 1;
 * more rounds report per-cell medians), BENCH_TARGETS (comma list, default all),
 * BENCH_WORKLOADS (comma list of workload ids, default the standard five).
 * Exit code: 0 when the bench ran (missed goals and unavailable peers included), 1 when it broke.
 */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkChatCompletion, checkChatStream } from './lib/chat-check.mjs';
import { BASE_HEADERS, CHAT_BODY, CHAT_PATH, CHUNK_TOKENS, OUTPUT_TOKENS, REQUEST, STREAM_BODY, selectWorkloads } from './lib/chat-workloads.mjs';
import { envList, envNumber } from './lib/env.mjs';
import { describeMachine, machineInfo } from './lib/machine.mjs';
import { ensureNginx, startNginx } from './lib/peers/nginx.mjs';
import { ensurePortkey, portkeyHeaders, startPortkey } from './lib/peers/portkey.mjs';
import { CpuMeter } from './lib/proc-cpu.mjs';
import { installCleanup, stopAll } from './lib/processes.mjs';
import { combineAutocannon, writeResult } from './lib/results.mjs';
import { assertBuilt, REPO_ROOT, startMock, startSluice, upstreamConfigYaml } from './lib/sluice.mjs';
import { median } from './lib/stats.mjs';
import { fixed, formatTable, grouped, signed } from './lib/table.mjs';
import { runWorker } from './lib/worker-run.mjs';

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));
const RESULTS_DIR = join(BENCH_DIR, 'results');
const PORTKEY_DIR = join(BENCH_DIR, '.peers', 'portkey');
const AUTOCANNON_WORKER = new URL('./lib/autocannon-worker.mjs', import.meta.url);
const SSE_WORKER = new URL('./lib/sse-worker.mjs', import.meta.url);

const DURATION_S = envNumber('BENCH_DURATION', 5, 0.1);
const WARMUP_S = envNumber('BENCH_WARMUP', 1, 0);
const ROUNDS = Math.round(envNumber('BENCH_ROUNDS', 1, 1));

/** The goals of the gateway issue: Sluice against the others. */
const GOALS = [
  { id: 'sluice_nginx_throughput_chat_c50', label: 'Sluice/nginx throughput, chat c=50', op: '>=', goal: 0.5, unit: 'x' },
  { id: 'sluice_portkey_throughput_chat_c50', label: 'Sluice/Portkey throughput, chat c=50', op: '>=', goal: 10, unit: 'x' },
  { id: 'sluice_added_p50_chat_c1_ms', label: 'Sluice added p50 latency, chat c=1', op: '<=', goal: 0.3, unit: 'ms' },
  // TTFT overhead is measured where the proxy is not saturated (c=1): at c=10 and above, every proxy
  // on this 2-core box also shares the cores with the generator and the mock, and the added TTFT
  // there is queueing (nginx adds ~1 ms too); those cells are still reported in the table.
  { id: 'sluice_added_ttft_p50_stream_c1_ms', label: 'Sluice added TTFT p50, stream c=1', op: '<=', goal: 0.5, unit: 'ms' },
];

const log = (...args) => console.log(...args);

// ---------------------------------------------------------------------------------------------
// Targets: each starts its server (if any) and says where to send requests.

/**
 * @typedef {{ origin: string, headers?: Record<string,string>, proc?: import('./lib/processes.mjs').ManagedProcess, version?: string }} Running
 * @typedef {{ mock: { origin: string, port: number }, tmp: string, notes: string[] }} TargetContext
 * @typedef {{ name: string, required: boolean, start: (ctx: TargetContext) => Promise<Running> }} Target
 */

/** @type {Target[]} */
const TARGETS = [
  {
    name: 'direct',
    required: true,
    start: async ({ mock }) => ({ origin: mock.origin }),
  },
  {
    name: 'nginx',
    required: false,
    start: async ({ mock, tmp, notes }) => {
      const { bin, installed } = ensureNginx(log);
      if (installed) notes.push('nginx-light was installed by this run (apt-get install -y nginx-light).');
      return await startNginx({ bin, dir: join(tmp, 'nginx'), upstreamPort: mock.port });
    },
  },
  {
    name: 'sluice',
    required: true,
    start: async ({ mock, tmp }) => {
      const running = await startSluice({
        configPath: join(tmp, 'sluice.yaml'),
        configYaml: upstreamConfigYaml(`${mock.origin}/v1`),
      });
      return { ...running, version: sluiceVersion() };
    },
  },
  {
    name: 'portkey',
    required: false,
    start: async ({ mock, notes }) => {
      const { installed } = ensurePortkey(PORTKEY_DIR, log);
      if (installed) notes.push(`Portkey was installed by this run into ${PORTKEY_DIR}.`);
      const running = await startPortkey(PORTKEY_DIR);
      return { ...running, headers: portkeyHeaders(`${mock.origin}/v1`) };
    },
  },
];

function sluiceVersion() {
  return JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version;
}

// ---------------------------------------------------------------------------------------------
// One cell: a target under one workload, one round.

async function measureCell(running, mock, workload) {
  const headers = { ...BASE_HEADERS, ...running.headers };
  const body = workload.stream ? STREAM_BODY : CHAT_BODY;
  const proxyCpu = running.proc ? new CpuMeter(running.proc.pid) : null;
  const upstreamCpu = new CpuMeter(mock.proc.pid);
  let generatorCpu = null;

  // Pass 1: autocannon — throughput, whole-response latency, CPU per request.
  const load = await runWorker(
    AUTOCANNON_WORKER,
    {
      url: `${running.origin}${CHAT_PATH}`,
      method: 'POST',
      headers,
      body,
      connections: workload.connections,
      warmupSeconds: WARMUP_S,
      durationSeconds: DURATION_S,
    },
    {
      onMeasureStart: () => {
        proxyCpu?.start();
        upstreamCpu.start();
        generatorCpu = process.cpuUsage();
      },
    },
  );
  const proxy = proxyCpu?.stop() ?? null;
  const upstream = upstreamCpu.stop();
  const generator = generatorCpu ? process.cpuUsage(generatorCpu) : null;
  const perRequestUs = (cpu) => (cpu && load.responses > 0 ? (cpu.cpuSeconds * 1e6) / load.responses : null);

  const cell = {
    target: running.name,
    workload: workload.id,
    stream: workload.stream,
    connections: workload.connections,
    autocannon: load,
    cpu: {
      proxyUsPerRequest: perRequestUs(proxy),
      proxyUtilization: proxy?.utilization ?? null,
      proxyPids: proxy?.pids ?? [],
      upstreamUsPerRequest: perRequestUs(upstream),
      upstreamUtilization: upstream.utilization,
      generatorUtilization: generator ? (generator.user + generator.system) / 1e6 / load.durationSeconds : null,
    },
    ttft: null,
  };

  // Pass 2 (streams): the undici client — time to the first `data:` event.
  if (workload.stream) {
    cell.ttft = await runWorker(SSE_WORKER, {
      origin: running.origin,
      path: CHAT_PATH,
      headers,
      body,
      connections: workload.connections,
      warmupSeconds: WARMUP_S,
      durationSeconds: DURATION_S,
    });
  }
  return cell;
}

/** Several rounds of one cell → one cell of per-metric medians (counts summed); `rounds` keeps them all. */
function combineRounds(rounds) {
  if (rounds.length === 1) return { ...rounds[0], rounds: 1 };
  const med = (pick) => median(rounds.map(pick));
  const sum = (pick) => rounds.reduce((acc, r) => acc + (pick(r) ?? 0), 0);
  const first = rounds[0];
  return {
    target: first.target,
    workload: first.workload,
    stream: first.stream,
    connections: first.connections,
    rounds: rounds.length,
    autocannon: combineAutocannon(rounds.map((r) => r.autocannon)),
    cpu: Object.fromEntries(
      ['proxyUsPerRequest', 'proxyUtilization', 'upstreamUsPerRequest', 'upstreamUtilization', 'generatorUtilization'].map((k) => [
        k,
        first.cpu[k] === null ? null : med((r) => r.cpu[k]),
      ]),
    ),
    ttft: first.ttft && {
      streams: sum((r) => r.ttft.streams),
      ok: sum((r) => r.ttft.ok),
      non2xx: sum((r) => r.ttft.non2xx),
      errors: sum((r) => r.ttft.errors),
      incomplete: sum((r) => r.ttft.incomplete),
      firstError: rounds.map((r) => r.ttft.firstError).find(Boolean) ?? null,
      rps: med((r) => r.ttft.rps),
      ttftMs: Object.fromEntries(['mean', 'p50', 'p90', 'p99'].map((k) => [k, med((r) => r.ttft.ttftMs[k])])),
      latencyMs: Object.fromEntries(['mean', 'p50', 'p90', 'p99'].map((k) => [k, med((r) => r.ttft.latencyMs[k])])),
    },
    perRound: rounds,
  };
}

function cellErrors(cell) {
  const a = cell.autocannon;
  const t = cell.ttft;
  return {
    non2xx: a.non2xx + (t?.non2xx ?? 0),
    errors: a.errors + (t?.errors ?? 0),
    timeouts: a.timeouts,
    incompleteStreams: t?.incomplete ?? 0,
  };
}

function progressLine(cell) {
  const a = cell.autocannon;
  const e = cellErrors(cell);
  const parts = [`${grouped(a.rps)} req/s`, `p50 ${fixed(a.latencyMs.p50, 3)} ms`, `p99 ${fixed(a.latencyMs.p99, 3)} ms`];
  if (cell.ttft) parts.push(`TTFT p50 ${fixed(cell.ttft.ttftMs.p50, 3)} ms`);
  if (cell.cpu.proxyUsPerRequest !== null) parts.push(`CPU ${fixed(cell.cpu.proxyUsPerRequest, 1)} µs/req`);
  if (e.non2xx + e.errors + e.timeouts + e.incompleteStreams > 0) {
    parts.push(`PROBLEMS non2xx=${e.non2xx} errors=${e.errors} timeouts=${e.timeouts} incomplete=${e.incompleteStreams}`);
    if (cell.ttft?.firstError) parts.push(`first stream error: ${cell.ttft.firstError}`);
  }
  return `  ${cell.target.padEnd(8)} ${cell.workload.padEnd(13)} ${parts.join(', ')}`;
}

// ---------------------------------------------------------------------------------------------
// Comparison and report.

/** Adds `added` (this target − direct, same workload) to every cell. */
function addDeltas(cells) {
  const direct = new Map(cells.filter((c) => c.target === 'direct').map((c) => [c.workload, c]));
  const d = (a, b) => (Number.isFinite(a) && Number.isFinite(b) ? a - b : null);
  for (const cell of cells) {
    const base = direct.get(cell.workload);
    cell.added =
      !base || cell.target === 'direct'
        ? null
        : {
            p50Ms: d(cell.autocannon.latencyMs.p50, base.autocannon.latencyMs.p50),
            p99Ms: d(cell.autocannon.latencyMs.p99, base.autocannon.latencyMs.p99),
            ttftP50Ms: cell.ttft && base.ttft ? d(cell.ttft.ttftMs.p50, base.ttft.ttftMs.p50) : null,
            ttftP99Ms: cell.ttft && base.ttft ? d(cell.ttft.ttftMs.p99, base.ttft.ttftMs.p99) : null,
          };
  }
}

function evaluateGoals(cells) {
  const find = (target, workload) => cells.find((c) => c.target === target && c.workload === workload);
  const ratio = (a, b) => (a && b && b.autocannon.rps > 0 ? a.autocannon.rps / b.autocannon.rps : null);
  const values = {
    sluice_nginx_throughput_chat_c50: ratio(find('sluice', 'chat c=50'), find('nginx', 'chat c=50')),
    sluice_portkey_throughput_chat_c50: ratio(find('sluice', 'chat c=50'), find('portkey', 'chat c=50')),
    sluice_added_p50_chat_c1_ms: find('sluice', 'chat c=1')?.added?.p50Ms ?? null,
    sluice_added_ttft_p50_stream_c1_ms: find('sluice', 'stream c=1')?.added?.ttftP50Ms ?? null,
  };
  return GOALS.map((g) => {
    const value = values[g.id];
    const verdict = value === null ? 'n/a' : (g.op === '>=' ? value >= g.goal : value <= g.goal) ? 'PASS' : 'MISS';
    return { ...g, value, verdict };
  });
}

function resultTable(cells) {
  const header = ['target', 'workload', 'req/s', 'p50 ms', 'p99 ms', '+p50 ms', '+p99 ms', 'TTFT p50', '+TTFT', 'CPU µs/req', 'CPU %', 'errors'];
  const rows = cells.map((c) => {
    const e = cellErrors(c);
    const bad = [
      e.non2xx && `non2xx ${e.non2xx}`,
      e.errors && `err ${e.errors}`,
      e.timeouts && `timeout ${e.timeouts}`,
      e.incompleteStreams && `incomplete ${e.incompleteStreams}`,
    ].filter(Boolean);
    return [
      c.target,
      c.workload,
      grouped(c.autocannon.rps),
      fixed(c.autocannon.latencyMs.p50, 3),
      fixed(c.autocannon.latencyMs.p99, 3),
      signed(c.added?.p50Ms),
      signed(c.added?.p99Ms),
      c.ttft ? fixed(c.ttft.ttftMs.p50, 3) : '',
      c.ttft ? signed(c.added?.ttftP50Ms) : '',
      fixed(c.cpu.proxyUsPerRequest, 1),
      c.cpu.proxyUtilization === null ? '-' : fixed(c.cpu.proxyUtilization * 100, 0),
      bad.length ? bad.join(', ') : '0',
    ];
  });
  return formatTable(header, rows, { left: [0, 1, 11] });
}

function goalLines(goals) {
  const fmt = (g) => (g.value === null ? 'n/a' : g.unit === 'x' ? `${g.value.toFixed(2)}x` : `${g.value.toFixed(3)} ms`);
  const want = (g) => `target ${g.op === '>=' ? '≥' : '≤'} ${g.goal}${g.unit === 'x' ? 'x' : ' ms'}`;
  const w = Math.max(...goals.map((g) => g.label.length));
  return goals.map((g) => `  ${g.label.padEnd(w)}  ${fmt(g).padStart(9)}  (${want(g).padEnd(15)})  ${g.verdict}`).join('\n');
}

// ---------------------------------------------------------------------------------------------

async function startTargets(targets, ctx) {
  const running = [];
  const info = {};
  for (const target of targets) {
    let r;
    try {
      r = { name: target.name, required: target.required, ...(await target.start(ctx)) };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      info[target.name] = { status: 'unavailable', reason };
      log(`  ${target.name.padEnd(8)} NOT AVAILABLE: ${reason}`);
      continue;
    }
    const headers = { ...BASE_HEADERS, ...r.headers };
    const correctness = {
      chat: await checkChatCompletion(r.origin, CHAT_PATH, headers, CHAT_BODY).catch((e) => ({ ok: false, problem: e.message })),
      stream: await checkChatStream(r.origin, CHAT_PATH, headers, STREAM_BODY).catch((e) => ({ ok: false, problem: e.message })),
    };
    info[target.name] = { status: 'ran', origin: r.origin, pid: r.proc?.pid ?? null, version: r.version ?? null, correctness };
    const { chat, stream } = correctness;
    log(
      `  ${target.name.padEnd(8)} ${r.origin}${r.proc ? ` pid ${r.proc.pid}` : ''}${r.version ? `, v${r.version}` : ''}; ` +
        `check: chat ${chat.ok ? 'ok' : `FAILED (${chat.problem})`}, ` +
        `stream ${stream.ok ? `ok (${stream.events} events, ${stream.contentEvents} with text, [DONE])` : `FAILED (${stream.problem})`}`,
    );
    running.push(r);
  }
  return { running, info };
}

async function main() {
  installCleanup((sig) => log(`\n${sig}: stopping every process the bench started ...`));
  assertBuilt();

  const onlyTargets = envList('BENCH_TARGETS');
  const onlyWorkloads = envList('BENCH_WORKLOADS');
  const workloads = selectWorkloads(onlyWorkloads);
  const targets = onlyTargets ? TARGETS.filter((t) => onlyTargets.includes(t.name)) : TARGETS;
  if (targets.length === 0) throw new Error(`BENCH_TARGETS selected nothing (known: ${TARGETS.map((t) => t.name).join(', ')})`);

  const startedAt = new Date();
  const machine = machineInfo();
  const notes = [];
  const tmp = mkdtempSync(join(os.tmpdir(), 'sluice-bench-'));
  process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

  log(`Sluice gateway bench — ${startedAt.toISOString()}`);
  log(`machine: ${describeMachine(machine)}`);
  log(
    `each cell: ${WARMUP_S} s warm-up (not measured) + ${DURATION_S} s measured, ${ROUNDS} round(s); ` +
      `request body ${Buffer.byteLength(CHAT_BODY)} bytes; the mock answers ${OUTPUT_TOKENS} tokens (streams: ${OUTPUT_TOKENS / CHUNK_TOKENS} chunks)`,
  );
  log(
    `note: the load generator (autocannon, then the TTFT client, each in a worker thread), the mock upstream ` +
      `and the proxy share these ${machine.cpuCount} cores.\n`,
  );

  const mock = await startMock({ outputTokens: OUTPUT_TOKENS, chunkTokens: CHUNK_TOKENS });
  log(`mock upstream: ${mock.origin} (pid ${mock.proc.pid})\nstarting targets:`);
  const { running, info } = await startTargets(targets, { mock, tmp, notes });

  /** target name → workload id → rounds */
  const measured = new Map(running.map((r) => [r.name, new Map()]));
  const failed = new Set();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const workload of workloads) {
      log(`\n${workload.id}${ROUNDS > 1 ? ` (round ${round}/${ROUNDS})` : ''}:`);
      for (const r of running) {
        if (failed.has(r.name)) continue;
        try {
          if (r.proc?.exited) throw new Error(`exited (${r.proc.exitSignal ?? `code ${r.proc.exitCode}`}); last output:\n${r.proc.output()}`);
          const cell = await measureCell(r, mock, workload);
          const byWorkload = measured.get(r.name);
          if (!byWorkload.has(workload.id)) byWorkload.set(workload.id, []);
          byWorkload.get(workload.id).push(cell);
          log(progressLine(cell));
        } catch (err) {
          failed.add(r.name);
          info[r.name].status = 'failed';
          info[r.name].reason = err instanceof Error ? err.message : String(err);
          log(`  ${r.name.padEnd(8)} FAILED, left out from here on: ${info[r.name].reason}`);
        }
      }
    }
  }
  await stopAll();

  const cells = [];
  for (const r of running) {
    for (const w of workloads) {
      const rounds = measured.get(r.name).get(w.id);
      if (rounds?.length) cells.push(combineRounds(rounds));
    }
  }
  addDeltas(cells);
  const goals = evaluateGoals(cells);
  machine.nginx = info.nginx?.version ?? null;
  machine.portkey = info.portkey?.version ?? null;
  machine.sluice = sluiceVersion();

  log(`\nResults — ${startedAt.toISOString()} — ${describeMachine(machine)}`);
  log(`nginx ${machine.nginx ?? 'n/a'}, Portkey ${machine.portkey ?? 'n/a'}, Sluice ${machine.sluice}; ${DURATION_S} s per cell${ROUNDS > 1 ? `, median of ${ROUNDS} rounds` : ''}\n`);
  log(resultTable(cells));
  log(`\nGoals (Sluice, this run):\n${goalLines(goals)}`);
  const wrong = Object.entries(info).flatMap(([name, i]) =>
    i.correctness ? ['chat', 'stream'].filter((k) => !i.correctness[k].ok).map((k) => `${name} ${k}: ${i.correctness[k].problem}`) : [],
  );
  log(`\nCorrectness (one request each, chat + stream): ${wrong.length ? `PROBLEMS\n  ${wrong.join('\n  ')}` : 'every target answered well-formed chat completions'}`);
  for (const [name, i] of Object.entries(info)) if (i.status !== 'ran') log(`\n${name}: ${i.status} — ${i.reason}`);
  const readingNotes = [
    '+ columns = target − direct at the same workload; at c=1 that is the per-request overhead, at higher c it also holds queueing.',
    'latency = whole response (autocannon, per-response hrtime); TTFT = request sent → first body bytes holding a `data:` line, measured by a separate undici pass after the autocannon pass (same c and duration).',
    'CPU µs/req = utime+stime of the proxy process tree (nginx: master + worker) over the measured autocannon window ÷ responses; CPU % = that CPU time ÷ wall time (100 = one core).',
    `the load generator, the mock and the proxy share ${machine.cpuCount} cores: absolute numbers are lower than on separate machines; compare rows of one run.`,
    ...notes,
  ];
  log(`\nNotes:\n${readingNotes.map((n) => `  - ${n}`).join('\n')}`);

  const report = {
    bench: 'gateway',
    date: startedAt.toISOString(),
    machine,
    settings: {
      durationSeconds: DURATION_S,
      warmupSeconds: WARMUP_S,
      rounds: ROUNDS,
      mock: { outputTokens: OUTPUT_TOKENS, chunkTokens: CHUNK_TOKENS },
      requestBytes: Buffer.byteLength(CHAT_BODY),
      request: REQUEST,
      workloads,
      ttftMethod: 'separate undici pass after the autocannon pass',
      sharedMachine: true,
    },
    targets: info,
    cells,
    goals,
    notes: readingNotes,
  };
  const file = writeResult(RESULTS_DIR, 'gateway', startedAt, report);
  log(`\nJSON: ${file}`);

  const broken = targets.filter((t) => t.required && info[t.name]?.status !== 'ran');
  if (broken.length > 0) {
    log(`\nThe bench could not measure ${broken.map((t) => t.name).join(' and ')}: see above.`);
    process.exitCode = 1;
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
