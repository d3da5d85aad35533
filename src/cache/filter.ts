/**
 * The cache filter: the response cache in the filter chain. It runs in `onRequestBody` after model
 * resolution and every configured filter (the request is keyed as it will be sent upstream), looks
 * the request up, and either answers with the stored answer (a `LocalReply` carrying the canonical
 * response, which the server encodes as JSON or replays as a stream in the client's protocol) or lets
 * it through and collects the upstream's answer to store it in `onDone`.
 *
 * Every chat request it sees gets `x-sluice-cache` (hit, semantic-hit;score=…, miss, bypass), errors
 * included, and `ctx.cache` for the access log and accounting.
 *
 * Cost: declaring `onResponseEvent` makes the gateway decode every answer of the chain (no byte
 * pass-through while a cache is configured), because the chain decides that once, not per request;
 * docs/cache.md gives the measured price.
 */

import { log } from '../observability/logger.js';
import type { RequestContext } from '../pipeline/context.js';
import type { Filter, FilterResult, LocalReply, ResponseEvent } from '../pipeline/filter.js';
import type { ChatRequest, ChatResponse } from '../protocol/canonical.js';
import { inboundCodec } from '../protocol/index.js';
import { targetModel } from '../routing/model-router.js';
import { cacheHeaderValue, CACHE_HEADER } from './cache-hit.js';
import type { CacheConfig } from './config.js';
import type { ResponseCollector } from './response-collector.js';
import type { CacheLookup, CacheTicket, ResponseCache } from './response-cache.js';

/** Where the filter finds the worker's current cache (it changes on reload, the filter does not). */
export interface CacheHolder {
  readonly cache: ResponseCache | undefined;
}

export interface CacheFilterOptions {
  /** The tenant a consumer belongs to (its tenant label), for `namespace: tenant`. */
  tenantOf?: (consumer: string) => string | undefined;
}

/** What one request carries from lookup to store. */
interface Pending {
  readonly cache: ResponseCache;
  readonly ticket: CacheTicket;
  collector: ResponseCollector | undefined;
  response: ChatResponse | undefined;
}

export function cacheFilter(holder: CacheHolder, options: CacheFilterOptions = {}): Filter {
  // Per-request state without a slot on the context: entries go with their request.
  const pending = new WeakMap<RequestContext, Pending>();

  const bypass = (ctx: RequestContext): undefined => {
    ctx.cache = 'bypass';
    ctx.responseHeaders[CACHE_HEADER] = cacheHeaderValue('bypass');
    return undefined;
  };

  const answer = (ctx: RequestContext, found: CacheLookup, target: { provider: string; model: string }): FilterResult => {
    ctx.cache = found.status;
    ctx.responseHeaders[CACHE_HEADER] = found.header;
    if (found.reason !== undefined && log.enabled('debug')) log.debug('cache', { request_id: ctx.id, status: found.status, reason: found.reason });
    if (found.reply === undefined) return undefined;
    // The stored answer is the reply: nothing to collect or store again.
    pending.delete(ctx);
    const response = found.reply.response;
    ctx.provider = target.provider;
    ctx.upstreamModel = target.model;
    ctx.usage = response.usage;
    // Nothing was bought upstream: the usage counts as cached tokens, the cost is zero (a known cost,
    // so accounting does not price the replayed usage again).
    ctx.costMicros = 0;
    ctx.priced = true;
    const reply: LocalReply = {
      status: 200,
      response,
      headers: {
        'x-sluice-provider': target.provider,
        'x-sluice-model': target.model,
        'x-sluice-attempts': '0',
        ...(ctx.route !== undefined ? { 'x-sluice-route': ctx.route.plan.name } : {}),
      },
    };
    return reply;
  };

  return {
    name: 'cache',

    onRequestBody(ctx: RequestContext): FilterResult | Promise<FilterResult> {
      const cache = holder.cache;
      if (cache === undefined) return undefined;
      const route = ctx.route;
      if (ctx.op !== 'chat' || route === undefined) return bypass(ctx);
      let request: ChatRequest;
      try {
        request = inboundCodec(ctx.protocol).decodeRequest(ctx.body);
      } catch {
        // An invalid request is the upstream path's to report, in its usual words.
        return bypass(ctx);
      }
      // Answers are shared per upstream model: the route's primary target names it. An answer from
      // any other target (a weighted sibling, a fallback) is not stored.
      const primary = route.plan.targets[0]!;
      const target = { provider: primary.provider.name, model: targetModel(primary, route) };
      const consumer = ctx.consumer;
      const header = cache.config.tenant_header;
      const tenant = (consumer !== undefined ? options.tenantOf?.(consumer) : undefined) ?? (header !== undefined ? ctx.headers[header] : undefined);
      const ticket = cache.prepare({ request, clientModel: ctx.model, route: route.plan.name, target, consumer, tenant, headers: ctx.headers });
      if (ticket.decision.store) pending.set(ctx, { cache, ticket, collector: undefined, response: undefined });
      const found = cache.lookup(ticket);
      if (!(found instanceof Promise)) return answer(ctx, found, target);
      return found.then(
        (f) => answer(ctx, f, target),
        // The semantic layer is an optimisation: its failure is a miss, never the request's failure.
        () => answer(ctx, { status: 'miss', header: cacheHeaderValue('miss') }, target),
      );
    },

    onResponseEvent(ctx: RequestContext, event: ResponseEvent): void {
      const p = pending.get(ctx);
      if (p === undefined) return;
      if (event.type === 'response') p.response = event.response;
      else (p.collector ??= p.cache.collector()).push(event);
    },

    onDone(ctx: RequestContext): void {
      const p = pending.get(ctx);
      if (p === undefined) return;
      pending.delete(ctx);
      if (ctx.status !== 200 || ctx.aborted) return;
      const response = p.response ?? p.collector?.result();
      if (response === undefined) return;
      p.cache.store(p.ticket, response, { provider: ctx.provider, model: ctx.upstreamModel });
    },
  };
}

/**
 * The chain's cache filters: one when the config has an enabled `cache` block and the worker runs a
 * cache, none otherwise (an unconfigured cache costs nothing per request).
 * `labelOf(consumer, label)`: a consumer's label, where its tenant is read from.
 */
export function cacheFilters(
  config: CacheConfig | undefined,
  holder: CacheHolder | undefined,
  labelOf: (consumer: string, label: string) => string | undefined,
): Filter[] {
  if (config === undefined || !config.enabled || holder === undefined) return [];
  const label = config.tenant_label;
  return [cacheFilter(holder, { tenantOf: (consumer) => labelOf(consumer, label) })];
}
