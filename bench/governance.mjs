#!/usr/bin/env node
/**
 * What authentication and limits cost per request (`npm run bench:governance`): one-worker Sluice
 * gateways on the same mock upstream, differing only in governance:
 *   baseline  no consumers (neither auth nor limits in the filter chain)
 *   auth      one consumer with a key hash; clients send `Authorization: Bearer KEY`
 *   local     the consumer with rpm/tpm/concurrent limits and a daily token quota, all far above the
 *             load (nothing is refused), `limiter: { backend: local }` (shared memory)
 *   redis     the same limits with `limiter: { backend: redis }` on a private redis-server
 * Every client sends the same headers, the key included, so the requests are byte for byte alike.
 *
 * Three phases, all in one run:
 *   0. filters alone: the filter chain of each config (no Redis) run in this process without a
 *      server (lib/governance-filters.mjs): the cost of auth and limits at CPU-time precision,
 *      free of the process-to-process noise of the gateway phases;
 *   1. closed loop: each gateway alone under autocannon, non-streamed chat at c=50 and c=1, 1 s
 *      warm-up + BENCH_DURATION s, BENCH_ROUNDS rounds with the gateway order reversed every other
 *      round (throughput, latency, CPU per request at saturation and at one request at a time);
 *   2. fixed rate: every gateway at once (and a second baseline, whose difference from the first is
 *      the noise floor of the method), each at BENCH_RATE req/s, BENCH_RATE_ROUNDS rounds: the same
 *      request rate for all, so CPU per request differs only by what each config does per request.
 *      Its gateway verdict is INCONCLUSIVE when the noise floor exceeds the 5 µs target (two
 *      identical gateway processes differ by tens of µs on a shared 2-core box); phase 0 then decides.
 * CPU is the gateway's process tree (supervisor + worker), from /proc/…/schedstat (ns). For redis:
 * script calls, all commands, read events (≈ network round trips: one per batch a client sends) and
 * CPU of the Redis server, per request.
 *
 * Environment: BENCH_DURATION (s, default 5), BENCH_WARMUP (s, default 1), BENCH_ROUNDS (closed-loop
 * rounds, default 2), BENCH_RATE_ROUNDS (default 4, 0 skips the phase), BENCH_RATE (req/s per gateway,
 * default 600), BENCH_RATE_CONNECTIONS (default 10), BENCH_CONFIGS (comma list of
 * baseline,auth,local,redis; baseline is always included), BENCH_HOST_ONLY (0 skips phase 0),
 * BENCH_REDIS_URL (use this Redis instead of starting one; its keys under the run's prefix are deleted after, and its CPU comes from INFO only).
 * Exit code: 0 when the bench ran (missed targets included), 1 when it broke.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { checkChatCompletion } from './lib/chat-check.mjs';
import { CHAT_BODY, CHAT_PATH, CHUNK_TOKENS, OUTPUT_TOKENS } from './lib/chat-workloads.mjs';
import { envList, envNumber } from './lib/env.mjs';
import { filterRunners, measureRunners } from './lib/governance-filters.mjs';
import { describeMachine, machineInfo } from './lib/machine.mjs';
import { installCleanup, stopAll } from './lib/processes.mjs';
import { RedisCounters, redisServerVersion, startRedisServer } from './lib/redis.mjs';
import { combineAutocannon, writeResult } from './lib/results.mjs';
import { SchedMeter } from './lib/sched-cpu.mjs';
import { assertBuilt, REPO_ROOT, startMock, startSluice, upstreamConfigYaml } from './lib/sluice.mjs';
import { median } from './lib/stats.mjs';
import { fixed, formatTable, grouped, signed } from './lib/table.mjs';
import { runWorker } from './lib/worker-run.mjs';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const CLOSED_WORKER = new URL('./lib/autocannon-worker.mjs', import.meta.url);
const RATE_WORKER = new URL('./lib/autocannon-rate-worker.mjs', import.meta.url);

const DURATION_S = envNumber('BENCH_DURATION', 5, 0.1);
const WARMUP_S = envNumber('BENCH_WARMUP', 1, 0);
const ROUNDS = Math.round(envNumber('BENCH_ROUNDS', 2, 1));
const RATE_ROUNDS = Math.round(envNumber('BENCH_RATE_ROUNDS', 4, 0));
const RATE = Math.round(envNumber('BENCH_RATE', 600, 1));
const RATE_CONNECTIONS = Math.round(envNumber('BENCH_RATE_CONNECTIONS', 10, 1));
const EXTERNAL_REDIS = process.env.BENCH_REDIS_URL || null;
const HOST_ONLY = envNumber('BENCH_HOST_ONLY', 1, 0) !== 0;
const HOST_REQUESTS = 20_000;
const HOST_REPS = 7;
const ALL_CONFIGS = ['baseline', 'auth', 'local', 'redis'];
const CONFIGS = (() => {
  const asked = envList('BENCH_CONFIGS') ?? ALL_CONFIGS;
  for (const c of asked) if (!ALL_CONFIGS.includes(c)) throw new Error(`BENCH_CONFIGS: unknown config "${c}" (known: ${ALL_CONFIGS.join(', ')})`);
  return ALL_CONFIGS.filter((c) => c === 'baseline' || asked.includes(c));
})();
const WORKLOADS = [
  { id: 'chat c=50', connections: 50 },
  { id: 'chat c=1', connections: 1 },
];

/** Targets of the issue. */
const LIMITS_GOAL_US = 5;
const REDIS_GOAL_ROUND_TRIPS = 1;

const LABELS = {
  baseline: '(1) baseline',
  'baseline-b': '(1b) baseline again',
  auth: '(2) auth',
  local: '(3) auth + local limits',
  redis: '(4) auth + Redis limits',
};

const log = (...args) => console.log(...args);

/** What the final cleanup must undo whatever way the run ends: the Redis reader and the run's keys. */
const redisState = { counters: null, prefix: null, keysDeleted: false };

// ---------------------------------------------------------------------------------------------
// Configs.

const CONSUMER = 'bench';
const LIMITS = `    limits: { rpm: 1000000000, tpm: 1000000000, concurrent: 100000 }
    quotas: [{ period: day, tokens: 1000000000000 }]
`;

async function newKey() {
  const keys = await import(pathToFileURL(join(REPO_ROOT, 'dist', 'src', 'governance', 'keys.js')).href);
  const key = keys.generateKey();
  return { key, hash: keys.hashKey(key) };
}

function configYaml(name, { upstream, hash, redisUrl, redisPrefix }) {
  let yaml = upstreamConfigYaml(upstream);
  if (name === 'baseline' || name === 'baseline-b') return yaml;
  yaml += `consumers:\n  - name: ${CONSUMER}\n    keys: ["${hash}"]\n`;
  if (name === 'auth') return yaml;
  yaml += LIMITS;
  if (name === 'local') return `${yaml}limiter: { backend: local }\n`;
  return `${yaml}limiter: { backend: redis }\nredis: { url: "${redisUrl}", key_prefix: "${redisPrefix}" }\n`;
}

/**
 * Proof that each gateway does what its name says: the keyed request answers 200; a wrong key is
 * refused where auth runs and passes where it does not; rate-limit headers come back where limits run.
 */
async function checkGateway(name, origin, headers) {
  const ok = await checkChatCompletion(origin, CHAT_PATH, headers, CHAT_BODY);
  if (!ok.ok) throw new Error(`${name}: the keyed request failed: ${ok.problem}`);
  const keyed = await fetch(`${origin}${CHAT_PATH}`, { method: 'POST', headers, body: CHAT_BODY });
  await keyed.arrayBuffer();
  const limited = keyed.headers.get('x-ratelimit-limit-requests') !== null;
  const wrong = await fetch(`${origin}${CHAT_PATH}`, { method: 'POST', headers: { ...headers, authorization: 'Bearer sk-sluice-not-a-key' }, body: CHAT_BODY });
  await wrong.arrayBuffer();
  const wantAuth = !name.startsWith('baseline');
  const wantLimits = name === 'local' || name === 'redis';
  if (wantAuth !== (wrong.status === 401)) throw new Error(`${name}: a wrong key got ${wrong.status} (auth ${wantAuth ? 'expected' : 'not expected'})`);
  if (wantLimits !== limited) throw new Error(`${name}: rate-limit headers ${limited ? 'present' : 'absent'} (limits ${wantLimits ? 'expected' : 'not expected'})`);
  return { keyedStatus: ok.status, wrongKeyStatus: wrong.status, rateLimitHeaders: limited };
}

/** The limiter's Redis fault counters of a gateway (admin /metrics); null when unreadable. */
async function limiterFaults(adminOrigin) {
  try {
    const text = await (await fetch(`${adminOrigin}/metrics`)).text();
    const value = (name) => {
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      return m ? Number(m[1]) : null;
    };
    return {
      redisUp: value('sluice_limiter_redis_up'),
      redisErrors: value('sluice_limiter_redis_errors_total'),
      failOpen: value('sluice_limiter_fail_open_total'),
      failClosed: value('sluice_limiter_fail_closed_total'),
    };
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Measuring.

/**
 * One load on one gateway: the gateway's CPU, and for the Redis gateway what Redis did, over the
 * measured window of the load.
 */
async function measure(gw, ctx, { worker, connections, rate }) {
  const gatewayCpu = new SchedMeter(gw.proc.pid);
  const withRedis = gw.name === 'redis';
  const redisCpu = withRedis && ctx.redis.proc ? new SchedMeter(ctx.redis.proc.pid) : null;
  let redisBefore = null;
  const load = await runWorker(
    worker,
    { url: `${gw.origin}${CHAT_PATH}`, method: 'POST', headers: ctx.headers, body: CHAT_BODY, connections, rate, warmupSeconds: WARMUP_S, durationSeconds: DURATION_S },
    {
      onMeasureStart: () => {
        gatewayCpu.start();
        redisCpu?.start();
        if (withRedis) redisBefore = ctx.counters.snapshot();
      },
    },
  );
  const cpu = gatewayCpu.stop();
  const rcpu = redisCpu?.stop() ?? null;
  const n = load.responses;
  const perRequest = (seconds) => (n > 0 && Number.isFinite(seconds) ? (seconds * 1e6) / n : null);
  const cell = {
    gateway: gw.name,
    autocannon: load,
    problems: load.non2xx + load.errors + load.timeouts + (load.resets ?? 0),
    cpu: {
      usPerRequest: perRequest(cpu.cpuSeconds),
      utilization: cpu.utilization,
      perProcess: cpu.perProcess.map((p) => ({ pid: p.pid, role: p.pid === gw.proc.pid ? 'supervisor' : 'worker', usPerRequest: perRequest(p.cpuSeconds) })),
    },
    redis: null,
  };
  if (withRedis) {
    const d = RedisCounters.delta(await redisBefore, await ctx.counters.snapshot());
    cell.redis = {
      scriptCallsPerRequest: n > 0 ? d.scriptCalls / n : null,
      commandsPerRequest: n > 0 ? d.allCommands / n : null,
      readsPerRequest: n > 0 ? d.reads / n : null,
      scriptUsPerRequest: n > 0 ? d.scriptUsec / n : null,
      // The server's own CPU: from /proc when it is our child (ns), else from INFO (ms resolution).
      cpuUsPerRequest: perRequest(rcpu ? rcpu.cpuSeconds : d.cpuSeconds),
      cpuSource: rcpu ? 'schedstat' : 'INFO cpu',
      infoCpuUsPerRequest: perRequest(d.cpuSeconds),
      raw: d,
    };
  }
  return cell;
}

function progress(cell, label) {
  const a = cell.autocannon;
  const parts = [`${grouped(a.rps)} req/s`, `p50 ${fixed(a.latencyMs.p50, 3)} ms`, `p99 ${fixed(a.latencyMs.p99, 3)} ms`, `CPU ${fixed(cell.cpu.usPerRequest, 1)} µs/req`];
  if (cell.redis) {
    parts.push(
      `Redis ${fixed(cell.redis.scriptCallsPerRequest, 2)} script calls, ${fixed(cell.redis.readsPerRequest, 2)} reads, ${fixed(cell.redis.cpuUsPerRequest, 1)} µs CPU per req`,
    );
  }
  if (cell.problems > 0) parts.push(`PROBLEMS non2xx=${a.non2xx} errors=${a.errors} timeouts=${a.timeouts} resets=${a.resets ?? 0}`);
  return `  ${label.padEnd(28)} ${parts.join(', ')}`;
}

/** Per-round differences of `pick` between two configs → their median (and the rounds). */
function addedOver(rounds, config, base, pick) {
  const diffs = rounds
    .map((r) => (r[config] && r[base] ? pick(r[config]) - pick(r[base]) : NaN))
    .filter((d) => Number.isFinite(d));
  return { medianUs: diffs.length ? median(diffs) : null, perRoundUs: diffs };
}

function summarizeCells(cells) {
  const med = (pick) => median(cells.map(pick).filter((v) => v !== null && v !== undefined));
  return {
    rounds: cells.length,
    autocannon: combineAutocannon(cells.map((c) => c.autocannon)),
    problems: cells.reduce((s, c) => s + c.problems, 0),
    cpuUsPerRequest: med((c) => c.cpu.usPerRequest),
    workerCpuUsPerRequest: med((c) => c.cpu.perProcess.filter((p) => p.role === 'worker').reduce((s, p) => s + (p.usPerRequest ?? 0), 0)),
    supervisorCpuUsPerRequest: med((c) => c.cpu.perProcess.find((p) => p.role === 'supervisor')?.usPerRequest ?? null),
    redis: cells[0].redis
      ? Object.fromEntries(
          ['scriptCallsPerRequest', 'commandsPerRequest', 'readsPerRequest', 'scriptUsPerRequest', 'cpuUsPerRequest', 'infoCpuUsPerRequest'].map((k) => [
            k,
            med((c) => c.redis[k]),
          ]),
        )
      : null,
  };
}

/** The added-CPU rows every phase reports: [id, label, config, base]. */
const ADDED = [
  ['auth', 'auth: (2) − (1)', 'auth', 'baseline'],
  ['limits_local', 'local limits alone: (3) − (2)', 'local', 'auth'],
  ['auth_limits_local', 'auth + local limits: (3) − (1)', 'local', 'baseline'],
  ['auth_limits_redis', 'auth + Redis limits: (4) − (1)', 'redis', 'baseline'],
  ['limits_redis', 'Redis limits alone: (4) − (2)', 'redis', 'auth'],
];

function addedSet(rounds, extra = []) {
  const out = {};
  for (const [id, label, config, base] of [...ADDED, ...extra]) {
    if (!rounds.some((r) => r[config]) || !rounds.some((r) => r[base])) continue;
    out[id] = { label, ...addedOver(rounds, config, base, (cell) => cell.cpu.usPerRequest) };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  installCleanup((sig) => log(`\n${sig}: stopping every process the bench started ...`));
  assertBuilt();
  const startedAt = new Date();
  const t0 = performance.now();
  const machine = machineInfo();
  const tmp = mkdtempSync(join(os.tmpdir(), 'sluice-governance-'));
  process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
  const notes = [];

  log(`Sluice governance bench — ${startedAt.toISOString()}`);
  log(`machine: ${describeMachine(machine)}`);
  log(
    `gateways: ${CONFIGS.join(', ')} (1 worker each, side by side, one mock); closed loop: chat c=50 and c=1, ` +
      `${WARMUP_S} s warm-up + ${DURATION_S} s, ${ROUNDS} round(s); fixed rate: ${RATE_ROUNDS} round(s) of every gateway at once at ${RATE} req/s over ${RATE_CONNECTIONS} connections`,
  );

  const { key, hash } = await newKey();
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${key}` };

  // Phase 0: the filter chains alone, in this process, before any server competes for the cores.
  let host = null;
  if (HOST_ONLY) {
    const hostConfigs = CONFIGS.filter((c) => c !== 'redis');
    const runners = await filterRunners(
      Object.fromEntries(hostConfigs.map((c) => [c, configYaml(c, { upstream: 'http://127.0.0.1:9/v1', hash })])),
      { headers, body: Buffer.from(CHAT_BODY) },
    );
    const passes = measureRunners(runners, { n: HOST_REQUESTS, reps: HOST_REPS, warmup: HOST_REQUESTS });
    for (const r of Object.values(runners)) await r.close();
    host = {
      requestsPerPass: HOST_REQUESTS,
      passes,
      usPerRequest: Object.fromEntries(hostConfigs.map((c) => [c, median(passes.map((p) => p[c]))])),
      added: {},
    };
    for (const [id, label, config, base] of ADDED) {
      if (!hostConfigs.includes(config) || !hostConfigs.includes(base)) continue;
      const diffs = passes.map((p) => p[config] - p[base]);
      host.added[id] = { label, medianUs: median(diffs), perRoundUs: diffs };
    }
    log(
      `\nfilters alone (in this process, no server; ${HOST_REPS} passes of ${grouped(HOST_REQUESTS)} requests): ` +
        hostConfigs.map((c) => `${c} ${fixed(host.usPerRequest[c], 2)} µs`).join(', ') +
        ` → ` +
        Object.values(host.added)
          .map((a) => `${a.label} ${signed(a.medianUs, 2)} µs`)
          .join(', '),
    );
  }

  // Redis first: a private server unless told to use one.
  let redis = null;
  let counters = null;
  const redisPrefix = `sluice:bench-governance:${process.pid}-${randomBytes(4).toString('hex')}:`;
  if (CONFIGS.includes('redis')) {
    if (EXTERNAL_REDIS) {
      redis = { url: EXTERNAL_REDIS, proc: null, version: null };
      notes.push(`Redis: ${EXTERNAL_REDIS} (BENCH_REDIS_URL), shared: its counters include other clients' traffic, and its CPU is INFO's (ms resolution).`);
    } else {
      const version = redisServerVersion();
      if (!version) throw new Error('redis-server is not installed (apt-get install redis-server), or set BENCH_REDIS_URL, or leave redis out of BENCH_CONFIGS');
      redis = { ...(await startRedisServer()), version };
      notes.push('Redis: a private redis-server started by this run (no persistence), so its counters and CPU are this gateway\'s alone.');
    }
    counters = new RedisCounters(redis.url);
    redisState.counters = counters;
    redisState.prefix = redisPrefix;
    const info = await counters.snapshot();
    redis.version = info.version ?? redis.version;
    log(`redis: ${redis.url}${redis.proc ? ` (private, pid ${redis.proc.pid})` : ''}, v${info.version}, key prefix ${redisPrefix}`);
  }

  const mock = await startMock({ outputTokens: OUTPUT_TOKENS, chunkTokens: CHUNK_TOKENS });
  log(`mock: ${mock.origin} pid ${mock.proc.pid}`);

  const ctx = { headers, redis, counters };
  const names = RATE_ROUNDS > 0 ? [...CONFIGS, 'baseline-b'] : CONFIGS;
  const gateways = {};
  const checks = {};
  const yamls = {};
  // Started together (each takes a second or two to boot), then checked one by one.
  for (const name of names) yamls[name] = configYaml(name, { upstream: `${mock.origin}/v1`, hash, redisUrl: redis?.url, redisPrefix });
  const started = await Promise.all(names.map((name) => startSluice({ configPath: join(tmp, `${name}.yaml`), configYaml: yamls[name] })));
  for (const [i, name] of names.entries()) {
    const running = started[i];
    gateways[name] = { ...running, name };
    checks[name] = await checkGateway(name, running.origin, headers);
    log(`  ${LABELS[name].padEnd(28)} ${running.origin} pid ${running.proc.pid}: keyed ${checks[name].keyedStatus}, wrong key ${checks[name].wrongKeyStatus}, rate-limit headers ${checks[name].rateLimitHeaders ? 'yes' : 'no'}`);
  }

  // Phase 1: closed loop, one gateway at a time.
  log('\nclosed loop (one gateway at a time):');
  const closed = Object.fromEntries(WORKLOADS.map((w) => [w.id, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? CONFIGS : [...CONFIGS].reverse();
    for (const w of WORKLOADS) {
      log(` round ${round + 1}/${ROUNDS}, ${w.id}:`);
      const cells = {};
      for (const name of order) {
        cells[name] = await measure(gateways[name], ctx, { worker: CLOSED_WORKER, connections: w.connections });
        log(progress(cells[name], LABELS[name]));
      }
      closed[w.id].push(cells);
    }
  }

  // Phase 2: every gateway at once at the same fixed rate.
  const rateRounds = [];
  if (RATE_ROUNDS > 0) {
    log(`\nfixed rate (every gateway at once, ${RATE} req/s each):`);
    for (let round = 0; round < RATE_ROUNDS; round++) {
      const cells = await Promise.all(names.map((name) => measure(gateways[name], ctx, { worker: RATE_WORKER, connections: RATE_CONNECTIONS, rate: RATE })));
      const byName = Object.fromEntries(names.map((name, i) => [name, cells[i]]));
      rateRounds.push(byName);
      log(
        ` round ${round + 1}/${RATE_ROUNDS}: ` +
          names.map((name) => `${name} ${fixed(byName[name].cpu.usPerRequest, 1)} µs @ ${grouped(byName[name].autocannon.rps)}/s`).join(', ') +
          (byName.redis ? `; Redis ${fixed(byName.redis.redis.scriptCallsPerRequest, 2)} script calls/req` : ''),
      );
    }
  }

  // Faults of the Redis limiter over the whole run: any fail-open admission would make its numbers
  // those of a gateway that skipped Redis.
  const faults = gateways.redis ? await limiterFaults(gateways.redis.adminOrigin) : null;

  // ---- Summaries.
  const closedSummary = {};
  const closedAdded = {};
  for (const w of WORKLOADS) {
    closedSummary[w.id] = Object.fromEntries(CONFIGS.map((c) => [c, summarizeCells(closed[w.id].map((r) => r[c]))]));
    closedAdded[w.id] = addedSet(closed[w.id]);
  }
  const rateSummary = RATE_ROUNDS > 0 ? Object.fromEntries(names.map((c) => [c, summarizeCells(rateRounds.map((r) => r[c]))])) : null;
  if (rateSummary) {
    const short = names.filter((c) => rateSummary[c].autocannon.rps < 0.9 * RATE);
    if (short.length) notes.push(`fixed rate not reached by ${short.map((c) => `${c} (${grouped(rateSummary[c].autocannon.rps)}/s)`).join(', ')}: the machine was saturated, so that phase was not at a fixed rate (lower BENCH_RATE).`);
  }
  const rateAdded = RATE_ROUNDS > 0 ? addedSet(rateRounds, [['noise', 'noise floor: (1b) − (1)', 'baseline-b', 'baseline']]) : null;

  // ---- Report.
  const elapsed = (performance.now() - t0) / 1000;
  log(`\nResults — ${startedAt.toISOString()} — ${describeMachine(machine)}\n`);
  const rows = [];
  for (const w of WORKLOADS) {
    for (const c of CONFIGS) {
      const s = closedSummary[w.id][c];
      const a = closedAdded[w.id];
      const added = c === 'baseline' ? '' : signed(a[{ auth: 'auth', local: 'auth_limits_local', redis: 'auth_limits_redis' }[c]]?.medianUs, 1);
      rows.push([
        w.id,
        LABELS[c],
        grouped(s.autocannon.rps),
        fixed(s.autocannon.latencyMs.p50, 3),
        fixed(s.autocannon.latencyMs.p99, 3),
        fixed(s.cpuUsPerRequest, 1),
        added,
        s.redis ? fixed(s.redis.scriptCallsPerRequest, 2) : '',
        s.redis ? fixed(s.redis.readsPerRequest, 2) : '',
        s.redis ? fixed(s.redis.cpuUsPerRequest, 1) : '',
        String(s.problems),
      ]);
    }
  }
  if (rateSummary) {
    for (const c of names) {
      const s = rateSummary[c];
      const key = { auth: 'auth', local: 'auth_limits_local', redis: 'auth_limits_redis', 'baseline-b': 'noise' }[c];
      rows.push([
        `${RATE}/s, all at once`,
        LABELS[c],
        grouped(s.autocannon.rps),
        fixed(s.autocannon.latencyMs.p50, 3),
        fixed(s.autocannon.latencyMs.p99, 3),
        fixed(s.cpuUsPerRequest, 1),
        key ? signed(rateAdded[key]?.medianUs, 1) : '',
        s.redis ? fixed(s.redis.scriptCallsPerRequest, 2) : '',
        s.redis ? fixed(s.redis.readsPerRequest, 2) : '',
        s.redis ? fixed(s.redis.cpuUsPerRequest, 1) : '',
        String(s.problems),
      ]);
    }
  }
  log(
    formatTable(
      ['load', 'gateway', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', '+CPU µs', 'Redis calls/req', 'Redis reads/req', 'Redis CPU µs/req', 'errors'],
      rows,
      { left: [0, 1] },
    ),
  );

  log('\nAdded CPU per request, µs (median of the per-round differences [each round]):\n');
  const RATE_LOAD = `${RATE}/s, all at once`;
  const phases = [
    ...(host ? [['filters alone', host.added]] : []),
    ...WORKLOADS.map((w) => [w.id, closedAdded[w.id]]),
    ...(rateAdded ? [[RATE_LOAD, rateAdded]] : []),
  ];
  const addedIds = [...ADDED.map(([id]) => id), 'noise'].filter((id) => phases.some(([, set]) => set[id]));
  const labelOf = (id) => phases.map(([, set]) => set[id]?.label).find(Boolean) ?? id;
  const cellText = (a) => (a ? `${signed(a.medianUs, 1)} [${a.perRoundUs.map((d) => fixed(d, 1)).join(' ')}]` : '');
  log(formatTable(['difference', ...phases.map(([p]) => p)], addedIds.map((id) => [labelOf(id), ...phases.map(([, set]) => cellText(set[id]))]), { left: [0] }));

  // ---- Targets.
  const goals = [];
  const verdict = (value, ok) => (value === null || value === undefined || !Number.isFinite(value) ? 'n/a' : ok ? 'PASS' : 'FAIL');
  const noiseUs = rateAdded?.noise?.medianUs ?? null;
  for (const id of ['limits_local', 'auth_limits_local']) {
    if (host?.added[id]) {
      const v = host.added[id].medianUs;
      goals.push({ id: `${id}_added_cpu_us filters alone`, label: `${host.added[id].label}, filters alone`, value: v, target: `≤ ${LIMITS_GOAL_US} µs`, verdict: verdict(v, v <= LIMITS_GOAL_US) });
    }
    const e2e = rateAdded ? [RATE_LOAD, rateAdded[id]] : [WORKLOADS[0].id, closedAdded[WORKLOADS[0].id][id]];
    if (e2e[1]) {
      const v = e2e[1].medianUs;
      // A difference smaller than what two identical gateways differ by says nothing either way.
      const noisy = noiseUs !== null && Math.abs(noiseUs) > LIMITS_GOAL_US;
      goals.push({
        id: `${id}_added_cpu_us ${e2e[0]}`,
        label: `${e2e[1].label}, gateway, ${e2e[0]}`,
        value: v,
        target: `≤ ${LIMITS_GOAL_US} µs`,
        verdict: noisy ? `INCONCLUSIVE (noise floor ${signed(noiseUs, 1)} µs)` : verdict(v, v <= LIMITS_GOAL_US),
      });
    }
  }
  if (closedSummary[WORKLOADS[0].id].redis) {
    const redisLoads = [...WORKLOADS.map((w) => [w.id, closedSummary[w.id].redis.redis]), ...(rateSummary ? [[RATE_LOAD, rateSummary.redis.redis]] : [])];
    for (const [load, r] of redisLoads) {
      goals.push({
        id: `redis_script_calls_per_request ${load}`,
        label: `Redis limiter script calls per request, ${load}`,
        value: r.scriptCallsPerRequest,
        target: `≤ ${REDIS_GOAL_ROUND_TRIPS}`,
        verdict: verdict(r.scriptCallsPerRequest, r.scriptCallsPerRequest <= REDIS_GOAL_ROUND_TRIPS + 0.005),
      });
      goals.push({
        id: `redis_reads_per_request ${load}`,
        label: `Redis read events (round trips) per request, ${load}`,
        value: r.readsPerRequest,
        target: `≤ ${REDIS_GOAL_ROUND_TRIPS}`,
        verdict: verdict(r.readsPerRequest, r.readsPerRequest <= REDIS_GOAL_ROUND_TRIPS + 0.005),
      });
    }
  }
  log(
    `\nTargets:\n${formatTable(
      ['target', 'value', 'want', 'verdict'],
      goals.map((g) => [g.label, fixed(g.value, 2), g.target, g.verdict]),
      { left: [0] },
    )}`,
  );
  if (faults) {
    const bad = (faults.failOpen ?? 0) + (faults.failClosed ?? 0) + (faults.redisErrors ?? 0);
    log(`Redis limiter faults over the run: errors ${faults.redisErrors}, fail-open ${faults.failOpen}, fail-closed ${faults.failClosed}${bad ? '  ← the Redis numbers are not clean' : ''}`);
    if (bad) notes.push(`the Redis limiter reported faults (${JSON.stringify(faults)}): some admissions did not go to Redis.`);
  }

  notes.push(
    'CPU: utime+stime of every thread of the gateway tree (supervisor + 1 worker), from /proc/PID/task/TID/schedstat (ns), over the measured window, ÷ responses.',
    'filters alone: the filter chain of each config run in this process without a server (bench/lib/governance-filters.mjs), CPU time per request; it leaves out the rate-limit headers written to the socket (6 uWS writeHeader calls per limited answer).',
    'gateway verdicts use the fixed-rate phase when it ran: every gateway at the same rate at the same time, so machine noise and per-turn batching hit them alike, and a second baseline gives the noise floor; ' +
      'when that floor exceeds the target the verdict is INCONCLUSIVE and the filters-alone row decides. Closed-loop differences also carry throughput differences (at c=50 a slower gateway batches less per event-loop turn) and the drift between cells measured seconds apart.',
    `the load generator (autocannon in worker threads of this process), the mock, ${names.length} gateways${redis ? ' and Redis' : ''} share ${machine.cpuCount} cores.`,
  );
  if (gateways.redis) {
    notes.push(
      'Redis script calls: EVAL/EVALSHA/FCALL in INFO commandstats (the limiter runs one script per admission, on the request path, plus settlement batches: one script call per event-loop turn that ended requests, plus a lease tick every lease_ttl_ms/3). ' +
        'Read events: total_reads_processed, one per batch of commands a connection sent at once (ioredis auto-pipelining puts every command of one event-loop turn in one write), so the network round trips; includes the supervisor\'s key-store resync (one per 5 s).',
      'Redis CPU per request is the redis-server process (not counted in the gateway CPU). In the JSON: scriptUsPerRequest (time Redis spent running the scripts, from commandstats) and commandsPerRequest, ' +
        'which also counts the commands the scripts run (TIME, HMGET, HSET, HINCRBY, HGETALL: about 12 per admission).',
    );
  }
  log(`\nNotes:\n${notes.map((n) => `  - ${n}`).join('\n')}`);

  // ---- Clean up Redis keys, then write the results.
  let deletedKeys = null;
  if (gateways.redis) {
    await gateways.redis.proc.stop(10_000); // the limiter gives its places back and leaves the registry
    deletedKeys = await counters.deleteKeys(redisPrefix);
    redisState.keysDeleted = true;
    log(`\nRedis: deleted ${deletedKeys} keys under ${redisPrefix}`);
  }

  const report = {
    bench: 'governance',
    date: startedAt.toISOString(),
    elapsedSeconds: elapsed,
    machine: { ...machine, sluice: JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version, redis: redis?.version ?? null },
    settings: {
      durationSeconds: DURATION_S,
      warmupSeconds: WARMUP_S,
      rounds: ROUNDS,
      rateRounds: RATE_ROUNDS,
      ratePerGateway: RATE,
      rateConnections: RATE_CONNECTIONS,
      workers: 1,
      configs: names,
      workloads: WORKLOADS,
      request: 'POST /v1/chat/completions, non-streamed, Authorization: Bearer KEY on every gateway',
      redis: redis ? { url: redis.url, private: redis.proc !== null, keyPrefix: redisPrefix, deletedKeys } : null,
    },
    configYaml: yamls,
    checks,
    filtersAlone: host,
    closedLoop: { summary: closedSummary, added: closedAdded, rounds: closed },
    fixedRate: RATE_ROUNDS > 0 ? { summary: rateSummary, added: rateAdded, rounds: rateRounds } : null,
    redisLimiterFaults: faults,
    goals,
    notes,
  };
  const file = writeResult(RESULTS_DIR, 'governance', startedAt, report);
  log(`JSON: ${file}`);
  log(`elapsed: ${fixed((performance.now() - t0) / 1000, 0)} s`);
}

try {
  await main();
} catch (err) {
  console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
} finally {
  // Gateways first (the Redis limiter hands back its places as it stops), then the run's keys (a
  // shared Redis keeps them otherwise), then everything else.
  await stopAll();
  const { counters, prefix, keysDeleted } = redisState;
  if (counters && !keysDeleted && EXTERNAL_REDIS) await counters.deleteKeys(prefix).catch(() => undefined);
  counters?.close();
}
