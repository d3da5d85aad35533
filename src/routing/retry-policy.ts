/**
 * Retries: which failures are worth another attempt, how long to wait before it, and a budget that
 * keeps retries from multiplying the load on an upstream that is already failing.
 *
 * The attempt loop (src/server) owns the decision to retry at all (only before the first byte has
 * reached the client) and where to (same target, another key, a fallback); this file answers the
 * three questions it asks along the way:
 *   1. `RetryPolicy.isRetryable(kind, status)`: is this failure one the config says to retry?
 *   2. `RetryPolicy.delayMs(retry, headers)`: how long to wait: exponential back-off with full jitter,
 *      never shorter than what the upstream asked for (Retry-After, rate-limit reset headers), and
 *      -1 when it asked for longer than is worth holding the client (fall back or fail instead);
 *   3. `RetryBudget.tryAcquire()`: may one more retry be sent right now?
 *
 * Header parsing is here, not in each provider, because the formats are conventions shared by many
 * upstreams (the `x-ratelimit-*` family is used by most OpenAI-compatible APIs); each convention is
 * one row of RESET_HEADERS, so shared code branches on formats, never on a provider.
 */

import { clock } from '../clock.js';
import type { GatewayError } from '../errors.js';
import type { RandomSource } from './balancer.js';

/** How an attempt failed: no usable connection, no answer in time, or an HTTP status. */
export type FailureKind = 'connect' | 'timeout' | 'status';

/**
 * One entry of `retry.on`: `connect` (refused, reset, DNS), `timeout` (connect, first byte or idle
 * timeout), `5xx` (every status 500-599), or one status code (429, 503, …).
 */
export type RetryCondition = 'connect' | 'timeout' | '5xx' | number;

export const DEFAULT_RETRY_ON: readonly RetryCondition[] = ['connect', 'timeout', 429, '5xx'];

/** Response headers with lower-case names, as the transport delivers them. */
export type ResponseHeaders = Readonly<Record<string, string | undefined>>;

/** The failure kind of an error raised by the transport, or undefined for errors no retry can fix. */
export function failureKindOf(error: GatewayError): FailureKind | undefined {
  switch (error.code) {
    case 'upstream_unreachable':
      return 'connect';
    case 'upstream_timeout':
      return 'timeout';
    default:
      return undefined;
  }
}

/**
 * Full jitter (a uniform delay in [0, min(max, base × 2^(retry−1)))): spreads clients that failed
 * together over the whole interval, so their retries do not arrive together again. `retry` counts
 * from 1.
 */
export function backoffMs(retry: number, baseMs: number, maxMs: number, random: RandomSource = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * ceiling);
}

export interface RetryPolicyOptions {
  /** Retries after the first attempt, on one target. Default 2. */
  readonly maxRetries?: number;
  /** Back-off base: the first retry waits up to this. Default 500 ms. */
  readonly baseDelayMs?: number;
  /** Back-off ceiling. Default 8 s. */
  readonly maxDelayMs?: number;
  /** The longest upstream-requested wait worth holding a client for. Default 20 s. */
  readonly maxRetryAfterMs?: number;
  readonly on?: readonly RetryCondition[];
  readonly random?: RandomSource;
}

/** Shaped like the config: immutable, built once per snapshot, shared by every request. */
export class RetryPolicy {
  readonly maxRetries: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly maxRetryAfterMs: number;
  /** Retryable statuses by code: one array read per check instead of a Set lookup. */
  private readonly statuses = new Uint8Array(600);
  private readonly onConnect: boolean;
  private readonly onTimeout: boolean;
  private readonly random: RandomSource;

  constructor(options: RetryPolicyOptions = {}) {
    this.maxRetries = nonNegativeInt('maxRetries', options.maxRetries ?? 2);
    this.baseDelayMs = nonNegativeInt('baseDelayMs', options.baseDelayMs ?? 500);
    this.maxDelayMs = nonNegativeInt('maxDelayMs', options.maxDelayMs ?? 8_000);
    this.maxRetryAfterMs = nonNegativeInt('maxRetryAfterMs', options.maxRetryAfterMs ?? 20_000);
    this.random = options.random ?? Math.random;
    let connect = false;
    let timeout = false;
    for (const condition of options.on ?? DEFAULT_RETRY_ON) {
      if (condition === 'connect') connect = true;
      else if (condition === 'timeout') timeout = true;
      else if (condition === '5xx') this.statuses.fill(1, 500, 600);
      else if (Number.isInteger(condition) && condition >= 400 && condition <= 599) this.statuses[condition] = 1;
      else throw new RangeError(`retry.on: ${String(condition)} is not connect, timeout, 5xx or a status 400-599`);
    }
    this.onConnect = connect;
    this.onTimeout = timeout;
  }

  isRetryable(kind: FailureKind, status = 0): boolean {
    if (kind === 'connect') return this.onConnect;
    if (kind === 'timeout') return this.onTimeout;
    return status >= 0 && status < 600 && this.statuses[status] === 1;
  }

  /**
   * Milliseconds to wait before retry number `retry` (1 = the first retry): the jittered back-off,
   * raised to the upstream's own hint when it gave one. Returns -1 when the hint exceeds
   * maxRetryAfterMs: the upstream will refuse until then, so waiting here only holds the client;
   * the caller should fall back or answer.
   */
  delayMs(retry: number, headers?: ResponseHeaders, wallNowMs: number = clock.wallMs()): number {
    const backoff = backoffMs(retry, this.baseDelayMs, this.maxDelayMs, this.random);
    const hint = headers === undefined ? undefined : retryHintMs(headers, wallNowMs);
    if (hint === undefined) return backoff;
    if (hint > this.maxRetryAfterMs) return -1;
    // Not before the hint; the back-off still spreads clients when the hint is short or zero.
    return Math.max(hint, backoff);
  }
}

function nonNegativeInt(name: string, value: number): number {
  if (!(Number.isInteger(value) && value >= 0)) throw new RangeError(`retry: ${name} must be an integer ≥ 0, got ${value}`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Upstream hints: Retry-After and rate-limit reset headers.

/** How a reset header states its time. */
type ResetFormat = 'duration' | 'timestamp';

interface ResetHeader {
  /** When the limit resets. */
  readonly reset: string;
  /** What is left of the limit; "0" marks the limit that caused a 429. */
  readonly remaining: string;
  readonly format: ResetFormat;
}

/**
 * Rate-limit reset conventions. `duration`: Go-style durations ("1s", "6m0s", "250ms", "2m59.56s"),
 * used by OpenAI and most OpenAI-compatible APIs. `timestamp`: RFC 3339 instants, used by Anthropic,
 * one pair of headers per limit.
 */
const RESET_HEADERS: readonly ResetHeader[] = [
  { reset: 'x-ratelimit-reset-requests', remaining: 'x-ratelimit-remaining-requests', format: 'duration' },
  { reset: 'x-ratelimit-reset-tokens', remaining: 'x-ratelimit-remaining-tokens', format: 'duration' },
  { reset: 'anthropic-ratelimit-requests-reset', remaining: 'anthropic-ratelimit-requests-remaining', format: 'timestamp' },
  { reset: 'anthropic-ratelimit-tokens-reset', remaining: 'anthropic-ratelimit-tokens-remaining', format: 'timestamp' },
  {
    reset: 'anthropic-ratelimit-input-tokens-reset',
    remaining: 'anthropic-ratelimit-input-tokens-remaining',
    format: 'timestamp',
  },
  {
    reset: 'anthropic-ratelimit-output-tokens-reset',
    remaining: 'anthropic-ratelimit-output-tokens-remaining',
    format: 'timestamp',
  },
];

/**
 * How long the upstream asked us to wait, in ms from now, or undefined when it said nothing usable.
 * In order of authority:
 *   1. `retry-after-ms` (sent by OpenAI and Azure OpenAI; finer than Retry-After),
 *   2. `retry-after` (RFC 9110: seconds or an HTTP-date),
 *   3. rate-limit reset headers: the latest reset among limits whose `remaining` is 0, since those
 *      are the ones refusing; if none is at 0 (a request larger than what is left), the latest
 *      reset of all, as any of them may be the one.
 */
export function retryHintMs(headers: ResponseHeaders, wallNowMs: number = clock.wallMs()): number | undefined {
  const ms = headers['retry-after-ms'];
  if (ms !== undefined) {
    const value = parseNumber(ms);
    if (value !== undefined) return Math.ceil(value);
  }
  const after = headers['retry-after'];
  if (after !== undefined) {
    const value = parseRetryAfter(after, wallNowMs);
    if (value !== undefined) return value;
  }
  const exhausted = resetMs(headers, wallNowMs, true);
  return exhausted !== undefined ? exhausted : resetMs(headers, wallNowMs, false);
}

/**
 * The wait until the latest reset of an exhausted limit (`remaining` 0), read from any response,
 * successful ones included: the key pool uses it to rest a key before it draws a 429.
 */
export function exhaustedResetMs(headers: ResponseHeaders, wallNowMs: number = clock.wallMs()): number | undefined {
  return resetMs(headers, wallNowMs, true);
}

function resetMs(headers: ResponseHeaders, wallNowMs: number, exhaustedOnly: boolean): number | undefined {
  let latest: number | undefined;
  for (const spec of RESET_HEADERS) {
    if (exhaustedOnly) {
      const remaining = headers[spec.remaining];
      if (remaining === undefined) continue;
      const left = parseNumber(remaining);
      if (left === undefined || left > 0) continue;
    }
    const reset = headers[spec.reset];
    if (reset === undefined) continue;
    let wait: number | undefined;
    if (spec.format === 'duration') {
      wait = parseDurationMs(reset);
    } else {
      const at = parseRfc3339Ms(reset);
      wait = at === undefined ? undefined : Math.max(0, at - wallNowMs);
    }
    if (wait !== undefined && (latest === undefined || wait > latest)) latest = wait;
  }
  return latest;
}

/** A plain non-negative decimal ("12", "1.5"); undefined for anything else, including "". */
function parseNumber(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^\d+(?:\.\d+)?$/.test(trimmed)) return undefined;
  return Number(trimmed);
}

/**
 * `Retry-After` in ms from now: delay-seconds ("120"; fractions accepted, as some servers send them)
 * or an HTTP-date in the past or future (a past date means "now": 0).
 */
export function parseRetryAfter(value: string, wallNowMs: number): number | undefined {
  const seconds = parseNumber(value);
  if (seconds !== undefined) return Math.ceil(seconds * 1000);
  const at = parseHttpDate(value);
  return at === undefined ? undefined : Math.max(0, at - wallNowMs);
}

const MONTHS: Readonly<Record<string, number>> = {
  Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11,
};

const IMF_FIXDATE = /^[A-Z][a-z]{2}, (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC850_DATE = /^[A-Z][a-z]+, (\d{2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME_DATE = /^[A-Z][a-z]{2} ([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

/**
 * An HTTP-date (RFC 9110 §5.6.7) as epoch ms: IMF-fixdate, which senders must use, and the two
 * obsolete forms recipients must still accept. Not Date.parse: it reads asctime (which has no zone
 * and means UTC) as local time, and accepts much that is not a date.
 */
export function parseHttpDate(value: string): number | undefined {
  const text = value.trim();
  let m = IMF_FIXDATE.exec(text);
  if (m) return utc(Number(m[3]), m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  m = RFC850_DATE.exec(text);
  if (m) {
    // Two-digit years: RFC 9110 reads one more than 50 years ahead as the past century.
    const thisYear = new Date(clock.wallMs()).getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + Number(m[3]);
    if (year > thisYear + 50) year -= 100;
    return utc(year, m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  }
  m = ASCTIME_DATE.exec(text);
  if (m) return utc(Number(m[6]), m[1]!, Number(m[2]!.trim()), m[3]!, m[4]!, m[5]!);
  return undefined;
}

function utc(year: number, monthName: string, day: number, hh: string, mm: string, ss: string): number | undefined {
  const month = MONTHS[monthName];
  if (month === undefined) return undefined;
  return checkedUtc(year, month, day, Number(hh), Number(mm), Number(ss), 0);
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

function daysIn(year: number, month: number): number {
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return month === 1 && leap ? 29 : DAYS_IN_MONTH[month]!;
}

/** Date.UTC silently rolls 31 Feb into March; a header that says 31 Feb is wrong, not March. */
function checkedUtc(year: number, month: number, day: number, h: number, m: number, s: number, ms: number): number | undefined {
  if (month < 0 || month > 11 || day < 1 || day > daysIn(year, month) || h > 23 || m > 59 || s > 60) return undefined;
  // A leap second (…:60) is read as the next second, which is what waiting until it means.
  return Date.UTC(year, month, day, h, m, s, ms);
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** An RFC 3339 timestamp ("2025-01-02T03:04:05Z", "…05.123+02:00") as epoch ms. */
export function parseRfc3339Ms(value: string): number | undefined {
  const m = RFC3339.exec(value.trim());
  if (!m) return undefined;
  const fraction = m[7] === undefined ? 0 : Number(`0.${m[7]}`) * 1000;
  const t = checkedUtc(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), 0);
  if (t === undefined) return undefined;
  let offsetMs = 0;
  if (m[8] === undefined) {
    const hours = Number(m[10]);
    const minutes = Number(m[11]);
    if (hours > 23 || minutes > 59) return undefined;
    offsetMs = (hours * 60 + minutes) * 60_000 * (m[9] === '-' ? -1 : 1);
  }
  // Local time = UTC + offset, so UTC = local − offset.
  return t + Math.ceil(fraction) - offsetMs;
}

const DURATION_UNIT_MS: Readonly<Record<string, number>> = {
  h: 3_600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
  us: 0.001,
  'µs': 0.001,
  'μs': 0.001,
  ns: 0.000_001,
};

const DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|μs|ns)/y;

/**
 * A Go-style duration ("1s", "6m0s", "250ms", "1h2m3.5s", "7.66s") in whole ms, rounded up so a wait
 * never ends early. A bare number is read as seconds, as some OpenAI-compatible servers send it.
 */
export function parseDurationMs(value: string): number | undefined {
  const text = value.trim();
  const bare = parseNumber(text);
  if (bare !== undefined) return Math.ceil(bare * 1000);
  if (text === '') return undefined;
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < text.length) {
    const start = DURATION_PART.lastIndex;
    const m = DURATION_PART.exec(text);
    if (m === null || m.index !== start) return undefined;
    total += Number(m[1]) * DURATION_UNIT_MS[m[2]!]!;
  }
  return Math.ceil(total);
}

// ---------------------------------------------------------------------------------------------
// Retry budget.

export interface RetryBudgetOptions {
  /** Retries allowed per request seen in the window. Default 0.2 (one retry per five requests). */
  readonly ratio?: number;
  /** Retries allowed per second whatever the traffic, so a quiet gateway can still retry. Default 1. */
  readonly minPerSecond?: number;
  /** The sliding window. Default 10 s. */
  readonly windowMs?: number;
  /** Monotonic ms. Default: the clock module's. */
  readonly now?: () => number;
}

/** The window is kept as this many buckets; it slides one bucket (a tenth of it) at a time. */
const BUCKETS = 10;

/**
 * Retries may be sent only while retries in the window < ratio × requests in the window +
 * minPerSecond × window seconds. When an upstream fails every request, retries without a budget
 * multiply its load by (1 + maxRetries) exactly when it can least take it; with one they add at most
 * `ratio`.
 *
 * Per worker, deliberately, not in shared memory. The ratio part is exact in aggregate: each
 * worker's allowance is proportional to its own requests, so the sum over workers is ratio × all
 * requests however unevenly SO_REUSEPORT spreads connections. Only the floor scales with the worker
 * count (N workers allow N × minPerSecond); set it with that in mind. A budget is a brake on retry
 * storms, not a quota, so that slack is harmless, while a shared counter would put a cache line that
 * every worker writes on every request in the hot path.
 *
 * `recordRequest` once per client request (not per attempt: counting retries as requests would let
 * the budget feed itself), `tryAcquire` before each retry. The counts live in fixed typed arrays;
 * nothing is allocated after construction.
 */
export class RetryBudget {
  readonly ratio: number;
  readonly minPerSecond: number;
  readonly windowMs: number;
  private readonly bucketMs: number;
  private readonly now: () => number;
  private readonly requests = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);
  /** Which bucket-period each bucket currently counts (floor(now / bucketMs)). */
  private readonly periods = new Float64Array(BUCKETS).fill(-Infinity);
  /** The period and bucket of the last call, so calls within one period skip the sweep. */
  private lastPeriod = -Infinity;
  private lastIndex = 0;

  constructor(options: RetryBudgetOptions = {}) {
    this.ratio = options.ratio ?? 0.2;
    this.minPerSecond = options.minPerSecond ?? 1;
    this.windowMs = options.windowMs ?? 10_000;
    if (!(Number.isFinite(this.ratio) && this.ratio >= 0)) throw new RangeError(`retry budget: ratio ${this.ratio} must be ≥ 0`);
    if (!(Number.isFinite(this.minPerSecond) && this.minPerSecond >= 0)) {
      throw new RangeError(`retry budget: min_per_second ${this.minPerSecond} must be ≥ 0`);
    }
    if (!(Number.isFinite(this.windowMs) && this.windowMs >= BUCKETS)) {
      throw new RangeError(`retry budget: window ${this.windowMs} ms must be at least ${BUCKETS} ms`);
    }
    this.bucketMs = this.windowMs / BUCKETS;
    this.now = options.now ?? clock.monotonicMs;
  }

  /** A client request started (once per request, whatever its attempts). */
  recordRequest(): void {
    this.requests[this.bucket()]! += 1;
  }

  /** Takes one retry from the budget; false when the budget is spent (do not retry). */
  tryAcquire(): boolean {
    const current = this.bucket();
    // This retry must fit whole: 0.8 allowed means none yet. The epsilon absorbs float error in
    // ratio × requests (0.3 × 3 is 0.8999999999999999).
    if (this.sum(this.retries) + 1 > this.allowanceAt() + 1e-9) return false;
    this.retries[current]! += 1;
    return true;
  }

  /** Retries the window allows in total right now (spent ones included). */
  allowance(): number {
    this.bucket();
    return this.allowanceAt();
  }

  /** Requests counted in the window. */
  recentRequests(): number {
    this.bucket();
    return this.sum(this.requests);
  }

  /** Retries taken in the window. */
  recentRetries(): number {
    this.bucket();
    return this.sum(this.retries);
  }

  private allowanceAt(): number {
    return this.ratio * this.sum(this.requests) + (this.minPerSecond * this.windowMs) / 1000;
  }

  /**
   * The current bucket, emptying every bucket whose period has left the window. Buckets are reused
   * round-robin: bucket (period mod BUCKETS) holds that period until it comes round again.
   */
  private bucket(): number {
    const period = Math.floor(this.now() / this.bucketMs);
    // Within one period nothing can have expired: skip the sweep (the common case under load).
    if (period === this.lastPeriod) return this.lastIndex;
    for (let i = 0; i < BUCKETS; i++) {
      if (this.periods[i]! <= period - BUCKETS) {
        this.requests[i] = 0;
        this.retries[i] = 0;
      }
    }
    const index = ((period % BUCKETS) + BUCKETS) % BUCKETS;
    if (this.periods[index] !== period) {
      this.requests[index] = 0;
      this.retries[index] = 0;
      this.periods[index] = period;
    }
    this.lastPeriod = period;
    this.lastIndex = index;
    return index;
  }

  private sum(counts: Float64Array): number {
    let total = 0;
    for (let i = 0; i < BUCKETS; i++) total += counts[i]!;
    return total;
  }
}
