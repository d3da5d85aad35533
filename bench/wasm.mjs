#!/usr/bin/env node
/**
 * Wasm plugin overhead through the running gateway (`npm run bench:wasm`): one Sluice gateway of one
 * worker on the mock upstream, switched between these `plugins` sections (PUT /admin/config, the
 * zero-downtime reload) round after round:
 *   none      no plugin (the baseline)
 *   none-b    no plugin either: its difference from `none` is the method's noise
 *   noop      the no-op plugin (every callback continues): the host's own cost per request
 *   rewriter  the header rewriter (sets a request and a response header, removes one)
 * One process for all variants, because two identical gateway processes differ persistently by up
 * to ~25 µs per request on a 2-core box; see bench/lib/reload-variants.mjs for the method (fixed
 * request rate, rotating order, worker CPU from /proc/…/schedstat in ns, median of per-round
 * differences).
 *
 * Goal: the no-op plugin and the header rewriter each add ≤ 5 µs of CPU per request.
 *
 * Also runs plugins/bench.mjs (the host alone, through the filter contract, no server) for the
 * same two plugins, as a cross-check with far less noise.
 *
 * Environment: BENCH_DURATION (s per variant per round, default 4), BENCH_WARMUP (s after each
 * switch, default 1), BENCH_ROUNDS (default 8), BENCH_CONNECTIONS (default 10), BENCH_RATE
 * (requests/s, default 1000), BENCH_HOST_ONLY (0 skips the host-only bench).
 * Exit code: 0 when the bench ran (a missed goal included), 1 when it broke.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE_HEADERS, CHAT_BODY, CHAT_PATH } from './lib/chat-workloads.mjs';
import { envNumber } from './lib/env.mjs';
import { describeMachine, machineInfo } from './lib/machine.mjs';
import { installCleanup, stopAll } from './lib/processes.mjs';
import { addedOver, measureByReload, summarizeVariants } from './lib/reload-variants.mjs';
import { writeResult } from './lib/results.mjs';
import { assertBuilt, REPO_ROOT, startMock, startSluice, upstreamConfigYaml } from './lib/sluice.mjs';
import { fixed, formatTable, grouped, signed } from './lib/table.mjs';

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));
const RESULTS_DIR = join(BENCH_DIR, 'results');
const PLUGINS = join(REPO_ROOT, 'plugins', 'dist');

const DURATION_S = envNumber('BENCH_DURATION', 4, 0.1);
const WARMUP_S = envNumber('BENCH_WARMUP', 1, 0);
const ROUNDS = Math.round(envNumber('BENCH_ROUNDS', 8, 1));
const CONNECTIONS = Math.round(envNumber('BENCH_CONNECTIONS', 10, 1));
const RATE = Math.round(envNumber('BENCH_RATE', 1000, 1));
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
  log(`chat at ${RATE} req/s over ${CONNECTIONS} connections, one 1-worker gateway switched between ${VARIANTS.length} configs; ${ROUNDS} rounds × ${DURATION_S} s per config (+${WARMUP_S} s after each switch), after 1 warm-up round\n`);

  const tmp = mkdtempSync(join(os.tmpdir(), 'sluice-bench-wasm-'));
  try {
    const mock = await startMock();
    const yamlOf = (v) => `${upstreamConfigYaml(`${mock.origin}/v1`)}admin: { watch: false }\n${v.plugins}`;
    const gateway = await startSluice({ configPath: join(tmp, 'sluice.yaml'), configYaml: yamlOf(VARIANTS[0]) });
    const rounds = await measureByReload({
      gateway,
      variants: VARIANTS.map((v) => ({ name: v.name, yaml: yamlOf(v), check: () => check(v.name, gateway.origin) })),
      request: { path: CHAT_PATH, headers: BASE_HEADERS, body: CHAT_BODY },
      rounds: ROUNDS,
      rate: RATE,
      connections: CONNECTIONS,
      warmupSeconds: WARMUP_S,
      durationSeconds: DURATION_S,
      log,
    });

    const summary = summarizeVariants(rounds, VARIANTS.map((v) => v.name));
    const added = {};
    for (const v of VARIANTS.filter((x) => x.name !== 'none')) {
      const a = addedOver(rounds, v.name, 'none');
      added[v.name] = v.name === 'none-b' ? a : { ...a, goalUs: GOAL_US, met: a.medianUs <= GOAL_US };
    }

    log('');
    log(
      formatTable(
        ['variant', 'worker CPU µs/req', 'added µs/req', 'supervisor µs/req', 'rps', 'p50 ms', 'p99 ms'],
        VARIANTS.map((v) => [
          v.name,
          fixed(summary[v.name].cpuUsPerRequest, 1),
          v.name === 'none' ? '' : signed(added[v.name].medianUs, 1),
          fixed(summary[v.name].supervisorCpuUsPerRequest, 1),
          grouped(summary[v.name].rps),
          fixed(summary[v.name].latencyP50Ms, 3),
          fixed(summary[v.name].latencyP99Ms, 3),
        ]),
      ),
    );
    const noise = added['none-b'];
    log(`noise: the same config measured twice per round differs by ${signed(noise.medianUs, 2)} µs (per round: ${noise.perRoundUs.map((d) => signed(d, 1)).join(' ')})`);
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
      settings: { method: 'one gateway process switched between configs (bench/lib/reload-variants.mjs)', durationSeconds: DURATION_S, warmupSeconds: WARMUP_S, rounds: ROUNDS, connections: CONNECTIONS, rate: RATE, workers: 1 },
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

main().then(
  () => process.exit(0),
  async (err) => {
    console.error(`bench/wasm failed: ${err instanceof Error ? err.stack : String(err)}`);
    await stopAll();
    process.exit(1);
  },
);
