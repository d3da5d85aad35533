/**
 * A configuration snapshot: the validated config and everything built from it (providers, model
 * router, filter chain). Immutable; a reload builds a new one and swaps one reference, and each
 * request keeps the snapshot it started with.
 */

import { ConfigError, type ConfigIssue } from '../config/load.js';
import type { Config, ProviderConfig } from '../config/schema.js';
import { buildFilterChain } from '../filters/registry.js';
import type { FilterChain } from '../pipeline/chain.js';
import type { Filter } from '../pipeline/filter.js';
import type { Provider } from '../providers/provider.js';
import { createProvider } from '../providers/registry.js';
import { ModelRouter, routeRetry } from '../routing/model-router.js';
import { buildProviderGroups, type ProviderGroup } from '../routing/provider-group.js';
import { RuleSet } from '../routing/rules.js';
import type { SharedMemory } from '../shm/shared-memory.js';
import { authFilter } from '../governance/auth-filter.js';
import { PriceTable } from '../governance/prices.js';
import type { LimiterHolder } from '../governance/limiter-holder.js';
import { LimitPolicy, limitsFilter } from '../governance/limits-filter.js';
import { ConsumerDirectory, type KeyRing } from '../governance/consumers.js';
import { cacheFilters } from '../cache/filter.js';
import type { WorkerCache } from '../cache/worker-cache.js';

export interface Snapshot {
  readonly generation: number;
  readonly config: Config;
  readonly providers: ReadonlyMap<string, Provider>;
  readonly router: ModelRouter;
  readonly rules: RuleSet;
  /** Per provider: its endpoints, balancer, outlier detection, key pool and retry budget. */
  readonly groups: ReadonlyMap<string, ProviderGroup>;
  readonly chain: FilterChain;
  readonly consumers: ConsumerDirectory;
  /** Built-in prices with the config's overrides. */
  readonly prices: PriceTable;
  /** Provider name → models it reported at `/v1/models` (self-hosted servers). */
  readonly discovered: ReadonlyMap<string, readonly string[]>;
  /** The config's Wasm plugins by name, loaded and started (src/wasm, WasmPluginManager.prepare). */
  readonly plugins: ReadonlyMap<string, Filter>;
}

export interface SnapshotDeps {
  env: Readonly<Record<string, string | undefined>>;
}

/** What outlives snapshots in one worker and every snapshot reads. */
export interface WorkerState {
  readonly shm: SharedMemory;
  /** Keys made through the admin API. */
  readonly keys: KeyRing;
  /** The worker's response cache (absent in tools that build snapshots without serving). */
  readonly cache?: WorkerCache;
  /** The worker's rate limiter (absent in tools that build snapshots without serving). */
  readonly limiters?: LimiterHolder;
}

/**
 * Build every provider, or fail with a ConfigError listing each one that cannot be built (unknown
 * type, missing key, bad base URL): those are configuration mistakes, reported like schema errors.
 */
export function createProviders(configs: readonly ProviderConfig[], deps: SnapshotDeps, source = 'config'): Map<string, Provider> {
  const providers = new Map<string, Provider>();
  const issues: ConfigIssue[] = [];
  configs.forEach((pc, i) => {
    try {
      providers.set(pc.name, createProvider(pc, { env: deps.env }));
    } catch (err) {
      issues.push({ path: `providers[${i}]`, message: err instanceof Error ? err.message : String(err) });
    }
  });
  if (issues.length > 0) {
    void closeProviders(providers.values());
    throw new ConfigError(source, issues);
  }
  return providers;
}

/** Build a snapshot; throws (with a message naming the provider) when a provider cannot be built. */
export function buildSnapshot(
  config: Config,
  generation: number,
  providers: ReadonlyMap<string, Provider>,
  discovered: ReadonlyMap<string, readonly string[]>,
  state: WorkerState,
  plugins: ReadonlyMap<string, Filter> = new Map(),
): Snapshot {
  const retry = routeRetry(config.retry);
  const router = new ModelRouter(config.models, providers, discovered, retry);
  const rules = new RuleSet(config.rules, providers, retry);
  const groups = buildProviderGroups(providers, config.providers, config.retry.budget, state.shm);
  const consumers = new ConsumerDirectory(config.consumers, state.keys, config.auth.required);
  const first = consumers.enforced ? [authFilter(consumers)] : [];
  const prices = new PriceTable(config.prices);
  const policy = new LimitPolicy(config);
  const limiter = state.limiters?.forConfig(config, policy);
  // Limits before the cache: a hit is still a request of the consumer's (charged 0 tokens).
  const limits = limiter !== undefined && policy.active ? [limitsFilter({ policy, limiter, prices })] : [];
  const last = [...limits, ...cacheFilters(config.cache, state.cache, (name, label) => consumers.get(name)?.labels[label])];
  const chain = buildFilterChain(config.filters, router, rules, first, plugins, last);
  return Object.freeze({ generation, config, providers, router, rules, groups, chain, consumers, prices, discovered, plugins });
}

/** Release the connections of providers the next snapshot no longer uses. */
export async function closeProviders(providers: Iterable<Provider>): Promise<void> {
  await Promise.allSettled([...providers].map((p) => p.transport.close()));
}
