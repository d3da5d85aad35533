#!/usr/bin/env node
/**
 * Response cache bench: what the cache adds to a request, what it saves, and how good its semantic
 * layer is, in one run.
 *
 * One standalone mock upstream and three gateways (1 worker each), side by side: cache off (no
 * `cache` block: pass-through, the baseline), cache with the defaults (exact + semantic with the
 * shipped USE-lite embedder), and exact only (`semantic.enabled: false`). They are measured in
 * interleaved rounds (BENCH_ROUNDS), so load from elsewhere on the box weighs on each alike.
 *
 * Latency (one connection, sequential requests, keep-alive), per configuration:
 *  - miss: a question never asked before (a number in each, so no cached question can answer it):
 *    policy, keys, exact lookup, then (defaults) embedding, search and verification in the pool,
 *    the upstream call in translate mode, and the store;
 *  - exact hit: a question stored before, asked again;
 *  - semantic hit (defaults): a paraphrase of a stored question (bench/data/cache-pairs.jsonl,
 *    the paraphrase pairs the verifier accepts: found in a first pass), answered from the cache.
 * "Added" is the percentile minus the same percentile with the cache off (requests to the upstream
 * that the cache is not in): negative means faster than going upstream. Targets: exact hit ≤ 1 ms
 * added at p50 and p99, semantic hit ≤ 30 ms added at p99.
 *
 * Throughput at a 50 % hit rate: BENCH_CONNECTIONS connections for BENCH_SECONDS per configuration
 * (split over the rounds; the median round is reported), every other request a stored question
 * (an exact hit), the others new questions; the same mix with the cache off.
 *
 * Quality: runs bench/cache-quality.mjs (recall and false positives at the default threshold on the
 * labeled pairs, targets FPR ≤ 1 %, recall ≥ 50 %) and reports its numbers.
 *
 * Writes bench/results/cache-<time>.json. Needs `npm run build`.
 * Environment: BENCH_SAMPLES (per latency cell, default 1000), BENCH_SEMANTIC_SAMPLES (default 400),
 * BENCH_WARMUP (default 200), BENCH_CONNECTIONS (default 32), BENCH_SECONDS (default 8), BENCH_ROUNDS (default 4),
 * BENCH_SKIP_QUALITY=1 (leave the quality run out).
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { CHAT_PATH } from './lib/chat-workloads.mjs';
import { envNumber } from './lib/env.mjs';
import { describeMachine, machineInfo } from './lib/machine.mjs';
import { installCleanup, stopAll } from './lib/processes.mjs';
import { writeResult } from './lib/results.mjs';
import { assertBuilt, REPO_ROOT, startMock, startSluice } from './lib/sluice.mjs';
import { median, summarize } from './lib/stats.mjs';
import { fixed, formatTable, grouped, signed } from './lib/table.mjs';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const PAIRS = new URL('./data/cache-pairs.jsonl', import.meta.url);

const SAMPLES = Math.round(envNumber('BENCH_SAMPLES', 1000, 10));
const SEMANTIC_SAMPLES = Math.round(envNumber('BENCH_SEMANTIC_SAMPLES', 400, 10));
const WARMUP = Math.round(envNumber('BENCH_WARMUP', 200, 0));
const CONNECTIONS = Math.round(envNumber('BENCH_CONNECTIONS', 32, 1));
const SECONDS = envNumber('BENCH_SECONDS', 8, 1);
const ROUNDS = Math.round(envNumber('BENCH_ROUNDS', 4, 1));
const SKIP_QUALITY = process.env.BENCH_SKIP_QUALITY === '1';
const TARGETS = { exactHitAddedMs: 1, semanticHitAddedP99Ms: 30, maxFpr: 0.01, minRecall: 0.5 };

const SYSTEM = 'You are a concise assistant. Answer in two sentences at most.';
const HEADERS = { 'content-type': 'application/json', authorization: 'Bearer x' };
const log = (...args) => console.log(...args);

const CONFIGS = {
  off: undefined,
  defaults: {},
  exactOnly: { semantic: { enabled: false } },
};

function configYaml(mockOrigin, cache) {
  return JSON.stringify({
    log: { level: 'warn' },
    admin: { watch: false },
    providers: [{ name: 'up', type: 'openai-compatible', base_url: `${mockOrigin}/v1`, models: ['*'] }],
    models: [{ name: 'bench', targets: [{ provider: 'up', model: 'bench' }] }],
    ...(cache !== undefined ? { cache } : {}),
  });
}

function body(question) {
  return JSON.stringify({ model: 'bench', messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: question }], max_tokens: 128 });
}

/** New questions: each carries numbers no other has, so the verifier rejects every neighbour. */
let fresh = 0;
const TOPICS = ['the history of Rome', 'volcanoes', 'the Pacific Ocean', 'jazz music', 'honey bees', 'the Moon', 'chess openings', 'glaciers'];
function newQuestion(tag) {
  const n = ++fresh;
  return `Give me fact number ${n} about ${TOPICS[n % TOPICS.length]} (${tag} ${n * 7919}).`;
}

async function ask(pool, question) {
  const t0 = performance.now();
  const res = await pool.request({ path: CHAT_PATH, method: 'POST', headers: HEADERS, body: body(question) });
  await res.body.text();
  const ms = performance.now() - t0;
  if (res.statusCode !== 200) throw new Error(`status ${res.statusCode} for ${JSON.stringify(question)}`);
  return { ms, cache: String(res.headers['x-sluice-cache'] ?? 'none') };
}

/** `count` sequential requests from `next()`; the times of answers whose cache status `accept`s go to `cell`. */
async function collect(pool, next, count, cell, accept = () => true) {
  let timed = 0;
  let tries = 0;
  while (timed < count && tries < count * 3) {
    tries++;
    const r = await ask(pool, next());
    const s = r.cache.replace(/;.*/, '');
    cell.statuses[s] = (cell.statuses[s] ?? 0) + 1;
    if (accept(r.cache)) {
      cell.ms.push(r.ms);
      timed++;
    }
  }
}

function summaryOf(cell) {
  const sum = summarize(cell.ms);
  return { samples: cell.ms.length, statuses: cell.statuses, p50: sum.p50, p90: sum.p90, p99: sum.p99, mean: sum.mean, max: sum.max };
}

/** `connections` loops for `seconds`: every other request a stored question, the others new. */
async function throughput(origin, stored, connections, seconds) {
  const pool = new Pool(origin, { connections, pipelining: 1 });
  const ms = [];
  const statuses = {};
  let errors = 0;
  let turn = 0;
  const until = performance.now() + seconds * 1000;
  const loop = async () => {
    while (performance.now() < until) {
      const hit = turn++ % 2 === 0;
      const q = hit ? stored[turn % stored.length] : newQuestion('load');
      try {
        const r = await ask(pool, q);
        ms.push(r.ms);
        const s = r.cache.replace(/;.*/, '');
        statuses[s] = (statuses[s] ?? 0) + 1;
      } catch {
        errors++;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: connections }, loop));
  const elapsed = (performance.now() - t0) / 1000;
  await pool.close();
  return { requests: ms.length, rps: ms.length / elapsed, errors, statuses, ms };
}

function runQuality() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(new URL('./cache-quality.mjs', import.meta.url))], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let printed = 0;
    child.stdout.setEncoding('utf8').on('data', (s) => {
      out += s;
      // Whole lines only, each indented once.
      const end = out.lastIndexOf('\n') + 1;
      if (end > printed) process.stdout.write(out.slice(printed, end).replace(/^/gm, '  │ '));
      printed = Math.max(printed, end);
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      const file = /wrote (\S+\.json)/.exec(out)?.[1];
      if (code !== 0 || file === undefined) reject(new Error(`cache-quality.mjs failed (code ${code})`));
      else resolve({ file, report: JSON.parse(readFileSync(file, 'utf8')) });
    });
  });
}

async function main() {
  assertBuilt();
  installCleanup(() => log('\ninterrupted; stopping children'));
  const startedAt = new Date();
  const machine = machineInfo();
  const loadBefore = os.loadavg();
  log(describeMachine(machine));
  // Other work on the box moves every number here; the load average says how much there was.
  log(`load average at start: ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);
  log(`latency: ${SAMPLES} samples per cell (${SEMANTIC_SAMPLES} for semantic hits), ${WARMUP} warm-up; throughput: ${CONNECTIONS} connections × ${SECONDS} s, 50 % exact hits; ${ROUNDS} interleaved rounds\n`);

  const pairs = readFileSync(PAIRS, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l))
    .filter((p) => p.label === 'paraphrase');
  const storedQuestions = [...new Set(pairs.map((p) => p.a))];

  const dir = mkdtempSync(join(os.tmpdir(), 'sluice-bench-cache-'));
  const mock = await startMock();
  const results = {};
  try {
    // All three gateways run side by side and are measured in interleaved rounds: whatever else the
    // box does then weighs on each configuration alike.
    const gws = {};
    const served = {};
    for (const [name, cache] of Object.entries(CONFIGS)) {
      const gw = await startSluice({ configPath: join(dir, `${name}.json`), configYaml: configYaml(mock.origin, cache) });
      const pool = new Pool(gw.origin, { connections: 1 });
      gws[name] = { gw, pool, cache };
      for (let i = 0; i < WARMUP; i++) await ask(pool, newQuestion('warm'));
      if (cache !== undefined) {
        // Stored one after the other, so each is embedded and indexed while the pool is idle.
        for (const q of storedQuestions) await ask(pool, q);
        await new Promise((r) => setTimeout(r, 500));
        if (cache.semantic?.enabled !== false) {
          // Which paraphrases the semantic layer serves (a missed one is stored and would be an
          // exact hit next time, so only the served ones are asked again).
          served[name] = [];
          for (const p of pairs) if ((await ask(pool, p.b)).cache.startsWith('semantic-hit')) served[name].push(p.b);
          log(`${name}: ${served[name].length}/${pairs.length} paraphrases served by the semantic layer`);
        }
      }
      results[name] = {};
    }
    const cells = {};
    for (const name of Object.keys(gws)) {
      cells[name] = { miss: { ms: [], statuses: {} }, exactHit: { ms: [], statuses: {} }, semanticHit: { ms: [], statuses: {} }, throughput: [] };
    }
    const names = Object.keys(gws);
    let i = 0;
    for (let round = 0; round < ROUNDS; round++) {
      log(`round ${round + 1}/${ROUNDS}`);
      for (let k = 0; k < names.length; k++) {
        const name = names[(round + k) % names.length];
        const { pool, cache } = gws[name];
        const c = cells[name];
        await collect(pool, () => newQuestion('miss'), Math.ceil(SAMPLES / ROUNDS), c.miss);
        if (cache === undefined) continue;
        await collect(pool, () => storedQuestions[i++ % storedQuestions.length], Math.ceil(SAMPLES / ROUNDS), c.exactHit, (s) => s === 'hit');
        const para = served[name];
        if (para?.length) await collect(pool, () => para[i++ % para.length], Math.ceil(SEMANTIC_SAMPLES / ROUNDS), c.semanticHit, (s) => s.startsWith('semantic-hit'));
      }
      for (let k = 0; k < names.length; k++) {
        const name = names[(round + k) % names.length];
        cells[name].throughput.push(await throughput(gws[name].gw.origin, storedQuestions, CONNECTIONS, SECONDS / ROUNDS));
      }
    }
    for (const name of names) {
      const c = cells[name];
      const r = results[name];
      r.miss = summaryOf(c.miss);
      if (c.exactHit.ms.length > 0) r.exactHit = summaryOf(c.exactHit);
      if (c.semanticHit.ms.length > 0) r.semanticHit = { ...summaryOf(c.semanticHit), paraphrasesServed: `${served[name].length}/${pairs.length}` };
      const rounds = c.throughput;
      const all = summarize(rounds.flatMap((t) => t.ms));
      const statuses = {};
      for (const t of rounds) for (const [k, v] of Object.entries(t.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
      r.throughput = {
        rps: median(rounds.map((t) => t.rps)),
        rpsPerRound: rounds.map((t) => Math.round(t.rps)),
        requests: rounds.reduce((n, t) => n + t.requests, 0),
        errors: rounds.reduce((n, t) => n + t.errors, 0),
        statuses,
        p50: all.p50,
        p99: all.p99,
      };
      log(`${name}: miss p50 ${fixed(r.miss.p50, 3)} ms${r.exactHit ? `, exact hit p50 ${fixed(r.exactHit.p50, 3)} ms` : ''}${r.semanticHit ? `, semantic hit p50 ${fixed(r.semanticHit.p50, 3)} ms` : ''}; ${grouped(r.throughput.rps)} req/s (${JSON.stringify(statuses)}, errors ${r.throughput.errors})`);
    }
    for (const { gw, pool } of Object.values(gws)) {
      await pool.close();
      await gw.proc.stop();
    }
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }

  const off = results.off.miss;
  const added = (cell, p) => (cell === undefined ? undefined : cell[p] - off[p]);
  const rows = [];
  const latencyReport = {};
  for (const [name, label] of [
    ['defaults', 'defaults (exact + semantic)'],
    ['exactOnly', 'exact only'],
  ]) {
    const r = results[name];
    for (const [kind, cell] of [
      ['exact hit', r.exactHit],
      ['semantic hit', r.semanticHit],
      ['miss', r.miss],
    ]) {
      if (cell === undefined) continue;
      rows.push([label, kind, fixed(cell.p50, 3), signed(added(cell, 'p50'), 3), fixed(cell.p99, 3), signed(added(cell, 'p99'), 3), grouped(cell.samples)]);
      latencyReport[`${name}/${kind}`] = { p50: cell.p50, p99: cell.p99, addedP50: added(cell, 'p50'), addedP99: added(cell, 'p99'), samples: cell.samples };
    }
  }
  log(`\ncache off (baseline, to the upstream): p50 ${fixed(off.p50, 3)} ms, p99 ${fixed(off.p99, 3)} ms`);
  log(formatTable(['cache', 'request', 'p50 ms', 'added p50', 'p99 ms', 'added p99', 'samples'], rows, { left: [0, 1] }));
  log(
    '\n' +
      formatTable(
        ['cache', 'req/s at 50 % hits', 'p50 ms', 'p99 ms', 'vs off'],
        Object.entries(results).map(([name, r]) => [name, grouped(r.throughput.rps), fixed(r.throughput.p50, 2), fixed(r.throughput.p99, 2), `${fixed(r.throughput.rps / results.off.throughput.rps, 2)}×`]),
      ),
  );

  let quality;
  if (!SKIP_QUALITY) {
    log('\n── quality (bench/cache-quality.mjs)');
    const { file, report } = await runQuality();
    const d = report.atDefault;
    quality = {
      file: file.replace(REPO_ROOT, ''),
      threshold: d.threshold,
      recall: d.all.withVerifier.pairs.recall,
      fpr: d.all.withVerifier.pairs.fpr,
      testRecall: d.test.withVerifier.pairs.recall,
      testFpr: d.test.withVerifier.pairs.fpr,
      retrievalFalseHitRate: d.all.withVerifier.retrieval.falseHitRate,
      targets: report.targets,
    };
  }

  const d = results.defaults;
  const verdict = {
    exactHitAddedP50: added(d.exactHit, 'p50') <= TARGETS.exactHitAddedMs,
    exactHitAddedP99: added(d.exactHit, 'p99') <= TARGETS.exactHitAddedMs,
    semanticHitAddedP99: added(d.semanticHit, 'p99') <= TARGETS.semanticHitAddedP99Ms,
    ...(quality ? { fpr: quality.fpr <= TARGETS.maxFpr, recall: quality.recall >= TARGETS.minRecall } : {}),
  };
  log('\n' + formatTable(['goal', 'target', 'this run', 'met'], [
    ['exact hit, added p50 / p99', `≤ ${TARGETS.exactHitAddedMs} ms`, `${signed(added(d.exactHit, 'p50'), 3)} / ${signed(added(d.exactHit, 'p99'), 3)} ms`, String(verdict.exactHitAddedP50 && verdict.exactHitAddedP99)],
    ['semantic hit, added p99', `≤ ${TARGETS.semanticHitAddedP99Ms} ms`, `${signed(added(d.semanticHit, 'p99'), 3)} ms`, String(verdict.semanticHitAddedP99)],
    ...(quality
      ? [
          ['false positives (defaults)', '≤ 1 %', `${fixed(quality.fpr * 100, 1)} %`, String(verdict.fpr)],
          ['recall (defaults)', '≥ 50 %', `${fixed(quality.recall * 100, 1)} % (test split ${fixed(quality.testRecall * 100, 1)} %)`, String(verdict.recall)],
        ]
      : []),
  ], { left: [0, 1, 2] }));

  const file = writeResult(RESULTS_DIR, 'cache', startedAt, {
    bench: 'cache',
    startedAt: startedAt.toISOString(),
    machine,
    loadAverage: { start: loadBefore, end: os.loadavg() },
    settings: { samples: SAMPLES, semanticSamples: SEMANTIC_SAMPLES, warmup: WARMUP, connections: CONNECTIONS, seconds: SECONDS, rounds: ROUNDS, workers: 1 },
    baselineOff: off,
    latency: latencyReport,
    results,
    quality,
    targets: TARGETS,
    verdict,
  });
  log(`\nwrote ${file}`);
}

main().catch(async (err) => {
  console.error(err);
  await stopAll();
  process.exit(1);
});
