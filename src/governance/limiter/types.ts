/**
 * The limiter's contract, shared by the shared-memory backend (one gateway node, every worker) and
 * the Redis backend (several nodes). See docs/limits.md for the semantics of every number here.
 */

/**
 * Rate limits of one key. A key names what is limited: `c:alice` (a consumer), `c:alice|m:gpt-4o`
 * (a consumer on one model), `m:gpt-4o` (a model, all consumers); keys.ts builds them.
 */
export interface LimitRule {
  readonly key: string;
  /** Requests admitted per sliding minute. */
  readonly rpm?: number;
  /** Tokens (prompt + completion) per sliding minute, charged at admission as the reservation. */
  readonly tpm?: number;
  /** Requests admitted and not yet settled. */
  readonly concurrent?: number;
  /** Shown in a refusal instead of the key (e.g. "consumer alice on gpt-4o"). */
  readonly label?: string;
}

export type QuotaPeriod = 'day' | 'month';
/** calendar: resets at 00:00 UTC / on the 1st of the month UTC. rolling: the last 24 h / 30 days. */
export type QuotaMode = 'calendar' | 'rolling';

/** Names one quota: a key can have several (a daily and a monthly one, say). */
export interface QuotaRef {
  readonly key: string;
  readonly period: QuotaPeriod;
  readonly mode: QuotaMode;
}

export interface QuotaRule extends QuotaRef {
  /** Tokens (prompt + completion) per period. */
  readonly tokens?: number;
  /** Money per period, in millionths of the price table's currency unit. */
  readonly costMicros?: number;
  readonly label?: string;
}

/**
 * Why an admission was refused:
 * - `rate_limited`: a requests- or tokens-per-minute limit;
 * - `concurrency_limited`: a concurrent-requests limit;
 * - `quota_exceeded`: a daily or monthly token or money quota;
 * - `too_large`: the request alone needs more than a limit allows (retrying cannot help);
 * - `limiter_unavailable`: the limiter's store failed and the policy is fail-closed (a 503 fits
 *   better than a 429).
 */
export type RefusalCode = 'rate_limited' | 'concurrency_limited' | 'quota_exceeded' | 'too_large' | 'limiter_unavailable';

/** What an admitted request holds until it is settled. Opaque beyond these fields. */
export interface Ticket {
  readonly reservedTokens: number;
  readonly reservedCostMicros: number;
  /**
   * Tokens the request may use beyond its reservation before some token quota is exhausted, as seen
   * at admission (Infinity when no token quota applies). A streaming filter can stop a response
   * whose usage passes reservedTokens + tokenHeadroom.
   */
  readonly tokenHeadroom: number;
  /** The same for money quotas, in micros. */
  readonly costHeadroomMicros: number;
  /** True once settle ran (a second settle does nothing). */
  readonly settled: boolean;
  /**
   * True when the store was unavailable and the request was admitted by the fail-open policy:
   * nothing was charged, and settling it charges nothing.
   */
  readonly unlimited: boolean;
}

export interface Admitted {
  readonly ok: true;
  readonly ticket: Ticket;
  /** x-ratelimit-* of the tightest requests limit and the tightest tokens limit (headers.ts). */
  readonly headers: Record<string, string>;
}

export interface Refused {
  readonly ok: false;
  readonly code: RefusalCode;
  /** When the request would fit again (0 when unknown or never, see `code`). */
  readonly retryAfterMs: number;
  /** retry-after and the x-ratelimit-* of the refusing limit. */
  readonly headers: Record<string, string>;
  /** Which limit refused, safe to show to the client. */
  readonly reason: string;
}

export type Admission = Admitted | Refused;

export interface MetricUsage {
  readonly used: number;
  /** undefined when the rule sets no limit for this metric. */
  readonly limit: number | undefined;
  readonly remaining: number | undefined;
}

export interface LimitUsage {
  readonly key: string;
  readonly requests: MetricUsage;
  readonly tokens: MetricUsage;
  readonly concurrent: MetricUsage;
}

export interface QuotaUsage extends QuotaRef {
  readonly tokens: MetricUsage;
  readonly costMicros: MetricUsage;
  /** Wall-clock ms (UTC) when the window counted now began: the period start, or 24 h / 30 d ago. */
  readonly windowStartMs: number;
  /** Calendar: when the period ends and usage returns to 0. Rolling: when the oldest bucket ages out. */
  readonly nextChangeMs: number;
}

export interface TopUp {
  readonly tokens?: number;
  readonly costMicros?: number;
}

/**
 * Both backends. Methods return a value (shared memory: synchronous, no promise on the hot path) or
 * a promise (Redis); `await` works for either.
 */
export interface Limiter {
  /**
   * Checks every rule and quota and charges all of them or none: one request, `reserveTokens`
   * (estimated prompt + max_tokens or the expected completion) and `reserveCostMicros`.
   */
  admit(rules: readonly LimitRule[], quotas: readonly QuotaRule[], reserveTokens: number, reserveCostMicros: number): Admission | Promise<Admission>;
  /**
   * Reconciles the reservation with real usage and releases the concurrency places. Exactly once per
   * ticket: a second call does nothing. Never throws or rejects.
   */
  settle(ticket: Ticket, actualTokens: number, actualCostMicros: number): void | Promise<void>;
  /** Current usage of one rule's key (admin, metrics, tests). */
  limitUsage(rule: LimitRule): LimitUsage | Promise<LimitUsage>;
  quotaUsage(quota: QuotaRule): QuotaUsage | Promise<QuotaUsage>;
  /** Forgets everything the quota has counted (admin). */
  resetQuota(quota: QuotaRef): void | Promise<void>;
  /**
   * Gives extra allowance now: usage recorded in the current bucket goes down by the amount, so the
   * credit lasts until the period ends (calendar) or until the bucket ages out (rolling).
   */
  topUp(quota: QuotaRef, amount: TopUp): void | Promise<void>;
  close(): Promise<void>;
}
