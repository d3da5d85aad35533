/**
 * A provider's endpoints and keys as routing sees them, for one config snapshot in one worker: the
 * balancer over its endpoints, the outlier detector, the key pool and the retry budget, all reading
 * and writing the shared-memory slots every worker uses for the same endpoint or key.
 *
 * Built once per snapshot (so a reload resets per-worker state such as keys found invalid); nothing
 * here allocates per request.
 */

import type { ProviderConfig } from '../config/schema.js';
import type { Provider } from '../providers/provider.js';
import type { SharedMemory } from '../shm/shared-memory.js';
import { sharedClockMs } from '../shm/shared-clock.js';
import {
  type Balancer,
  type BalancerEndpoint,
  createBalancer,
  EndpointMask,
  endpointGroup,
  endpointSlotIdentity,
  type PickInput,
} from './balancer.js';
import { KeyPool, keySlotIdentity } from './key-pool.js';
import { prefixSettings, type PrefixSettings } from './prefix-balancer.js';
import { isEndpointFailure, OutlierDetector } from './outlier.js';
import { type FailureKind, type ResponseHeaders, RetryBudget } from './retry-policy.js';

export class ProviderGroup {
  readonly endpoints: readonly BalancerEndpoint[];
  readonly balancer: Balancer;
  readonly outlier: OutlierDetector;
  /** Null for a provider without keys (self-hosted servers). */
  readonly keyPool: KeyPool | null;
  /** Per worker: retries sent to this provider may not exceed a share of its requests. */
  readonly budget: RetryBudget;
  /** The prefix balancer's settings; null when the group balances otherwise (and needs no prompt blocks). */
  readonly prefix: PrefixSettings | null;
  private anyKeyTurn = -1;

  constructor(
    readonly provider: Provider,
    config: ProviderConfig,
    retryBudget: { ratio: number; min_per_second: number; window_ms: number },
    private readonly shm: SharedMemory,
  ) {
    this.endpoints = endpointGroup(
      provider.endpoints.map((e) => ({ weight: e.weight, slot: shm.slots.slotFor(endpointSlotIdentity(provider.name, e.url)) })),
    );
    const counters = shm.endpoints;
    this.prefix = config.balancer === 'prefix' ? prefixSettings(config.prefix) : null;
    this.balancer = createBalancer(config.balancer, {
      inFlight: (slot) => counters.inFlight(slot),
      globalInFlight: (slot) => counters.globalInFlight(slot),
      prefix:
        this.prefix === null
          ? undefined
          : {
              settings: this.prefix,
              endpoints: this.endpoints,
              deps: {
                index: shm.prefixIndex,
                metrics: shm.replicaMetrics,
                inFlight: (slot) => counters.globalInFlight(slot),
                now: sharedClockMs,
              },
            },
    });
    const o = config.outlier;
    this.outlier = new OutlierDetector(this.endpoints, counters, {
      consecutiveFailures: o.consecutive_failures,
      baseEjectionMs: o.base_ejection_ms,
      maxEjectionMs: o.max_ejection_ms,
      maxEjectedPercent: o.max_ejected_percent,
    });
    const k = config.key_pool;
    this.keyPool =
      provider.keyCount === 0
        ? null
        : new KeyPool(
            Array.from({ length: provider.keyCount }, (_, i) => shm.slots.slotFor(keySlotIdentity(provider.name, i))),
            counters,
            { defaultCooldownMs: k.default_cooldown_ms, maxCooldownMs: k.max_cooldown_ms, proactiveCooldown: k.proactive_cooldown },
          );
    this.budget = new RetryBudget({
      ratio: retryBudget.ratio,
      minPerSecond: retryBudget.min_per_second,
      windowMs: retryBudget.window_ms,
    });
  }

  /**
   * Marks in `mask` every endpoint that must not be picked now: ejected by outlier detection or
   * found down by the active health check. Returns how many those are.
   */
  excludeUnavailable(mask: EndpointMask, nowMs: number = sharedClockMs()): number {
    let excluded = this.outlier.excludeEjected(mask, nowMs);
    const counters = this.shm.endpoints;
    for (const e of this.endpoints) {
      if (!mask.has(e.index) && counters.isUnhealthy(e.slot)) {
        mask.add(e.index);
        excluded++;
      }
    }
    return excluded;
  }

  pick(input: PickInput): BalancerEndpoint | undefined {
    return this.balancer.pick(this.endpoints, input);
  }

  /** The attempt starts: count it in flight on its endpoint and key, in every worker's view. */
  acquire(endpoint: number, key: number): void {
    this.shm.endpoints.acquire(this.endpoints[endpoint]!.slot);
    if (key >= 0 && this.keyPool) this.shm.endpoints.acquire(this.keyPool.slot(key));
  }

  release(endpoint: number, key: number): void {
    this.shm.endpoints.release(this.endpoints[endpoint]!.slot);
    if (key >= 0 && this.keyPool) this.shm.endpoints.release(this.keyPool.slot(key));
  }

  /**
   * What an attempt's outcome says about its endpoint and key: a response head (status, headers), or
   * a transport failure (kind connect/timeout, status 0). Returns true when it ejected the endpoint.
   */
  record(endpoint: number, key: number, kind: FailureKind, status: number, headers: ResponseHeaders | undefined): boolean {
    if (kind === 'status' && key >= 0 && this.keyPool) this.keyPool.markResult(key, status, headers);
    if (isEndpointFailure(kind, status)) return this.outlier.recordFailure(endpoint);
    this.outlier.recordSuccess(endpoint);
    return false;
  }

  /** A key in turn, ignoring the pool's verdicts: for when every key was refused and nothing else is left. */
  anyKey(): number {
    const n = this.provider.keyCount;
    this.anyKeyTurn = this.anyKeyTurn + 1 < n ? this.anyKeyTurn + 1 : 0;
    return this.anyKeyTurn;
  }

  /** How much longer the endpoint stays ejected (0 when it is not). */
  ejectedForMs(endpoint: number, nowMs: number = sharedClockMs()): number {
    return Math.max(0, this.shm.endpoints.ejectedUntil(this.endpoints[endpoint]!.slot) - nowMs);
  }

  /** An endpoint for a probe or a log line. */
  url(endpoint: number): string {
    return this.provider.endpoints[endpoint]?.url ?? '';
  }
}

/** Every provider's group for one snapshot. */
export function buildProviderGroups(
  providers: ReadonlyMap<string, Provider>,
  configs: readonly ProviderConfig[],
  retryBudget: { ratio: number; min_per_second: number; window_ms: number },
  shm: SharedMemory,
): Map<string, ProviderGroup> {
  const groups = new Map<string, ProviderGroup>();
  const byName = new Map(configs.map((c) => [c.name, c]));
  for (const [name, provider] of providers) {
    const config = byName.get(name);
    if (config) groups.set(name, new ProviderGroup(provider, config, retryBudget, shm));
  }
  return groups;
}
