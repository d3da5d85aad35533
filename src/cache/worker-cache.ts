/**
 * The response cache of one worker process, across config snapshots: started when a config has a
 * `cache` block, rebuilt on a reload that changes it (keeping its entries, and its thread pool when
 * the semantic settings did not change), stopped when the block goes. It also joins the worker to the
 * others: every entry stored here goes to `share` (the supervisor forwards it to the sibling worker
 * processes) and, with the top-level `redis`, to the other nodes; entries from elsewhere come in
 * through `apply`.
 *
 * Without a `cache` block it holds nothing and starts nothing.
 */

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { RedisConfig } from '../config/schema.js';
import { describeError, log } from '../observability/logger.js';
import type { CacheRecord } from './cache-entry.js';
import { CacheCounters, type CacheMetricsSource } from './cache-metrics.js';
import type { CacheConfig } from './config.js';
import type { CacheHolder } from './filter.js';
import { RedisCacheLink } from './redis-link.js';
import { KEY_VERSION } from './request-key.js';
import { ResponseCache, type StartOptions } from './response-cache.js';

export interface WorkerCacheOptions {
  /** Hands an entry stored here to the sibling worker processes. */
  share?: (record: CacheRecord) => void;
  /** This gateway's own OpenAI base URL (`http://host:port/v1`), for a judge without `base_url`. */
  selfBaseUrl?: string;
}

/** The longest a start waits for the entries other nodes stored (the rest arrive after). */
const WARM_WAIT_MS = 1_000;
/** After a failed connection to Redis, the next try. */
const REDIS_RETRY_MS = 5_000;

export class WorkerCache implements CacheHolder, CacheMetricsSource {
  private current: ResponseCache | undefined;
  /** Every cache this worker builds counts here: the metrics outlive reloads. Created with the first cache. */
  private counters_: CacheCounters | undefined;
  private configKey = '';
  private link: RedisCacheLink | undefined;
  private linkKey = '';
  private linkRetry: NodeJS.Timeout | undefined;
  private readonly nodeId = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  /** Configurations apply one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly options: WorkerCacheOptions = {}) {}

  get cache(): ResponseCache | undefined {
    return this.current;
  }

  get counters(): CacheCounters | undefined {
    return this.counters_;
  }

  get size(): { entries: number; bytes: number } {
    const s = this.current?.stats();
    return { entries: s?.entries ?? 0, bytes: s?.bytes ?? 0 };
  }

  get semanticState(): 'running' | 'unavailable' | 'off' {
    const cache = this.current;
    if (cache === undefined || !cache.config.semantic.enabled) return 'off';
    return cache.semanticEnabled ? 'running' : 'unavailable';
  }

  /** Applies a snapshot's `cache` and `redis` blocks: start, rebuild (entries kept) or stop. */
  configure(cache: CacheConfig | undefined, redis: RedisConfig | undefined): Promise<void> {
    const run = this.queue.then(() => this.configureNow(cache, redis));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async configureNow(cache: CacheConfig | undefined, redis: RedisConfig | undefined): Promise<void> {
    if (this.stopped) return;
    const on = cache !== undefined && cache.enabled ? cache : undefined;
    const key = on === undefined ? '' : JSON.stringify(on);
    if (key !== this.configKey) {
      const previous = this.current;
      if (on === undefined) {
        this.current = undefined;
        await previous?.stop();
      } else {
        const start: StartOptions = {
          counters: (this.counters_ ??= new CacheCounters()),
          onStored: (record) => this.stored(record),
          onSemanticUnavailable: (err) => log.warn('semantic cache unavailable; serving exact hits only', describeError(err)),
          ...(this.options.selfBaseUrl !== undefined ? { selfBaseUrl: this.options.selfBaseUrl } : {}),
        };
        // Until the new cache is ready the previous one keeps serving.
        this.current = previous !== undefined ? await ResponseCache.reload(previous, on, start) : await ResponseCache.start(on, start);
      }
      this.configKey = key;
    }
    await this.configureLink(on !== undefined && on.share_across_nodes ? redis : undefined);
  }

  /** An entry stored by another worker process or node. A malformed record is dropped. */
  apply(record: unknown): void {
    const cache = this.current;
    if (cache === undefined) return;
    try {
      cache.applyRecord(record);
    } catch (err) {
      log.debug('cache record refused', describeError(err));
    }
  }

  /** Every live entry: the snapshot a newly started sibling begins with. */
  records(): CacheRecord[] {
    return this.current?.records() ?? [];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.queue;
    clearTimeout(this.linkRetry);
    const cache = this.current;
    this.current = undefined;
    await Promise.all([cache?.stop(), this.link?.close()]);
    this.link = undefined;
  }

  private async warm(link: RedisCacheLink): Promise<void> {
    const limit = this.current?.config.max_entries ?? 0;
    const records = await link.records(limit);
    for (const record of records) this.apply(record);
    if (records.length > 0) log.info('cache: entries from other nodes loaded', { entries: records.length });
  }

  private stored(record: CacheRecord): void {
    this.options.share?.(record);
    this.link?.publish(record);
  }

  private async configureLink(redis: RedisConfig | undefined): Promise<void> {
    const key = redis === undefined ? '' : JSON.stringify([redis.url, redis.key_prefix, redis.command_timeout_ms]);
    if (key === this.linkKey) return;
    this.linkKey = key;
    clearTimeout(this.linkRetry);
    const old = this.link;
    this.link = undefined;
    await old?.close();
    if (redis !== undefined) await this.connect(redis, key);
  }

  private async connect(redis: RedisConfig, key: string): Promise<void> {
    try {
      const link = await RedisCacheLink.connect(
        { url: redis.url, nodeId: this.nodeId, prefix: `${redis.key_prefix}cache:${KEY_VERSION}`, timeoutMs: redis.command_timeout_ms },
        (record) => this.apply(record),
      );
      if (this.linkKey !== key || this.stopped) {
        await link.close();
        return;
      }
      this.link = link;
      // What other nodes stored before this one listened; waited for briefly, so a node that starts
      // serving already knows them, but never held up for long by a slow Redis.
      const warm = this.warm(link);
      await Promise.race([warm, new Promise((r) => setTimeout(r, WARM_WAIT_MS).unref())]);
    } catch (err) {
      // Redis down is never the gateway down: this node caches alone until it is back.
      log.warn('cache: cannot reach redis; sharing with other nodes resumes when it answers', describeError(err));
      this.linkRetry = setTimeout(() => {
        if (this.linkKey === key && !this.stopped) void this.connect(redis, key);
      }, REDIS_RETRY_MS);
      this.linkRetry.unref();
    }
  }
}
