/**
 * What explains the cache's misses, as Prometheus metrics: one `CacheCounters` per worker process,
 * kept by its `WorkerCache` across config reloads (a rebuilt `ResponseCache` counts on, so the
 * counters never go back to zero while the process lives), and read only when `/metrics` is
 * scraped. The request path does plain increments on it; nothing here runs per request.
 *
 * Per-request results (hit, semantic-hit, miss, bypass) and the tokens a hit served are counted with
 * the request's other metrics in `GatewayMetrics` (they carry the model and consumer labels); these
 * are the cache's own: semantic misses by cause, verifier rejections by check, embedding time,
 * stores and evictions, entries and bytes. The supervisor sums every worker's (docs/metrics.md).
 */

import type { Registry } from 'prom-client';
import { HistogramData, registerScrapedMetric, type ScrapedValue, scrapedHistogram } from '../observability/metrics.js';
import type { EvictionCause } from './answer-store.js';

/** Why a semantic lookup did not hit (the `reason` label); a fixed set, so every series exists from the start. */
export const SEMANTIC_MISS_REASONS = ['pool_busy', 'pool_timeout', 'pool_error', 'pool_stopped', 'no_candidate', 'verifier', 'judge', 'evicted'] as const;
export type SemanticMissReason = (typeof SEMANTIC_MISS_REASONS)[number];

const VERIFIER_CHECKS = ['numbers', 'negation', 'question_word', 'entities', 'antonym', 'substitution', 'added_term', 'order'] as const;
const NOT_STORED_REASONS = ['answered_by_fallback', 'finish_reason', 'too_large', 'bypass', 'no_key'] as const;
const NOT_INDEXED_REASONS = ['embedder_busy', 'busy', 'timeout', 'error', 'stopped'] as const;
/** `replaced` is left out: an entry replaced by a newer copy of itself (a record that came back with its vector) is still cached. */
const EVICTION_CAUSES = ['capacity', 'expired', 'deleted'] as const satisfies readonly EvictionCause[];

/**
 * Round trip of one embedding through the pool (queueing included), in seconds. The default lookup
 * budget is 60 ms, and USE-lite takes ≈ 12–50 ms: the buckets are finest there.
 */
export const EMBEDDING_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5];

/** One worker's cache counts, from its first cache to its exit. */
export class CacheCounters {
  hits = 0;
  semanticHits = 0;
  misses = 0;
  bypasses = 0;
  stored = 0;
  readonly notStored: Record<string, number> = {};
  readonly evicted: Record<EvictionCause, number> = { capacity: 0, expired: 0, replaced: 0, deleted: 0 };
  /** Semantic lookups that missed, by `SemanticMissReason`. */
  readonly semanticMisses: Record<string, number> = {};
  /** Candidates above the threshold the verifier turned down, by the check that did. */
  readonly verifierRejections: Record<string, number> = {};
  /** Stored entries left exact-only, by cause: embedder_busy (lookups came first), busy, timeout, … */
  readonly notIndexed: Record<string, number> = {};
  /** Embeddings for lookups: those within the budget, and those that finished after it (the lookup had missed). */
  readonly lookupEmbedding = new HistogramData(EMBEDDING_BUCKETS);
  /** Embeddings for stored entries the lookup had not embedded. */
  readonly storeEmbedding = new HistogramData(EMBEDDING_BUCKETS);
}

/** What `registerCacheMetrics` reads at scrape time. */
export interface CacheMetricsSource {
  /** Undefined until this worker has run a cache (no `cache` block, no cache series). */
  readonly counters: CacheCounters | undefined;
  /** Entries and estimated bytes of the running cache (0 when it was removed by a reload). */
  readonly size: { entries: number; bytes: number };
  /** The semantic layer: running, unavailable (configured, but its embedder did not start) or off. */
  readonly semanticState: 'running' | 'unavailable' | 'off';
}

/** The worker's cache metrics, in the registry the supervisor sums over workers. */
export function registerCacheMetrics(registry: Registry, source: CacheMetricsSource): void {
  /** One series per value of a fixed set, zeros included, plus any value seen outside it. */
  const byLabel = (label: string, known: readonly string[], pick: (c: CacheCounters) => Record<string, number>) => (): ScrapedValue[] => {
    const c = source.counters;
    if (c === undefined) return [];
    const counts = pick(c);
    const names = new Set([...known, ...Object.keys(counts)]);
    return [...names].map((name) => ({ labels: { [label]: name }, value: counts[name] ?? 0 }));
  };
  const single = (value: (c: CacheCounters) => number) => (): ScrapedValue[] => {
    const c = source.counters;
    return c === undefined ? [] : [{ labels: {}, value: value(c) }];
  };

  registerScrapedMetric(
    registry,
    'sluice_cache_semantic_misses_total',
    'Semantic cache lookups that did not hit, by reason: pool_busy (refused at once: queue full or over budget), pool_timeout (the budget ran out), pool_error, pool_stopped, no_candidate (nothing above the threshold in the same context), verifier (every candidate rejected), judge, evicted.',
    'counter',
    byLabel('reason', SEMANTIC_MISS_REASONS, (c) => c.semanticMisses),
  );
  registerScrapedMetric(
    registry,
    'sluice_cache_verifier_rejections_total',
    'Candidates at or above the similarity threshold that the verifier rejected, by the check that rejected them.',
    'counter',
    byLabel('check', VERIFIER_CHECKS, (c) => c.verifierRejections),
  );
  registerScrapedMetric(
    registry,
    'sluice_cache_embedding_duration_seconds',
    'Time of one embedding through the cache pool, queueing included, by purpose: lookup (including those that finished after the lookup budget) or store.',
    'histogram',
    () => {
      const c = source.counters;
      if (c === undefined) return [];
      return scrapedHistogram('sluice_cache_embedding_duration_seconds', EMBEDDING_BUCKETS, [
        { labels: { purpose: 'lookup' }, data: c.lookupEmbedding },
        { labels: { purpose: 'store' }, data: c.storeEmbedding },
      ]);
    },
  );
  registerScrapedMetric(registry, 'sluice_cache_stored_total', 'Answers stored in the cache by this gateway (each once, by the worker that received it).', 'counter', single((c) => c.stored));
  registerScrapedMetric(
    registry,
    'sluice_cache_not_stored_total',
    'Upstream answers the cache was to store but did not, by reason: answered_by_fallback (not the namespace target), finish_reason, too_large, bypass, no_key.',
    'counter',
    byLabel('reason', NOT_STORED_REASONS, (c) => c.notStored),
  );
  registerScrapedMetric(
    registry,
    'sluice_cache_not_indexed_total',
    'Stored answers left to the exact layer because their question could not be embedded, by reason: embedder_busy (lookups came first), busy, timeout, error, stopped.',
    'counter',
    byLabel('reason', NOT_INDEXED_REASONS, (c) => c.notIndexed),
  );
  registerScrapedMetric(
    registry,
    'sluice_cache_evictions_total',
    "Entries dropped from a worker's copy of the cache, by cause: capacity (max_entries or max_bytes), expired (ttl_ms), deleted.",
    'counter',
    byLabel('cause', EVICTION_CAUSES, (c) => Object.fromEntries(EVICTION_CAUSES.map((cause) => [cause, c.evicted[cause]]))),
  );
  registerScrapedMetric(
    registry,
    'sluice_cache_entries',
    "Entries in the workers' copies of the cache, summed over workers (each worker holds a full copy).",
    'gauge',
    () => (source.counters === undefined ? [] : [{ labels: {}, value: source.size.entries }]),
  );
  registerScrapedMetric(
    registry,
    'sluice_cache_bytes',
    "Estimated bytes of the workers' copies of the cache (answers, question texts, vectors), summed over workers.",
    'gauge',
    () => (source.counters === undefined ? [] : [{ labels: {}, value: source.size.bytes }]),
  );
  registerScrapedMetric(
    registry,
    'sluice_cache_semantic_state',
    'Workers whose semantic cache layer is running, unavailable (configured, but the embedder did not start: exact hits only) or off.',
    'gauge',
    () => {
      if (source.counters === undefined) return [];
      const now = source.semanticState;
      return (['running', 'unavailable', 'off'] as const).map((state) => ({ labels: { state }, value: state === now ? 1 : 0 }));
    },
  );
}
