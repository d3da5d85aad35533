/**
 * What a route says about serving a request: its targets (sharing traffic by weight), its fallbacks
 * (in order), its retry policy and timeouts. Built once per config snapshot; one per configured
 * route or rule, and one per provider for the implicit routes (`provider/model`, discovered models,
 * provider patterns).
 */

import type { RouteRetryConfig, RouteTimeoutsConfig } from '../config/schema.js';
import type { Provider } from '../providers/provider.js';
import { type BalancerEndpoint, endpointGroup, WeightedBalancer } from './balancer.js';
import { RetryPolicy } from './retry-policy.js';

export interface RouteTarget {
  readonly provider: Provider;
  /** The provider's model name; undefined = the name the client asked for. */
  readonly model: string | undefined;
}

export interface RouteTargetSpec extends RouteTarget {
  readonly weight: number;
}

/** Timeouts a route sets for its requests; unset ones keep the provider's. */
export interface RouteTimeouts {
  readonly firstByteMs?: number | undefined;
  readonly idleMs?: number | undefined;
  readonly totalMs?: number | undefined;
}

export class RoutePlan {
  readonly targets: readonly RouteTarget[];
  readonly fallbacks: readonly RouteTarget[];
  readonly retry: RetryPolicy;
  readonly timeouts: RouteTimeouts | undefined;
  /** How many of `order()`'s first entries are weighted targets; the rest are standbys and fallbacks. */
  readonly primaryCount: number;
  private readonly weights: readonly BalancerEndpoint[];
  /** Smooth weighted round-robin over the targets: exact shares, interleaved, per worker. */
  private readonly picker = new WeightedBalancer();
  private readonly shares: boolean;

  constructor(
    /** As configured (a model name or pattern, a rule's name, or a provider's name). */
    readonly name: string,
    targets: readonly RouteTargetSpec[],
    fallbacks: readonly RouteTarget[],
    retry: RouteRetryConfig,
    timeouts: RouteTimeoutsConfig | undefined,
  ) {
    this.targets = targets.map((t) => ({ provider: t.provider, model: t.model }));
    this.fallbacks = fallbacks;
    this.weights = endpointGroup(targets.map((t) => ({ weight: t.weight, slot: 0 })));
    this.shares = targets.filter((t) => t.weight > 0).length > 1;
    this.primaryCount = Math.max(1, targets.filter((t) => t.weight > 0).length);
    this.retry = new RetryPolicy({
      maxRetries: retry.max_retries,
      baseDelayMs: retry.base_delay_ms,
      maxDelayMs: retry.max_delay_ms,
      maxRetryAfterMs: retry.max_retry_after_ms,
      on: retry.on,
    });
    this.timeouts =
      timeouts === undefined ? undefined : { firstByteMs: timeouts.first_byte_ms, idleMs: timeouts.idle_ms, totalMs: timeouts.total_ms };
  }

  /**
   * The order in which this request tries the route: the target the weights pick first, then the
   * other targets with a weight (config order), then those with weight 0 and the fallbacks, in order.
   */
  order(): RouteTarget[] {
    const n = this.targets.length;
    if (n === 1 && this.fallbacks.length === 0) return this.targets as RouteTarget[];
    const first = this.shares ? (this.picker.pick(this.weights, NO_EXCLUSION)?.index ?? 0) : firstWeighted(this.weights);
    const out: RouteTarget[] = [this.targets[first]!];
    for (let i = 0; i < n; i++) if (i !== first && this.weights[i]!.weight > 0) out.push(this.targets[i]!);
    for (let i = 0; i < n; i++) if (i !== first && this.weights[i]!.weight === 0) out.push(this.targets[i]!);
    for (const f of this.fallbacks) out.push(f);
    return out;
  }
}

const NO_EXCLUSION = { excluded: null, stickyKey: undefined } as const;

function firstWeighted(weights: readonly BalancerEndpoint[]): number {
  for (const w of weights) if (w.weight > 0) return w.index;
  return 0;
}
