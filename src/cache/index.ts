/** The cache's public API: what the gateway (cache filter, supervisor, config) uses. */

export { AnswerStore, type AnswerStoreLimits, type EvictionCause } from './answer-store.js';
export { type CacheEntry, type CacheRecord, fromRecord, InvalidRecordError, toRecord } from './cache-entry.js';
export { CACHE_HEADER, cacheHeaderValue, type CacheStatus, type HitAccounting, type HitReply, hitReply } from './cache-hit.js';
export { cacheFilter, type CacheFilterOptions, cacheFilters, type CacheHolder } from './filter.js';
export { CacheCounters, type CacheMetricsSource, EMBEDDING_BUCKETS, registerCacheMetrics, SEMANTIC_MISS_REASONS, type SemanticMissReason } from './cache-metrics.js';
export { CachePool, type CachePoolOptions, EmbedderStartError, type PoolMiss, type PoolResult, type PoolStats } from './cache-pool.js';
export {
  CacheSchema,
  type CacheConfig,
  DEFAULT_SEMANTIC_THRESHOLD,
  type EmbedderConfig,
  type JudgeConfig,
  type SemanticConfig,
  type VerifierConfig,
} from './config.js';
export { createEmbedder, type Embedder, EmbedderUnavailableError } from './embedder.js';
export { type CandidateJudge, HttpJudge } from './judge.js';
export { type CacheControl, type CacheDecision, CachePolicy, parseCacheControl } from './policy.js';
export { RedisCacheLink, type RedisLinkOptions } from './redis-link.js';
export { exactKey, KEY_VERSION, type Namespace, namespaceKey, semanticParts } from './request-key.js';
export { ResponseCollector } from './response-collector.js';
export {
  type CacheLookup,
  type CacheRequest,
  type CacheStats,
  type CacheTicket,
  ResponseCache,
  type ResponseCacheOptions,
  type StartOptions,
} from './response-cache.js';
export { IndexMismatchError, SemanticIndexSet } from './semantic-index.js';
export { QuestionVerifier, type RejectReason, type Verdict } from './verifier.js';
export { WorkerCache, type WorkerCacheOptions } from './worker-cache.js';
