/**
 * The built-in filter types, listed in one place, and the chain built from config. Model resolution
 * runs first unless the config lists `- type: model` somewhere else.
 */

import type { FilterConfig } from '../config/schema.js';
import { FilterChain } from '../pipeline/chain.js';
import type { Filter } from '../pipeline/filter.js';
import { modelFilter } from '../routing/model-filter.js';
import type { ModelRouter } from '../routing/model-router.js';
import type { RuleSet } from '../routing/rules.js';
import { bodyFilter } from './body.js';
import { headersFilter } from './headers.js';

/**
 * `first`: filters that run before all configured ones (authentication), so nothing a configured
 * filter does can be reached without a key. `plugins`: the Wasm plugins of this config by name, ready
 * to run; those no `- type: wasm` entry places run after the listed filters, in `plugins` order.
 * `last`: filters that run after all of them (the response cache, which keys the request as the
 * others left it).
 */
export function buildFilterChain(
  configs: readonly FilterConfig[],
  router: ModelRouter,
  rules: RuleSet,
  first: readonly Filter[] = [],
  plugins: ReadonlyMap<string, Filter> = new Map(),
  last: readonly Filter[] = [],
): FilterChain {
  const filters: Filter[] = [];
  const placed = new Set<string>();
  let hasModel = false;
  for (const cfg of configs) {
    switch (cfg.type) {
      case 'model':
        hasModel = true;
        filters.push(modelFilter(router, rules));
        break;
      case 'headers':
        filters.push(headersFilter(cfg));
        break;
      case 'body':
        filters.push(bodyFilter(cfg));
        break;
      case 'wasm': {
        const plugin = plugins.get(cfg.plugin);
        if (plugin === undefined) throw new Error(`plugin ${cfg.plugin} is placed in the chain but was not loaded`);
        placed.add(cfg.plugin);
        filters.push(plugin);
        break;
      }
    }
  }
  for (const [name, plugin] of plugins) if (!placed.has(name)) filters.push(plugin);
  if (!hasModel) filters.unshift(modelFilter(router, rules));
  return new FilterChain([...first, ...filters, ...last]);
}
