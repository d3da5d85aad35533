/**
 * Rate-limit response headers as OpenAI sends them, so clients that already read OpenAI's (the
 * official SDKs back off on them) work against Sluice unchanged:
 *   x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests,
 *   x-ratelimit-limit-tokens,   x-ratelimit-remaining-tokens,   x-ratelimit-reset-tokens,
 * resets as Go durations ("1s", "6m0s", "250ms"; whole seconds above one second), and retry-after in
 * whole seconds on a refusal.
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

/** Whole milliseconds as Go prints seconds: 1500 → "1.5", 2000 → "2", 61001 → "61.001". */
function seconds(ms: number): string {
  const whole = Math.floor(ms / 1000);
  let fraction = ms - whole * 1000;
  if (fraction === 0) return String(whole);
  let digits = 3;
  while (fraction % 10 === 0) {
    fraction /= 10;
    digits--;
  }
  return `${whole}.${String(fraction).padStart(digits, '0')}`;
}

/**
 * A duration the way Go's time.Duration prints it, rounded up to whole milliseconds: "0s", "250ms",
 * "1s", "1.5s", "1m0s", "6m0s", "1h2m3s". Rounded up so that a client waiting that long is never
 * early. No regular expression or toFixed: this runs for every admitted request.
 */
export function goDuration(ms: number): string {
  if (!(ms > 0)) return '0s';
  const total = Math.ceil(ms);
  if (total < 1000) return `${total}ms`;
  if (total < 60_000) return `${seconds(total)}s`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total - hours * 3_600_000) / 60_000);
  const rest = seconds(total - hours * 3_600_000 - minutes * 60_000);
  return hours > 0 ? `${hours}h${minutes}m${rest}s` : `${minutes}m${rest}s`;
}

/** goDuration of whole seconds, made once each: resets are mostly under a minute. */
const WHOLE_SECONDS: string[] = [];

/**
 * For x-ratelimit-reset-*: under a second as goDuration prints it, above it rounded up to whole
 * seconds (a window moves in one-second buckets, so finer digits would promise nothing), which lets
 * the common values be made once instead of on every request.
 */
export function resetDuration(ms: number): string {
  if (!(ms > 1000)) return goDuration(ms);
  const secondsUp = Math.ceil(ms / 1000);
  if (secondsUp > 3600) return goDuration(secondsUp * 1000);
  return (WHOLE_SECONDS[secondsUp] ??= goDuration(secondsUp * 1000));
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
    headers[HEADER.resetRequests] = resetDuration(requests.resetMs);
  }
  if (tokens.limit >= 0) {
    headers[HEADER.limitTokens] = String(tokens.limit);
    headers[HEADER.remainingTokens] = String(tokens.remaining);
    headers[HEADER.resetTokens] = resetDuration(tokens.resetMs);
  }
  return headers;
}
