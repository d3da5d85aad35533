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
 * Environment: BENCH_DURATION (s, default 5), BENCH_WARMUP (s, default 1),
 *              BENCH_TARGETS (comma list, default all), BENCH_WORKLOADS (comma list of ids, default all).
 * Exit code: 0 when the bench ran (targets missed or peers unavailable included), 1 when it broke.
 */

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkChatCompletion, checkChatStream } from './lib/chat-check.mjs';
import { describeMachine, machineInfo } from './lib/machine.mjs';
import { ensureNginx, startNginx } from './lib/peers/nginx.mjs';
import { ensurePortkey, portkeyHeaders, startPortkey } from './lib/peers/portkey.mjs';
import { CpuMeter } from './lib/proc-cpu.mjs';
import { installCleanup, stopAll } from './lib/processes.mjs';
import { assertBuilt, REPO_ROOT, startMock, startSluice, upstreamConfigYaml } from './lib/sluice.mjs';
import { fixed, formatTable, grouped, signed } from './lib/table.mjs';
import { runWorker } from './lib/worker-run.mjs';

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));
const RESULTS_DIR = join(BENCH_DIR, 'results');
const PORTKEY_DIR = join(BENCH_DIR, '.peers', 'portkey');
const AUTOCANNON_WORKER = new URL('./lib/autocannon-worker.mjs', import.meta.url);
const SSE_WORKER = new URL('./lib/sse-worker.mjs', import.meta.url);

const DURATION_S = envSeconds('BENCH_DURATION', 5);
const WARMUP_S = envSeconds('BENCH_WARMUP', 1);

/** The mock answers every request with this many tokens, one token per stream chunk. */
const OUTPUT_TOKENS = 64;
const CHUNK_TOKENS = 1;

const CHAT_PATH = '/v1/chat/completions';

/** A small, realistic chat request (~300 bytes). */
const REQUEST = {
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: 'You are a concise assistant for an online bookshop. Answer in two sentences at most.' },
    {
      role: 'user',
      content: 'Is the paperback edition of "The Left Hand of Darkness" in stock, and how long does delivery to Lyon usually take?',
    },
  ],
  temperature: 0.2,
  max_tokens: 256,
};
const CHAT_BODY = JSON.stringify(REQUEST);
const STREAM_BODY = JSON.stringify({ ...REQUEST, stream: true });

const BASE_HEADERS = { 'content-type': 'application/json', authorization: 'Bearer x' };

const ALL_WORKLOADS = [
  { id: 'chat c=1', stream: false, connections: 1 },
  { id: 'chat c=10', stream: false, connections: 10 },
  { id: 'chat c=50', stream: false, connections: 50 },
  { id: 'stream c=10', stream: true, connections: 10 },
  { id: 'stream c=100', stream: true, connections: 100 },
];

/** The goals of the gateway issue: Sluice against the others. */
const GOALS = [
  { id: 'sluice_nginx_throughput_chat_c50', label: 'Sluice/nginx throughput, chat c=50', op: '>=', goal: 0.5, unit: 'x' },
  { id: 'sluice_portkey_throughput_chat_c50', label: 'Sluice/Portkey throughput, chat c=50', op: '>=', goal: 10, unit: 'x' },
  { id: 'sluice_added_p50_chat_c1_ms', label: 'Sluice added p50 latency, chat c=1', op: '<=', goal: 0.3, unit: 'ms' },
  { id: 'sluice_added_ttft_p50_stream_c10_ms', label: 'Sluice added TTFT p50, stream c=10', op: '<=', goal: 0.5, unit: 'ms' },
];

const log = (...args) => console.log(...args);

function envSeconds(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number of seconds ≥ 0, got "${raw}"`);
  return n;
}

function envList(name) {
  const raw = process.env[name];
  return raw ? raw.split(',').map((s) => s.trim()).filter(Boolean) : null;
}

// ---------------------------------------------------------------------------------------------
// Targets: each starts its server (if any) and says where to send requests.

/**
 * @typedef {{ origin: string, headers?: Record<string,string>, proc?: import('./lib/processes.mjs').ManagedProcess, version?: string }} Running
 * @typedef {{ name: string, start: (ctx: { mock: { origin: string, port: number }, tmp: string }) => Promise<Running> }} Target
 */

/** @type {Target[]} */
const TARGETS = [
  {
    name: 'direct',
    start: async ({ mock }) => ({ origin: mock.origin }),
  },
  {
    name: 'nginx',
    start: async ({ mock, tmp, notes }) => {
      const { bin, installed } = ensureNginx(log);
      if (installed) notes.push('nginx-light was installed by this run (apt-get).');
      return await startNginx({ bin, dir: join(tmp, 'nginx'), upstreamPort: mock.port });
    },
  },
  {
    name: 'sluice',
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
// One cell: a target under one workload.

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

function cellErrors(cell) {
  const a = cell.autocannon;
  const t = cell.ttft;
  return {
    non2xx: a.non2xx + (t?.non2xx ?? 0),
    errors: a.errors + (t?.errors ?? 0),
    timeouts: a.timeouts,
    incompleteStreams: t?.incomplete ?? 0,
    firstStreamError: t?.firstError ?? null,
  };
}

function progressLine(cell) {
  const a = cell.autocannon;
  const e = cellErrors(cell);
  const parts = [
    `${grouped(a.rps)} req/s`,
    `p50 ${fixed(a.latencyMs.p50, 3)} ms`,
    `p99 ${fixed(a.latencyMs.p99, 3)} ms`,
  ];
  if (cell.ttft) parts.push(`TTFT p50 ${fixed(cell.ttft.ttftMs.p50, 3)} ms`);
  if (cell.cpu.proxyUsPerRequest !== null) parts.push(`CPU ${fixed(cell.cpu.proxyUsPerRequest, 1)} µs/req`);
  const bad = e.non2xx + e.errors + e.timeouts + e.incompleteStreams;
  if (bad > 0) parts.push(`PROBLEMS non2xx=${e.non2xx} errors=${e.errors} timeouts=${e.timeouts} incomplete=${e.incompleteStreams}`);
  return `  ${cell.workload.padEnd(13)} ${parts.join(', ')}`;
}

// ---------------------------------------------------------------------------------------------
// Comparison and report.

/** Adds `added` (this target − direct, same workload) to every cell. */
function addDeltas(cells) {
  const direct = new Map(cells.filter((c) => c.target === 'direct').map((c) => [c.workload, c]));
  for (const cell of cells) {
    const base = direct.get(cell.workload);
    if (!base || cell.target === 'direct') {
      cell.added = null;
      continue;
    }
    const d = (a, b) => (Number.isFinite(a) && Number.isFinite(b) ? a - b : null);
    cell.added = {
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
    sluice_added_ttft_p50_stream_c10_ms: find('sluice', 'stream c=10')?.added?.ttftP50Ms ?? null,
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
  return goals.map((g) => `  ${g.label.padEnd(w)}  ${fmt(g).padStart(9)}  (${want(g)})  ${g.verdict}`).join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  installCleanup((sig) => log(`\n${sig}: stopping every process the bench started ...`));
  assertBuilt();

  const onlyTargets = envList('BENCH_TARGETS');
  const onlyWorkloads = envList('BENCH_WORKLOADS');
  const workloads = onlyWorkloads ? ALL_WORKLOADS.filter((w) => onlyWorkloads.includes(w.id)) : ALL_WORKLOADS;
  const targets = onlyTargets ? TARGETS.filter((t) => onlyTargets.includes(t.name)) : TARGETS;
  if (targets.length === 0 || workloads.length === 0) throw new Error('BENCH_TARGETS / BENCH_WORKLOADS selected nothing');
  if (!targets.some((t) => t.name === 'direct')) log('note: without the "direct" target there is no baseline for the added-latency columns');

  const startedAt = new Date();
  const machine = machineInfo();
  const notes = [];
  const tmp = mkdtempSync(join(os.tmpdir(), 'sluice-bench-'));
  process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

  log(`Sluice gateway bench — ${startedAt.toISOString()}`);
  log(`machine: ${describeMachine(machine)}`);
  log(
    `each cell: ${WARMUP_S} s warm-up (not measured) + ${DURATION_S} s measured; ` +
      `streams: ${OUTPUT_TOKENS} chunks of ${CHUNK_TOKENS} token; request body ${Buffer.byteLength(CHAT_BODY)} bytes`,
  );
  log(
    `note: the load generator (autocannon / the TTFT client, each in its own worker thread), the mock upstream ` +
      `and the proxy all share these ${machine.cpuCount} cores.\n`,
  );

  const mock = await startMock({ outputTokens: OUTPUT_TOKENS, chunkTokens: CHUNK_TOKENS });
  log(`mock upstream: ${mock.origin} (pid ${mock.proc.pid})`);

  const cells = [];
  const targetInfo = {};
  let sluiceBroke = false;
  for (const target of targets) {
    log(`\n== ${target.name}`);
    let running;
    try {
      running = { name: target.name, ...(await target.start({ mock, tmp, notes })) };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      targetInfo[target.name] = { status: 'unavailable', reason };
      log(`  ${target.name} is not part of this run: ${reason}`);
      if (target.name === 'sluice' || target.name === 'direct') sluiceBroke = true;
      continue;
    }
    const info = { status: 'ran', origin: running.origin, pid: running.proc?.pid ?? null, version: running.version ?? null };
    targetInfo[target.name] = info;
    log(`  ${running.origin}${running.proc ? ` (pid ${running.proc.pid})` : ''}${running.version ? `, version ${running.version}` : ''}`);
    try {
      const headers = { ...BASE_HEADERS, ...running.headers };
      info.correctness = {
        chat: await checkChatCompletion(running.origin, CHAT_PATH, headers, CHAT_BODY),
        stream: await checkChatStream(running.origin, CHAT_PATH, headers, STREAM_BODY),
      };
      const { chat, stream } = info.correctness;
      log(
        `  check: chat ${chat.ok ? 'ok' : `FAILED (${chat.problem})`}; ` +
          `stream ${stream.ok ? `ok (${stream.events} events, ${stream.contentEvents} with content)` : `FAILED (${stream.problem})`}`,
      );
      for (const workload of workloads) {
        const cell = await measureCell(running, mock, workload);
        cells.push(cell);
        log(progressLine(cell));
        if (running.proc?.exited) throw new Error(`${target.name} exited during the bench: ${running.proc.output()}`);
      }
    } catch (err) {
      info.status = 'failed';
      info.reason = err instanceof Error ? err.message : String(err);
      log(`  ${target.name} failed: ${info.reason}`);
      if (target.name === 'sluice' || target.name === 'direct') sluiceBroke = true;
    } finally {
      await running.proc?.stop();
    }
  }
  await mock.proc.stop();

  addDeltas(cells);
  const goals = evaluateGoals(cells);
  machine.nginx = targetInfo.nginx?.version ?? null;
  machine.portkey = targetInfo.portkey?.version ?? null;
  machine.sluice = sluiceVersion();

  log(`\nResults — ${startedAt.toISOString()} — ${describeMachine(machine)}`);
  log(`nginx ${machine.nginx ?? 'n/a'}, Portkey ${machine.portkey ?? 'n/a'}, Sluice ${machine.sluice}\n`);
  log(resultTable(cells));
  log(`\nGoals (Sluice, this run):\n${goalLines(goals)}`);
  const unavailable = Object.entries(targetInfo).filter(([, i]) => i.status !== 'ran');
  for (const [name, i] of unavailable) log(`\n${name}: ${i.status} — ${i.reason}`);
  const readingNotes = [
    'added (+) columns = target − direct at the same workload; at c=1 that is the per-request overhead, at higher c it also holds queueing.',
    'latency = whole response (autocannon, hrtime); TTFT = request sent → first body bytes with a `data:` line, measured by a separate undici pass after the autocannon pass (same c and duration).',
    'CPU µs/req = utime+stime of the proxy process tree (nginx: master + worker) over the measured autocannon window ÷ responses; CPU % = that CPU time ÷ wall time (100 = one core).',
    `the load generator, the mock and the proxy share ${machine.cpuCount} cores: absolute numbers are lower than on separate machines; compare rows, not with other hardware.`,
    ...notes,
  ];
  log(`\nNotes:\n${readingNotes.map((n) => `  - ${n}`).join('\n')}`);

  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `gateway-${startedAt.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`);
  const report = {
    bench: 'gateway',
    date: startedAt.toISOString(),
    machine,
    settings: {
      durationSeconds: DURATION_S,
      warmupSeconds: WARMUP_S,
      mock: { outputTokens: OUTPUT_TOKENS, chunkTokens: CHUNK_TOKENS },
      requestBytes: Buffer.byteLength(CHAT_BODY),
      request: REQUEST,
      workloads,
      ttftMethod: 'separate undici pass after the autocannon pass',
      sharedMachine: true,
    },
    targets: targetInfo,
    cells,
    goals,
    notes: readingNotes,
  };
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  log(`\nJSON: ${file}`);
  if (sluiceBroke) {
    log('\nThe bench could not measure Sluice (or the direct baseline): see above.');
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
