/**
 * How the mock model server behaves: timing, answer length, models and fault injection.
 *
 * Server-wide options are checked once (`resolveMockOptions`); a request may override some of them
 * with `x-mock-*` headers (`mockOptionsFromHeaders`), so one running mock can serve a whole test
 * suite's worth of scenarios. Nothing here is random: the same request always gets the same answer.
 */

import { GatewayError } from '../errors.js';

export interface MockOptions {
  /** Delay before the first token (and, for a non-streamed answer, before anything). */
  ttftMs: number;
  /** Generation speed after the first token; 0 = as fast as possible. */
  tokensPerSecond: number;
  /** Fixed answer length in tokens; null = the length of the echo. */
  outputTokens: number | null;
  /** Tokens carried by one stream chunk. */
  chunkTokens: number;
  /** Model names listed by `GET /v1/models`. Requests may name any model: it is echoed back. */
  models: readonly string[];
  /** Status answered to every `errorEvery`-th request. */
  errorStatus: number;
  /** Inject `errorStatus` on every Nth request; 0 = never. */
  errorEvery: number;
  /** Embedding length when the request does not ask for `dimensions`. */
  embeddingDimensions: number;
}

export const DEFAULT_MOCK_OPTIONS: Readonly<MockOptions> = Object.freeze({
  ttftMs: 0,
  tokensPerSecond: 0,
  outputTokens: null,
  chunkTokens: 1,
  models: Object.freeze(['mock', 'mock-large']),
  errorStatus: 500,
  errorEvery: 0,
  embeddingDimensions: 64,
});

/** Largest embedding a request may ask for; bounds the work one request can cause. */
export const MAX_EMBEDDING_DIMENSIONS = 16384;

/** Defaults filled in and every field checked; throws a RangeError naming the bad option. */
export function resolveMockOptions(partial: Partial<MockOptions> = {}): MockOptions {
  const o: MockOptions = { ...DEFAULT_MOCK_OPTIONS, ...stripUndefined(partial) };
  checkNumber('ttftMs', o.ttftMs, 0);
  checkNumber('tokensPerSecond', o.tokensPerSecond, 0);
  if (o.outputTokens !== null) checkInteger('outputTokens', o.outputTokens, 0);
  checkInteger('chunkTokens', o.chunkTokens, 1);
  checkInteger('errorEvery', o.errorEvery, 0);
  if (!isErrorStatus(o.errorStatus)) throw new RangeError('errorStatus must be an HTTP status from 400 to 599');
  checkInteger('embeddingDimensions', o.embeddingDimensions, 1);
  if (o.embeddingDimensions > MAX_EMBEDDING_DIMENSIONS) {
    throw new RangeError(`embeddingDimensions must be at most ${MAX_EMBEDDING_DIMENSIONS}`);
  }
  if (!Array.isArray(o.models) || o.models.length === 0) throw new RangeError('models must list at least one name');
  for (const m of o.models) {
    if (typeof m !== 'string' || m.length === 0) throw new RangeError('models must be non-empty strings');
  }
  if (new Set(o.models).size !== o.models.length) throw new RangeError('models must not repeat a name');
  return Object.freeze({ ...o, models: Object.freeze([...o.models]) });
}

/** The options one request runs with: the server's, overridden by headers, plus per-request faults. */
export interface MockRequestOptions {
  ttftMs: number;
  tokensPerSecond: number;
  outputTokens: number | null;
  chunkTokens: number;
  /** Answer this status with an error body instead of a completion. */
  status: number | null;
  /** `retry-after` header value for an injected error. */
  retryAfter: string | null;
  /** Send this many body parts, then reset the connection (0 = before the response head). */
  resetAfter: number | null;
  /** Never answer, so the caller's timeouts fire. */
  hang: boolean;
}

/** The request headers the mock reads; a gateway provider forwards exactly these. */
export const MOCK_HEADERS = [
  'x-mock-status',
  'x-mock-retry-after',
  'x-mock-ttft-ms',
  'x-mock-tps',
  'x-mock-output-tokens',
  'x-mock-chunk-tokens',
  'x-mock-reset-after',
  'x-mock-hang',
] as const;

export type MockHeaderName = (typeof MOCK_HEADERS)[number];

/** Lower-case header names to values; absent or empty means "not set". */
export type MockHeaders = Readonly<Record<string, string | undefined>>;

const baseCache = new WeakMap<MockOptions, MockRequestOptions>();

/**
 * Per-request options: `base` overridden by `x-mock-*` headers. A malformed header value is the
 * caller's mistake, so it throws a GatewayError (400) rather than being silently ignored.
 */
export function mockOptionsFromHeaders(base: MockOptions, headers: MockHeaders): MockRequestOptions {
  let plain = baseCache.get(base);
  if (plain === undefined) {
    plain = Object.freeze({
      ttftMs: base.ttftMs,
      tokensPerSecond: base.tokensPerSecond,
      outputTokens: base.outputTokens,
      chunkTokens: base.chunkTokens,
      status: null,
      retryAfter: null,
      resetAfter: null,
      hang: false,
    });
    baseCache.set(base, plain);
  }
  // Almost every request carries none of these; answer it without allocating.
  let present = false;
  for (const name of MOCK_HEADERS) {
    if (headers[name]) {
      present = true;
      break;
    }
  }
  if (!present) return plain;

  const o: MockRequestOptions = { ...plain };
  const status = headers['x-mock-status'];
  if (status) {
    const n = parseInteger('x-mock-status', status, 400);
    if (!isErrorStatus(n)) throw badHeader('x-mock-status', 'must be an HTTP status from 400 to 599');
    o.status = n;
  }
  const retryAfter = headers['x-mock-retry-after'];
  if (retryAfter) {
    // The value is copied into a response header: printable ASCII only, so nothing can be injected.
    if (!/^[\x20-\x7e]+$/.test(retryAfter)) throw badHeader('x-mock-retry-after', 'must be printable ASCII');
    o.retryAfter = retryAfter;
  }
  const ttft = headers['x-mock-ttft-ms'];
  if (ttft) o.ttftMs = parseNumber('x-mock-ttft-ms', ttft);
  const tps = headers['x-mock-tps'];
  if (tps) o.tokensPerSecond = parseNumber('x-mock-tps', tps);
  const output = headers['x-mock-output-tokens'];
  if (output) o.outputTokens = parseInteger('x-mock-output-tokens', output, 0);
  const chunk = headers['x-mock-chunk-tokens'];
  if (chunk) o.chunkTokens = parseInteger('x-mock-chunk-tokens', chunk, 1);
  const reset = headers['x-mock-reset-after'];
  if (reset) o.resetAfter = parseInteger('x-mock-reset-after', reset, 0);
  const hang = headers['x-mock-hang'];
  if (hang) o.hang = hang !== '0' && hang.toLowerCase() !== 'false';
  return o;
}

function isErrorStatus(n: number): boolean {
  return Number.isInteger(n) && n >= 400 && n <= 599;
}

function stripUndefined(partial: Partial<MockOptions>): Partial<MockOptions> {
  const out: Partial<MockOptions> = {};
  for (const [k, v] of Object.entries(partial)) {
    if (v !== undefined) Object.assign(out, { [k]: v });
  }
  return out;
}

function checkNumber(name: string, value: number, min: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new RangeError(`${name} must be a finite number ≥ ${min}`);
  }
}

function checkInteger(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`${name} must be an integer ≥ ${min}`);
}

function parseNumber(name: MockHeaderName, text: string): number {
  const n = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw badHeader(name, 'must be a number ≥ 0');
  return n;
}

function parseInteger(name: MockHeaderName, text: string, min: number): number {
  const t = text.trim();
  const n = Number(t);
  if (!/^\d+$/.test(t) || !Number.isSafeInteger(n) || n < min) throw badHeader(name, `must be an integer ≥ ${min}`);
  return n;
}

function badHeader(name: MockHeaderName, why: string): GatewayError {
  return new GatewayError('invalid_request', `header ${name} ${why}`, { param: name });
}
