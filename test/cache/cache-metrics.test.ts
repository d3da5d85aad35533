/**
 * The cache's own metrics (src/cache/cache-metrics.ts): what explains a miss is counted where it
 * happens, the counts survive a reload of the cache, and the registry exports them (zeros included)
 * in a shape the supervisor's sum keeps.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';

import { CacheCounters, type CacheMetricsSource, registerCacheMetrics } from '../../src/cache/cache-metrics.js';
import { ResponseCache } from '../../src/cache/response-cache.js';
import { WorkerCache } from '../../src/cache/worker-cache.js';
import { aggregate } from '../../src/observability/metrics.js';
import { answer, cacheRequest, chat, config } from './helpers.js';
import { parsePrometheus, seriesValue } from '../helpers/prometheus.js';

const BOW_WORKER = new URL('./fixtures/bow-embed-worker.js', import.meta.url);
const target = { provider: 'openai', model: 'gpt-4o' };
const bow = (model = 'bow') => ({ type: 'openai', base_url: 'http://unused.invalid/v1', model });

const parse = parsePrometheus;
const value = seriesValue;

async function scrape(source: CacheMetricsSource): Promise<Map<string, number>> {
  const registry = new Registry();
  registerCacheMetrics(registry, source);
  return parse(await registry.metrics());
}

async function until(what: string, done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(done(), what);
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 5));
}

describe('cache metrics', () => {
  it('a worker that never ran a cache exports no cache series', async () => {
    const s = await scrape(new WorkerCache());
    assert.equal([...s.keys()].filter((k) => k.startsWith('sluice_cache_')).length, 0);
  });

  it('semantic misses by reason, verifier rejections by check, lookup embeddings, stores', async () => {
    const counters = new CacheCounters();
    const cache = await ResponseCache.start(config({ semantic: { embedder: bow(), lookup_budget_ms: 500 } }), {
      pool: { embedWorker: BOW_WORKER },
      sweepIntervalMs: 0,
      counters,
    });
    try {
      const t = cache.prepare(cacheRequest(chat('How do I convert a string to an integer in Python?')));
      assert.equal((await cache.lookup(t)).reason, 'no_candidate');
      assert.equal(cache.store(t, answer('int("42")'), target), undefined);
      await settle();
      assert.equal((await cache.lookup(cache.prepare(cacheRequest(chat('In Python, how do I convert a string to an integer?'))))).status, 'semantic-hit');
      // The stand-in embedder scores the same bag of words 1.0: the verifier rejects the reversal.
      assert.equal((await cache.lookup(cache.prepare(cacheRequest(chat('How do I convert an integer to a string in Python?'))))).reason, 'verifier:order');
      assert.equal(cache.store(cache.prepare(cacheRequest(chat('q'))), answer('a'), { provider: 'azure', model: 'gpt-4o' }), 'answered_by_fallback');

      const s = await scrape({ counters, size: { entries: cache.stats().entries, bytes: cache.stats().bytes }, semanticState: 'running' });
      assert.equal(value(s, 'sluice_cache_semantic_misses_total', { reason: 'no_candidate' }), 1);
      assert.equal(value(s, 'sluice_cache_semantic_misses_total', { reason: 'verifier' }), 1);
      assert.equal(value(s, 'sluice_cache_semantic_misses_total', { reason: 'pool_busy' }), 0, 'every reason exported from the start');
      assert.equal(value(s, 'sluice_cache_verifier_rejections_total', { check: 'order' }), 1);
      assert.equal(value(s, 'sluice_cache_verifier_rejections_total', { check: 'numbers' }), 0);
      assert.equal(value(s, 'sluice_cache_embedding_duration_seconds_count', { purpose: 'lookup' }), 3, 'one embedding per semantic lookup');
      assert.equal(value(s, 'sluice_cache_embedding_duration_seconds_bucket', { purpose: 'lookup', le: '+Inf' }), 3);
      assert.equal(value(s, 'sluice_cache_embedding_duration_seconds_count', { purpose: 'store' }), 0, 'the store reused the lookup\'s vector');
      assert.equal(value(s, 'sluice_cache_stored_total'), 1);
      assert.equal(value(s, 'sluice_cache_not_stored_total', { reason: 'answered_by_fallback' }), 1);
      assert.equal(value(s, 'sluice_cache_entries'), 1);
      assert.ok(value(s, 'sluice_cache_bytes')! > 0);
      assert.equal(value(s, 'sluice_cache_semantic_state', { state: 'running' }), 1);
      assert.equal(value(s, 'sluice_cache_semantic_state', { state: 'unavailable' }), 0);
    } finally {
      await cache.stop();
    }
  });

  it('a busy pool and a timed-out lookup are counted as such; the late embedding still lands in the histogram', async () => {
    const counters = new CacheCounters();
    const cache = await ResponseCache.start(
      config({ semantic: { embedder: bow('bow:delay=300'), lookup_budget_ms: 50, max_queue: 0 } }),
      { pool: { embedWorker: BOW_WORKER }, sweepIntervalMs: 0, counters },
    );
    try {
      const [a, b] = await Promise.all([
        cache.lookup(cache.prepare(cacheRequest(chat('first question')))),
        cache.lookup(cache.prepare(cacheRequest(chat('second question')))),
      ]);
      assert.deepEqual([a.reason, b.reason], ['pool_timeout', 'pool_busy']);
      assert.equal(counters.lookupEmbedding.count, 0, 'nothing finished within the budget');
      await until('the late embedding to finish', () => counters.lookupEmbedding.count === 1);
      const s = await scrape({ counters, size: { entries: 0, bytes: 0 }, semanticState: 'running' });
      assert.equal(value(s, 'sluice_cache_semantic_misses_total', { reason: 'pool_timeout' }), 1);
      assert.equal(value(s, 'sluice_cache_semantic_misses_total', { reason: 'pool_busy' }), 1);
      assert.equal(value(s, 'sluice_cache_embedding_duration_seconds_count', { purpose: 'lookup' }), 1);
    } finally {
      await cache.stop();
    }
  });

  it('a worker keeps counting across reloads; evictions by cause; semantic state off', async () => {
    const worker = new WorkerCache();
    try {
      await worker.configure(config({ max_entries: 1, semantic: { enabled: false } }), undefined);
      const first = worker.cache!;
      for (const q of ['q1', 'q2']) {
        const t = first.prepare(cacheRequest(chat(q)));
        first.lookup(t);
        first.store(t, answer('a'), target);
      }
      await worker.configure(config({ max_entries: 1, ttl_ms: 60_000, semantic: { enabled: false } }), undefined);
      const second = worker.cache!;
      assert.notEqual(second, first, 'rebuilt');
      const t = second.prepare(cacheRequest(chat('q3')));
      second.lookup(t);
      second.store(t, answer('a'), target);

      const s = await scrape(worker);
      assert.equal(value(s, 'sluice_cache_stored_total'), 3, 'counted before and after the reload');
      assert.equal(value(s, 'sluice_cache_evictions_total', { cause: 'capacity' }), 2);
      assert.equal(value(s, 'sluice_cache_evictions_total', { cause: 'expired' }), 0);
      assert.equal(value(s, 'sluice_cache_evictions_total', { cause: 'replaced' }), undefined, 'a replaced copy is not an eviction');
      assert.equal(value(s, 'sluice_cache_entries'), 1);
      assert.equal(value(s, 'sluice_cache_semantic_state', { state: 'off' }), 1);
      assert.equal(second.stats().misses, 3);

      await worker.configure(undefined, undefined);
      const gone = await scrape(worker);
      assert.equal(value(gone, 'sluice_cache_stored_total'), 3, 'a removed cache keeps its counts');
      assert.equal(value(gone, 'sluice_cache_entries'), 0);
    } finally {
      await worker.stop();
    }
  });

  it('two workers are summed, gauges included', async () => {
    const snapshot = async (stored: number, entries: number) => {
      const counters = new CacheCounters();
      counters.stored = stored;
      counters.semanticMisses.pool_busy = stored;
      const registry = new Registry();
      registerCacheMetrics(registry, { counters, size: { entries, bytes: entries * 100 }, semanticState: 'running' });
      return registry.getMetricsAsJSON();
    };
    const s = parse(await aggregate([await snapshot(2, 5), await snapshot(3, 5)]));
    assert.equal(value(s, 'sluice_cache_stored_total'), 5);
    assert.equal(value(s, 'sluice_cache_semantic_misses_total', { reason: 'pool_busy' }), 5);
    assert.equal(value(s, 'sluice_cache_entries'), 10);
    assert.equal(value(s, 'sluice_cache_bytes'), 1000);
    assert.equal(value(s, 'sluice_cache_semantic_state', { state: 'running' }), 2);
  });
});
