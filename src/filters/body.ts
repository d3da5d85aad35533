/**
 * Request-body defaults, overrides and removals, applied to the body as the client sent it (before
 * any translation), so the same rule reads the same for every upstream: `max_tokens: 1024` means what
 * it means in the client's protocol, and a field the upstream's protocol lacks is translated or
 * dropped like any client field.
 */

import type { FilterConfig } from '../config/schema.js';
import type { RequestContext } from '../pipeline/context.js';
import type { Filter } from '../pipeline/filter.js';
import { compileMatch } from './match.js';

type BodyConfig = Extract<FilterConfig, { type: 'body' }>;

/** Changing these would change which route serves the request after it was resolved. */
const PROTECTED = new Set(['model']);

export function bodyFilter(config: BodyConfig): Filter {
  const applies = compileMatch(config.match);
  const defaults = Object.entries(config.defaults ?? {}).filter(([k]) => !PROTECTED.has(k));
  const overrides = Object.entries(config.overrides ?? {}).filter(([k]) => !PROTECTED.has(k));
  const remove = (config.remove ?? []).filter((k) => !PROTECTED.has(k));
  return {
    name: 'body',
    onRequestBody(ctx: RequestContext) {
      if (!applies(ctx)) return;
      const body = ctx.body;
      let changed = false;
      for (const [k, v] of defaults) {
        if (body[k] === undefined) {
          body[k] = structuredClone(v);
          changed = true;
        }
      }
      for (const [k, v] of overrides) {
        body[k] = structuredClone(v);
        changed = true;
      }
      for (const k of remove) {
        if (k in body) {
          delete body[k];
          changed = true;
        }
      }
      if (changed) {
        ctx.bodyChanged = true;
        if (typeof body.stream === 'boolean') ctx.stream = body.stream;
      }
    },
  };
}
