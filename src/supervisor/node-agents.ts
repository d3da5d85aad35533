/**
 * The per-node background work that feeds the workers' routing through shared memory, run by the
 * supervisor (one per node, whatever the worker count) and kept off every request path:
 *   - active health checks of every endpoint of providers with `health_check` (HealthChecker);
 *   - global least-request: this node's in-flight counts published to Redis as a lease and the other
 *     nodes' counts read back into shm (GlobalLoadAgent), for providers with that balancer;
 *   - prefix balancing: replica /metrics scraped into shm, the prefix index shared through Redis
 *     (PrefixAgents), for providers with `balancer: prefix`.
 * Both follow config reloads.
 */

import type { Config } from '../config/schema.js';
import { describeError, log } from '../observability/logger.js';
import type { Provider } from '../providers/provider.js';
import { endpointSlotIdentity } from '../routing/balancer.js';
import { defaultNodeId, GlobalLoadAgent } from '../routing/global-load.js';
import { HealthChecker, type HealthCheckTarget } from '../routing/health-checker.js';
import { PrefixAgents } from '../routing/prefix-agents.js';
import type { SharedMemory } from '../shm/shared-memory.js';

export class NodeAgents {
  private readonly health: HealthChecker;
  private globalLoad: GlobalLoadAgent | undefined;
  /** The Redis settings the running agent was made with, to know when to make another. */
  private globalLoadKey = '';
  private globalSlots: readonly number[] = [];
  private readonly nodeId = defaultNodeId();
  /** Agent swaps in order: a new agent starts only after the old one removed its lease. */
  private swaps: Promise<void> = Promise.resolve();
  private readonly prefix: PrefixAgents;

  constructor(private readonly shm: SharedMemory) {
    this.health = new HealthChecker({ endpoints: shm.endpoints });
    this.prefix = new PrefixAgents(shm, this.nodeId);
  }

  /** Apply a validated config; `providers` are built from it (their endpoints, normalised). */
  update(config: Config, providers: ReadonlyMap<string, Provider>): void {
    const targets: HealthCheckTarget[] = [];
    const globalSlots: number[] = [];
    for (const pc of config.providers) {
      const provider = providers.get(pc.name);
      if (!provider) continue;
      for (const e of provider.endpoints) {
        const slot = this.shm.slots.slotFor(endpointSlotIdentity(provider.name, e.url));
        const hc = pc.health_check;
        if (hc !== undefined) {
          targets.push({
            slot,
            url: e.origin + hc.path,
            intervalMs: hc.interval_ms,
            timeoutMs: hc.timeout_ms,
            unhealthyThreshold: hc.unhealthy_threshold,
            healthyThreshold: hc.healthy_threshold,
          });
        }
        if (pc.balancer === 'global_least_request') globalSlots.push(slot);
      }
    }
    try {
      this.health.update(targets);
    } catch (err) {
      log.error('health checks not updated', describeError(err));
    }
    this.globalSlots = globalSlots;
    this.updateGlobalLoad(config, globalSlots.length > 0);
    try {
      this.prefix.update(config, providers);
    } catch (err) {
      log.error('prefix balancing agents not updated', describeError(err));
    }
  }

  private updateGlobalLoad(config: Config, wanted: boolean): void {
    const redis = config.redis;
    const key = wanted && redis ? JSON.stringify([redis.url, redis.key_prefix, redis.command_timeout_ms, redis.load_report_interval_ms]) : '';
    if (key === this.globalLoadKey) return;
    const old = this.globalLoad;
    this.globalLoad = undefined;
    this.globalLoadKey = key;
    const next =
      wanted && redis
        ? new GlobalLoadAgent({
            redis: redis.url,
            keyPrefix: redis.key_prefix,
            nodeId: this.nodeId,
            shm: this.shm,
            slots: () => this.globalSlots,
            reportIntervalMs: redis.load_report_interval_ms,
            commandTimeoutMs: redis.command_timeout_ms,
          })
        : undefined;
    this.globalLoad = next;
    // The old agent deletes the lease this node id holds; the new one must not publish before that.
    this.swaps = this.swaps.then(async () => {
      await old?.stop().catch(() => undefined);
      if (next !== undefined && this.globalLoad === next) next.start();
    });
  }

  async stop(): Promise<void> {
    await this.swaps;
    await Promise.allSettled([this.health.stop(), this.globalLoad?.stop(), this.prefix.stop()]);
  }
}
