#!/usr/bin/env node
/**
 * Semantic cache quality: how often the semantic layer serves a cached answer to a paraphrase
 * (recall) and how often it serves one to a question that only looks like the cached one (false
 * positives), for the similarity threshold alone and with the verifier, across thresholds.
 *
 * Data: bench/data/cache-pairs.jsonl (labeled pairs; see bench/data/README.md), embedded with the
 * shipped offline embedder (USE-lite).
 *
 * Two measurements:
 *  - pairs: each pair on its own. Recall = paraphrase pairs served / paraphrase pairs; FPR = hard
 *    negatives served / hard negatives.
 *  - retrieval: every distinct `a` question is stored in one semantic index (the real
 *    SemanticIndex: HNSW, candidates, verifier); every `b` question is looked up as the gateway
 *    would. A hit is correct when it lands on a question labeled as the same (paraphrase links,
 *    transitively); any other hit is a false hit. This is what a low threshold risks in practice:
 *    unrelated nearest neighbours reaching the verifier.
 *
 * The default threshold is picked by a rule, printed with its inputs. A threshold is safe when, with
 * the verifier, on the dev split, pair FPR ≤ 1 % and retrieval false hits ≤ 1 % at it and at every
 * higher threshold. Among safe thresholds the pick is the highest whose dev recall is at most
 * RECALL_SLACK below the best safe recall: the verifier carries the safety, and the threshold adds
 * what protection it can (fewer wrong neighbours ever reach the verifier) for a bounded recall cost.
 * The test split is reported beside dev; config's default (DEFAULT_SEMANTIC_THRESHOLD) is compared
 * with the pick and a mismatch is flagged.
 *
 * Writes bench/results/cache-quality-<time>.json. Needs `npm run build`.
 * Environment: BENCH_CANDIDATES (candidates examined per lookup, default: config default).
 */

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { envNumber } from './lib/env.mjs';
import { describeMachine, machineInfo } from './lib/machine.mjs';
import { writeResult } from './lib/results.mjs';

const ROOT = new URL('../', import.meta.url);
const DIST = new URL('dist/src/cache/', ROOT);
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const DATA = new URL('./data/cache-pairs.jsonl', import.meta.url);

const MAX_FPR = 0.01;
const MAX_FALSE_HITS = 0.01;
const MIN_RECALL = 0.5;
/** Recall (absolute, dev) the threshold may cost below the best safe threshold's. */
const RECALL_SLACK = 0.02;

if (!existsSync(new URL('verifier.js', DIST))) {
  console.error('Sluice is not built: run `npm run build` first');
  process.exit(1);
}

const { QuestionVerifier } = await import(new URL('verifier.js', DIST).href);
const { SemanticIndexSet, DEFAULT_INDEX_SPEC } = await import(new URL('semantic-index.js', DIST).href);
const { createEmbedder } = await import(new URL('embedder.js', DIST).href);
const { CacheSchema, DEFAULT_SEMANTIC_THRESHOLD } = await import(new URL('config.js', DIST).href);
const { CachePool } = await import(new URL('cache-pool.js', DIST).href);
const { ResponseCache } = await import(new URL('response-cache.js', DIST).href);

const startedAt = new Date();
const defaults = CacheSchema.parse({});
const K = envNumber('BENCH_CANDIDATES', defaults.semantic.candidates);

const pairs = readFileSync(DATA, 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l));
const texts = [...new Set(pairs.flatMap((p) => [p.a, p.b]))];
console.log(`${pairs.length} pairs (${pairs.filter((p) => p.label === 'paraphrase').length} paraphrases, ${pairs.filter((p) => p.label === 'negative').length} hard negatives), ${texts.length} distinct questions`);
console.log(describeMachine(machineInfo()));

// ---------------------------------------------------------------------------------------------
// Embeddings and analyses.

const embedder = await createEmbedder({ type: 'use-lite' });
let t0 = performance.now();
await embedder.init();
const loadMs = performance.now() - t0;
const vectors = new Map();
t0 = performance.now();
for (let i = 0; i < texts.length; i += 32) {
  const batch = texts.slice(i, i + 32);
  const out = await embedder.embed(batch);
  batch.forEach((t, j) => vectors.set(t, out[j]));
}
const batchMsPerText = (performance.now() - t0) / texts.length;
const singleMs = [];
for (const t of texts.slice(0, 40)) {
  const s = performance.now();
  await embedder.embed([t]);
  singleMs.push(performance.now() - s);
}
await embedder.close();

const verifier = new QuestionVerifier();
const features = new Map();
// Costs are measured warm (the third pass), as a long-running gateway sees them.
let analyzeUs = 0;
for (let round = 0; round < 3; round++) {
  t0 = performance.now();
  for (const t of texts) features.set(t, verifier.analyze(t));
  analyzeUs = ((performance.now() - t0) * 1000) / texts.length;
}

function cosine(a, b) {
  let d = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return d / Math.sqrt(na * nb);
}

let compareUs = 0;
for (let round = 0; round < 3; round++) {
  t0 = performance.now();
  for (const p of pairs) p.verdict = verifier.compare(features.get(p.b), features.get(p.a));
  compareUs = ((performance.now() - t0) * 1000) / pairs.length;
}
for (const p of pairs) p.score = cosine(vectors.get(p.a), vectors.get(p.b));

// ---------------------------------------------------------------------------------------------
// Retrieval: the a-questions in one index, the b-questions looked up.

const parent = new Map();
const find = (x) => {
  while (parent.get(x) !== x) x = parent.get(x);
  return x;
};
for (const t of texts) parent.set(t, t);
for (const p of pairs) if (p.label === 'paraphrase') parent.set(find(p.a), find(p.b));

const spec = { ...DEFAULT_INDEX_SPEC, embedderId: embedder.id, dimensions: embedder.dimensions };
const source = { embedderId: embedder.id, dimensions: embedder.dimensions };
const index = new SemanticIndexSet(spec, 1, verifier);
const stored = [...new Set(pairs.map((p) => p.a))];
const far = Date.now() + 3_600_000;
for (const a of stored) index.add('bench', source, { entryKey: a, contextKey: 'ctx', text: a, vector: vectors.get(a), expiresAtMs: far });

const queries = [];
const seenQuery = new Set();
for (const p of pairs) {
  const key = `${p.split}\u0000${p.b}`;
  if (seenQuery.has(key)) continue;
  seenQuery.add(key);
  const result = index.search('bench', source, {
    vector: vectors.get(p.b),
    contextKey: 'ctx',
    text: p.b,
    features: features.get(p.b),
    k: 16,
    minScore: 0,
    nowMs: Date.now(),
  });
  queries.push({ text: p.b, split: p.split, paraphrase: p.label === 'paraphrase', candidates: result.candidates });
}
// A lookup as the gateway makes it (default threshold and candidates), warm.
let searchUs = 0;
for (let round = 0; round < 3; round++) {
  t0 = performance.now();
  for (const q of queries) {
    index.search('bench', source, {
      vector: vectors.get(q.text),
      contextKey: 'ctx',
      text: q.text,
      k: K,
      minScore: DEFAULT_SEMANTIC_THRESHOLD,
      nowMs: Date.now(),
    });
  }
  searchUs = ((performance.now() - t0) * 1000) / queries.length;
}

/** What the gateway would serve at threshold t: the first of the top-K above t (that verifies). */
function served(q, t, verified) {
  const above = q.candidates.filter((c) => c.score >= t).slice(0, K);
  return verified ? above.find((c) => c.verdict.ok) : above[0];
}

// ---------------------------------------------------------------------------------------------
// Curves.

const grid = [];
for (let t = 0.5; t < 0.99 + 1e-9; t += 0.01) grid.push(Math.round(t * 100) / 100);
grid.push(0.995);

function pairStats(split, t, verified) {
  const sel = pairs.filter((p) => split === 'all' || p.split === split);
  const pos = sel.filter((p) => p.label === 'paraphrase');
  const neg = sel.filter((p) => p.label === 'negative');
  const pass = (p) => p.score >= t && (!verified || p.verdict.ok);
  return {
    recall: pos.filter(pass).length / pos.length,
    fpr: neg.filter(pass).length / neg.length,
    paraphrases: pos.length,
    negatives: neg.length,
    falsePositives: neg.filter(pass).length,
  };
}

function retrievalStats(split, t, verified) {
  const sel = queries.filter((q) => split === 'all' || q.split === split);
  let correct = 0;
  let wrong = 0;
  let paraphraseQueries = 0;
  for (const q of sel) {
    const hit = served(q, t, verified);
    if (q.paraphrase) paraphraseQueries++;
    if (hit === undefined) continue;
    if (find(hit.entryKey) === find(q.text)) correct += q.paraphrase ? 1 : 0;
    else wrong++;
  }
  return { hitRate: correct / paraphraseQueries, falseHitRate: wrong / sel.length, falseHits: wrong, queries: sel.length };
}

const curve = grid.map((t) => {
  const row = { threshold: t };
  for (const split of ['dev', 'test', 'all']) {
    row[split] = {
      thresholdOnly: { pairs: pairStats(split, t, false), retrieval: retrievalStats(split, t, false) },
      withVerifier: { pairs: pairStats(split, t, true), retrieval: retrievalStats(split, t, true) },
    };
  }
  return row;
});

// The rule. Safe: dev FPR ≤ 1 % and dev false hits ≤ 1 % here and at every higher t. Pick: the
// highest safe t whose dev recall is within RECALL_SLACK of the best safe recall.
const safe = curve.map((r) => r.dev.withVerifier.pairs.fpr <= MAX_FPR && r.dev.withVerifier.retrieval.falseHitRate <= MAX_FALSE_HITS);
let lowestSafe = curve.length;
for (let i = curve.length - 1; i >= 0 && safe[i]; i--) lowestSafe = i;
let pick;
let bestSafeRecall;
if (lowestSafe < curve.length) {
  bestSafeRecall = Math.max(...curve.slice(lowestSafe).map((r) => r.dev.withVerifier.pairs.recall));
  for (let i = lowestSafe; i < curve.length; i++) {
    if (curve[i].dev.withVerifier.pairs.recall >= bestSafeRecall - RECALL_SLACK - 1e-9) pick = curve[i].threshold;
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

const pct = (x) => (x * 100).toFixed(1).padStart(5);
console.log('\nPairs: recall on paraphrases / false-positive rate on hard negatives (all pairs; dev | test in the JSON)');
console.log('threshold │ threshold only   │ with verifier    │ retrieval, verifier: hits / false hits');
console.log('──────────┼──────────────────┼──────────────────┼──────────────────────────────────────');
for (const r of curve) {
  if (Math.round(r.threshold * 100) % 5 !== 0 && r.threshold < 0.95 && r.threshold !== pick && r.threshold !== DEFAULT_SEMANTIC_THRESHOLD) continue;
  const a = r.all;
  const mark = r.threshold === pick ? ' ← pick' : r.threshold === DEFAULT_SEMANTIC_THRESHOLD ? ' ← default' : '';
  console.log(
    `   ${r.threshold.toFixed(3)} │ ${pct(a.thresholdOnly.pairs.recall)} % / ${pct(a.thresholdOnly.pairs.fpr)} % │ ${pct(a.withVerifier.pairs.recall)} % / ${pct(a.withVerifier.pairs.fpr)} % │ ${pct(a.withVerifier.retrieval.hitRate)} % / ${pct(a.withVerifier.retrieval.falseHitRate)} %${mark}`,
  );
}

console.log(
  `\nRule: safe = with the verifier, on dev, pair FPR ≤ ${MAX_FPR * 100} % and retrieval false hits ≤ ${MAX_FALSE_HITS * 100} % at the threshold and above (lowest safe: ${curve[lowestSafe]?.threshold ?? 'none'}); pick = the highest safe threshold whose dev recall is within ${RECALL_SLACK * 100} points of the best safe dev recall (${bestSafeRecall === undefined ? '–' : pct(bestSafeRecall).trim() + ' %'}).`,
);
console.log(`Pick: ${pick ?? 'none (no threshold is safe)'}; config default: ${DEFAULT_SEMANTIC_THRESHOLD}${pick === DEFAULT_SEMANTIC_THRESHOLD ? ' (same)' : '  ← MISMATCH: update DEFAULT_SEMANTIC_THRESHOLD or explain'}`);

const atDefault = curve.find((r) => r.threshold === DEFAULT_SEMANTIC_THRESHOLD);
let targets;
if (atDefault) {
  console.log(`\nAt the default threshold ${DEFAULT_SEMANTIC_THRESHOLD}, verifier on, ${K} candidates:`);
  for (const split of ['dev', 'test', 'all']) {
    const s = atDefault[split].withVerifier;
    const o = atDefault[split].thresholdOnly;
    console.log(
      `  ${split.padEnd(4)} pairs: recall ${pct(s.pairs.recall)} % (${s.pairs.paraphrases}), FPR ${pct(s.pairs.fpr)} % (${s.pairs.falsePositives}/${s.pairs.negatives}) │ threshold alone: recall ${pct(o.pairs.recall)} %, FPR ${pct(o.pairs.fpr)} % │ retrieval: hits ${pct(s.retrieval.hitRate)} %, false hits ${pct(s.retrieval.falseHitRate)} % (${s.retrieval.falseHits}/${s.retrieval.queries})`,
    );
  }
  const all = atDefault.all.withVerifier;
  targets = {
    fprAtMost1Percent: all.pairs.fpr <= MAX_FPR,
    recallAtLeast50Percent: all.pairs.recall >= MIN_RECALL,
    retrievalFalseHitsAtMost1Percent: all.retrieval.falseHitRate <= MAX_FALSE_HITS,
  };
  console.log(`  targets (all pairs): FPR ≤ 1 %: ${targets.fprAtMost1Percent ? 'met' : 'MISSED'}; recall ≥ 50 %: ${targets.recallAtLeast50Percent ? 'met' : 'MISSED'}`);
} else console.log(`\nThe default threshold ${DEFAULT_SEMANTIC_THRESHOLD} is not on the grid.`);

const rejected = {};
for (const p of pairs) if (!p.verdict.ok) rejected[`${p.label}:${p.verdict.reason}`] = (rejected[`${p.label}:${p.verdict.reason}`] ?? 0) + 1;
const slipped = pairs
  .filter((p) => p.label === 'negative' && p.verdict.ok)
  .map((p) => ({ id: p.id, kind: p.kind, split: p.split, score: Number(p.score.toFixed(4)), a: p.a, b: p.b }));
const byKind = {};
for (const p of pairs) {
  const k = `${p.label}:${p.kind}`;
  byKind[k] ??= { pairs: 0, verified: 0, meanScore: 0 };
  byKind[k].pairs++;
  byKind[k].verified += p.verdict.ok ? 1 : 0;
  byKind[k].meanScore += p.score;
}
for (const v of Object.values(byKind)) v.meanScore = Number((v.meanScore / v.pairs).toFixed(4));

const costs = {
  embedderId: embedder.id,
  dimensions: embedder.dimensions,
  embedderLoadMs: Math.round(loadMs),
  embedMsPerTextBatched: Number(batchMsPerText.toFixed(2)),
  embedMsSingleText: { p50: pctl(singleMs, 0.5), p90: pctl(singleMs, 0.9) },
  analyzeUsPerText: Number(analyzeUs.toFixed(1)),
  compareUsPerPair: Number(compareUs.toFixed(1)),
  indexSearchUsPerQuery: Number(searchUs.toFixed(1)),
  indexedQuestions: stored.length,
};
console.log(
  `\nCosts: load ${costs.embedderLoadMs} ms; embed ${costs.embedMsSingleText.p50} ms p50 per single text (${costs.embedMsPerTextBatched} ms/text in batches of 32); analyse ${costs.analyzeUsPerText} µs/text; compare ${costs.compareUsPerPair} µs/pair; HNSW search + analyse + verify ${costs.indexSearchUsPerQuery} µs/lookup over ${stored.length} questions`,
);

function pctl(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return Number(s[Math.min(s.length - 1, Math.floor(q * s.length))].toFixed(3));
}

// ---------------------------------------------------------------------------------------------
// Per-call costs as the gateway pays them: through the pool (one embedder thread, the index thread)
// and on the request thread (policy, keys, exact lookup).

const rssBefore = process.memoryUsage().rss;
const poolStart = performance.now();
const pool = await CachePool.start({
  embedder: { type: 'use-lite' },
  threads: 1,
  maxQueue: 8,
  index: { ...DEFAULT_INDEX_SPEC, maxNamespaces: 10 },
  verifier: defaults.semantic.verifier,
});
const poolStartMs = performance.now() - poolStart;
const poolRssMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
await pool.add(stored.map((a) => ({ namespace: 'bench', item: { entryKey: a, contextKey: 'ctx', text: a, vector: vectors.get(a), expiresAtMs: far } })), 60_000);
const embedRt = [];
const searchRt = [];
for (const q of queries.slice(0, 120)) {
  const e = await pool.embed([q.text], 5_000);
  if (e.ok) embedRt.push(e.ms);
  const r = await pool.search('bench', { vector: vectors.get(q.text), contextKey: 'ctx', text: q.text, k: K, minScore: DEFAULT_SEMANTIC_THRESHOLD }, 5_000);
  if (r.ok) searchRt.push(r.ms);
}
await pool.stop();
costs.pool = {
  startMs: Math.round(poolStartMs),
  rssMbOneEmbedderThread: Math.round(poolRssMb),
  embedRoundTripMs: { p50: pctl(embedRt, 0.5), p99: pctl(embedRt, 0.99) },
  searchRoundTripMs: { p50: pctl(searchRt, 0.5), p99: pctl(searchRt, 0.99) },
};

const exactOnly = new ResponseCache(CacheSchema.parse({ semantic: { enabled: false } }), { sweepIntervalMs: 0 });
const sampleRequest = (text) => ({
  request: { model: 'gpt-4o', stream: false, messages: [{ role: 'system', content: [{ type: 'text', text: 'You are a helpful assistant.' }] }, { role: 'user', content: [{ type: 'text', text }] }] },
  clientModel: 'gpt-4o',
  route: 'gpt-4o',
  target: { provider: 'openai', model: 'gpt-4o' },
  consumer: 'bench',
  headers: {},
});
const answerOf = (text) => ({ id: 'x', model: 'gpt-4o', created: 0, choices: [{ index: 0, text: `An answer to: ${text}`, finishReason: 'stop' }], usage: { inputTokens: 20, outputTokens: 40 } });
for (const t of stored) exactOnly.store(exactOnly.prepare(sampleRequest(t)), answerOf(t), { provider: 'openai', model: 'gpt-4o' });
let exactUs = 0;
for (let round = 0; round < 3; round++) {
  t0 = performance.now();
  for (const t of stored) exactOnly.lookup(exactOnly.prepare(sampleRequest(t)));
  exactUs = ((performance.now() - t0) * 1000) / stored.length;
}
await exactOnly.stop();
costs.requestThreadPrepareAndExactLookupUs = Number(exactUs.toFixed(1));
console.log(
  `Through the pool: start ${costs.pool.startMs} ms, +${costs.pool.rssMbOneEmbedderThread} MB RSS (1 embedder thread + index thread); embed round trip p50 ${costs.pool.embedRoundTripMs.p50} ms (p99 ${costs.pool.embedRoundTripMs.p99}); search round trip p50 ${costs.pool.searchRoundTripMs.p50} ms (p99 ${costs.pool.searchRoundTripMs.p99}); request thread: prepare + exact lookup ${costs.requestThreadPrepareAndExactLookupUs} µs`,
);

const file = writeResult(RESULTS_DIR, 'cache-quality', startedAt, {
  bench: 'cache-quality',
  startedAt: startedAt.toISOString(),
  machine: machineInfo(),
  data: { file: 'bench/data/cache-pairs.jsonl', pairs: pairs.length, questions: texts.length },
  candidates: K,
  rule: `safe: with the verifier, dev pair FPR <= ${MAX_FPR} and dev retrieval false-hit rate <= ${MAX_FALSE_HITS} at the threshold and every higher one; pick: the highest safe threshold whose dev recall is within ${RECALL_SLACK} of the best safe dev recall`,
  lowestSafe: curve[lowestSafe]?.threshold ?? null,
  bestSafeDevRecall: bestSafeRecall ?? null,
  pick,
  defaultThreshold: DEFAULT_SEMANTIC_THRESHOLD,
  atDefault: atDefault ?? null,
  targets: targets ?? null,
  costs,
  verifierRejections: rejected,
  negativesPassingVerifier: slipped,
  byKind,
  curve,
});
console.log(`\nwrote ${file}`);
