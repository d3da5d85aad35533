import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { GatewayError } from '../../src/errors.js';
import {
  backoffMs,
  exhaustedResetMs,
  failureKindOf,
  parseDurationMs,
  parseHttpDate,
  parseRetryAfter,
  parseRfc3339Ms,
  RetryBudget,
  RetryPolicy,
  retryHintMs,
} from '../../src/routing/retry-policy.js';
import { seededRandom } from './helpers.js';

/** A fixed wall clock: 2025-03-04T05:06:07Z. */
const WALL = Date.UTC(2025, 2, 4, 5, 6, 7);

describe('back-off with full jitter', () => {
  it('doubles the ceiling per retry up to the maximum', () => {
    const top = () => 0.999_999_9;
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 20, 2000].map((retry) => backoffMs(retry, 500, 8000, top)),
      [499, 999, 1999, 3999, 7999, 7999, 7999, 7999, 7999],
    );
    assert.equal(backoffMs(3, 500, 8000, () => 0), 0);
  });

  it('spreads delays over the whole interval [0, ceiling)', () => {
    const random = seededRandom(42);
    for (const [retry, ceiling] of [[1, 500], [3, 2000], [9, 8000]] as const) {
      let min = Infinity;
      let max = -Infinity;
      let sum = 0;
      for (let i = 0; i < 5000; i++) {
        const delay = backoffMs(retry, 500, 8000, random);
        assert.ok(delay >= 0 && delay < ceiling && Number.isInteger(delay), `${delay}`);
        min = Math.min(min, delay);
        max = Math.max(max, delay);
        sum += delay;
      }
      assert.ok(min < ceiling * 0.02, `retry ${retry}: min ${min}`);
      assert.ok(max > ceiling * 0.98, `retry ${retry}: max ${max}`);
      assert.ok(Math.abs(sum / 5000 - ceiling / 2) < ceiling * 0.03, `retry ${retry}: mean ${sum / 5000}`);
    }
  });
});

describe('RetryPolicy.isRetryable', () => {
  it('retries connection errors, timeouts, 429 and every 5xx by default', () => {
    const policy = new RetryPolicy();
    assert.equal(policy.isRetryable('connect'), true);
    assert.equal(policy.isRetryable('timeout'), true);
    for (const status of [429, 500, 502, 503, 504, 529, 599]) assert.equal(policy.isRetryable('status', status), true, `${status}`);
    for (const status of [200, 400, 401, 403, 404, 408, 413, 422, 600, -1]) {
      assert.equal(policy.isRetryable('status', status), false, `${status}`);
    }
  });

  it('follows a configured set', () => {
    const policy = new RetryPolicy({ on: ['connect', 502, 503] });
    assert.equal(policy.isRetryable('connect'), true);
    assert.equal(policy.isRetryable('timeout'), false);
    assert.equal(policy.isRetryable('status', 429), false);
    assert.equal(policy.isRetryable('status', 500), false);
    assert.equal(policy.isRetryable('status', 502), true);
    assert.equal(policy.isRetryable('status', 503), true);
    const never = new RetryPolicy({ on: [] });
    assert.equal(never.isRetryable('connect'), false);
    assert.equal(never.isRetryable('status', 503), false);
  });

  it('rejects entries that are neither a kind nor a 4xx/5xx status', () => {
    assert.throws(() => new RetryPolicy({ on: [200] }), RangeError);
    assert.throws(() => new RetryPolicy({ on: [600] }), RangeError);
    assert.throws(() => new RetryPolicy({ on: ['reset' as 'connect'] }), RangeError);
    assert.throws(() => new RetryPolicy({ maxRetries: -1 }), RangeError);
  });

  it('maps transport errors to failure kinds', () => {
    assert.equal(failureKindOf(new GatewayError('upstream_unreachable', 'x')), 'connect');
    assert.equal(failureKindOf(new GatewayError('upstream_timeout', 'x')), 'timeout');
    assert.equal(failureKindOf(new GatewayError('upstream_protocol_error', 'x')), undefined);
    assert.equal(failureKindOf(new GatewayError('internal_error', 'x')), undefined);
  });
});

describe('Retry-After', () => {
  it('reads delay-seconds', () => {
    assert.equal(parseRetryAfter('120', WALL), 120_000);
    assert.equal(parseRetryAfter(' 0 ', WALL), 0);
    assert.equal(parseRetryAfter('1.5', WALL), 1500);
  });

  it('reads HTTP-dates in all three forms, as UTC', () => {
    const at = WALL + 30_000; // Tue, 04 Mar 2025 05:06:37 GMT
    assert.equal(parseHttpDate('Tue, 04 Mar 2025 05:06:37 GMT'), at);
    assert.equal(parseHttpDate('Tuesday, 04-Mar-25 05:06:37 GMT'), at);
    assert.equal(parseHttpDate('Tue Mar  4 05:06:37 2025'), at);
    assert.equal(parseRetryAfter('Tue, 04 Mar 2025 05:06:37 GMT', WALL), 30_000);
    // A date already past means "now".
    assert.equal(parseRetryAfter('Tue, 04 Mar 2025 05:00:00 GMT', WALL), 0);
  });

  it('rejects what is not a delay or a date', () => {
    for (const bad of ['', 'soon', '-5', '1e3', 'Tue, 31 Feb 2025 05:06:37 GMT', 'Tue, 04 Mar 2025 25:06:37 GMT', '2025-03-04T05:06:37Z']) {
      assert.equal(parseRetryAfter(bad, WALL), undefined, bad);
    }
  });
});

describe('rate-limit reset formats', () => {
  it('reads Go-style durations (OpenAI and compatible APIs)', () => {
    const cases: [string, number][] = [
      ['1s', 1000],
      ['6m0s', 360_000],
      ['250ms', 250],
      ['20ms', 20],
      ['0s', 0],
      ['7.66s', 7660],
      ['2m59.56s', 179_560],
      ['1h2m3.5s', 3_723_500],
      ['500us', 1],
      ['1500µs', 2],
      ['3', 3000],
      ['0.5', 500],
    ];
    for (const [text, ms] of cases) assert.equal(parseDurationMs(text), ms, text);
    for (const bad of ['', 's', '1x', '-1s', '1s 2s', 'ms', '1 s']) assert.equal(parseDurationMs(bad), undefined, bad);
  });

  it('reads RFC 3339 timestamps (Anthropic)', () => {
    assert.equal(parseRfc3339Ms('2025-03-04T05:06:37Z'), WALL + 30_000);
    assert.equal(parseRfc3339Ms('2025-03-04t05:06:37z'), WALL + 30_000);
    assert.equal(parseRfc3339Ms('2025-03-04T05:06:37.25Z'), WALL + 30_250);
    assert.equal(parseRfc3339Ms('2025-03-04T07:06:37+02:00'), WALL + 30_000);
    assert.equal(parseRfc3339Ms('2025-03-04T00:36:37-04:30'), WALL + 30_000);
    assert.equal(parseRfc3339Ms('2024-02-29T00:00:00Z'), Date.UTC(2024, 1, 29));
    for (const bad of ['2025-13-04T05:06:37Z', '2025-02-29T05:06:37Z', '1900-02-29T00:00:00Z', '2025-04-31T00:00:00Z', '2025-03-04T05:06:37', '2025-03-04 05:06', 'tomorrow']) {
      assert.equal(parseRfc3339Ms(bad), undefined, bad);
    }
  });
});

describe('retryHintMs', () => {
  it('prefers retry-after-ms, then retry-after, then reset headers', () => {
    const all = {
      'retry-after-ms': '1234.2',
      'retry-after': '7',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '30s',
    };
    assert.equal(retryHintMs(all, WALL), 1235);
    assert.equal(retryHintMs({ ...all, 'retry-after-ms': undefined }, WALL), 7000);
    assert.equal(retryHintMs({ ...all, 'retry-after-ms': 'x', 'retry-after': 'later' }, WALL), 30_000);
    assert.equal(retryHintMs({}, WALL), undefined);
  });

  it('takes the reset of the exhausted limit, or the latest when none shows 0', () => {
    const openai = {
      'x-ratelimit-remaining-requests': '59',
      'x-ratelimit-reset-requests': '1s',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '250ms',
    };
    assert.equal(retryHintMs(openai, WALL), 250);
    assert.equal(retryHintMs({ ...openai, 'x-ratelimit-remaining-tokens': '1200' }, WALL), 1000);
  });

  it('reads Anthropic reset timestamps against the wall clock', () => {
    const anthropic = {
      'anthropic-ratelimit-requests-remaining': '10',
      'anthropic-ratelimit-requests-reset': '2025-03-04T05:06:09Z',
      'anthropic-ratelimit-input-tokens-remaining': '0',
      'anthropic-ratelimit-input-tokens-reset': '2025-03-04T05:06:19Z',
      'anthropic-ratelimit-output-tokens-remaining': '0',
      'anthropic-ratelimit-output-tokens-reset': '2025-03-04T05:06:12Z',
      'anthropic-ratelimit-tokens-remaining': '0',
      'anthropic-ratelimit-tokens-reset': '2025-03-04T05:06:00Z',
    };
    // Exhausted: input 12 s, output 5 s, tokens already reset (0): the latest wins.
    assert.equal(retryHintMs(anthropic, WALL), 12_000);
    assert.equal(exhaustedResetMs(anthropic, WALL), 12_000);
  });

  it('finds no exhausted limit in a healthy response', () => {
    assert.equal(exhaustedResetMs({ 'x-ratelimit-remaining-requests': '3', 'x-ratelimit-reset-requests': '1s' }, WALL), undefined);
    assert.equal(exhaustedResetMs({ 'x-ratelimit-reset-requests': '1s' }, WALL), undefined);
    assert.equal(exhaustedResetMs({ 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '6m0s' }, WALL), 360_000);
  });
});

describe('RetryPolicy.delayMs', () => {
  it('backs off when the upstream gives no hint', () => {
    const policy = new RetryPolicy({ baseDelayMs: 100, maxDelayMs: 1000, random: () => 0.5 });
    assert.deepEqual([1, 2, 3, 4, 5].map((r) => policy.delayMs(r, undefined, WALL)), [50, 100, 200, 400, 500]);
  });

  it('waits at least as long as the upstream asked', () => {
    const low = new RetryPolicy({ random: () => 0 });
    assert.equal(low.delayMs(1, { 'retry-after': '3' }, WALL), 3000);
    // A short hint still gets the jittered back-off when that is longer.
    const high = new RetryPolicy({ baseDelayMs: 1000, random: () => 0.9 });
    assert.equal(high.delayMs(2, { 'retry-after': '0' }, WALL), 1800);
  });

  it('answers -1 when the upstream asks for longer than is worth holding the client', () => {
    const policy = new RetryPolicy({ maxRetryAfterMs: 20_000, random: () => 0 });
    assert.equal(policy.delayMs(1, { 'retry-after': '20' }, WALL), 20_000);
    assert.equal(policy.delayMs(1, { 'retry-after': '21' }, WALL), -1);
    assert.equal(policy.delayMs(1, { 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '6m0s' }, WALL), -1);
  });
});

describe('RetryBudget', () => {
  /** A budget on a clock the test moves. */
  function budget(options: { ratio?: number; minPerSecond?: number; windowMs?: number } = {}) {
    const time = { now: 1_000_000 };
    return { time, budget: new RetryBudget({ ...options, now: () => time.now }) };
  }

  function drain(b: RetryBudget): number {
    let granted = 0;
    while (b.tryAcquire()) granted++;
    return granted;
  }

  it('allows the per-second minimum when there is no traffic', () => {
    const { budget: b } = budget({ ratio: 0.2, minPerSecond: 1, windowMs: 10_000 });
    assert.equal(b.allowance(), 10);
    assert.equal(drain(b), 10);
    assert.equal(b.tryAcquire(), false);
    assert.equal(b.recentRetries(), 10);
  });

  it('adds ratio × recent requests', () => {
    const { budget: b } = budget({ ratio: 0.2, minPerSecond: 1 });
    for (let i = 0; i < 100; i++) b.recordRequest();
    assert.equal(b.recentRequests(), 100);
    assert.equal(b.allowance(), 30);
    assert.equal(drain(b), 30);
  });

  it('without a minimum, one retry per five requests', () => {
    const { budget: b } = budget({ ratio: 0.2, minPerSecond: 0 });
    for (let i = 0; i < 4; i++) b.recordRequest();
    assert.equal(b.tryAcquire(), false, '0.8 allowed: none');
    b.recordRequest();
    assert.equal(b.tryAcquire(), true);
    assert.equal(b.tryAcquire(), false);
    for (let i = 0; i < 5; i++) b.recordRequest();
    assert.equal(b.tryAcquire(), true);
  });

  it('slides: requests and retries leave the window after ~10 s', () => {
    const { time, budget: b } = budget({ ratio: 0.5, minPerSecond: 0, windowMs: 10_000 });
    for (let i = 0; i < 40; i++) b.recordRequest(); // t = 0
    time.now += 5000;
    for (let i = 0; i < 20; i++) b.recordRequest(); // t = 5 s
    assert.equal(b.recentRequests(), 60);
    assert.equal(drain(b), 30);
    time.now += 5000; // t = 10 s: the t = 0 bucket has left the window, its requests with it
    assert.equal(b.recentRequests(), 20);
    assert.equal(b.recentRetries(), 30, 'retries were taken at t = 5 s and stay counted');
    assert.equal(b.tryAcquire(), false);
    time.now += 5000; // t = 15 s: everything has left
    assert.equal(b.recentRequests(), 0);
    assert.equal(b.recentRetries(), 0);
    assert.equal(b.tryAcquire(), false, 'no requests and no minimum: no retries');
  });

  it('keeps a bucket that is still inside the window', () => {
    const { time, budget: b } = budget({ ratio: 1, minPerSecond: 0, windowMs: 10_000 });
    b.recordRequest();
    time.now += 9000;
    assert.equal(b.recentRequests(), 1);
    time.now += 999;
    assert.equal(b.recentRequests(), 1);
    time.now += 1001;
    assert.equal(b.recentRequests(), 0);
  });

  it('survives a long idle gap (every bucket stale at once)', () => {
    const { time, budget: b } = budget({ ratio: 1, minPerSecond: 0 });
    for (let i = 0; i < 10; i++) {
      b.recordRequest();
      time.now += 1000;
    }
    assert.equal(b.recentRequests(), 10 - 1);
    time.now += 3_600_000;
    assert.equal(b.recentRequests(), 0);
    b.recordRequest();
    assert.equal(b.recentRequests(), 1);
  });

  it('rejects nonsense settings', () => {
    assert.throws(() => new RetryBudget({ ratio: -0.1 }), RangeError);
    assert.throws(() => new RetryBudget({ minPerSecond: Number.NaN }), RangeError);
    assert.throws(() => new RetryBudget({ windowMs: 0 }), RangeError);
  });
});
