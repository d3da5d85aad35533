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
 * filter does can be reached without a key.
 */
export function buildFilterChain(configs: readonly FilterConfig[], router: ModelRouter, rules: RuleSet, first: readonly Filter[] = []): FilterChain {
  const filters: Filter[] = [];
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
    }
  }
  if (!hasModel) filters.unshift(modelFilter(router, rules));
  return new FilterChain([...first, ...filters]);
}
