/**
 * Rate limits, concurrency limits and budgets on the request path. At admission the request is
 * charged, atomically and all-or-nothing across every limit that applies (consumer, consumer × model,
 * model), with a reservation: one request, its estimated prompt tokens plus the completion it may
 * produce, and their cost. When it ends the reservation is reconciled with the real usage. Charging
 * before the answer is what keeps a burst from overshooting a limit.
 *
 * Limits are counted by a Limiter (src/governance/limiter/): shared memory for one node, Redis for
 * several. This file only decides which limits apply and what to reserve.
 */

import { clock } from '../clock.js';
import type { Config, LimiterConfig } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { RequestContext } from '../pipeline/context.js';
import { localError, type Filter, type FilterResult, type LocalReply, type ResponseEvent } from '../pipeline/filter.js';
import type { ChatRequest } from '../protocol/canonical.js';
import { inboundCodec } from '../protocol/index.js';
import { compilePattern, type ModelPattern } from '../routing/pattern.js';
import { accountCost } from './accounting.js';
import { consumerModelRule, consumerQuotas, consumerRule, modelRule } from './limiter/config.js';
import type { Admission, Limiter, LimitRule, QuotaRule, Ticket } from './limiter/types.js';
import type { PriceTable } from './prices.js';
import { reserveTokens } from './token-estimate.js';

interface ConsumerLimits {
  readonly rule: LimitRule | undefined;
  readonly perModel: ReadonlyMap<string, LimitRule>;
  readonly quotas: readonly QuotaRule[];
}

interface ModelLimits {
  readonly pattern: ModelPattern;
  readonly rule: LimitRule | undefined;
  readonly expectedCompletion: number | undefined;
}

/** What a request holds between admission and its end. */
interface Held {
  readonly ticket: Ticket;
  readonly promptTokens: number;
  /** Output tokens beyond which a token quota is exhausted (Infinity when none applies). */
  readonly outputLimit: number;
  /** Characters of answer seen so far (budget checks while streaming). */
  streamedChars: number;
}

/** The rules and quotas that apply to one request. */
export interface Applicable {
  readonly rules: readonly LimitRule[];
  readonly quotas: readonly QuotaRule[];
  readonly expected: number;
  /** Whether admitting it needs its tokens (a tpm rule or a quota applies). */
  readonly needsTokens: boolean;
}

/** Distinct (consumer, model) pairs remembered per snapshot; model names come from clients, so bounded. */
const APPLICABLE_CACHE_MAX = 4096;

/** The limits of one config, compiled once per snapshot. */
export class LimitPolicy {
  private readonly consumers = new Map<string, ConsumerLimits>();
  private readonly models: ModelLimits[] = [];
  readonly settings: LimiterConfig;
  /** consumer ('' for none) → model → what applies (null: nothing), so a request allocates nothing to find out. */
  private readonly resolved = new Map<string, Map<string, Applicable | null>>();
  private resolvedCount = 0;

  constructor(config: Config) {
    this.settings = config.limiter;
    for (const c of config.consumers) {
      const perModel = new Map<string, LimitRule>();
      for (const [model, limits] of Object.entries(c.model_limits ?? {})) perModel.set(model, consumerModelRule(c.name, model, limits));
      const quotas = c.quotas === undefined ? [] : consumerQuotas(c.name, c.quotas);
      if (c.limits === undefined && perModel.size === 0 && quotas.length === 0) continue;
      this.consumers.set(c.name, { rule: c.limits === undefined ? undefined : consumerRule(c.name, c.limits), perModel, quotas });
    }
    for (const m of config.models) {
      if (m.limits === undefined && m.expected_completion_tokens === undefined) continue;
      this.models.push({
        pattern: compilePattern(m.name),
        rule: m.limits === undefined ? undefined : modelRule(m.name, m.limits),
        expectedCompletion: m.expected_completion_tokens,
      });
    }
  }

  /** Whether any limit or quota is configured (otherwise the filter is not in the chain). */
  get active(): boolean {
    return this.consumers.size > 0 || this.models.some((m) => m.rule !== undefined);
  }

  /** Whether some limit or quota needs a request's tokens (tpm, token or money quotas). */
  get countsTokens(): boolean {
    for (const c of this.consumers.values()) {
      if (c.quotas.length > 0 || c.rule?.tpm !== undefined) return true;
      for (const r of c.perModel.values()) if (r.tpm !== undefined) return true;
    }
    return this.models.some((m) => m.rule?.tpm !== undefined);
  }

  /** Whether some consumer has a token or money quota (mid-answer budget checks matter). */
  get hasBudgets(): boolean {
    for (const c of this.consumers.values()) if (c.quotas.length > 0) return true;
    return false;
  }

  /** The rules and quotas of one request; undefined when none applies. */
  applicable(consumer: string | undefined, model: string): Applicable | undefined {
    const who = consumer ?? '';
    let byModel = this.resolved.get(who);
    if (byModel !== undefined) {
      const hit = byModel.get(model);
      if (hit !== undefined) return hit ?? undefined;
    }
    const found = this.resolve(consumer, model);
    if (this.resolvedCount >= APPLICABLE_CACHE_MAX) {
      this.resolved.clear();
      this.resolvedCount = 0;
      byModel = undefined;
    }
    if (byModel === undefined) this.resolved.set(who, (byModel = new Map()));
    byModel.set(model, found ?? null);
    this.resolvedCount++;
    return found;
  }

  private resolve(consumer: string | undefined, model: string): Applicable | undefined {
    const rules: LimitRule[] = [];
    let quotas: readonly QuotaRule[] = [];
    const c = consumer === undefined ? undefined : this.consumers.get(consumer);
    if (c !== undefined) {
      if (c.rule) rules.push(c.rule);
      const perModel = c.perModel.get(model);
      if (perModel) rules.push(perModel);
      quotas = c.quotas;
    }
    let expected = this.settings.expected_completion_tokens;
    for (const m of this.models) {
      if (!m.pattern.matches(model)) continue;
      if (m.rule) rules.push(m.rule);
      if (m.expectedCompletion !== undefined) expected = m.expectedCompletion;
      break;
    }
    if (rules.length === 0 && quotas.length === 0) return undefined;
    return { rules, quotas, expected, needsTokens: quotas.length > 0 || rules.some((r) => r.tpm !== undefined) };
  }
}

export interface LimitsDeps {
  readonly policy: LimitPolicy;
  readonly limiter: Limiter;
  readonly prices: PriceTable;
}

export function limitsFilter(deps: LimitsDeps): Filter {
  const { policy, limiter, prices } = deps;
  const cut = policy.settings.on_budget_exhausted === 'cut' && policy.hasBudgets;

  const admitted = (ctx: RequestContext, admission: Admission, promptTokens: number): LocalReply | undefined => {
    if (!admission.ok) {
      ctx.rateLimited = admission.code;
      const status = admission.code === 'limiter_unavailable' ? 'overloaded' : 'rate_limited';
      return { ...localError(new GatewayError(status, admission.reason)), headers: admission.headers };
    }
    const headers = admission.headers;
    const target = ctx.responseHeaders;
    for (const name in headers) target[name] = headers[name]!;
    const ticket = admission.ticket;
    const outputLimit = ticket.tokenHeadroom === Infinity ? Infinity : ticket.reservedTokens - promptTokens + ticket.tokenHeadroom;
    const hold: Held = { ticket, promptTokens, outputLimit, streamedChars: 0 };
    ctx.limitHold = hold;
    return undefined;
  };

  const filter: Filter = {
    name: 'limits',
    onRequestBody(ctx: RequestContext): FilterResult | Promise<FilterResult> {
      const applicable = policy.applicable(ctx.consumer, ctx.model);
      if (applicable === undefined) return undefined;
      let promptTokens = 0;
      let reserve = 0;
      let reserveCost = 0;
      if (applicable.needsTokens && ctx.op === 'chat') {
        let request: ChatRequest;
        try {
          request = inboundCodec(ctx.protocol).decodeRequest(ctx.body);
        } catch (err) {
          return localError(err instanceof GatewayError ? err : new GatewayError('invalid_request', 'the request could not be read'));
        }
        const r = reserveTokens(request, { model: ctx.model, defaultCompletionTokens: applicable.expected });
        promptTokens = r.promptTokens;
        reserve = r.total;
        reserveCost = reservationCost(ctx, prices, r.promptTokens, r.completionTokens);
      }
      const admission = limiter.admit(applicable.rules, applicable.quotas, reserve, reserveCost);
      if (admission instanceof Promise) return admission.then((a) => admitted(ctx, a, promptTokens));
      return admitted(ctx, admission, promptTokens);
    },
    onDone(ctx: RequestContext): void {
      const h = ctx.limitHold as Held | undefined;
      if (h === undefined) return;
      ctx.limitHold = undefined;
      accountCost(ctx, prices);
      const usage = ctx.usage;
      // Without a usage report (the client left, the upstream failed or the answer was cut), the
      // prompt sent and the answer seen so far are charged; nothing when no attempt was made.
      const seen = h.promptTokens + Math.ceil(h.streamedChars / 4);
      const tokens = usage !== undefined ? Math.max(usage.inputTokens + usage.outputTokens, seen) : ctx.attempts > 0 ? seen : 0;
      void limiter.settle(h.ticket, tokens, Math.max(0, ctx.costMicros));
    },
  };
  if (cut) {
    filter.onResponseEvent = (ctx: RequestContext, event: ResponseEvent): void | GatewayError => {
      const h = ctx.limitHold as Held | undefined;
      if (h === undefined || h.outputLimit === Infinity || event.type === 'response') return undefined;
      if (event.type === 'usage' && event.usage.outputTokens > h.outputLimit) return budgetSpent();
      if (event.type === 'text' || event.type === 'reasoning') {
        // Counted as the stream goes (about four characters a token); the real count settles it.
        h.streamedChars += event.text.length;
        if (h.streamedChars / 4 > h.outputLimit) return budgetSpent();
      }
      return undefined;
    };
  }
  return filter;
}

function budgetSpent(): GatewayError {
  return new GatewayError('rate_limited', 'the token budget ran out during this answer; it was cut (limiter.on_budget_exhausted: cut)');
}

/** The cost of a reservation at the primary target's price (what the request will most likely be served by). */
function reservationCost(ctx: RequestContext, prices: PriceTable, promptTokens: number, completionTokens: number): number {
  const target = ctx.route?.plan.targets[0];
  if (target === undefined) return 0;
  const model = target.model ?? ctx.route!.model;
  const cost = prices.costOf({ inputTokens: promptTokens, outputTokens: completionTokens }, model, target.provider.type, clock.wallMs(), target.provider.name);
  return cost.micros;
}
