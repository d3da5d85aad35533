/** The model-resolution filter: finds the route (a rule's, else the model's), or answers 404. */

import { GatewayError } from '../errors.js';
import type { RequestContext } from '../pipeline/context.js';
import { localError, type Filter, type FilterResult } from '../pipeline/filter.js';
import type { ModelRouter } from './model-router.js';
import type { RuleSet } from './rules.js';

export function modelFilter(router: ModelRouter, rules: RuleSet): Filter {
  const withRules = rules.size > 0;
  return {
    name: 'model',
    onRequestBody(ctx: RequestContext): FilterResult {
      const route = (withRules ? rules.resolve(ctx) : undefined) ?? router.resolve(ctx.model);
      if (!route) {
        return localError(
          new GatewayError('model_not_found', `The model \`${ctx.model}\` does not exist or is not served by this gateway.`, {
            param: 'model',
          }),
        );
      }
      ctx.route = route;
      return undefined;
    },
  };
}
