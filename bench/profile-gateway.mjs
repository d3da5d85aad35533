#!/usr/bin/env node
/**
 * CPU profile of one Sluice gateway process under one workload of the gateway bench:
 * the mock upstream, `node --cpu-prof bin/sluice.js start …`, load for PROFILE_DURATION seconds,
 * then SIGTERM (the profile is written as the gateway exits) and a bottom-up summary: self time
 * per function and per source file.
 *
 *   node bench/profile-gateway.mjs                       # chat c=50, 10 s
 *   PROFILE_WORKLOAD='stream c=10' node bench/profile-gateway.mjs
 *
 * Environment: PROFILE_WORKLOAD (a workload id of the gateway bench, default "chat c=50"),
 * PROFILE_DURATION (s, default 10), PROFILE_TOP (rows, default 25), PROFILE_INTERVAL (sampling interval in µs,
 * default 1000; smaller resolves µs-sized differences between two configs), PROFILE_DIR (default: a temp dir;
 * the .cpuprofile is kept there for Chrome DevTools), PROFILE_CONFIG (a YAML file whose top-level
 * sections are appended to the one-provider config, e.g. `plugins:` or `consumers:`, to profile them),
 * PROFILE_API_KEY (sent as `Authorization: Bearer KEY`, for a config with consumers).
 */

import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { BASE_HEADERS, CHAT_BODY, CHAT_PATH, CHUNK_TOKENS, OUTPUT_TOKENS, STREAM_BODY, selectWorkloads } from './lib/chat-workloads.mjs';
import { busiestCpuProfile } from './lib/cpuprofile.mjs';
import { envNumber } from './lib/env.mjs';
import { CpuMeter } from './lib/proc-cpu.mjs';
import { installCleanup, stopAll } from './lib/processes.mjs';
import { assertBuilt, startMock, startSluice, upstreamConfigYaml } from './lib/sluice.mjs';
import { fixed, formatTable, grouped } from './lib/table.mjs';
import { runWorker } from './lib/worker-run.mjs';

const [workload] = selectWorkloads([process.env.PROFILE_WORKLOAD || 'chat c=50']);
const DURATION_S = envNumber('PROFILE_DURATION', 10, 1);
const TOP = Math.round(envNumber('PROFILE_TOP', 25, 1));
const INTERVAL_US = Math.round(envNumber('PROFILE_INTERVAL', 1000, 10));

async function main() {
  installCleanup();
  assertBuilt();
  const dir = process.env.PROFILE_DIR || mkdtempSync(join(os.tmpdir(), 'sluice-prof-'));
  mkdirSync(dir, { recursive: true });

  const mock = await startMock({ outputTokens: OUTPUT_TOKENS, chunkTokens: CHUNK_TOKENS });
  const gw = await startSluice({
    configPath: join(dir, 'sluice.yaml'),
    configYaml: upstreamConfigYaml(`${mock.origin}/v1`) + (process.env.PROFILE_CONFIG ? readFileSync(process.env.PROFILE_CONFIG, 'utf8') : ''),
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-interval=${INTERVAL_US}`],
  });
  console.log(`profiling sluice pid ${gw.proc.pid} under "${workload.id}" for ${DURATION_S} s (+1 s warm-up) ...`);

  const meter = new CpuMeter(gw.proc.pid);
  const worker = workload.stream ? new URL('./lib/sse-worker.mjs', import.meta.url) : new URL('./lib/autocannon-worker.mjs', import.meta.url);
  const body = workload.stream ? STREAM_BODY : CHAT_BODY;
  const load = await runWorker(
    worker,
    {
      url: `${gw.origin}${CHAT_PATH}`,
      origin: gw.origin,
      path: CHAT_PATH,
      method: 'POST',
      // PROFILE_API_KEY: the key a `consumers:` section in PROFILE_CONFIG expects.
      headers: process.env.PROFILE_API_KEY ? { ...BASE_HEADERS, authorization: `Bearer ${process.env.PROFILE_API_KEY}` } : BASE_HEADERS,
      body,
      connections: workload.connections,
      warmupSeconds: 1,
      durationSeconds: DURATION_S,
    },
    { onMeasureStart: () => meter.start() },
  );
  const cpu = meter.stop();
  const done = workload.stream ? load.ok : load.responses;
  const problems = (load.non2xx ?? 0) + (load.errors ?? 0) + (load.timeouts ?? 0) + (load.incomplete ?? 0);

  await gw.proc.stop(30_000); // SIGTERM: the gateway drains and exits, and V8 writes the profile
  await mock.proc.stop();

  // One profile per process (supervisor and worker): the worker's is the busy one.
  const found = busiestCpuProfile(dir);
  if (!found) throw new Error(`no .cpuprofile in ${dir} (did the gateway exit cleanly? ${gw.proc.output()})`);
  const { file, summary } = found;

  console.log(
    `\n${grouped(load.rps)} req/s, p50 ${fixed((load.ttftMs ?? load.latencyMs).p50, 3)} ms${workload.stream ? ' (TTFT)' : ''}; ` +
      `gateway CPU ${fixed((cpu.cpuSeconds * 1e6) / Math.max(1, done), 1)} µs/req (${fixed(cpu.utilization * 100, 0)} % of a core)` +
      `${problems ? `; ${problems} failed requests` : ''}`,
  );
  console.log(`profile: ${file}`);
  console.log(`main thread: ${fixed(summary.busyMs, 0)} ms busy, ${fixed(summary.idleMs, 0)} ms idle (whole process life, start-up included)\n`);
  console.log('self time by function (% of busy):');
  console.log(
    formatTable(
      ['self ms', '%', 'function', 'where'],
      summary.functions.slice(0, TOP).map((f) => [fixed(f.selfMs, 0), fixed(f.pct, 1), f.name, f.where]),
      { left: [2, 3] },
    ),
  );
  console.log('\nself time by code area (% of busy):');
  console.log(
    formatTable(
      ['self ms', '%', 'area'],
      summary.areas.slice(0, TOP).map((a) => [fixed(a.selfMs, 0), fixed(a.pct, 1), a.area]),
      { left: [2] },
    ),
  );
}

try {
  await main();
} catch (err) {
  console.error(`profile failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
} finally {
  await stopAll();
}
