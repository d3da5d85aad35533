/**
 * The supervisor's part of prefix-aware balancing, one per node and off every request path: for the
 * providers with `balancer: prefix`, it
 *   - configures each endpoint's modelled KV cache in the shared index (capacity, TTL), as every
 *     worker's balancer does, so what other nodes teach lands on a configured endpoint even before a
 *     worker has routed there;
 *   - scrapes each replica's /metrics (MetricsScraper) into shared memory, learning its real KV size
 *     when the provider sets none and forgetting its cached prefixes when it restarts;
 *   - with `prefix.share` and `redis`, shares the index with other nodes (PrefixShareAgent).
 * Follows config reloads.
 */

import type { Config } from '../config/schema.js';
import { describeError, log } from '../observability/logger.js';
import type { Provider } from '../providers/provider.js';
import type { SharedMemory } from '../shm/shared-memory.js';
import { endpointSlotIdentity } from './balancer.js';
import { MetricsScraper, type ScrapeTarget } from './metrics-scraper.js';
import { prefixCapacity, prefixSettings, type PrefixSettings } from './prefix-balancer.js';
import { PrefixShareAgent } from './prefix-share.js';

export class PrefixAgents {
  private readonly scraper: MetricsScraper;
  /** Settings of each prefix-balanced endpoint slot, for what the scraper learns. */
  private settingsBySlot = new Map<number, PrefixSettings>();
  private shared = new Map<bigint, number>();
  private share: PrefixShareAgent | undefined;
  private shareKey = '';
  private swaps: Promise<void> = Promise.resolve();

  constructor(
    private readonly shm: SharedMemory,
    private readonly nodeId: string,
  ) {
    const index = shm.prefixIndex;
    const metrics = shm.replicaMetrics;
    this.scraper = new MetricsScraper({
      sink: {
        write: (slot, sample, nowMs) => metrics.write(slot, sample, nowMs),
        recordFailure: (slot) => metrics.recordFailure(slot),
        clear: (slot) => metrics.clear(slot),
        restarted: (slot) => index.forget(slot),
        kvSize: (slot, tokens) => {
          const settings = this.settingsBySlot.get(slot);
          if (settings !== undefined && settings.capacityBlocks === undefined) {
            index.configure(slot, prefixCapacity(settings, tokens), settings.ttlMs);
          }
        },
      },
    });
  }

  update(config: Config, providers: ReadonlyMap<string, Provider>): void {
    const targets: ScrapeTarget[] = [];
    const settingsBySlot = new Map<number, PrefixSettings>();
    const shared = new Map<bigint, number>();
    let share: { interval_ms: number; max_batch: number; max_stream_entries: number; ttl_ms: number } | undefined;
    for (const pc of config.providers) {
      if (pc.balancer !== 'prefix') continue;
      const provider = providers.get(pc.name);
      if (!provider) continue;
      const settings = prefixSettings(pc.prefix);
      const metrics = pc.prefix?.metrics;
      for (const e of provider.endpoints) {
        const slot = this.shm.slots.slotFor(endpointSlotIdentity(provider.name, e.url));
        settingsBySlot.set(slot, settings);
        this.shm.prefixIndex.configure(slot, prefixCapacity(settings, this.shm.replicaMetrics.kvTokens(slot)), settings.ttlMs);
        if (settings.metricsStaleMs > 0) {
          targets.push({ slot, url: e.origin + (metrics?.path ?? '/metrics'), intervalMs: metrics?.interval_ms ?? 1000, timeoutMs: metrics?.timeout_ms ?? 1000 });
        }
        if (settings.share) shared.set(this.shm.slots.hashAt(slot), slot);
      }
      if (settings.share && pc.prefix !== undefined) {
        // One stream per node set: the first sharing provider's rhythm applies to all of them.
        share ??= { ...pc.prefix.share, ttl_ms: pc.prefix.ttl_ms };
      }
    }
    this.settingsBySlot = settingsBySlot;
    this.shared = shared;
    try {
      this.scraper.update(targets);
    } catch (err) {
      log.error('replica metrics scraping not updated', describeError(err));
    }
    this.updateShare(config, share);
  }

  private updateShare(config: Config, share: { interval_ms: number; max_batch: number; max_stream_entries: number; ttl_ms: number } | undefined): void {
    const redis = config.redis;
    const wanted = share !== undefined && redis !== undefined;
    const key = wanted ? JSON.stringify([redis.url, redis.key_prefix, redis.command_timeout_ms, share]) : '';
    if (key === this.shareKey) return;
    this.shareKey = key;
    const old = this.share;
    const next = wanted
      ? new PrefixShareAgent({
          redis: redis.url,
          keyPrefix: redis.key_prefix,
          nodeId: this.nodeId,
          index: this.shm.prefixIndex,
          endpoints: () => this.shared,
          intervalMs: share.interval_ms,
          maxBatch: share.max_batch,
          maxStreamEntries: share.max_stream_entries,
          ttlMs: share.ttl_ms,
          commandTimeoutMs: redis.command_timeout_ms,
        })
      : undefined;
    this.share = next;
    this.swaps = this.swaps.then(async () => {
      await old?.stop().catch(() => undefined);
      if (next !== undefined && this.share === next) next.start();
    });
  }

  async stop(): Promise<void> {
    await this.swaps;
    await Promise.allSettled([this.scraper.stop(), this.share?.stop()]);
  }
}
