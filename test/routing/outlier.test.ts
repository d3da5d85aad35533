import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { EndpointMask, endpointGroup, endpointSlotIdentity, WeightedBalancer } from '../../src/routing/balancer.js';
import { isEndpointFailure, OutlierDetector, type OutlierOptions } from '../../src/routing/outlier.js';
import type { SharedMemory } from '../../src/shm/index.js';
import { freshSegment } from './helpers.js';

/** Shared-clock ms the tests start at; every time below is relative to it. */
const T0 = 5_000_000;

/** A group of `n` endpoints in a fresh segment, with a detector per worker view. */
function setup(n: number, options: OutlierOptions = {}, workers = 1) {
  const views = freshSegment(workers - 1);
  const slots = Array.from({ length: n }, (_, i) => views[0]!.slots.slotFor(endpointSlotIdentity('outlier', `http://replica-${i}`)));
  const group = endpointGroup(slots.map((slot) => ({ slot })));
  const detectors = views.map((shm) => new OutlierDetector(group, shm.endpoints, options, () => T0));
  return { shm: views[0]!, group, slots, detectors, detector: detectors[0]! };
}

/** `count` failures of endpoint `index` at `now`; returns how many of them ejected it. */
function fail(detector: OutlierDetector, index: number, count: number, now: number): number {
  let ejected = 0;
  for (let i = 0; i < count; i++) if (detector.recordFailure(index, now)) ejected++;
  return ejected;
}

function until(shm: SharedMemory, slot: number): number {
  return shm.endpoints.ejectedUntil(slot);
}

describe('OutlierDetector: thresholds', () => {
  it('ejects on the 5th consecutive failure, for 30 s, and starts a fresh streak', () => {
    const { shm, slots, detector } = setup(4);
    assert.equal(fail(detector, 0, 4, T0), 0);
    assert.equal(detector.isEjected(0, T0), false);
    assert.equal(detector.recordFailure(0, T0), true);
    assert.equal(until(shm, slots[0]!), T0 + 30_000);
    assert.equal(detector.isEjected(0, T0 + 29_999), true);
    assert.equal(detector.isEjected(0, T0 + 30_000), false);
    assert.equal(shm.endpoints.consecutiveFailures(slots[0]!), 0);
    assert.equal(shm.endpoints.totalFailures(slots[0]!), 5n);
    assert.equal(detector.timesEjected(0), 1);
  });

  it('a success ends the streak', () => {
    const { detector } = setup(4);
    fail(detector, 1, 4, T0);
    detector.recordSuccess(1);
    assert.equal(fail(detector, 1, 4, T0), 0);
    assert.equal(detector.isEjected(1, T0), false);
    assert.equal(detector.recordFailure(1, T0), true);
  });

  it('follows a configured threshold and disables itself at 0', () => {
    const two = setup(4, { consecutiveFailures: 2 }).detector;
    assert.equal(fail(two, 0, 2, T0), 1);
    const off = setup(4, { consecutiveFailures: 0 });
    assert.equal(fail(off.detector, 0, 50, T0), 0);
    assert.equal(off.shm.endpoints.totalFailures(off.slots[0]!), 50n, 'failures are still counted');
  });

  it('does not extend an ejection that is running', () => {
    const { shm, slots, detector } = setup(4);
    fail(detector, 0, 5, T0);
    assert.equal(fail(detector, 0, 10, T0 + 1000), 0);
    assert.equal(until(shm, slots[0]!), T0 + 30_000);
  });

  it('classifies endpoint failures: unreachable, timeout, 5xx; not 4xx or 429', () => {
    assert.equal(isEndpointFailure('connect'), true);
    assert.equal(isEndpointFailure('timeout'), true);
    for (const s of [500, 502, 503, 504, 529]) assert.equal(isEndpointFailure('status', s), true, `${s}`);
    for (const s of [200, 400, 401, 404, 429]) assert.equal(isEndpointFailure('status', s), false, `${s}`);
  });
});

describe('OutlierDetector: ejection length', () => {
  it('doubles per ejection up to the maximum', () => {
    const { shm, slots, detector } = setup(2);
    let now = T0;
    const lengths: number[] = [];
    for (let round = 0; round < 6; round++) {
      // Fails again right as it returns.
      assert.equal(fail(detector, 0, 5, now), 1);
      const end = until(shm, slots[0]!);
      lengths.push(end - now);
      now = end;
    }
    assert.deepEqual(lengths, [30_000, 60_000, 120_000, 240_000, 300_000, 300_000]);
  });

  it('forgives one step per idle base period after an ejection ends', () => {
    const { shm, slots, detector } = setup(2);
    fail(detector, 0, 5, T0); // 30 s, ends T0+30 s
    fail(detector, 0, 5, T0 + 30_000); // 60 s, ends T0+90 s
    assert.equal(detector.timesEjected(0), 2);
    // 45 s of good behaviour after the end: one step forgiven → third ejection counts as second.
    assert.equal(detector.nextEjectionMs(0, T0 + 135_000), 60_000);
    fail(detector, 0, 5, T0 + 135_000);
    assert.equal(until(shm, slots[0]!) - (T0 + 135_000), 60_000);
    // A long quiet spell forgives everything.
    assert.equal(detector.nextEjectionMs(0, T0 + 3_600_000), 30_000);
  });

  it('validates its settings', () => {
    assert.throws(() => setup(2, { maxEjectedPercent: 101 }), RangeError);
    assert.throws(() => setup(2, { baseEjectionMs: 60_000, maxEjectionMs: 30_000 }), RangeError);
    assert.throws(() => setup(2, { consecutiveFailures: 1.5 }), RangeError);
  });
});

describe('OutlierDetector: max ejected percent', () => {
  it('never ejects more than half of a group of 4', () => {
    const { shm, slots, detector } = setup(4);
    assert.equal(detector.maxEjected, 2);
    assert.equal(fail(detector, 0, 5, T0), 1);
    assert.equal(fail(detector, 1, 5, T0 + 1000), 1);
    assert.equal(fail(detector, 2, 5, T0 + 2000), 0, 'cap reached');
    assert.equal(detector.isEjected(2, T0 + 2000), false);
    assert.equal(detector.ejectedCount(T0 + 2000), 2);
    // The streak is kept, so the next failure after a slot frees up ejects at once.
    assert.equal(shm.endpoints.consecutiveFailures(slots[2]!), 5);
    assert.equal(fail(detector, 2, 1, T0 + 29_000), 0, 'endpoint 0 still out');
    assert.equal(fail(detector, 2, 1, T0 + 30_000), 1, 'endpoint 0 back: room for endpoint 2');
    assert.equal(detector.ejectedCount(T0 + 30_000), 2);
  });

  it('rounds down but always allows one, as Envoy does', () => {
    assert.equal(setup(1).detector.maxEjected, 1);
    assert.equal(setup(3).detector.maxEjected, 1);
    assert.equal(setup(5).detector.maxEjected, 2);
    assert.equal(setup(10, { maxEjectedPercent: 10 }).detector.maxEjected, 1);
    assert.equal(setup(10, { maxEjectedPercent: 100 }).detector.maxEjected, 10);
    const none = setup(3, { maxEjectedPercent: 0 }).detector;
    assert.equal(none.maxEjected, 0);
    assert.equal(fail(none, 0, 20, T0), 0);
  });
});

describe('OutlierDetector: across workers and with a balancer', () => {
  it('an ejection by one worker excludes the endpoint in every worker', () => {
    const { detectors, group } = setup(3, {}, 2);
    const [a, b] = detectors as [OutlierDetector, OutlierDetector];
    // Failures from both workers make one streak.
    fail(a, 1, 2, T0);
    fail(b, 1, 2, T0);
    assert.equal(b.recordFailure(1, T0), true);
    assert.equal(a.isEjected(1, T0 + 10), true);

    const mask = new EndpointMask(group.length);
    assert.equal(a.excludeEjected(mask, T0 + 10), 1);
    const balancer = new WeightedBalancer();
    for (let i = 0; i < 100; i++) assert.notEqual(balancer.pick(group, { excluded: mask, stickyKey: undefined })!.index, 1);
  });

  it('counts ejections seen from other workers, so the next one is longer', () => {
    const { detectors, shm, slots } = setup(2, {}, 2);
    const [a, b] = detectors as [OutlierDetector, OutlierDetector];
    assert.equal(fail(a, 0, 5, T0), 1); // 30 s, by worker A
    assert.equal(b.isEjected(0, T0 + 5), true); // worker B sees it during a pick
    assert.equal(b.timesEjected(0), 1);
    assert.equal(fail(b, 0, 5, T0 + 30_000), 1); // second ejection, by worker B
    assert.equal(until(shm, slots[0]!) - (T0 + 30_000), 60_000);
  });

  it('a streak built by several workers ejects once', () => {
    const { detectors } = setup(2, {}, 4);
    for (const d of detectors) assert.equal(d.recordFailure(0, T0), false); // streak 1..4
    // Worker 0 completes the streak and ejects; the ejection starts a fresh streak for the others.
    assert.deepEqual(
      detectors.map((d) => d.recordFailure(0, T0)),
      [true, false, false, false],
    );
    assert.equal(detectors.filter((d) => d.isEjected(0, T0)).length, 4);
  });
});
