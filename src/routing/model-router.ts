/**
 * Model mapping: the model name a client asks for → a route with one or more targets
 * (provider + the provider's model name). Resolution order, first match wins:
 *   1. `models` entries with that exact name,
 *   2. `models` entries whose pattern matches, in config order,
 *   3. `PROVIDER/model`, when PROVIDER is a configured provider's name,
 *   4. models discovered from self-hosted providers' `/v1/models`, in provider order,
 *   5. each provider's own model patterns (`claude-*` for anthropic, …), in provider order.
 */

import type { ModelRouteConfig } from '../config/schema.js';
import type { Provider } from '../providers/provider.js';
import { compilePattern, type ModelPattern } from './pattern.js';

export interface ResolvedTarget {
  readonly provider: Provider;
  /** The provider's model name. */
  readonly model: string;
}

export interface ResolvedRoute {
  /** The route's name or pattern as configured (or the provider's name for implicit routes). */
  readonly name: string;
  readonly targets: readonly ResolvedTarget[];
}

interface CompiledRoute {
  pattern: ModelPattern;
  targets: readonly { provider: Provider; model: string | undefined }[];
}

export class ModelRouter {
  private readonly exact = new Map<string, CompiledRoute>();
  private readonly patterns: CompiledRoute[] = [];
  private readonly discovered = new Map<string, Provider>();
  private readonly providerPatterns: { provider: Provider; patterns: ModelPattern[] }[];

  constructor(
    routes: readonly ModelRouteConfig[],
    private readonly providers: ReadonlyMap<string, Provider>,
    /** Provider name → model names it reported. */
    discoveredModels: ReadonlyMap<string, readonly string[]> = new Map(),
  ) {
    for (const r of routes) {
      const compiled: CompiledRoute = {
        pattern: compilePattern(r.name),
        targets: r.targets.map((t) => {
          const provider = providers.get(t.provider);
          if (!provider) throw new Error(`route ${r.name}: unknown provider ${t.provider}`);
          return { provider, model: t.model };
        }),
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
  }

  resolve(model: string): ResolvedRoute | undefined {
    const exact = this.exact.get(model);
    if (exact) return bind(exact, model);
    for (const r of this.patterns) if (r.pattern.matches(model)) return bind(r, model);

    const slash = model.indexOf('/');
    if (slash > 0) {
      const provider = this.providers.get(model.slice(0, slash));
      if (provider && slash < model.length - 1) {
        return { name: provider.name, targets: [{ provider, model: model.slice(slash + 1) }] };
      }
    }
    const found = this.discovered.get(model);
    if (found) return { name: found.name, targets: [{ provider: found, model }] };
    for (const { provider, patterns } of this.providerPatterns) {
      for (const p of patterns) if (p.matches(model)) return { name: provider.name, targets: [{ provider, model }] };
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
    for (const [name, r] of this.exact) add(name, r.targets[0]?.provider.name ?? 'sluice');
    for (const [name, p] of this.discovered) add(name, p.name);
    for (const { provider, patterns } of this.providerPatterns) {
      for (const p of patterns) if (p.exact) add(p.source, provider.name);
    }
    return out;
  }
}

function bind(route: CompiledRoute, model: string): ResolvedRoute {
  return {
    name: route.pattern.source,
    targets: route.targets.map((t) => ({ provider: t.provider, model: t.model ?? model })),
  };
}
