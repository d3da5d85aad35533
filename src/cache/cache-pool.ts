/**
 * The semantic cache's thread pool, as seen from a request thread: embedding in `threads` embedder
 * threads, search and index upkeep in one index thread (the only owner of the HNSW graphs).
 *
 * A busy or slow pool means a miss, never a wait:
 * - every call has a time budget; past it the call resolves as a miss while the task finishes (or is
 *   skipped, see below) in the background; a running task is never aborted, because piscina aborts
 *   by killing the thread (and the embedder or the index with it);
 * - tasks carry their deadline, and a thread that picks one up too late skips the work;
 * - a call is refused at once when the queue is full, or when the queue it would join could not be
 *   served within its budget at the recent service time.
 */

import { Piscina } from 'piscina';
import type { EmbedderConfig, VerifierConfig } from './config.js';
import {
  type EmbedInfo,
  type EmbedReply,
  type EmbedTask,
  type EmbedWorkerData,
  epochMs,
  type IndexReply,
  type IndexSearchReply,
  type IndexTask,
  type IndexWorkerData,
} from './pool-protocol.js';
import type { IndexItem, IndexSetStats, IndexSpec, SearchQuery, SearchResult, VectorSource } from './semantic-index.js';

export type PoolMiss = 'busy' | 'timeout' | 'error' | 'stopped';

export type PoolResult<T> =
  | { ok: true; value: T; ms: number }
  /** `late`: on a timeout, the task's own result once it finishes (undefined if it fails): work already paid for. */
  | { ok: false; reason: PoolMiss; ms: number; error?: Error; late?: Promise<T | undefined> };

export interface CachePoolOptions {
  embedder: EmbedderConfig;
  /** Embedder threads. */
  threads: number;
  /** Embedding tasks allowed to wait. */
  maxQueue: number;
  index: Omit<IndexSpec, 'embedderId' | 'dimensions'> & { maxNamespaces: number };
  /** Verifier settings; undefined runs the index without one (threshold only). */
  verifier: VerifierConfig | undefined;
  /** Task files (tests point these elsewhere); default: the compiled workers/. */
  embedWorker?: URL;
  indexWorker?: URL;
  /** Longest wait for the embedder threads to load (USE-lite: ≈ 0.3–1 s). */
  startTimeoutMs?: number;
}

export interface PoolStats {
  embedder: { id: string; dimensions: number; loadMs: number };
  embed: LaneStats;
  index: LaneStats & { instance: string | undefined; resets: number };
}

export interface LaneStats {
  threads: number;
  inFlight: number;
  queued: number;
  /** Recent service time per task, ms (moving average). */
  serviceMs: number;
  completed: number;
  refusedBusy: number;
  timedOut: number;
  failed: number;
}

const DEFAULT_EMBED_WORKER = new URL('../../workers/cache-embed.js', import.meta.url);
const DEFAULT_INDEX_WORKER = new URL('../../workers/cache-index.js', import.meta.url);

/** Admission and timing for one piscina pool. */
class Lane {
  inFlight = 0;
  serviceMs: number;
  completed = 0;
  refusedBusy = 0;
  timedOut = 0;
  failed = 0;
  stopped = false;

  constructor(
    readonly pool: Piscina,
    readonly threads: number,
    readonly maxQueue: number,
    initialServiceMs: number,
  ) {
    this.serviceMs = initialServiceMs;
  }

  get queued(): number {
    return Math.max(0, this.inFlight - this.threads);
  }

  /** Whether a task with this budget can start in time. An idle thread always admits. */
  admits(budgetMs: number): boolean {
    if (this.inFlight < this.threads) return true;
    const ahead = this.queued;
    if (ahead >= this.maxQueue) return false;
    const waitMs = Math.ceil((ahead + 1) / this.threads) * this.serviceMs;
    return waitMs + this.serviceMs <= budgetMs;
  }

  /**
   * `serviceMs` reads the task's own execution time from its result, when it reports one; otherwise
   * the time from submission is used (queueing included, which only errs towards refusing).
   */
  async run<T>(task: unknown, budgetMs: number, serviceMs?: (value: T) => number | undefined): Promise<PoolResult<T>> {
    const start = performance.now();
    if (this.stopped) return { ok: false, reason: 'stopped', ms: 0 };
    if (!this.admits(budgetMs)) {
      this.refusedBusy++;
      return { ok: false, reason: 'busy', ms: 0 };
    }
    this.inFlight++;
    const work = this.pool.run(task).then(
      (value: T) => {
        this.inFlight--;
        this.completed++;
        // A task that reports no time of its own (skipped past its deadline) teaches nothing.
        const took = serviceMs ? serviceMs(value) : performance.now() - start;
        if (took !== undefined) this.serviceMs = this.serviceMs * 0.8 + took * 0.2;
        return { ok: true as const, value };
      },
      (error: unknown) => {
        this.inFlight--;
        this.failed++;
        return { ok: false as const, error: error instanceof Error ? error : new Error(String(error)) };
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, budgetMs));
    });
    const first = await Promise.race([work, timeout]);
    clearTimeout(timer);
    const ms = performance.now() - start;
    if (first === 'timeout') {
      this.timedOut++;
      return { ok: false, reason: this.stopped ? 'stopped' : 'timeout', ms, late: work.then((w) => (w.ok ? w.value : undefined)) };
    }
    if (!first.ok) return { ok: false, reason: this.stopped ? 'stopped' : 'error', ms, error: first.error };
    return { ok: true, value: first.value, ms };
  }

  stats(): LaneStats {
    return {
      threads: this.threads,
      inFlight: this.inFlight,
      queued: this.queued,
      serviceMs: Number(this.serviceMs.toFixed(2)),
      completed: this.completed,
      refusedBusy: this.refusedBusy,
      timedOut: this.timedOut,
      failed: this.failed,
    };
  }
}

export class EmbedderStartError extends Error {
  readonly code = 'embedder_unavailable';
}

export class CachePool {
  private instance: string | undefined;
  private resets = 0;
  private readonly resetListeners: (() => void)[] = [];
  private pendingRemovals: { namespace: string; entryKey: string }[] = [];
  private removalScheduled = false;

  private constructor(
    private readonly embedLane: Lane,
    private readonly indexLane: Lane,
    private readonly info: { id: string; dimensions: number; loadMs: number },
  ) {}

  /** Starts the threads and waits until the embedder is loaded; rejects when it cannot load. */
  static async start(options: CachePoolOptions): Promise<CachePool> {
    const threads = Math.max(1, options.threads);
    const embedPool = new Piscina({
      filename: (options.embedWorker ?? DEFAULT_EMBED_WORKER).href,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 2 ** 31 - 1,
      maxQueue: options.maxQueue + threads,
      // Between tasks the threads must keep their event loop (HTTP embedders, timers), which
      // piscina's Atomics.wait loop would block.
      atomics: 'disabled',
      workerData: { embedder: options.embedder } satisfies EmbedWorkerData,
    });
    // A thread that dies outside a task is reported here; without a listener it would kill the process.
    embedPool.on('error', () => {});
    let info: EmbedInfo;
    try {
      info = await withTimeout(embedPool.run({ op: 'info' } satisfies EmbedTask) as Promise<EmbedInfo>, options.startTimeoutMs ?? 60_000);
    } catch (err) {
      await embedPool.destroy();
      throw new EmbedderStartError(`cache embedder did not start: ${(err as Error).message}`);
    }
    if (!info.ok) {
      await embedPool.destroy();
      throw new EmbedderStartError(`cache embedder did not start: ${info.error}`);
    }
    const indexPool = new Piscina({
      filename: (options.indexWorker ?? DEFAULT_INDEX_WORKER).href,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: 2 ** 31 - 1,
      atomics: 'disabled',
      workerData: {
        spec: { ...options.index, embedderId: info.id, dimensions: info.dimensions },
        maxNamespaces: options.index.maxNamespaces,
        verifier: options.verifier,
      } satisfies IndexWorkerData,
    });
    indexPool.on('error', () => {});
    const pool = new CachePool(
      new Lane(embedPool, threads, options.maxQueue, Math.max(1, info.warmEmbedMs)),
      // The index thread serves searches in well under a millisecond; a long queue there means
      // trouble, not load, so its queue is bounded like the embedders'.
      new Lane(indexPool, 1, Math.max(16, options.maxQueue * 4), 1),
      { id: info.id, dimensions: info.dimensions, loadMs: info.loadMs },
    );
    const stats = await pool.indexRun<IndexSetStats>({ op: 'stats' }, options.startTimeoutMs ?? 60_000);
    if (!stats.ok) {
      await pool.stop();
      throw new EmbedderStartError(`cache index thread did not start: ${stats.error?.message ?? stats.reason}`);
    }
    return pool;
  }

  get embedderId(): string {
    return this.info.id;
  }

  get dimensions(): number {
    return this.info.dimensions;
  }

  get source(): VectorSource {
    return { embedderId: this.info.id, dimensions: this.info.dimensions };
  }

  /** Called when the index thread was replaced and its index is empty: feed it again. Returns the unsubscribe. */
  onIndexReset(listener: () => void): () => void {
    this.resetListeners.push(listener);
    return () => {
      const i = this.resetListeners.indexOf(listener);
      if (i >= 0) this.resetListeners.splice(i, 1);
    };
  }

  async embed(texts: string[], budgetMs: number): Promise<PoolResult<Float32Array[]>> {
    const deadline = epochMs() + budgetMs;
    const r = await this.embedLane.run<EmbedReply>({ op: 'embed', texts, deadline } satisfies EmbedTask, budgetMs, (v) => (v.expired ? undefined : v.ms));
    if (!r.ok) {
      const { late, ...miss } = r;
      return late === undefined ? miss : { ...miss, late: late.then((v) => (v === undefined || v.expired ? undefined : v.vectors)) };
    }
    if (r.value.expired) return { ok: false, reason: 'timeout', ms: r.ms };
    return { ok: true, value: r.value.vectors, ms: r.ms };
  }

  async search(namespace: string, query: Omit<SearchQuery, 'nowMs'>, budgetMs: number): Promise<PoolResult<SearchResult>> {
    const deadline = epochMs() + budgetMs;
    const task: IndexTask = { op: 'search', namespace, source: this.source, query: { ...query, nowMs: Date.now() }, deadline };
    const r = await this.indexLane.run<IndexSearchReply>(task, budgetMs);
    if (!r.ok) return missOnly(r);
    this.noteInstance(r.value.instance);
    const result = r.value.result;
    if (result.expired) return { ok: false, reason: 'timeout', ms: r.ms };
    return { ok: true, value: result, ms: r.ms };
  }

  /** Adds questions to their namespaces' indexes; per item its label or why it was refused. */
  async add(items: { namespace: string; item: IndexItem }[], budgetMs: number): Promise<PoolResult<(number | string)[]>> {
    if (items.length === 0) return { ok: true, value: [], ms: 0 };
    return this.indexRun<(number | string)[]>({ op: 'add', source: this.source, items }, budgetMs);
  }

  /** Drops questions from the index; batched, fire and forget (a stale entry is a harmless miss). */
  remove(namespace: string, entryKey: string): void {
    this.pendingRemovals.push({ namespace, entryKey });
    if (this.removalScheduled) return;
    this.removalScheduled = true;
    setImmediate(() => {
      this.removalScheduled = false;
      const items = this.pendingRemovals;
      this.pendingRemovals = [];
      if (items.length > 0 && !this.indexLane.stopped) void this.indexRun({ op: 'remove', items }, 10_000);
    });
  }

  async purge(nowMs: number): Promise<PoolResult<number>> {
    return this.indexRun<number>({ op: 'purge', nowMs }, 10_000);
  }

  async indexStats(): Promise<PoolResult<IndexSetStats>> {
    return this.indexRun<IndexSetStats>({ op: 'stats' }, 10_000);
  }

  async clearIndex(): Promise<PoolResult<boolean>> {
    return this.indexRun<boolean>({ op: 'clear' }, 10_000);
  }

  stats(): PoolStats {
    return {
      embedder: this.info,
      embed: this.embedLane.stats(),
      index: { ...this.indexLane.stats(), instance: this.instance, resets: this.resets },
    };
  }

  async stop(): Promise<void> {
    this.embedLane.stopped = true;
    this.indexLane.stopped = true;
    await Promise.all([this.embedLane.pool.destroy(), this.indexLane.pool.destroy()]);
  }

  private async indexRun<T>(task: IndexTask, budgetMs: number): Promise<PoolResult<T>> {
    const r = await this.indexLane.run<IndexReply<T>>(task, budgetMs);
    if (!r.ok) return missOnly(r);
    this.noteInstance(r.value.instance);
    return { ok: true, value: r.value.result, ms: r.ms };
  }

  private noteInstance(instance: string): void {
    if (this.instance === instance) return;
    const replaced = this.instance !== undefined;
    this.instance = instance;
    if (replaced) {
      this.resets++;
      for (const l of this.resetListeners) l();
    }
  }
}

/** A miss without its late result (index replies are not worth waiting for once late). */
function missOnly(r: Extract<PoolResult<unknown>, { ok: false }>): Extract<PoolResult<never>, { ok: false }> {
  const { late: _late, ...miss } = r;
  return miss;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]);
}
