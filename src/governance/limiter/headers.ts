/**
 * Rate-limit response headers as OpenAI sends them, so clients that already read OpenAI's (the
 * official SDKs back off on them) work against Sluice unchanged:
 *   x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests,
 *   x-ratelimit-limit-tokens,   x-ratelimit-remaining-tokens,   x-ratelimit-reset-tokens,
 * resets as Go durations ("1s", "6m0s", "250ms"), and retry-after in whole seconds on a refusal.
 */

export const HEADER = {
  limitRequests: 'x-ratelimit-limit-requests',
  remainingRequests: 'x-ratelimit-remaining-requests',
  resetRequests: 'x-ratelimit-reset-requests',
  limitTokens: 'x-ratelimit-limit-tokens',
  remainingTokens: 'x-ratelimit-remaining-tokens',
  resetTokens: 'x-ratelimit-reset-tokens',
  retryAfter: 'retry-after',
} as const;

/** Trailing zeros of a fixed-point number dropped, as Go prints seconds ("1.5", "2"). */
function trimDecimal(text: string): string {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}

/**
 * A duration the way Go's time.Duration prints it, rounded up to whole milliseconds: "0s", "250ms",
 * "1s", "1.5s", "1m0s", "6m0s", "1h2m3s". Rounded up so that a client waiting that long is never
 * early.
 */
export function goDuration(ms: number): string {
  if (!(ms > 0)) return '0s';
  const total = Math.ceil(ms);
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const seconds = trimDecimal(((total % 60_000) / 1000).toFixed(3));
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

/** Retry-After in whole seconds, rounded up, at least 1 (0 would invite an immediate retry). */
export function retryAfterSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}

/**
 * The tightest limit of one metric seen so far during an admission: the one with the fewest
 * remaining. Mutable and reused so an admission allocates no intermediate objects.
 */
export class TightestLimit {
  limit = -1;
  remaining = 0;
  resetMs = 0;

  clear(): void {
    this.limit = -1;
  }

  offer(limit: number, remaining: number, resetMs: number): void {
    const left = remaining > 0 ? remaining : 0;
    if (this.limit < 0 || left < this.remaining) {
      this.limit = limit;
      this.remaining = left;
      this.resetMs = resetMs;
    }
  }
}

/** The headers for the tightest requests and tokens limits; {} when neither applies. */
export function rateLimitHeaders(requests: TightestLimit, tokens: TightestLimit): Record<string, string> {
  const headers: Record<string, string> = {};
  if (requests.limit >= 0) {
    headers[HEADER.limitRequests] = String(requests.limit);
    headers[HEADER.remainingRequests] = String(requests.remaining);
    headers[HEADER.resetRequests] = goDuration(requests.resetMs);
  }
  if (tokens.limit >= 0) {
    headers[HEADER.limitTokens] = String(tokens.limit);
    headers[HEADER.remainingTokens] = String(tokens.remaining);
    headers[HEADER.resetTokens] = goDuration(tokens.resetMs);
  }
  return headers;
}
