import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  type Admission,
  type Admitted,
  type LimitRule,
  type QuotaRule,
  type Refused,
  SharedMemoryLimiter,
} from '../../src/governance/limiter/index.js';
import {
  CACHE_LINE_BYTES,
  computeLayout,
  DEFAULT_LIMIT_KEY_CAPACITY,
  LIMIT_RECORD_BYTES,
  LIMIT_RING_SLOTS,
  LIMIT_WINDOW_FIELDS,
  RATE_PACKING,
  QUOTA_PACKING,
  SharedMemory,
} from '../../src/shm/index.js';
import {
  expectCleanExit,
  freshSegment,
  makeBarrier,
  ManualClock,
  releaseBarrier,
  runLimiterChild,
} from './limiter-helpers.js';

function admitted(admission: Admission): Admitted {
  assert.ok(admission.ok, `expected an admission, got: ${admission.ok ? '' : admission.reason}`);
  return admission;
}

function refused(admission: Admission): Refused {
  assert.ok(!admission.ok, 'expected a refusal');
  return admission;
}

/** A limiter on a fresh private segment with clocks the test moves. */
function limiterWithClocks(rateStartMs = 1_000_000, wallStartMs = Date.UTC(2025, 0, 15, 12)): {
  limiter: SharedMemoryLimiter;
  rate: ManualClock;
  wall: ManualClock;
  shm: SharedMemory;
} {
  const [shm] = freshSegment();
  const rate = new ManualClock(rateStartMs);
  const wall = new ManualClock(wallStartMs);
  return { limiter: new SharedMemoryLimiter(shm!, { rateClockMs: rate.now, wallClockMs: wall.now }), rate, wall, shm: shm! };
}

describe('layout v3: limiter regions', () => {
  it('keeps fields aligned inside a 1 KiB record and regions after the v2 ones', () => {
    const spans = Object.entries(LIMIT_WINDOW_FIELDS).map(([name, spec]) => {
      const width = name.startsWith('ring') ? 8 * LIMIT_RING_SLOTS : spec.type === 'i64' ? 8 : 4;
      return { name, start: spec.offset, end: spec.offset + width, align: spec.type === 'i64' ? 8 : 4 };
    });
    spans.sort((a, b) => a.start - b.start);
    for (const [i, span] of spans.entries()) {
      assert.equal(span.start % span.align, 0, `${span.name} aligned`);
      assert.ok(span.end <= LIMIT_RECORD_BYTES, `${span.name} inside the record`);
      if (i > 0) assert.ok(spans[i - 1]!.end <= span.start, `${spans[i - 1]!.name} and ${span.name} overlap`);
    }
    assert.equal(LIMIT_RECORD_BYTES % CACHE_LINE_BYTES, 0);

    const layout = computeLayout({ workerSlots: 3, endpointCapacity: 17 });
    assert.equal(layout.params.limitKeyCapacity, undefined, 'absent stays absent');
    assert.ok(layout.regions.limitKeys.offset >= layout.regions.endpointInFlight.offset + layout.regions.endpointInFlight.bytes);
    assert.equal(layout.regions.limitWindows.bytes, DEFAULT_LIMIT_KEY_CAPACITY * LIMIT_RECORD_BYTES);
    assert.equal(layout.regions.limitConcurrency.bytes, DEFAULT_LIMIT_KEY_CAPACITY * CACHE_LINE_BYTES, '3 workers round up to one line per key');
    assert.equal(computeLayout({ workerSlots: 3, endpointCapacity: 17, limitKeyCapacity: 10 }).regions.limitWindows.bytes, 10 * LIMIT_RECORD_BYTES);
  });

  it('stores the key capacity in the header (0 = default) so that open recomputes the same layout', () => {
    const [created] = freshSegment(0, { workerSlots: 2, endpointCapacity: 4, limitKeyCapacity: 7 });
    const opened = SharedMemory.open(created!.name);
    assert.deepEqual(opened.layout, created!.layout);
    assert.equal(opened.limitKeys.capacity, 7);
    const [plain] = freshSegment(0, { workerSlots: 2, endpointCapacity: 4 });
    assert.deepEqual(SharedMemory.open(plain!.name).layout.params, { workerSlots: 2, endpointCapacity: 4 });
  });

  it('claims one slot per key across views and reports a full table', () => {
    const [a, b] = freshSegment(1, { workerSlots: 2, endpointCapacity: 4, limitKeyCapacity: 3 });
    const slots = ['x', 'y', 'z'].map((key) => a!.limitKeys.slotFor(key));
    assert.equal(new Set(slots).size, 3);
    assert.deepEqual(['x', 'y', 'z'].map((key) => b!.limitKeys.find(key)), slots);
    assert.throws(() => a!.limitKeys.slotFor('w'), /limiter table is full \(3 keys\)/);
  });
});

describe('sliding window (shared memory)', () => {
  it('counts a charge for 59–60 s (60 one-second buckets), across the ring', () => {
    const [shm] = freshSegment();
    const windows = shm!.limitWindows;
    const slot = shm!.limitKeys.slotFor('w');
    // Epoch 100 = [99 s, 100 s). Charges in buckets 100, 130 and 159.
    assert.equal(windows.tryCharge(slot, 0, RATE_PACKING, 60, 100, 3, 10), 100);
    assert.equal(windows.tryCharge(slot, 0, RATE_PACKING, 60, 130, 4, 10), 130);
    assert.equal(windows.tryCharge(slot, 0, RATE_PACKING, 60, 159, 3, 10), 159);
    assert.equal(windows.tryCharge(slot, 0, RATE_PACKING, 60, 159, 1, 10), -1, 'full: 3 + 4 + 3');
    assert.equal(windows.lastUsed, 10);
    assert.equal(windows.usage(slot, 0, RATE_PACKING, 60, 160), 7, 'bucket 100 leaves at epoch 160');
    assert.equal(windows.freeingEpoch(slot, 0, RATE_PACKING, 60, 160, 5), 159, '4 (epoch 130) + 3 (epoch 159) free 5');
    assert.equal(windows.usage(slot, 0, RATE_PACKING, 60, 500), 0, 'everything gone after a quiet minute');
    assert.equal(windows.tryCharge(slot, 0, RATE_PACKING, 60, 500, 10, 10), 500);
  });

  it('never moves a window back: a process with a clock behind charges the newest bucket', () => {
    const [shm] = freshSegment();
    const windows = shm!.limitWindows;
    const slot = shm!.limitKeys.slotFor('w');
    assert.equal(windows.tryCharge(slot, 1, RATE_PACKING, 60, 200, 5, 100), 200);
    assert.equal(windows.tryCharge(slot, 1, RATE_PACKING, 60, 199, 5, 100), 200, 'charged into 200, not 199');
    assert.deepEqual(windows.buckets(slot, 1, RATE_PACKING, 60, 200), [{ epoch: 200, count: 10 }]);
  });

  it('refunds into the bucket charged while it counts, and not after', () => {
    const [shm] = freshSegment();
    const windows = shm!.limitWindows;
    const slot = shm!.limitKeys.slotFor('w');
    windows.tryCharge(slot, 0, QUOTA_PACKING, 24, 1000, 50, 100);
    windows.tryCharge(slot, 0, QUOTA_PACKING, 24, 1001, 30, 100);
    assert.equal(windows.refund(slot, 0, QUOTA_PACKING, 24, 1001, 1000, 20), true, 'into the ring');
    assert.equal(windows.refund(slot, 0, QUOTA_PACKING, 24, 1001, 1001, 10), true, 'into the head');
    assert.deepEqual(windows.buckets(slot, 0, QUOTA_PACKING, 24, 1001), [
      { epoch: 1000, count: 30 },
      { epoch: 1001, count: 20 },
    ]);
    assert.equal(windows.refund(slot, 0, QUOTA_PACKING, 24, 1024, 1000, 5), false, 'bucket 1000 left the window at epoch 1024');
    assert.equal(windows.usage(slot, 0, QUOTA_PACKING, 24, 1024), 20);
  });

  it('packs large quota counts and negative credit', () => {
    const [shm] = freshSegment();
    const windows = shm!.limitWindows;
    const slot = shm!.limitKeys.slotFor('q');
    assert.equal(windows.tryCharge(slot, 1, QUOTA_PACKING, 30, 20_000, 999_999_999_999, 1e12), 20_000);
    assert.equal(windows.tryCharge(slot, 1, QUOTA_PACKING, 30, 20_001, -2_000_000_000_000, Infinity), 20_001);
    assert.equal(windows.usage(slot, 1, QUOTA_PACKING, 30, 20_001), 999_999_999_999 - 2_000_000_000_000);
    assert.throws(() => windows.tryCharge(slot, 0, RATE_PACKING, 60, 1, 2 ** 31, Infinity), RangeError);
  });
});

describe('SharedMemoryLimiter', () => {
  const alice: LimitRule = { key: 'c:alice', rpm: 3, tpm: 10_000, concurrent: 2 };

  it('admits up to the limit, with OpenAI-style headers, then refuses with Retry-After', () => {
    const { limiter, rate } = limiterWithClocks(1_000_500);
    const first = admitted(limiter.admit([{ key: 'c:a', rpm: 3, tpm: 1000 }], [], 100, 0));
    assert.deepEqual(first.headers, {
      'x-ratelimit-limit-requests': '3',
      'x-ratelimit-remaining-requests': '2',
      'x-ratelimit-reset-requests': '1m0s',
      'x-ratelimit-limit-tokens': '1000',
      'x-ratelimit-remaining-tokens': '900',
      'x-ratelimit-reset-tokens': '1m0s',
    });
    rate.advance(10_000);
    admitted(limiter.admit([{ key: 'c:a', rpm: 3, tpm: 1000 }], [], 100, 0));
    admitted(limiter.admit([{ key: 'c:a', rpm: 3, tpm: 1000 }], [], 100, 0));
    const no = refused(limiter.admit([{ key: 'c:a', rpm: 3, tpm: 1000 }], [], 100, 0));
    assert.equal(no.code, 'rate_limited');
    assert.equal(no.retryAfterMs, 49_500, 'when the first request\'s bucket leaves the window');
    assert.equal(no.headers['retry-after'], '50');
    assert.equal(no.headers['x-ratelimit-remaining-requests'], '0');
    assert.match(no.reason, /requests per minute limit of c:a reached: limit 3, used 3/);
    rate.advance(49_500);
    admitted(limiter.admit([{ key: 'c:a', rpm: 3, tpm: 1000 }], [], 100, 0));
  });

  it('reports the tightest limit among several rules', () => {
    const { limiter } = limiterWithClocks();
    const rules: LimitRule[] = [
      { key: 'm:gpt', rpm: 1000, tpm: 50_000 },
      { key: 'c:bob', rpm: 10, tpm: 1_000_000 },
    ];
    const { headers } = admitted(limiter.admit(rules, [], 2000, 0));
    assert.equal(headers['x-ratelimit-limit-requests'], '10');
    assert.equal(headers['x-ratelimit-remaining-requests'], '9');
    assert.equal(headers['x-ratelimit-limit-tokens'], '50000');
    assert.equal(headers['x-ratelimit-remaining-tokens'], '48000');
  });

  it('is all-or-nothing: a refusal by a later rule or quota leaves the earlier ones unchanged', () => {
    const { limiter } = limiterWithClocks();
    const wide: LimitRule = { key: 'm:gpt', rpm: 100, tpm: 100_000, concurrent: 10 };
    const narrow: LimitRule = { key: 'c:carol', rpm: 1 };
    admitted(limiter.admit([narrow], [], 0, 0));
    const before = limiter.limitUsage(wide);
    const no = refused(limiter.admit([wide, narrow], [], 5000, 0));
    assert.equal(no.code, 'rate_limited');
    assert.deepEqual(limiter.limitUsage(wide), before, 'requests, tokens and the concurrency place were given back');
    assert.equal(before.requests.used, 0);

    const quota: QuotaRule = { key: 'c:carol', period: 'day', mode: 'calendar', tokens: 1000 };
    const refusedByQuota = refused(limiter.admit([wide], [quota], 5000, 0));
    assert.equal(refusedByQuota.code, 'too_large');
    assert.deepEqual(limiter.limitUsage(wide), before);
    assert.equal(limiter.quotaUsage(quota).tokens.used, 0);
  });

  it('reconciles at settle: reserve 1000, use 100 → 900 back; usage beyond the reservation is charged', () => {
    const { limiter, wall } = limiterWithClocks();
    const quota: QuotaRule = { key: 'c:alice', period: 'month', mode: 'calendar', tokens: 1_000_000, costMicros: 5_000_000 };
    const { ticket } = admitted(limiter.admit([alice], [quota], 1000, 20_000));
    assert.equal(limiter.limitUsage(alice).tokens.used, 1000);
    assert.equal(limiter.limitUsage(alice).concurrent.used, 1);
    assert.equal(ticket.tokenHeadroom, 1_000_000 - 1000);
    assert.equal(ticket.costHeadroomMicros, 5_000_000 - 20_000);
    wall.advance(5_000);
    limiter.settle(ticket, 100, 3_000);
    assert.equal(ticket.settled, true);
    const usage = limiter.limitUsage(alice);
    assert.equal(usage.tokens.used, 100, '900 given back');
    assert.equal(usage.requests.used, 1, 'the request itself stays counted');
    assert.equal(usage.concurrent.used, 0);
    assert.equal(limiter.quotaUsage(quota).tokens.used, 100);
    assert.equal(limiter.quotaUsage(quota).costMicros.used, 3_000);

    limiter.settle(ticket, 0, 0);
    assert.equal(limiter.limitUsage(alice).tokens.used, 100, 'a second settle does nothing');

    const over = admitted(limiter.admit([alice], [quota], 100, 0));
    limiter.settle(over.ticket, 700, 1_000);
    assert.equal(limiter.limitUsage(alice).tokens.used, 800, '100 reserved + 600 beyond it');
    assert.equal(limiter.quotaUsage(quota).costMicros.used, 4_000);
  });

  it('limits concurrency and frees places on settle', () => {
    const { limiter } = limiterWithClocks();
    const rule: LimitRule = { key: 'c:dave', concurrent: 2 };
    const a = admitted(limiter.admit([rule], [], 0, 0));
    admitted(limiter.admit([rule], [], 0, 0));
    const no = refused(limiter.admit([rule], [], 0, 0));
    assert.equal(no.code, 'concurrency_limited');
    assert.equal(no.headers['retry-after'], '1');
    limiter.settle(a.ticket, 0, 0);
    admitted(limiter.admit([rule], [], 0, 0));
  });

  it('refuses a request larger than the limit as too_large, and a zero reservation once tokens are used up', () => {
    const { limiter } = limiterWithClocks();
    const rule: LimitRule = { key: 'c:erin', tpm: 1000 };
    const big = refused(limiter.admit([rule], [], 1001, 0));
    assert.equal(big.code, 'too_large');
    assert.equal(big.headers['retry-after'], undefined);
    assert.match(big.reason, /request too large .* limit 1000, requested 1001/);
    admitted(limiter.admit([rule], [], 1000, 0));
    assert.equal(refused(limiter.admit([rule], [], 0, 0)).code, 'rate_limited');
  });

  it('quotas: calendar resets at 00:00 UTC, rolling counts the last 24 hours', () => {
    const { limiter, wall } = limiterWithClocks(1_000_000, Date.UTC(2025, 2, 10, 22, 30));
    const calendar: QuotaRule = { key: 'c:fay', period: 'day', mode: 'calendar', tokens: 1000 };
    const rolling: QuotaRule = { key: 'c:fay', period: 'day', mode: 'rolling', tokens: 1000 };
    admitted(limiter.admit([], [calendar, rolling], 800, 0));

    const both = refused(limiter.admit([], [calendar], 300, 0));
    assert.equal(both.code, 'quota_exceeded');
    assert.equal(both.retryAfterMs, 90 * 60_000, 'calendar: at midnight UTC');
    const rollingRefusal = refused(limiter.admit([], [rolling], 300, 0));
    assert.equal(rollingRefusal.retryAfterMs, 23 * 3_600_000 + 30 * 60_000, 'rolling: when the 22:00 bucket leaves, at 22:00 next day');
    assert.match(rollingRefusal.reason, /token quota per 24 hours limit of c:fay reached/);

    wall.ms = Date.UTC(2025, 2, 11, 0, 0);
    assert.equal(limiter.quotaUsage(calendar).tokens.used, 0, 'a new calendar day');
    assert.equal(limiter.quotaUsage(rolling).tokens.used, 800, 'still within 24 hours');
    admitted(limiter.admit([], [calendar], 1000, 0));
    refused(limiter.admit([], [rolling], 300, 0));
    const usage = limiter.quotaUsage(rolling);
    assert.equal(usage.windowStartMs, Date.UTC(2025, 2, 10, 1), '24 hourly buckets: from 01:00 yesterday');
    assert.equal(usage.nextChangeMs, Date.UTC(2025, 2, 11, 22), 'the 22:00 bucket ages out at 22:00');
    wall.ms = Date.UTC(2025, 2, 11, 22, 0);
    assert.equal(limiter.quotaUsage(rolling).tokens.used, 0);
    admitted(limiter.admit([], [rolling], 1000, 0));
  });

  it('quotas: calendar month versus rolling 30 days', () => {
    const { limiter, wall } = limiterWithClocks(1_000_000, Date.UTC(2024, 1, 29, 12));
    const calendar: QuotaRule = { key: 'c:gus', period: 'month', mode: 'calendar', costMicros: 1_000_000 };
    const rolling: QuotaRule = { key: 'c:gus', period: 'month', mode: 'rolling', costMicros: 1_000_000 };
    admitted(limiter.admit([], [calendar, rolling], 0, 900_000));
    const no = refused(limiter.admit([], [calendar], 0, 200_000));
    assert.equal(no.retryAfterMs, Date.UTC(2024, 2, 1) - wall.ms, 'leap-year February ends on the 29th');
    assert.match(no.reason, /spending quota per month/);
    wall.ms = Date.UTC(2024, 2, 1, 0, 0, 1);
    assert.equal(limiter.quotaUsage(calendar).costMicros.used, 0);
    assert.equal(limiter.quotaUsage(rolling).costMicros.used, 900_000);
    wall.ms = Date.UTC(2024, 2, 30);
    assert.equal(limiter.quotaUsage(rolling).costMicros.used, 0, 'the Feb 29 bucket left after 30 days');
  });

  it('admin: usage, top-up (credit) and reset', () => {
    const { limiter } = limiterWithClocks();
    const quota: QuotaRule = { key: 'c:hal', period: 'day', mode: 'calendar', tokens: 1000, costMicros: 10 };
    const ticket = admitted(limiter.admit([], [quota], 1000, 0)).ticket;
    refused(limiter.admit([], [quota], 10, 0));
    limiter.topUp(quota, { tokens: 500 });
    assert.deepEqual(limiter.quotaUsage(quota).tokens, { used: 500, limit: 1000, remaining: 500 });
    admitted(limiter.admit([], [quota], 500, 0));
    limiter.resetQuota(quota);
    assert.equal(limiter.quotaUsage(quota).tokens.used, 0);
    limiter.settle(ticket, 0, 0);
    assert.equal(limiter.quotaUsage(quota).tokens.used, 0, 'a ticket from before the reset refunds nothing');
    assert.equal(limiter.quotaUsage({ key: 'c:nobody', period: 'day', mode: 'rolling', tokens: 5 }).tokens.used, 0);
  });

  it('follows onTableFull when the key table is full', () => {
    const [shm] = freshSegment(0, { workerSlots: 1, endpointCapacity: 1, limitKeyCapacity: 1 });
    const open = new SharedMemoryLimiter(shm!);
    admitted(open.admit([{ key: 'a', rpm: 1 }], [], 0, 0));
    admitted(open.admit([{ key: 'b', rpm: 1 }], [], 0, 0));
    admitted(open.admit([{ key: 'b', rpm: 1 }], [], 0, 0));
    assert.equal(open.status().keysWithoutSlot, 1);
    const closed = new SharedMemoryLimiter(shm!, { onTableFull: 'closed' });
    assert.equal(refused(closed.admit([{ key: 'c', rpm: 1 }], [], 0, 0)).code, 'limiter_unavailable');
  });
});

describe('across processes', () => {
  async function race(rules: LimitRule[], reserve: number): Promise<{ shm: SharedMemory; admitted: number[] }> {
    const [shm] = freshSegment(0, { workerSlots: 4, endpointCapacity: 8, limitKeyCapacity: 64 });
    const barrier = makeBarrier();
    const children = [0, 1, 2, 3].map((worker) =>
      runLimiterChild({
        SEGMENT: shm!.name,
        WORKER: String(worker),
        MODE: 'race',
        BARRIER: barrier.name,
        COUNT: '1250',
        RESERVE: String(reserve),
        RULES: JSON.stringify(rules),
      }),
    );
    await releaseBarrier(barrier.flags, 4);
    const results = await Promise.all(children.map(async (child) => (JSON.parse(await child.firstLine) as { admitted: number }).admitted));
    await Promise.all(children.map(expectCleanExit));
    return { shm: shm!, admitted: results };
  }

  it('a fresh key with rpm 1000 and 5,000 racing admissions from 4 processes admits exactly 1000', async () => {
    const rule: LimitRule = { key: 'c:fresh', rpm: 1000, tpm: 1_000_000 };
    const { shm, admitted: counts } = await race([rule], 3);
    assert.equal(counts.reduce((a, b) => a + b, 0), 1000, `per process: ${counts.join(', ')}`);
    const usage = new SharedMemoryLimiter(shm).limitUsage(rule);
    assert.equal(usage.requests.used, 1000);
    assert.equal(usage.tokens.used, 3000);
  });

  it('5,000 racing admissions from 4 processes against rpm 600 (behind a model rpm of 1000) admit exactly 600', async () => {
    const rules: LimitRule[] = [
      { key: 'm:race', rpm: 1000, tpm: 10_000_000, concurrent: 3 },
      { key: 'c:race', rpm: 600, tpm: 10_000_000 },
    ];
    const { shm, admitted: results } = await race(rules, 7);
    const total = results.reduce((sum, n) => sum + n, 0);
    const limiter = new SharedMemoryLimiter(shm);
    const model = limiter.limitUsage(rules[0]!);
    const consumer = limiter.limitUsage(rules[1]!);
    // Concurrency 3 over 4 racing processes can refuse some attempts, so the consumer limit may be
    // reached by fewer than 5,000 tries, but 5,000 is far more than enough to fill it.
    assert.equal(total, 600, `per process: ${results.join(', ')}`);
    assert.equal(consumer.requests.used, 600);
    assert.equal(model.requests.used, 600, 'refusals by the second rule were rolled back exactly');
    assert.equal(model.tokens.used, 600 * 7);
    assert.equal(model.concurrent.used, 0);
  });

  it('stays exact while the window slides every millisecond, with refunds and concurrency churn', async () => {
    const [shm] = freshSegment(0, { workerSlots: 4, endpointCapacity: 8, limitKeyCapacity: 64 });
    const clockSegment = makeBarrier(); // a small segment: [0] = clock seconds, [1] = stop, [2] = started, [8..11] = marks
    const cells = new Int32Array(clockSegment.flags.buffer, 0, 16);
    Atomics.store(cells, 0, 100);
    const rule: LimitRule = { key: 'c:slide', rpm: 100, tpm: 2000, concurrent: 3 };
    const children = [0, 1, 2, 3].map((worker) =>
      runLimiterChild({ SEGMENT: shm!.name, WORKER: String(worker), MODE: 'stress', CLOCK: clockSegment.name, RULES: JSON.stringify([rule]) }),
    );
    // Once all four are admitting, move time 600 times by 1 s (sometimes 7 s), one move per
    // millisecond or so (more on a busy machine: the number of moves is what matters).
    const startedBy = Date.now() + 15_000;
    while (Atomics.load(cells, 2) < 4) {
      assert.ok(Date.now() < startedBy, 'children started');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    for (let move = 0; move < 600; move++) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      Atomics.add(cells, 0, Math.random() < 0.3 ? 7 : 1);
    }
    Atomics.store(cells, 1, 1);
    const results = await Promise.all(
      children.map(async (child) => JSON.parse(await child.firstLine) as { perEpoch: Record<string, number>; maxHeld: number }),
    );
    await Promise.all(children.map(expectCleanExit));
    const perEpoch = new Map<number, number>();
    for (const result of results) for (const [epoch, n] of Object.entries(result.perEpoch)) perEpoch.set(Number(epoch), (perEpoch.get(Number(epoch)) ?? 0) + n);
    let fullest = 0;
    for (const end of perEpoch.keys()) {
      let inWindow = 0;
      for (const [epoch, n] of perEpoch) if (epoch > end - 60 && epoch <= end) inWindow += n;
      fullest = Math.max(fullest, inWindow);
    }
    assert.ok(perEpoch.size > 20, `the window moved (${perEpoch.size} buckets used)`);
    assert.equal(fullest, 100, 'no 60-bucket window holds more than rpm, and some window is full');
    assert.ok(Math.max(...results.map((r) => r.maxHeld)) <= 3, 'never more than 3 places held');
    const slot = shm!.limitKeys.find('r|c:slide');
    assert.equal(shm!.limitConcurrency.held(slot), 0, 'every place released');
  });

  it('a worker SIGKILLed while holding concurrency places gives them back on reclaimWorker', async () => {
    const [supervisor] = freshSegment(0, { workerSlots: 4, endpointCapacity: 8, limitKeyCapacity: 64 });
    const rule: LimitRule = { key: 'c:victim', concurrent: 5 };
    const limiter = new SharedMemoryLimiter(supervisor!);
    admitted(limiter.admit([rule], [], 0, 0)); // worker 0's own place, which reclaiming must not touch
    const victim = runLimiterChild({ SEGMENT: supervisor!.name, WORKER: '2', MODE: 'hold', HOLD: '3', RULES: JSON.stringify([rule]) });
    assert.equal(await victim.firstLine, 'ready');
    assert.equal(limiter.limitUsage(rule).concurrent.used, 4);
    admitted(limiter.admit([rule], [], 0, 0));
    assert.equal(refused(limiter.admit([rule], [], 0, 0)).code, 'concurrency_limited');

    victim.process.kill('SIGKILL');
    const [, signal] = await victim.exited;
    assert.equal(signal, 'SIGKILL');
    assert.equal(limiter.limitUsage(rule).concurrent.used, 5, 'a dead worker\'s places count until reclaimed');
    supervisor!.reclaimWorker(2);
    assert.equal(limiter.limitUsage(rule).concurrent.used, 2);
    assert.equal(supervisor!.limitConcurrency.workerHeld(2, supervisor!.limitKeys.find('r|c:victim')), 0);
    for (let i = 0; i < 3; i++) admitted(limiter.admit([rule], [], 0, 0));
    refused(limiter.admit([rule], [], 0, 0));
  });
});
