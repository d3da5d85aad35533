#!/usr/bin/env node
/**
 * What authentication and limits cost per request (`npm run bench:governance`): ONE 1-worker Sluice
 * gateway on the mock upstream, switched between these configs (PUT /admin/config) round after round:
 *   baseline    no consumers (neither auth nor limits in the filter chain)
 *   baseline-b  the same again: its difference from baseline is the method's noise
 *   auth        one consumer with a key hash; clients send `Authorization: Bearer KEY`
 *   local       the consumer with rpm/tpm/concurrent limits and a daily token quota, all far above the
 *               load (nothing is refused), `limiter: { backend: local }` (shared memory)
 *   redis       the same limits with `limiter: { backend: redis }` on a private redis-server
 * Every client sends the same headers, the key included, so the requests are byte for byte alike.
 * One process for all configs because two identical gateway processes differ persistently by up
 * to ~25 µs per request on a 2-core box: see bench/lib/reload-variants.mjs (fixed request rate,
 * rotating order, worker CPU from /proc/…/schedstat in ns, median of per-round differences).
 *
 * Phases, all in one run:
 *   0. filters alone: the filter chain of each config (no Redis) run in this process without a
 *      server (lib/governance-filters.mjs): the cost of the code itself, warm, at CPU-time precision;
 *   1. the gateway at BENCH_RATE req/s over BENCH_CONNECTIONS connections, every config each round;
 *      for redis also what Redis did per request (script calls, read events = round trips, its CPU);
 *   2. one request at a time (1 connection at BENCH_SERIAL_RATE req/s) on the Redis config: script
 *      calls and round trips per request where auto-pipelining cannot batch anything.
 *
 * Environment: BENCH_DURATION (s per config per round, default 4), BENCH_WARMUP (s after each switch,
 * default 1), BENCH_ROUNDS (default 5), BENCH_RATE (default 1000), BENCH_CONNECTIONS (default 10),
 * BENCH_SERIAL_RATE (default 300; 0 skips phase 2), BENCH_LIMITS (the consumer's limits in the local
 * and redis configs, YAML lines, e.g. 'limits: { rpm: 1000000 }'), BENCH_CONFIGS (comma list of auth,local,redis;
 * the baselines always run), BENCH_HOST_ONLY (0 skips phase 0), BENCH_REDIS_URL (use this Redis
 * instead of starting one; its keys under the run's prefix are deleted after, and its CPU comes from
 * INFO only).
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
import { addedOver, measureByReload, summarizeVariants } from './lib/reload-variants.mjs';
import { writeResult } from './lib/results.mjs';
import { SchedMeter } from './lib/sched-cpu.mjs';
import { assertBuilt, REPO_ROOT, startMock, startSluice, upstreamConfigYaml } from './lib/sluice.mjs';
import { median } from './lib/stats.mjs';
import { fixed, formatTable, grouped, signed } from './lib/table.mjs';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

const DURATION_S = envNumber('BENCH_DURATION', 4, 0.1);
const WARMUP_S = envNumber('BENCH_WARMUP', 1, 0);
const ROUNDS = Math.round(envNumber('BENCH_ROUNDS', 5, 1));
const RATE = Math.round(envNumber('BENCH_RATE', 1000, 1));
const CONNECTIONS = Math.round(envNumber('BENCH_CONNECTIONS', 10, 1));
const SERIAL_RATE = Math.round(envNumber('BENCH_SERIAL_RATE', 300, 0));
const EXTERNAL_REDIS = process.env.BENCH_REDIS_URL || null;
const HOST_ONLY = envNumber('BENCH_HOST_ONLY', 1, 0) !== 0;
const HOST_REQUESTS = 20_000;
const HOST_REPS = 7;
const MEASURED = ['auth', 'local', 'redis'];
const CONFIGS = (() => {
  const asked = envList('BENCH_CONFIGS') ?? MEASURED;
  for (const c of asked) if (!MEASURED.includes(c)) throw new Error(`BENCH_CONFIGS: unknown config "${c}" (known: ${MEASURED.join(', ')})`);
  return ['baseline', 'baseline-b', ...MEASURED.filter((c) => asked.includes(c))];
})();

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
/** The consumer's limits in the local and redis configs (BENCH_LIMITS replaces them: YAML lines under the consumer). */
const LIMITS = process.env.BENCH_LIMITS
  ? `${process.env.BENCH_LIMITS.split('\n').map((line) => `    ${line.trim()}`).join('\n')}\n`
  : `    limits: { rpm: 1000000000, tpm: 1000000000, concurrent: 100000 }
    quotas: [{ period: day, tokens: 1000000000000 }]
`;

async function newKey() {
  const keys = await import(pathToFileURL(join(REPO_ROOT, 'dist', 'src', 'governance', 'keys.js')).href);
  const key = keys.generateKey();
  return { key, hash: keys.hashKey(key) };
}

function configYaml(name, { upstream, hash, redisUrl, redisPrefix }) {
  // The bench switches configs through the admin API; a file watcher would only add reloads.
  let yaml = `${upstreamConfigYaml(upstream)}admin: { watch: false }\n`;
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

/** Redis counters and the redis-server's CPU over one measured window (the `extraMeter` of reload-variants). */
function redisMeter(redis, counters) {
  let before = null;
  const cpu = redis.proc ? new SchedMeter(redis.proc.pid) : null;
  return {
    start() {
      before = counters.snapshot();
      cpu?.start();
    },
    async stop() {
      const used = cpu?.stop() ?? null;
      const d = RedisCounters.delta(await before, await counters.snapshot());
      return { delta: d, cpuSeconds: used ? used.cpuSeconds : d.cpuSeconds, cpuSource: used ? 'schedstat' : 'INFO cpu' };
    },
  };
}

/** Per-request Redis figures of a cell measured with redisMeter. */
function redisPerRequest(cell) {
  const n = cell.responses;
  if (!cell.extra || n === 0) return null;
  const d = cell.extra.delta;
  return {
    scriptCallsPerRequest: d.scriptCalls / n,
    readsPerRequest: d.reads / n,
    commandsPerRequest: d.allCommands / n,
    scriptUsPerRequest: d.scriptUsec / n,
    cpuUsPerRequest: (cell.extra.cpuSeconds * 1e6) / n,
    cpuSource: cell.extra.cpuSource,
  };
}

/** The added-CPU rows every phase reports: [id, label, config, base]. */
const ADDED = [
  ['auth', 'auth: (2) − (1)', 'auth', 'baseline'],
  ['limits_local', 'local limits alone: (3) − (2)', 'local', 'auth'],
  ['auth_limits_local', 'auth + local limits: (3) − (1)', 'local', 'baseline'],
  ['auth_limits_redis', 'auth + Redis limits: (4) − (1)', 'redis', 'baseline'],
  ['limits_redis', 'Redis limits alone: (4) − (2)', 'redis', 'auth'],
  ['noise', 'noise: (1b) − (1)', 'baseline-b', 'baseline'],
];

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
  log(`machine: ${describeMachine(machine)}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  log(
    `one 1-worker gateway switched between ${CONFIGS.join(', ')}; ${ROUNDS} rounds × ${DURATION_S} s per config ` +
      `(+${WARMUP_S} s after each switch, 1 warm-up round) at ${RATE} req/s over ${CONNECTIONS} connections`,
  );

  const { key, hash } = await newKey();
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${key}` };

  // Phase 0: the filter chains alone, in this process, before any server competes for the cores.
  let host = null;
  if (HOST_ONLY) {
    const hostConfigs = CONFIGS.filter((c) => c !== 'redis' && c !== 'baseline-b');
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

  // Redis: a private server unless told to use one.
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
      notes.push("Redis: a private redis-server started by this run (no persistence), so its counters and CPU are this gateway's alone.");
    }
    counters = new RedisCounters(redis.url);
    redisState.counters = counters;
    redisState.prefix = redisPrefix;
    const info = await counters.snapshot();
    redis.version = info.version ?? redis.version;
    log(`redis: ${redis.url}${redis.proc ? ` (private, pid ${redis.proc.pid})` : ''}, v${info.version}, key prefix ${redisPrefix}`);
  }

  const mock = await startMock({ outputTokens: OUTPUT_TOKENS, chunkTokens: CHUNK_TOKENS });
  const yamls = Object.fromEntries(CONFIGS.map((name) => [name, configYaml(name, { upstream: `${mock.origin}/v1`, hash, redisUrl: redis?.url, redisPrefix })]));
  const gateway = await startSluice({ configPath: join(tmp, 'sluice.yaml'), configYaml: yamls.baseline });
  log(`mock ${mock.origin}; gateway ${gateway.origin} (pid ${gateway.proc.pid})\n`);

  // Each switch is checked before it is measured: the keyed request answers 200, a wrong key is
  // refused exactly where auth runs, rate-limit headers come back exactly where limits run.
  const checks = {};
  const variants = CONFIGS.map((name) => ({
    name,
    yaml: yamls[name],
    check: async () => {
      checks[name] = await checkGateway(name, gateway.origin, headers);
    },
  }));
  const request = { path: CHAT_PATH, headers, body: CHAT_BODY };
  const extraMeter = (name) => (name === 'redis' ? redisMeter(redis, counters) : null);

  // Phase 1.
  const rounds = await measureByReload({
    gateway,
    variants,
    request,
    rounds: ROUNDS,
    rate: RATE,
    connections: CONNECTIONS,
    warmupSeconds: WARMUP_S,
    durationSeconds: DURATION_S,
    extraMeter,
    log,
  });

  // Phase 2: one request at a time on the Redis config.
  let serial = null;
  if (SERIAL_RATE > 0 && CONFIGS.includes('redis')) {
    log(`\none request at a time (1 connection, ${SERIAL_RATE} req/s), Redis config:`);
    const serialRounds = await measureByReload({
      gateway,
      variants: variants.filter((v) => v.name === 'redis'),
      request,
      rounds: 2,
      rate: SERIAL_RATE,
      connections: 1,
      warmupSeconds: WARMUP_S,
      durationSeconds: DURATION_S,
      warmupRounds: 0,
      extraMeter,
      log,
    });
    const cells = serialRounds.map((r) => r.redis);
    serial = {
      rounds: serialRounds,
      redis: Object.fromEntries(
        ['scriptCallsPerRequest', 'readsPerRequest', 'commandsPerRequest', 'cpuUsPerRequest'].map((k) => [k, median(cells.map((c) => redisPerRequest(c)[k]))]),
      ),
    };
  }

  // Faults of the Redis limiter over the whole run: a fail-open admission skipped Redis.
  const faults = CONFIGS.includes('redis') ? await limiterFaults(gateway.adminOrigin) : null;

  // ---- Summaries.
  const summary = summarizeVariants(rounds, CONFIGS);
  const added = {};
  for (const [id, label, config, base] of ADDED) {
    if (CONFIGS.includes(config) && CONFIGS.includes(base)) added[id] = { label, ...addedOver(rounds, config, base) };
  }
  const redisSummary = CONFIGS.includes('redis')
    ? Object.fromEntries(
        ['scriptCallsPerRequest', 'readsPerRequest', 'commandsPerRequest', 'scriptUsPerRequest', 'cpuUsPerRequest'].map((k) => [
          k,
          median(rounds.map((r) => redisPerRequest(r.redis)[k])),
        ]),
      )
    : null;
  const short = CONFIGS.filter((c) => summary[c].rps < 0.9 * RATE);
  if (short.length) notes.push(`fixed rate not reached by ${short.map((c) => `${c} (${grouped(summary[c].rps)}/s)`).join(', ')}: lower BENCH_RATE.`);
  const problems = CONFIGS.reduce((n, c) => n + summary[c].problems, 0);
  if (problems) notes.push(`${problems} requests failed (non-2xx, errors or timeouts): the numbers are suspect.`);

  // ---- Report.
  log(`\nResults — ${startedAt.toISOString()} — ${describeMachine(machine)}\n`);
  log(
    formatTable(
      ['config', 'req/s', 'p50 ms', 'p99 ms', 'worker CPU µs/req', '+ vs (1) µs', 'Redis calls/req', 'Redis reads/req', 'Redis CPU µs/req'],
      CONFIGS.map((c) => {
        const s = summary[c];
        const plus = { 'baseline-b': 'noise', auth: 'auth', local: 'auth_limits_local', redis: 'auth_limits_redis' }[c];
        return [
          LABELS[c],
          grouped(s.rps),
          fixed(s.latencyP50Ms, 3),
          fixed(s.latencyP99Ms, 3),
          fixed(s.cpuUsPerRequest, 1),
          plus ? signed(added[plus].medianUs, 1) : '',
          c === 'redis' ? fixed(redisSummary.scriptCallsPerRequest, 2) : '',
          c === 'redis' ? fixed(redisSummary.readsPerRequest, 2) : '',
          c === 'redis' ? fixed(redisSummary.cpuUsPerRequest, 1) : '',
        ];
      }),
      { left: [0] },
    ),
  );
  log('\nAdded CPU per request, µs (median of the per-round differences [each round]):\n');
  const cellText = (a) => (a ? `${signed(a.medianUs, 1)} [${a.perRoundUs.map((d) => fixed(d, 1)).join(' ')}]` : '');
  log(
    formatTable(
      ['difference', 'filters alone', `gateway, ${RATE}/s`],
      ADDED.filter(([id]) => added[id] || host?.added[id]).map(([id, label]) => [label, cellText(host?.added[id]), cellText(added[id])]),
      { left: [0, 1, 2] },
    ),
  );
  if (serial) {
    log(
      `\none request at a time: ${fixed(serial.redis.scriptCallsPerRequest, 2)} Redis script calls, ${fixed(serial.redis.readsPerRequest, 2)} read events, ` +
        `${fixed(serial.redis.cpuUsPerRequest, 1)} µs Redis CPU per request`,
    );
  }

  // ---- Targets.
  const goals = [];
  const verdict = (value, ok) => (value === null || value === undefined || !Number.isFinite(value) ? 'n/a' : ok ? 'PASS' : 'FAIL');
  for (const id of ['auth_limits_local', 'limits_local']) {
    if (!added[id]) continue;
    const v = added[id].medianUs;
    goals.push({ id: `${id}_added_cpu_us`, label: `${added[id].label}, gateway at ${RATE}/s`, value: v, target: `≤ ${LIMITS_GOAL_US} µs`, verdict: verdict(v, v <= LIMITS_GOAL_US) });
  }
  if (redisSummary) {
    const loads = [[`${RATE}/s over ${CONNECTIONS} connections`, redisSummary], ...(serial ? [['one request at a time', serial.redis]] : [])];
    for (const [load, r] of loads) {
      goals.push({
        id: `redis_script_calls_per_request ${load}`,
        label: `Redis script calls per request, ${load}`,
        value: r.scriptCallsPerRequest,
        target: `≤ ${REDIS_GOAL_ROUND_TRIPS}`,
        verdict: verdict(r.scriptCallsPerRequest, r.scriptCallsPerRequest <= REDIS_GOAL_ROUND_TRIPS + 0.01),
      });
      goals.push({
        id: `redis_reads_per_request ${load}`,
        label: `Redis read events (round trips) per request, ${load}`,
        value: r.readsPerRequest,
        target: `≤ ${REDIS_GOAL_ROUND_TRIPS}`,
        verdict: verdict(r.readsPerRequest, r.readsPerRequest <= REDIS_GOAL_ROUND_TRIPS + 0.01),
      });
    }
  }
  log(`\nTargets:\n${formatTable(['target', 'value', 'want', 'verdict'], goals.map((g) => [g.label, fixed(g.value, 2), g.target, g.verdict]), { left: [0] })}`);
  if (faults) {
    const bad = (faults.failOpen ?? 0) + (faults.failClosed ?? 0) + (faults.redisErrors ?? 0);
    log(`Redis limiter faults over the run: errors ${faults.redisErrors}, fail-open ${faults.failOpen}, fail-closed ${faults.failClosed}${bad ? '  ← the Redis numbers are not clean' : ''}`);
    if (bad) notes.push(`the Redis limiter reported faults (${JSON.stringify(faults)}): some admissions did not go to Redis.`);
  }

  notes.push(
    'CPU: every thread of the gateway worker process from /proc/PID/task/TID/schedstat (ns), over the measured window, ÷ responses; the supervisor is reported apart in the JSON (its housekeeping comes in bursts unrelated to requests).',
    'filters alone: the filter chain of each config run in this process without a server (bench/lib/governance-filters.mjs), warm caches; the gateway numbers include what the chain makes the server do (rate-limit headers written to the socket, the answer read for usage) and cold-cache effects.',
  );
  if (CONFIGS.includes('redis')) {
    notes.push(
      "Redis script calls: EVAL/EVALSHA in INFO commandstats. Settlements ride along with the next admission (limiter.settle_delay_ms); a lease tick every lease_ttl_ms/3 and the supervisor's key-store resync (every 5 s) are counted too. Read events: total_reads_processed, one per batch of commands a connection sent at once, i.e. the network round trips.",
    );
  }
  log(`\nNotes:\n${notes.map((n) => `  - ${n}`).join('\n')}`);

  // ---- Clean up Redis keys, then write the results.
  let deletedKeys = null;
  if (counters) {
    await gateway.proc.stop(10_000); // the limiter gives its places back and leaves the registry
    deletedKeys = await counters.deleteKeys(redisPrefix);
    redisState.keysDeleted = true;
    log(`\nRedis: deleted ${deletedKeys} keys under ${redisPrefix}`);
  }

  const report = {
    bench: 'governance',
    date: startedAt.toISOString(),
    elapsedSeconds: (performance.now() - t0) / 1000,
    machine: { ...machine, sluice: JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version, redis: redis?.version ?? null },
    settings: {
      method: 'one gateway process switched between configs (bench/lib/reload-variants.mjs)',
      durationSeconds: DURATION_S,
      warmupSeconds: WARMUP_S,
      rounds: ROUNDS,
      rate: RATE,
      connections: CONNECTIONS,
      serialRate: SERIAL_RATE,
      workers: 1,
      configs: CONFIGS,
      request: 'POST /v1/chat/completions, non-streamed, Authorization: Bearer KEY in every config',
      redis: redis ? { url: redis.url, private: redis.proc !== null, keyPrefix: redisPrefix, deletedKeys } : null,
    },
    configYaml: yamls,
    checks,
    filtersAlone: host,
    gateway: { summary, added, redis: redisSummary, rounds },
    oneAtATime: serial,
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
  // The gateway first (the Redis limiter hands back its places as it stops), then the run's keys (a
  // shared Redis keeps them otherwise), then everything else.
  await stopAll();
  const { counters, prefix, keysDeleted } = redisState;
  if (counters && !keysDeleted && EXTERNAL_REDIS) await counters.deleteKeys(prefix).catch(() => undefined);
  counters?.close();
}
