/**
 * The cache as the gateway's cache filter uses it: one object per worker process (built from one
 * config snapshot) joining the policy, the exact layer (AnswerStore, on the request thread), the
 * semantic layer (CachePool: embedding, HNSW search and verification off the request thread) and the
 * optional judge.
 *
 * Per request:
 *   const ticket = cache.prepare(input);           // sync: policy and keys
 *   const found = await cache.lookup(ticket);      // sync for exact hits and bypasses
 *   …set x-sluice-cache: found.header; on a hit reply with found.reply.response …
 *   cache.store(ticket, response, answeredBy);     // after a whole answer; returns at once
 *
 * Sharing across worker processes and nodes goes through `onStored` (each stored entry as a
 * `CacheRecord`) and `applyRecord` (entries stored elsewhere); see docs/cache.md.
 */

import { randomUUID } from 'node:crypto';
import { clock } from '../clock.js';
import type { ChatRequest, ChatResponse } from '../protocol/canonical.js';
import { AnswerStore, type EvictionCause } from './answer-store.js';
import { type CacheEntry, type CacheRecord, entryBytes, fromRecord, toRecord } from './cache-entry.js';
import { cacheHeaderValue, type CacheStatus, type HitReply, hitReply } from './cache-hit.js';
import { CacheCounters, type SemanticMissReason } from './cache-metrics.js';
import { CachePool, type CachePoolOptions } from './cache-pool.js';
import type { CacheConfig } from './config.js';
import { type CandidateJudge, HttpJudge } from './judge.js';
import { type CacheDecision, CachePolicy } from './policy.js';
import { exactKey, type KeyOptions, type Namespace, namespaceKey, type SemanticParts, semanticParts } from './request-key.js';
import { ResponseCollector } from './response-collector.js';

export interface CacheRequest {
  /** The canonical request as it will be sent upstream (after body edits). */
  request: ChatRequest;
  /** The model name the client asked for (match patterns apply to it). */
  clientModel: string;
  /** The resolved route's name. */
  route: string;
  /** The target whose answers this request may be served: the route's primary target. */
  target: { provider: string; model: string };
  /** The authenticated consumer and its tenant, when auth is on. */
  consumer?: string;
  tenant?: string;
  /** Request headers, lower-case names (`cache-control`). */
  headers: Readonly<Record<string, string | undefined>>;
}

/** Per-request cache state, from `prepare` to `store`. */
export interface CacheTicket {
  readonly decision: CacheDecision;
  readonly namespace: Namespace;
  readonly nsKey: string;
  readonly key: string;
  /** Present when the semantic layer applies to this request. */
  readonly semantic: SemanticParts | undefined;
  /** The question's embedding, once a semantic lookup computed it (reused by `store`). */
  vector: Float32Array | undefined;
  /** A lookup's embedding that finished after its budget: `store` waits for it instead of embedding again. */
  lateVector: Promise<Float32Array | undefined> | undefined;
}

export interface CacheLookup {
  status: CacheStatus;
  /** The `x-sluice-cache` header value. */
  header: string;
  /** On a hit: the answer to send (canonical; encode it in the client's protocol) and its accounting. */
  reply?: HitReply;
  /** Semantic hits: the cosine similarity of the served question. */
  score?: number;
  /** Why a lookup missed or was bypassed, for logs and metrics. */
  reason?: string;
}

export interface CacheStats {
  entries: number;
  bytes: number;
  hits: number;
  semanticHits: number;
  misses: number;
  bypasses: number;
  stored: number;
  notStored: Record<string, number>;
  evicted: Record<EvictionCause, number>;
  /** Semantic misses by cause: pool_busy, pool_timeout, no_candidate, verifier, judge, … */
  semanticMisses: Record<string, number>;
  /** Candidates above the threshold the verifier rejected, by check. */
  verifierRejections: Record<string, number>;
  /** Stored entries left exact-only, by cause: embedder_busy (lookups came first), busy, timeout, … */
  notIndexed: Record<string, number>;
  semanticEnabled: boolean;
}

export interface ResponseCacheOptions {
  /** The semantic layer's pool; without one the cache is exact only. */
  pool?: CachePool;
  judge?: CandidateJudge;
  /** Called with every entry stored here (not with entries applied from elsewhere). */
  onStored?: (record: CacheRecord) => void;
  /** Response ids for hits; default `chatcmpl-<uuid>`. */
  newId?: () => string;
  /** Interval of the sweep for expired entries; 0 disables it. */
  sweepIntervalMs?: number;
  /**
   * Where to count (default: a new set). A worker passes the same set to every cache it builds, so
   * its metrics keep counting across reloads.
   */
  counters?: CacheCounters;
}

export interface StartOptions extends Omit<ResponseCacheOptions, 'pool' | 'judge'> {
  /** The gateway's own OpenAI base URL, for a judge without `base_url`. */
  selfBaseUrl?: string;
  /** Pool overrides (tests). */
  pool?: Partial<Pick<CachePoolOptions, 'embedWorker' | 'indexWorker' | 'startTimeoutMs'>>;
  /** Told when the semantic layer could not start and the cache runs exact only. */
  onSemanticUnavailable?: (error: Error) => void;
}

/** How long after a lookup was refused for a busy embedder stores leave the embedder to lookups. */
const STORE_YIELDS_MS = 1_000;

const MISS = (reason: string): CacheLookup => ({ status: 'miss', header: cacheHeaderValue('miss'), reason });

export class ResponseCache {
  private readonly store_: AnswerStore;
  private readonly policy: CachePolicy;
  private readonly keyOptions: KeyOptions;
  private readonly pool: CachePool | undefined;
  private readonly judge: CandidateJudge | undefined;
  private readonly onStored: ((record: CacheRecord) => void) | undefined;
  private readonly newId: () => string;
  private readonly sweep: NodeJS.Timeout | undefined;
  private readonly unsubscribeReset: (() => void) | undefined;
  /** The pool now belongs to the cache built by `reload`: `stop` leaves it running. */
  private poolHandedOver = false;
  private readonly counters: CacheCounters;
  /** When a lookup was last refused for a busy embedder (monotonic ms): stores yield for a while. */
  private lookupRefusedAtMs = -Infinity;

  constructor(
    readonly config: CacheConfig,
    options: ResponseCacheOptions = {},
  ) {
    this.policy = new CachePolicy(config);
    this.keyOptions = { ignoreFields: config.ignore_fields, partitionByEndUser: config.partition_by_end_user };
    this.pool = options.pool;
    this.judge = options.judge;
    this.onStored = options.onStored;
    this.newId = options.newId ?? (() => `chatcmpl-${randomUUID()}`);
    this.counters = options.counters ?? new CacheCounters();
    this.store_ = new AnswerStore(
      { maxEntries: config.max_entries, maxBytes: config.max_bytes, maxEntryBytes: config.max_entry_bytes },
      (entry, cause) => this.evicted(entry, cause),
    );
    this.unsubscribeReset = this.pool?.onIndexReset(() => void this.reindex());
    const every = options.sweepIntervalMs ?? 60_000;
    if (every > 0) {
      this.sweep = setInterval(() => this.purgeExpired(), every);
      this.sweep.unref();
    }
  }

  /**
   * Builds the cache for a config snapshot: starts the semantic pool when the semantic layer is on.
   * An embedder that cannot load leaves the cache exact only (and says so), never the gateway down.
   */
  static async start(config: CacheConfig, options: StartOptions = {}): Promise<ResponseCache> {
    const s = config.semantic;
    let pool: CachePool | undefined;
    let judge: CandidateJudge | undefined;
    if (config.enabled && s.enabled) {
      try {
        pool = await CachePool.start({
          embedder: s.embedder,
          threads: s.threads,
          maxQueue: s.max_queue,
          index: {
            maxEntries: s.index.max_entries_per_namespace,
            initialCapacity: s.index.initial_capacity,
            m: s.index.m,
            efConstruction: s.index.ef_construction,
            efSearch: s.index.ef_search,
            exactScanBelow: s.index.exact_scan_below,
            maxNamespaces: s.index.max_namespaces,
          },
          verifier: s.verifier.enabled ? s.verifier : undefined,
          ...options.pool,
        });
      } catch (err) {
        options.onSemanticUnavailable?.(err as Error);
      }
      if (pool && s.judge) judge = new HttpJudge(s.judge, options.selfBaseUrl ?? 'http://127.0.0.1:8080/v1');
    }
    const { selfBaseUrl: _s, pool: _p, onSemanticUnavailable: _o, ...rest } = options;
    return new ResponseCache(config, { ...rest, ...(pool ? { pool } : {}), ...(judge ? { judge } : {}) });
  }

  /**
   * The cache for a new config snapshot, keeping what the old one knew: its entries (within the new
   * bounds; vectors kept when the embedder is the same) and, when the embedder, threads, index and
   * verifier settings are unchanged, its running pool (no reload of the model). The old cache is
   * stopped, apart from a pool handed over.
   */
  static async reload(previous: ResponseCache, config: CacheConfig, options: StartOptions = {}): Promise<ResponseCache> {
    const records = previous.records();
    const keepPool = previous.pool !== undefined && config.enabled && config.semantic.enabled && poolSettings(previous.config) === poolSettings(config);
    let next: ResponseCache;
    if (keepPool) {
      let judge: CandidateJudge | undefined;
      if (config.semantic.judge) judge = new HttpJudge(config.semantic.judge, options.selfBaseUrl ?? 'http://127.0.0.1:8080/v1');
      const { selfBaseUrl: _s, pool: _p, onSemanticUnavailable: _o, ...rest } = options;
      next = new ResponseCache(config, { ...rest, pool: previous.pool!, ...(judge ? { judge } : {}) });
      previous.handOverPool();
    } else next = await ResponseCache.start(config, options);
    await previous.stop();
    if (config.enabled) for (const r of records) next.applyRecord(r);
    return next;
  }

  private handOverPool(): void {
    this.poolHandedOver = true;
    this.unsubscribeReset?.();
  }

  get semanticEnabled(): boolean {
    return this.pool !== undefined;
  }

  /** Decides what the cache does for a request and computes its keys. Synchronous. */
  prepare(input: CacheRequest): CacheTicket {
    const decision = this.policy.decide({ request: input.request, clientModel: input.clientModel, route: input.route, headers: input.headers });
    const scope =
      this.config.namespace === 'shared'
        ? 'shared'
        : this.config.namespace === 'tenant' && input.tenant !== undefined
          ? `tenant:${input.tenant}`
          : // Without a tenant, the narrower scope: never share more than configured.
            `consumer:${input.consumer ?? 'anonymous'}`;
    const namespace: Namespace = { scope, provider: input.target.provider, model: input.target.model };
    const nsKey = namespaceKey(namespace);
    const active = decision.lookup || decision.store;
    const key = active ? exactKey(nsKey, input.request, this.keyOptions) : '';
    let semantic: SemanticParts | undefined;
    if (active && decision.semantic && this.pool !== undefined) {
      const parts = semanticParts(nsKey, input.request, this.keyOptions, this.config.semantic.key_text);
      if (parts !== undefined && parts.text.length <= this.config.semantic.max_text_chars) semantic = parts;
    }
    return { decision, namespace, nsKey, key, semantic, vector: undefined, lateVector: undefined };
  }

  /**
   * Looks a request up: the exact layer at once, then (only on an exact miss) the semantic layer
   * within its time budget. Returns a promise only when the semantic layer is consulted.
   */
  lookup(ticket: CacheTicket): CacheLookup | Promise<CacheLookup> {
    const d = ticket.decision;
    if (!d.lookup) {
      this.counters.bypasses++;
      return { status: 'bypass', header: cacheHeaderValue('bypass'), reason: d.reason ?? 'bypass' };
    }
    const now = clock.wallMs();
    const entry = this.store_.get(ticket.key, now);
    if (entry !== undefined && fresh(entry, d, now)) {
      this.counters.hits++;
      return { status: 'hit', header: cacheHeaderValue('hit'), reply: hitReply(entry, this.newId(), Math.floor(now / 1000)) };
    }
    if (ticket.semantic === undefined) {
      this.counters.misses++;
      return MISS(entry !== undefined ? 'older than max-age' : 'not cached');
    }
    return this.lookupSemantic(ticket, ticket.semantic);
  }

  private async lookupSemantic(ticket: CacheTicket, parts: SemanticParts): Promise<CacheLookup> {
    const pool = this.pool!;
    const s = this.config.semantic;
    const start = performance.now();
    const remaining = (): number => s.lookup_budget_ms - (performance.now() - start);
    const counters = this.counters;
    /** `reason` is logged; `counted` is its metric label (one per kind, not per verifier detail). */
    const miss = (reason: string, counted: SemanticMissReason): CacheLookup => {
      counters.misses++;
      counters.semanticMisses[counted] = (counters.semanticMisses[counted] ?? 0) + 1;
      return MISS(reason);
    };

    const embedded = await pool.embed([parts.text], remaining());
    if (!embedded.ok) {
      if (embedded.reason === 'busy') this.lookupRefusedAtMs = performance.now();
      if (embedded.late !== undefined) {
        // The embedding still finishes: its time belongs in the latency histogram (it is the tail
        // that made this lookup miss), and `store` may use its vector.
        ticket.lateVector = embedded.late.then((v) => {
          if (v !== undefined) counters.lookupEmbedding.observe((performance.now() - start) / 1000);
          return v?.[0];
        });
      }
      const reason = `pool_${embedded.reason}` as const;
      return miss(reason, reason);
    }
    counters.lookupEmbedding.observe(embedded.ms / 1000);
    ticket.vector = embedded.value[0];
    const found = await pool.search(ticket.nsKey, { vector: ticket.vector!, contextKey: parts.contextKey, text: parts.text, k: s.candidates, minScore: s.threshold }, remaining());
    if (!found.ok) {
      const reason = `pool_${found.reason}` as const;
      return miss(reason, reason);
    }

    const now = clock.wallMs();
    for (const c of found.value.candidates) {
      if (c.verdict !== undefined && !c.verdict.ok) counters.verifierRejections[c.verdict.reason] = (counters.verifierRejections[c.verdict.reason] ?? 0) + 1;
    }
    const verified = found.value.candidates.filter((c) => c.verdict === undefined || c.verdict.ok);
    for (const candidate of verified) {
      const entry = this.store_.get(candidate.entryKey, now);
      if (entry === undefined) {
        // Evicted here after the index answered: drop it there too.
        pool.remove(ticket.nsKey, candidate.entryKey);
        continue;
      }
      if (!fresh(entry, ticket.decision, now)) continue;
      if (this.judge !== undefined && !(await this.judge.same(parts.text, entry.text ?? ''))) return miss('judge', 'judge');
      this.counters.semanticHits++;
      return {
        status: 'semantic-hit',
        header: cacheHeaderValue('semantic-hit', candidate.score),
        score: candidate.score,
        reply: hitReply(entry, this.newId(), Math.floor(now / 1000)),
      };
    }
    const rejected = found.value.candidates.find((c) => c.verdict !== undefined && !c.verdict.ok);
    if (rejected?.verdict !== undefined && !rejected.verdict.ok) return miss(`verifier:${rejected.verdict.reason}`, 'verifier');
    const reason = found.value.candidates.length > 0 ? 'evicted' : 'no_candidate';
    return miss(reason, reason);
  }

  /** A collector for a streamed answer; give its result to `store`. */
  collector(): ResponseCollector {
    return new ResponseCollector(this.config.max_entry_bytes);
  }

  /**
   * Stores a whole answer (sync; embedding and indexing continue in the background). Returns why it
   * was not stored, or undefined when it was.
   */
  store(ticket: CacheTicket, response: ChatResponse, answeredBy: { provider: string; model: string }): string | undefined {
    const refused = this.refusal(ticket, response, answeredBy);
    if (refused !== undefined) {
      this.counters.notStored[refused] = (this.counters.notStored[refused] ?? 0) + 1;
      return refused;
    }
    const now = clock.wallMs();
    const semantic = ticket.semantic;
    const vector = semantic ? ticket.vector : undefined;
    const json = JSON.stringify(response);
    const entry: CacheEntry = {
      key: ticket.key,
      namespace: ticket.nsKey,
      ...(semantic ? { contextKey: semantic.contextKey, text: semantic.text } : {}),
      response,
      createdAtMs: now,
      expiresAtMs: now + this.config.ttl_ms,
      // The vector is counted even before it exists: it will.
      bytes: entryBytes(response, semantic?.text, undefined, json) + (semantic ? this.vectorBytes() : 0),
    };
    if (vector !== undefined) {
      entry.vector = vector;
      entry.embedderId = this.pool!.embedderId;
    }
    if (!this.store_.set(entry, now)) {
      this.counters.notStored.too_large = (this.counters.notStored.too_large ?? 0) + 1;
      return 'too_large';
    }
    this.counters.stored++;
    // Shared at once, so other workers hit it exactly within milliseconds. An entry whose vector is
    // still to come is shared again once it has one (applying a record twice just replaces it).
    this.onStored?.(toRecord(entry));
    if (semantic !== undefined) void this.indexEntry(entry, semantic.text, vector === undefined, ticket.lateVector);
    return undefined;
  }

  /**
   * Takes in an entry stored by another worker or node. Its vector is indexed as it is (never
   * re-embedded) when it comes from this cache's embedder; otherwise it serves exact hits only.
   */
  applyRecord(record: unknown): boolean {
    const entry = fromRecord(record);
    const now = clock.wallMs();
    if (entry.vector !== undefined && (this.pool === undefined || entry.embedderId !== this.pool.embedderId || entry.vector.length !== this.pool.dimensions)) {
      delete entry.vector;
      delete entry.embedderId;
    }
    if (!this.store_.set(entry, now)) return false;
    if (entry.vector !== undefined && entry.contextKey !== undefined && entry.text !== undefined) {
      void this.pool!.add([{ namespace: entry.namespace, item: indexItem(entry) }], this.config.semantic.store_budget_ms);
    }
    return true;
  }

  /** Every live entry as records: the snapshot a new worker process starts from. */
  records(): CacheRecord[] {
    const now = clock.wallMs();
    const out: CacheRecord[] = [];
    for (const e of this.store_.entries()) if (e.expiresAtMs > now) out.push(toRecord(e));
    return out;
  }

  stats(): CacheStats {
    return {
      entries: this.store_.size,
      bytes: this.store_.bytes,
      hits: this.counters.hits,
      semanticHits: this.counters.semanticHits,
      misses: this.counters.misses,
      bypasses: this.counters.bypasses,
      stored: this.counters.stored,
      notStored: { ...this.counters.notStored },
      evicted: { ...this.counters.evicted },
      semanticMisses: { ...this.counters.semanticMisses },
      verifierRejections: { ...this.counters.verifierRejections },
      notIndexed: { ...this.counters.notIndexed },
      semanticEnabled: this.pool !== undefined,
    };
  }

  poolStats(): ReturnType<CachePool['stats']> | undefined {
    return this.pool?.stats();
  }

  purgeExpired(): void {
    const now = clock.wallMs();
    this.store_.purgeExpired(now);
    if (this.pool) void this.pool.purge(now);
  }

  async stop(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    await Promise.all([this.poolHandedOver ? undefined : this.pool?.stop(), this.judge?.close()]);
  }

  // -------------------------------------------------------------------------------------------

  private refusal(ticket: CacheTicket, response: ChatResponse, answeredBy: { provider: string; model: string }): string | undefined {
    if (!ticket.decision.store) return 'bypass';
    if (ticket.key === '') return 'no_key';
    // A fallback target's answer is not the namespace target's answer.
    if (answeredBy.provider !== ticket.namespace.provider || answeredBy.model !== ticket.namespace.model) return 'answered_by_fallback';
    if (!this.policy.storable(response.choices.map((c) => c.finishReason))) return 'finish_reason';
    return undefined;
  }

  private vectorBytes(): number {
    return (this.pool?.dimensions ?? 0) * 4;
  }

  /**
   * Embeds (unless the lookup already did, in time or late) and indexes a stored entry. While lookups
   * are being turned away for a busy embedder, a store does not embed: a lookup waits behind a
   * running embedding (it cannot be interrupted), and a request is worth more than an index entry.
   * The entry then serves exact hits only.
   */
  private async indexEntry(entry: CacheEntry, text: string, shareVector: boolean, late: Promise<Float32Array | undefined> | undefined): Promise<void> {
    const pool = this.pool!;
    const budget = this.config.semantic.store_budget_ms;
    if (entry.vector === undefined) {
      let vector = late === undefined ? undefined : await late;
      if (vector === undefined) {
        if (performance.now() - this.lookupRefusedAtMs < STORE_YIELDS_MS) {
          this.counters.notIndexed.embedder_busy = (this.counters.notIndexed.embedder_busy ?? 0) + 1;
          return;
        }
        const embedded = await pool.embed([text], budget);
        if (!embedded.ok) {
          this.counters.notIndexed[embedded.reason] = (this.counters.notIndexed[embedded.reason] ?? 0) + 1;
          return;
        }
        this.counters.storeEmbedding.observe(embedded.ms / 1000);
        vector = embedded.value[0]!;
      }
      // The entry may have been evicted or replaced meanwhile; only a current entry gets its vector.
      if (this.store_.peek(entry.key) !== entry) return;
      entry.vector = vector;
      entry.embedderId = pool.embedderId;
    }
    if (this.store_.peek(entry.key) !== entry) return;
    await pool.add([{ namespace: entry.namespace, item: indexItem(entry) }], budget);
    if (shareVector) this.onStored?.(toRecord(entry));
  }

  /** The index thread was replaced: give the new one every entry that has a vector. */
  private async reindex(): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    const items: { namespace: string; item: ReturnType<typeof indexItem> }[] = [];
    for (const e of this.store_.entries()) if (e.vector !== undefined && e.contextKey !== undefined && e.text !== undefined) items.push({ namespace: e.namespace, item: indexItem(e) });
    for (let i = 0; i < items.length; i += 256) await pool.add(items.slice(i, i + 256), 10_000);
  }

  private evicted(entry: CacheEntry, cause: EvictionCause): void {
    this.counters.evicted[cause]++;
    if (cause !== 'replaced' && entry.vector !== undefined && this.pool) this.pool.remove(entry.namespace, entry.key);
  }
}

/** The settings a running pool was started with: when they are unchanged, a reload keeps the pool. */
function poolSettings(c: CacheConfig): string {
  const s = c.semantic;
  return JSON.stringify([s.embedder, s.threads, s.max_queue, s.index, s.verifier.enabled ? s.verifier : false]);
}

function fresh(entry: CacheEntry, d: CacheDecision, nowMs: number): boolean {
  return d.maxAgeMs === undefined || nowMs - entry.createdAtMs <= d.maxAgeMs;
}

function indexItem(entry: CacheEntry): { entryKey: string; contextKey: string; text: string; vector: Float32Array; expiresAtMs: number } {
  return { entryKey: entry.key, contextKey: entry.contextKey!, text: entry.text!, vector: entry.vector!, expiresAtMs: entry.expiresAtMs };
}
