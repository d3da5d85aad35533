#!/usr/bin/env node
/**
 * Prefix-routing bench: simulated vLLM replicas (bench/vllm-sim, one process each) behind a 2-worker
 * gateway, three workloads, three balancers, each (workload, balancer) on a fresh fleet and gateway.
 *
 * Workloads (lib/prefix-workloads.mjs), each driven by BENCH_USERS closed-loop streaming users:
 *   chat       multi-turn conversations of many users; answers go back into the next turn
 *   shared     a few long system prompts of skewed popularity, each with a short new question
 *   unrelated  new text every time: nothing to reuse
 * Balancers: round_robin, least_request, prefix (defaults, metrics scraped every second).
 *
 * Replicas: BENCH_KV_BLOCKS blocks of 16 tokens each (default 2048: 32 K tokens, so that one replica
 * cannot hold the working set of chat or shared while four can), prefill BENCH_PREFILL_US µs per
 * uncached prompt token (100: a 2,000-token miss costs 200 ms), BENCH_DECODE_MS per step.
 *
 * Measured per run over the window after BENCH_WARMUP seconds:
 *   - prefix-cache hit rate from the replicas' /metrics (hit tokens / looked-up tokens);
 *   - the hit rate of an oracle that knows every replica's cache and may place any prompt anywhere
 *     (lib/prefix-workloads.mjs), on the same requests: an upper bound for routing;
 *   - TTFT p50/p99 at the client (first content token of the stream), throughput (answers/s,
 *     output tokens/s);
 *   - max/min load: the busiest replica's mean queue (running + waiting, from /metrics every 250 ms)
 *     over the idlest's; and the same for requests served.
 * Targets (PASS/MISS): on chat and shared, prefix TTFT p50 at least 2× better than round_robin and
 * hit rate ≥ 90 % of the oracle's; on unrelated, prefix TTFT p50 within 5 % of least_request's.
 *
 * Users think BENCH_THINK_MS (a uniform "min,max", default 500,2000 ms) between an answer and their
 * next request, so the replicas are busy but not saturated and the 2-core box is not the bottleneck.
 *
 * Environment: BENCH_DURATION (s, 30), BENCH_WARMUP (s, 15), BENCH_USERS (64), BENCH_WORKERS (2),
 * BENCH_REPLICAS (4), BENCH_KV_BLOCKS (2048), BENCH_PREFILL_US (100), BENCH_DECODE_MS (8),
 * BENCH_MAX_TOKENS (24), BENCH_THINK_MS (500,2000), BENCH_WORKLOADS (chat,shared,unrelated), BENCH_POLICIES
 * (round_robin,least_request,prefix), BENCH_PREFIX (JSON merged into the provider's `prefix` block).
 * Exit code: 0 when the bench ran (missed targets included), 1 when it broke.
 */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { envList, envNumber } from './lib/env.mjs';
import { describeMachine, machineInfo } from './lib/machine.mjs';
import { chatWorkload, oracleHitRate, runClosedLoop, sharedPrefixWorkload, unrelatedWorkload } from './lib/prefix-workloads.mjs';
import { installCleanup, stopAll } from './lib/processes.mjs';
import { writeResult } from './lib/results.mjs';
import { assertBuilt, REPO_ROOT, startSluice } from './lib/sluice.mjs';
import { summarize } from './lib/stats.mjs';
import { fixed, formatTable, grouped } from './lib/table.mjs';
import { readFleetMetrics, sampleFleetLoad, startVllmFleet } from './lib/vllm-fleet.mjs';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

const DURATION_S = envNumber('BENCH_DURATION', 30, 1);
const WARMUP_S = envNumber('BENCH_WARMUP', 15, 0);
const USERS = Math.round(envNumber('BENCH_USERS', 48, 1));
const WORKERS = Math.round(envNumber('BENCH_WORKERS', 2, 1));
const REPLICAS = Math.round(envNumber('BENCH_REPLICAS', 4, 1));
const KV_BLOCKS = Math.round(envNumber('BENCH_KV_BLOCKS', 1024, 64));
const PREFILL_US = envNumber('BENCH_PREFILL_US', 100, 0);
const DECODE_MS = envNumber('BENCH_DECODE_MS', 8, 0);
const MAX_TOKENS = Math.round(envNumber('BENCH_MAX_TOKENS', 24, 1));
const THINK_MS = (envList('BENCH_THINK_MS') ?? ['500', '2000']).map(Number);
if (THINK_MS.length !== 2 || !THINK_MS.every((n) => Number.isFinite(n) && n >= 0) || THINK_MS[0] > THINK_MS[1]) throw new Error('BENCH_THINK_MS must be "min,max" in ms');
const PREFIX_EXTRA = process.env.BENCH_PREFIX ? JSON.parse(process.env.BENCH_PREFIX) : {};
const BLOCK_SIZE = 16;
const MODEL = 'bench';

const WORKLOADS = {
  chat: () => chatWorkload(),
  shared: () => sharedPrefixWorkload({ prompts: 8, promptWords: 2400, popularity: [0.25, 0.18, 0.14, 0.12, 0.1, 0.08, 0.07, 0.06] }),
  unrelated: () => unrelatedWorkload(),
};
const POLICIES = envList('BENCH_POLICIES') ?? ['round_robin', 'least_request', 'prefix'];
const WORKLOAD_NAMES = envList('BENCH_WORKLOADS') ?? Object.keys(WORKLOADS);
for (const w of WORKLOAD_NAMES) if (!WORKLOADS[w]) throw new Error(`BENCH_WORKLOADS: unknown workload "${w}" (known: ${Object.keys(WORKLOADS).join(', ')})`);
for (const p of POLICIES) if (!['round_robin', 'least_request', 'prefix'].includes(p)) throw new Error(`BENCH_POLICIES: unknown balancer "${p}"`);

const SIM_OPTIONS = { kvBlocks: KV_BLOCKS, prefillUsPerToken: PREFILL_US, decodeMs: DECODE_MS, decodeMsPerSeq: 0.1 };
const log = (...args) => console.log(...args);

function configYaml(fleet, balancer) {
  const endpoints = fleet.map((r) => `      - { url: "${r.url}" }`).join('\n');
  const prefix = balancer === 'prefix' ? `    prefix: ${JSON.stringify(PREFIX_EXTRA)}\n` : '';
  return `# generated by bench/prefix.mjs
log: { level: warn }
providers:
  - name: fleet
    type: vllm
    endpoints:
${endpoints}
    balancer: ${balancer}
${prefix}models:
  - name: ${MODEL}
    targets: [{ provider: fleet, model: sim-model }]
`;
}

const delta = (after, before) => after.map((a, i) => Object.fromEntries(Object.keys(a).map((k) => [k, a[k] - before[i][k]])));

/** One workload on one balancer: fresh replicas, fresh gateway, warm-up, measured window. */
async function measure(workloadName, balancer, tmp, tokenizer) {
  const fleet = await startVllmFleet(REPLICAS, SIM_OPTIONS);
  const gateway = await startSluice({ configPath: join(tmp, `sluice-${workloadName}-${balancer}.yaml`), configYaml: configYaml(fleet, balancer), workers: WORKERS });
  try {
    const warmupMs = WARMUP_S * 1000;
    const endMs = warmupMs + DURATION_S * 1000;
    let before;
    let after;
    let stopSampling;
    let loads;
    const marks = [
      setTimeout(async () => {
        before = await readFleetMetrics(fleet);
        stopSampling = sampleFleetLoad(fleet, 250);
      }, warmupMs),
      setTimeout(async () => {
        after = await readFleetMetrics(fleet);
        loads = await stopSampling?.();
      }, endMs),
    ];
    const records = await runClosedLoop({
      url: `${gateway.origin}/v1/chat/completions`,
      model: MODEL,
      workload: WORKLOADS[workloadName](),
      users: USERS,
      durationMs: endMs,
      maxTokens: MAX_TOKENS,
      thinkMs: THINK_MS,
    });
    while (after === undefined || loads === undefined) await new Promise((r) => setTimeout(r, 50));
    for (const m of marks) clearTimeout(m);

    const measured = records.filter((r) => r.sentAt >= warmupMs && r.sentAt < endMs);
    const ok = measured.filter((r) => r.ok);
    const finished = records.filter((r) => r.ok && r.endAt >= warmupMs && r.endAt < endMs);
    const ttft = summarize(ok.map((r) => r.firstTokenAt - r.sentAt));
    const replicas = delta(after, before);
    const hit = replicas.reduce((s, r) => s + r.hitTokens, 0);
    const query = replicas.reduce((s, r) => s + r.queryTokens, 0);
    const served = replicas.map((r) => r.requests);
    const oracle = oracleHitRate(records, { replicas: REPLICAS, kvBlocks: KV_BLOCKS, blockSize: BLOCK_SIZE, measuredFrom: warmupMs, ...tokenizer });
    return {
      workload: workloadName,
      balancer,
      requests: measured.length,
      errors: measured.length - ok.length,
      ttftMs: ttft,
      answersPerSecond: finished.length / DURATION_S,
      outputTokensPerSecond: finished.reduce((s, r) => s + r.outputTokens, 0) / DURATION_S,
      meanPromptTokens: ok.length ? ok.reduce((s, r) => s + r.promptTokens, 0) / ok.length : NaN,
      hitRate: query > 0 ? hit / query : NaN,
      oracleHitRate: oracle,
      replicas: replicas.map((r, i) => ({ ...r, meanQueue: loads[i] })),
      queueMaxMin: Math.max(...loads) / Math.min(...loads),
      servedMaxMin: Math.max(...served) / Math.min(...served),
    };
  } finally {
    await gateway.proc.stop();
    await Promise.all(fleet.map((r) => r.proc.stop()));
  }
}

const pct = (x) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)} %` : '-');
const ratio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '∞');

async function main() {
  installCleanup((sig) => log(`\n${sig}: stopping every process the bench started ...`));
  assertBuilt();
  const startedAt = new Date();
  const machine = machineInfo();
  const tmp = mkdtempSync(join(os.tmpdir(), 'sluice-prefix-'));
  process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
  // The oracle renders prompts exactly as the balancer and the simulator do.
  const blocks = await import(pathToFileURL(join(REPO_ROOT, 'dist/src/routing/prompt-blocks.js')).href);
  blocks.warmUpTokenizer();
  const tokenizer = { promptTokens: (body) => blocks.chatPromptTokens(body), encodeText: blocks.encodeText, blockHashes: blocks.blockHashes };

  log(`Sluice prefix-routing bench — ${startedAt.toISOString()}`);
  log(`machine: ${describeMachine(machine)}`);
  log(
    `${REPLICAS} simulated vLLM replicas (kv ${KV_BLOCKS} blocks × ${BLOCK_SIZE}, prefill ${PREFILL_US} µs/token, decode ${DECODE_MS} ms/step), ` +
      `${WORKERS} gateway workers, ${USERS} streaming users thinking ${THINK_MS[0]}-${THINK_MS[1]} ms, max_tokens ${MAX_TOKENS}, ${WARMUP_S} s warm-up + ${DURATION_S} s per run`,
  );
  for (const w of WORKLOAD_NAMES) log(`  ${w}: ${WORKLOADS[w]().describe}`);
  log(`note: the load generator, ${REPLICAS} simulators and every Sluice process share these ${machine.cpuCount} cores.\n`);

  const results = [];
  for (const w of WORKLOAD_NAMES) {
    for (const p of POLICIES) {
      log(`${w} / ${p} ...`);
      const r = await measure(w, p, tmp, tokenizer);
      results.push(r);
      log(
        `  hit ${pct(r.hitRate)} (oracle ${pct(r.oracleHitRate)}), TTFT p50 ${fixed(r.ttftMs.p50, 0)} ms p99 ${fixed(r.ttftMs.p99, 0)} ms, ` +
          `${fixed(r.answersPerSecond, 1)} answers/s, queue max/min ${ratio(r.queueMaxMin)}, errors ${r.errors}`,
      );
    }
  }

  log(`\nResults — ${startedAt.toISOString()} — ${describeMachine(machine)}\n`);
  log(
    formatTable(
      ['workload', 'balancer', 'hit rate', 'oracle', 'TTFT p50 ms', 'TTFT p99 ms', 'answers/s', 'out tok/s', 'queue max/min', 'served max/min', 'errors'],
      results.map((r) => [
        r.workload,
        r.balancer,
        pct(r.hitRate),
        pct(r.oracleHitRate),
        fixed(r.ttftMs.p50, 0),
        fixed(r.ttftMs.p99, 0),
        fixed(r.answersPerSecond, 1),
        grouped(r.outputTokensPerSecond),
        ratio(r.queueMaxMin),
        ratio(r.servedMaxMin),
        String(r.errors),
      ]),
      { left: [0, 1] },
    ),
  );

  const goals = [];
  const find = (w, p) => results.find((r) => r.workload === w && r.balancer === p);
  for (const w of ['chat', 'shared']) {
    const px = find(w, 'prefix');
    const rr = find(w, 'round_robin');
    if (px && rr) {
      const speedup = rr.ttftMs.p50 / px.ttftMs.p50;
      goals.push({ goal: `${w}: TTFT p50 round_robin / prefix`, value: ratio(speedup), target: '≥ 2×', pass: speedup >= 2 });
    }
    if (px) {
      const share = px.hitRate / px.oracleHitRate;
      goals.push({ goal: `${w}: prefix hit rate / oracle`, value: pct(share), target: '≥ 90 %', pass: share >= 0.9 });
    }
  }
  const pu = find('unrelated', 'prefix');
  const lu = find('unrelated', 'least_request');
  if (pu && lu) {
    const rel = pu.ttftMs.p50 / lu.ttftMs.p50;
    goals.push({ goal: 'unrelated: TTFT p50 prefix / least_request', value: ratio(rel), target: '≤ 1.05×', pass: rel <= 1.05 });
    const thr = pu.answersPerSecond / lu.answersPerSecond;
    goals.push({ goal: 'unrelated: throughput prefix / least_request', value: ratio(thr), target: '≥ 0.95×', pass: thr >= 0.95 });
  }
  log(`\nTargets:\n${formatTable(['target', 'value', 'needed', 'verdict'], goals.map((g) => [g.goal, g.value, g.target, g.pass ? 'PASS' : 'MISS']))}`);

  const notes = [
    'hit rate: prefix-cache hit tokens / looked-up prompt tokens, summed over the replicas\' /metrics during the measured window (vLLM counts one lookup per admission, stopping one token short of the prompt).',
    'oracle: the same requests replayed in send order against one LRU cache as large as all replicas together (a router that knows every cache and may place any prompt anywhere, load ignored): an upper bound for routing.',
    'TTFT: from sending the request to the first content token at the client, through the gateway; queue: running + waiting from each replica\'s /metrics every 250 ms, the busiest replica\'s mean over the idlest\'s.',
    `the load generator, ${REPLICAS} simulators, the supervisor and ${WORKERS} workers share ${machine.cpuCount} cores; simulated costs are real timers, so CPU contention adds to every policy alike.`,
  ];
  log(`\nNotes:\n${notes.map((n) => `  - ${n}`).join('\n')}`);

  const report = {
    bench: 'prefix',
    date: startedAt.toISOString(),
    machine: { ...machine, sluice: JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version },
    settings: {
      durationSeconds: DURATION_S,
      warmupSeconds: WARMUP_S,
      users: USERS,
      workers: WORKERS,
      replicas: REPLICAS,
      sim: SIM_OPTIONS,
      maxTokens: MAX_TOKENS,
      thinkMs: THINK_MS,
      prefix: PREFIX_EXTRA,
      workloads: Object.fromEntries(WORKLOAD_NAMES.map((w) => [w, WORKLOADS[w]().describe])),
      policies: POLICIES,
    },
    results,
    goals,
    notes,
  };
  const file = writeResult(RESULTS_DIR, 'prefix', startedAt, report);
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
