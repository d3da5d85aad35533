/**
 * Header add/set/remove. Request edits apply to the headers sent upstream (after the provider set
 * its own, so a configured header can replace a provider default); response edits apply to the
 * headers the client receives.
 */

import type { FilterConfig } from '../config/schema.js';
import type { RequestContext } from '../pipeline/context.js';
import type { Filter } from '../pipeline/filter.js';
import { compileMatch } from './match.js';

type HeadersConfig = Extract<FilterConfig, { type: 'headers' }>;

export function headersFilter(config: HeadersConfig): Filter {
  const applies = compileMatch(config.match);
  const reqSet = Object.entries(config.request?.set ?? {});
  const reqRemove = config.request?.remove ?? [];
  const resSet = Object.entries(config.response?.set ?? {});
  const resRemove = config.response?.remove ?? [];
  return {
    name: 'headers',
    onRequestBody(ctx: RequestContext) {
      if (!applies(ctx)) return;
      const edits = ctx.upstreamHeaderEdits;
      for (const [k, v] of reqSet) edits.set[k] = v;
      for (const k of reqRemove) {
        delete edits.set[k];
        edits.remove.push(k);
      }
    },
    onResponseHeaders(ctx: RequestContext) {
      if (!applies(ctx)) return;
      for (const [k, v] of resSet) ctx.responseHeaders[k] = v;
      for (const k of resRemove) delete ctx.responseHeaders[k];
    },
  };
}
