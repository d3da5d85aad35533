/**
 * What a finished request cost and how it is reported: the cost of its real usage (once, however
 * many places ask) and the record metrics observe.
 */

import { clock } from '../clock.js';
import type { RequestContext } from '../pipeline/context.js';
import { type RequestRecord, upstreamErrorKind } from '../observability/metrics.js';
import type { PriceTable } from './prices.js';

/** Sets `ctx.costMicros` and `ctx.priced` from the real usage, unless already done. */
export function accountCost(ctx: RequestContext, prices: PriceTable): void {
  if (ctx.costMicros >= 0) return;
  const usage = ctx.usage;
  if (usage === undefined || ctx.upstreamModel === '') {
    ctx.costMicros = 0;
    return;
  }
  const cost = prices.costOf(usage, ctx.upstreamModel, ctx.providerType, clock.wallMs(), ctx.provider);
  ctx.costMicros = cost.micros;
  ctx.priced = cost.priced;
}

export function requestRecord(ctx: RequestContext): RequestRecord {
  const usage = ctx.usage;
  return {
    model: ctx.model,
    provider: ctx.provider,
    providerType: ctx.providerType,
    operation: ctx.op,
    consumer: ctx.consumer,
    status: ctx.status === 499 ? 0 : ctx.status,
    stream: ctx.stream,
    usage: usage === undefined ? undefined : { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, cachedInputTokens: usage.cachedInputTokens },
    costMicros: ctx.costMicros < 0 ? undefined : ctx.costMicros,
    priced: ctx.priced,
    ttftMs: ctx.firstByteMs > 0 ? ctx.firstByteMs - ctx.startMs : undefined,
    durationMs: clock.monotonicMs() - ctx.startMs,
    attempts: ctx.attempts,
    fallback: ctx.fallback,
    upstreamErrors: ctx.upstreamErrors?.map((e) => ({ provider: e.provider, kind: upstreamErrorKind(e.status, e.code) })),
    errorType: ctx.errorCode || undefined,
    rateLimited: ctx.rateLimited,
    cache: ctx.cache,
  };
}
