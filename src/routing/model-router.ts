/**
 * Model mapping: the model name a client asks for → a route with one or more targets
 * (provider + the provider's model name). Resolution order, first match wins:
 *   1. `models` entries with that exact name,
 *   2. `models` entries whose pattern matches, in config order,
 *   3. `PROVIDER/model`, when PROVIDER is a configured provider's name,
 *   4. models discovered from self-hosted providers' `/v1/models`, in provider order,
 *   5. each provider's own model patterns (`claude-*` for anthropic, …), in provider order.
 */

import { type ModelRouteConfig, type RetryConfig, RetrySchema, type RouteRetryConfig } from '../config/schema.js';
import type { Provider } from '../providers/provider.js';
import { compilePattern, type ModelPattern } from './pattern.js';
import { RoutePlan, type RouteTarget } from './route-plan.js';

/** A request's route: the plan to follow and the model name targets without their own one get. */
export interface ResolvedRoute {
  readonly plan: RoutePlan;
  /** The client's model name, minus a `provider/` prefix when that is how it was addressed. */
  readonly model: string;
}

/** The provider's model name for a target of a resolved route. */
export function targetModel(target: RouteTarget, route: ResolvedRoute): string {
  return target.model ?? route.model;
}

interface CompiledRoute {
  pattern: ModelPattern;
  plan: RoutePlan;
}

export class ModelRouter {
  private readonly exact = new Map<string, CompiledRoute>();
  private readonly patterns: CompiledRoute[] = [];
  private readonly discovered = new Map<string, Provider>();
  private readonly providerPatterns: { provider: Provider; patterns: ModelPattern[] }[];
  /** The implicit route of each provider: its one target, the default retry policy. */
  private readonly implicit = new Map<Provider, RoutePlan>();

  constructor(
    routes: readonly ModelRouteConfig[],
    private readonly providers: ReadonlyMap<string, Provider>,
    /** Provider name → models it reported. */
    discoveredModels: ReadonlyMap<string, readonly string[]> = new Map(),
    readonly defaultRetry: RouteRetryConfig = DEFAULT_ROUTE_RETRY,
  ) {
    for (const r of routes) {
      const compiled: CompiledRoute = {
        pattern: compilePattern(r.name),
        plan: new RoutePlan(
          r.name,
          r.targets.map((t) => ({ provider: providerNamed(providers, t.provider, r.name), model: t.model, weight: t.weight })),
          (r.fallbacks ?? []).map((t) => ({ provider: providerNamed(providers, t.provider, r.name), model: t.model })),
          r.retry ?? defaultRetry,
          r.timeouts,
        ),
      };
      if (compiled.pattern.exact) {
        if (!this.exact.has(r.name)) this.exact.set(r.name, compiled);
      } else {
        this.patterns.push(compiled);
      }
    }
    for (const [name, models] of discoveredModels) {
      const provider = providers.get(name);
      if (!provider) continue;
      for (const m of models) if (!this.discovered.has(m)) this.discovered.set(m, provider);
    }
    this.providerPatterns = [...providers.values()].map((provider) => ({
      provider,
      patterns: provider.modelPatterns.map(compilePattern),
    }));
    for (const provider of providers.values()) {
      this.implicit.set(provider, new RoutePlan(provider.name, [{ provider, model: undefined, weight: 1 }], [], defaultRetry, undefined));
    }
  }

  resolve(model: string): ResolvedRoute | undefined {
    const exact = this.exact.get(model);
    if (exact) return { plan: exact.plan, model };
    for (const r of this.patterns) if (r.pattern.matches(model)) return { plan: r.plan, model };

    const slash = model.indexOf('/');
    if (slash > 0) {
      const provider = this.providers.get(model.slice(0, slash));
      if (provider && slash < model.length - 1) return { plan: this.implicit.get(provider)!, model: model.slice(slash + 1) };
    }
    const found = this.discovered.get(model);
    if (found) return { plan: this.implicit.get(found)!, model };
    for (const { provider, patterns } of this.providerPatterns) {
      for (const p of patterns) if (p.matches(model)) return { plan: this.implicit.get(provider)!, model };
    }
    return undefined;
  }

  /** The names clients may ask for, for `GET /v1/models`; patterns cannot be listed. */
  listModels(): { id: string; ownedBy: string }[] {
    const seen = new Set<string>();
    const out: { id: string; ownedBy: string }[] = [];
    const add = (id: string, ownedBy: string): void => {
      if (seen.has(id)) return;
      seen.add(id);
      out.push({ id, ownedBy });
    };
    for (const [name, r] of this.exact) add(name, r.plan.targets[0]?.provider.name ?? 'sluice');
    for (const [name, p] of this.discovered) add(name, p.name);
    for (const { provider, patterns } of this.providerPatterns) {
      for (const p of patterns) if (p.exact) add(p.source, provider.name);
    }
    return out;
  }
}

function providerNamed(providers: ReadonlyMap<string, Provider>, name: string, route: string): Provider {
  const provider = providers.get(name);
  if (!provider) throw new Error(`route ${route}: unknown provider ${name}`);
  return provider;
}

/** The schema's defaults, for routers built without a config (tests, tools). */
export const DEFAULT_ROUTE_RETRY: RouteRetryConfig = routeRetry(RetrySchema.parse({}));

/** A top-level retry block as a route's: the budget belongs to providers. */
export function routeRetry(retry: RetryConfig): RouteRetryConfig {
  const { budget: _budget, ...route } = retry;
  return route;
}
