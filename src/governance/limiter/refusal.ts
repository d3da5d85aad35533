/**
 * Refusals, built the same way by both backends: the reason text (safe to show: it names the limit
 * and the key, both from the gateway's own config, never a secret) and the headers of the limit
 * that refused.
 */

import { HEADER, resetDuration, retryAfterSeconds } from './headers.js';
import type { RefusalCode, Refused } from './types.js';

/** Which number of which limit refused. */
export type LimitMetric = 'requests' | 'tokens' | 'concurrent' | 'quota-tokens' | 'quota-cost';

const METRIC_TEXT: Record<LimitMetric, string> = {
  requests: 'requests per minute',
  tokens: 'tokens per minute',
  concurrent: 'concurrent requests',
  'quota-tokens': 'token quota',
  'quota-cost': 'spending quota',
};

export interface RefusalDetail {
  readonly code: RefusalCode;
  readonly metric: LimitMetric;
  /** Label or key of the rule. */
  readonly name: string;
  readonly limit: number;
  readonly used: number;
  /** What this request needed. */
  readonly cost: number;
  readonly retryAfterMs: number;
  /** Time until the window is empty, for x-ratelimit-reset-* (rate metrics only). */
  readonly resetMs: number;
  /** For quotas: 'per day', 'per 30 days', … */
  readonly periodText?: string;
}

export function refuse(detail: RefusalDetail): Refused {
  const headers: Record<string, string> = {};
  if (detail.code !== 'too_large') headers[HEADER.retryAfter] = retryAfterSeconds(detail.retryAfterMs);
  const remaining = String(Math.max(0, detail.limit - detail.used));
  if (detail.metric === 'requests') {
    headers[HEADER.limitRequests] = String(detail.limit);
    headers[HEADER.remainingRequests] = remaining;
    headers[HEADER.resetRequests] = resetDuration(detail.resetMs);
  } else if (detail.metric === 'tokens') {
    headers[HEADER.limitTokens] = String(detail.limit);
    headers[HEADER.remainingTokens] = remaining;
    headers[HEADER.resetTokens] = resetDuration(detail.resetMs);
  }
  const what = `${METRIC_TEXT[detail.metric]}${detail.periodText ? ` ${detail.periodText}` : ''}`;
  const reason =
    detail.code === 'too_large'
      ? `request too large for the ${what} limit of ${detail.name}: limit ${detail.limit}, requested ${detail.cost}`
      : `${what} limit of ${detail.name} reached: limit ${detail.limit}, used ${detail.used}, requested ${detail.cost}`;
  return { ok: false, code: detail.code, retryAfterMs: detail.code === 'too_large' ? 0 : detail.retryAfterMs, headers, reason };
}

export function unavailable(retryAfterMs: number): Refused {
  return {
    ok: false,
    code: 'limiter_unavailable',
    retryAfterMs,
    headers: { [HEADER.retryAfter]: retryAfterSeconds(retryAfterMs) },
    reason: 'rate limiter unavailable; try again shortly',
  };
}
