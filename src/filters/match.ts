/** The `match` block shared by configurable filters: which requests a filter applies to. */

import type { WireProtocol } from '../protocol/codec.js';
import type { RequestContext } from '../pipeline/context.js';
import { compilePattern, matchesAny } from '../routing/pattern.js';

export interface MatchConfig {
  models?: string[] | undefined;
  protocols?: ('openai' | 'anthropic')[] | undefined;
}

const PROTOCOLS: Record<'openai' | 'anthropic', WireProtocol> = {
  openai: 'openai-chat',
  anthropic: 'anthropic-messages',
};

/** A predicate over the request, compiled once; undefined match → every request. */
export function compileMatch(match: MatchConfig | undefined): (ctx: RequestContext) => boolean {
  if (!match) return () => true;
  const models = match.models?.map(compilePattern);
  const protocols = match.protocols?.map((p) => PROTOCOLS[p]);
  return (ctx) =>
    (models === undefined || matchesAny(models, ctx.model)) &&
    (protocols === undefined || protocols.includes(ctx.protocol));
}
