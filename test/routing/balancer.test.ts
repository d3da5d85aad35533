import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  type Balancer,
  type BalancerEndpoint,
  createBalancer,
  EndpointMask,
  endpointGroup,
  endpointSlotIdentity,
  LeastRequestBalancer,
  type PickInput,
  RoundRobinBalancer,
  WeightedBalancer,
} from '../../src/routing/balancer.js';
import { freshSegment, seededRandom } from './helpers.js';

/** A mutable pick input, as the attempt loop keeps one per request. */
function input(excluded: EndpointMask | null = null): PickInput {
  return { excluded, stickyKey: undefined };
}

/** How often each index was picked over `picks` picks. */
function tally(balancer: Balancer, endpoints: readonly BalancerEndpoint[], picks: number, pickInput = input()): number[] {
  const counts = new Array<number>(endpoints.length).fill(0);
  for (let i = 0; i < picks; i++) {
    const picked = balancer.pick(endpoints, pickInput);
    assert.ok(picked, 'a usable endpoint exists, so pick returns one');
    counts[picked.index]!++;
  }
  return counts;
}

describe('EndpointMask', () => {
  it('adds, tests, deletes and clears indexes, beyond 32 too', () => {
    const mask = new EndpointMask(70);
    for (const i of [0, 31, 32, 63, 69]) mask.add(i);
    mask.add(32); // twice: still one member
    assert.equal(mask.size, 5);
    for (let i = 0; i < 70; i++) assert.equal(mask.has(i), [0, 31, 32, 63, 69].includes(i), `index ${i}`);
    mask.delete(31);
    mask.delete(30); // absent: no change
    assert.equal(mask.size, 4);
    assert.equal(mask.has(31), false);
    mask.clear();
    assert.equal(mask.size, 0);
    assert.equal(mask.has(69), false);
  });

  it('answers false outside its capacity and refuses to add there', () => {
    const mask = new EndpointMask(3);
    assert.equal(mask.has(-1), false);
    assert.equal(mask.has(3), false);
    assert.throws(() => mask.add(3), RangeError);
    assert.throws(() => mask.add(-1), RangeError);
    assert.throws(() => mask.add(1.5), RangeError);
  });
});

describe('endpointGroup', () => {
  it('numbers endpoints by position and defaults the weight to 1', () => {
    const group = endpointGroup([{ slot: 7 }, { slot: 3, weight: 0 }, { slot: 9, weight: 4 }]);
    assert.deepEqual(group, [
      { index: 0, weight: 1, slot: 7 },
      { index: 1, weight: 0, slot: 3 },
      { index: 2, weight: 4, slot: 9 },
    ]);
  });

  it('rejects weights and slots that are not numbers a balancer can use', () => {
    assert.throws(() => endpointGroup([{ slot: 0, weight: -1 }]), RangeError);
    assert.throws(() => endpointGroup([{ slot: 0, weight: Number.NaN }]), RangeError);
    assert.throws(() => endpointGroup([{ slot: 0, weight: Infinity }]), RangeError);
    assert.throws(() => endpointGroup([{ slot: -1 }]), RangeError);
  });

  it('gives endpoint slots an identity apart from key slots', () => {
    assert.deepEqual(endpointSlotIdentity('vllm', 'http://gpu-1:8000/v1'), {
      provider: 'vllm',
      url: 'http://gpu-1:8000/v1',
      keyIndex: -1,
    });
  });
});

describe('RoundRobinBalancer', () => {
  const group = endpointGroup([{ slot: 0 }, { slot: 1 }, { slot: 2 }]);

  it('rotates through every endpoint in order from a random start', () => {
    const balancer = new RoundRobinBalancer(() => 0.5);
    const order = Array.from({ length: 6 }, () => balancer.pick(group, input())!.index);
    const start = order[0]!;
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5].map((k) => (start + k) % 3));
    assert.deepEqual(tally(balancer, group, 3000), [1000, 1000, 1000]);
  });

  it('starts workers at different positions', () => {
    // The random start is drawn from [0, 2^30); three consecutive draws land on three endpoints.
    const draws = [0, 1, 2].map((k) => k / 0x40000000);
    const starts = new Set(draws.map((r) => new RoundRobinBalancer(() => r).pick(group, input())!.index));
    assert.equal(starts.size, 3);
  });

  it('skips excluded endpoints and weight 0, and gives up when nothing is left', () => {
    const drained = endpointGroup([{ slot: 0 }, { slot: 1, weight: 0 }, { slot: 2 }]);
    const balancer = new RoundRobinBalancer(() => 0);
    const mask = new EndpointMask(3);
    mask.add(0);
    assert.deepEqual(tally(balancer, drained, 10, input(mask)), [0, 0, 10]);
    mask.add(2);
    assert.equal(balancer.pick(drained, input(mask)), undefined);
    assert.equal(balancer.pick([], input()), undefined);
  });
});

describe('WeightedBalancer (smooth weighted round-robin)', () => {
  it('sends exactly 75 % to weight 3 against weight 1 over 4,000 picks, interleaved', () => {
    const group = endpointGroup([{ slot: 0, weight: 3 }, { slot: 1, weight: 1 }]);
    const balancer = new WeightedBalancer();
    const firstPeriod = Array.from({ length: 8 }, () => balancer.pick(group, input())!.index);
    // Interleaved, not a burst of three: a a b a, repeating.
    assert.deepEqual(firstPeriod, [0, 0, 1, 0, 0, 0, 1, 0]);
    assert.deepEqual(tally(new WeightedBalancer(), group, 4000), [3000, 1000]);
  });

  it('is exact for uneven weights over every whole period', () => {
    const group = endpointGroup([{ slot: 0, weight: 5 }, { slot: 1, weight: 1 }, { slot: 2, weight: 1 }]);
    const balancer = new WeightedBalancer();
    // nginx's documented sequence for 5:1:1.
    assert.deepEqual(
      Array.from({ length: 7 }, () => balancer.pick(group, input())!.index),
      [0, 0, 1, 0, 2, 0, 0],
    );
    assert.deepEqual(tally(balancer, group, 7000), [5000, 1000, 1000]);
  });

  it('is deterministic: two instances give the same sequence', () => {
    const group = endpointGroup([{ slot: 0, weight: 2 }, { slot: 1, weight: 7 }, { slot: 2, weight: 3 }]);
    const a = new WeightedBalancer();
    const b = new WeightedBalancer();
    for (let i = 0; i < 500; i++) assert.equal(a.pick(group, input()), b.pick(group, input()));
  });

  it('never picks weight 0 or an excluded endpoint, and re-divides among the rest', () => {
    const group = endpointGroup([{ slot: 0, weight: 3 }, { slot: 1, weight: 0 }, { slot: 2, weight: 1 }, { slot: 3, weight: 1 }]);
    const mask = new EndpointMask(4);
    mask.add(0);
    assert.deepEqual(tally(new WeightedBalancer(), group, 1000, input(mask)), [0, 0, 500, 500]);
    mask.add(2);
    mask.add(3);
    assert.equal(new WeightedBalancer().pick(group, input(mask)), undefined);
  });

  it('returns the group element itself', () => {
    const group = endpointGroup([{ slot: 4, weight: 1 }]);
    assert.equal(new WeightedBalancer().pick(group, input()), group[0]);
  });
});

describe('LeastRequestBalancer (power of two choices)', () => {
  /** A balancer over fixed in-flight counts by slot. */
  function p2c(loads: readonly number[], seed = 1): LeastRequestBalancer {
    return new LeastRequestBalancer((slot) => loads[slot]!, seededRandom(seed));
  }

  it('with two candidates compares both: the idle one always wins', () => {
    const group = endpointGroup([{ slot: 0 }, { slot: 1 }]);
    assert.deepEqual(tally(p2c([4, 0]), group, 1000), [0, 1000]);
  });

  it('picks the idle endpoint whenever it is sampled (2/n of picks) and never the busiest', () => {
    for (const n of [3, 4, 8]) {
      const loads = Array.from({ length: n }, (_, i) => (i === 0 ? 0 : 5 + i));
      const group = endpointGroup(loads.map((_, slot) => ({ slot })));
      const picks = 20_000;
      const counts = tally(p2c(loads, n), group, picks);
      const idleShare = counts[0]! / picks;
      assert.ok(Math.abs(idleShare - 2 / n) < 0.02, `n=${n}: idle share ${idleShare}, expected ≈ ${2 / n}`);
      // Among the busy ones, the lighter wins more often, and the busiest never wins a comparison.
      assert.equal(counts[n - 1], 0, `n=${n}: the busiest endpoint is never picked`);
      for (let i = 1; i < n - 1; i++) assert.ok(counts[i]! >= counts[i + 1]!, `n=${n}: ${counts.join(',')}`);
    }
  });

  it('balances load as requests accumulate', () => {
    const loads = [0, 0, 0, 0, 0, 0];
    const group = endpointGroup(loads.map((_, slot) => ({ slot })));
    const balancer = p2c(loads, 7);
    for (let i = 0; i < 6000; i++) loads[balancer.pick(group, input())!.slot]!++;
    // Without completions, P2C keeps every endpoint within a couple of requests of the others.
    assert.ok(Math.max(...loads) - Math.min(...loads) <= 3, loads.join(','));
  });

  it('never picks an excluded endpoint, even the idle one', () => {
    const loads = [0, 3, 4, 5, 6];
    const group = endpointGroup(loads.map((_, slot) => ({ slot })));
    const mask = new EndpointMask(5);
    mask.add(0);
    mask.add(2);
    const counts = tally(p2c(loads), group, 5000, input(mask));
    assert.equal(counts[0], 0);
    assert.equal(counts[2], 0);
    assert.equal(counts[4], 0, 'busiest of the candidates');
    mask.add(1);
    mask.add(3);
    assert.deepEqual(tally(p2c(loads), group, 10, input(mask)), [0, 0, 0, 0, 10]);
    mask.add(4);
    assert.equal(p2c(loads).pick(group, input(mask)), undefined);
  });

  it('honours weights by comparing (in-flight + 1) / weight', () => {
    const group = endpointGroup([{ slot: 0, weight: 3 }, { slot: 1, weight: 1 }]);
    // Both idle: 1/3 < 1/1, the heavier wins.
    assert.deepEqual(tally(p2c([0, 0]), group, 100), [100, 0]);
    // 3 in flight on the heavier: 4/3 > 1/1, the lighter wins.
    assert.deepEqual(tally(p2c([3, 0]), group, 100), [0, 100]);
    // 2 in flight: 3/3 = 1/1, a tie, broken at random.
    const tie = tally(p2c([2, 0], 3), group, 4000);
    assert.ok(Math.abs(tie[0]! - 2000) < 200, tie.join(','));
  });

  it('breaks ties at random and skips weight 0', () => {
    const group = endpointGroup([{ slot: 0 }, { slot: 1, weight: 0 }, { slot: 2 }]);
    const counts = tally(p2c([1, 0, 1], 11), group, 4000);
    assert.equal(counts[1], 0);
    assert.ok(Math.abs(counts[0]! - 2000) < 200, counts.join(','));
  });

  it('reads in-flight counts from shared memory', () => {
    const [shm] = freshSegment();
    const slots = [0, 1, 2].map((i) => shm!.slots.slotFor(endpointSlotIdentity('p2c-test', `http://replica-${i}`)));
    const group = endpointGroup(slots.map((slot) => ({ slot })));
    // Replica 0 and 2 busy, replica 1 idle.
    for (let i = 0; i < 5; i++) shm!.endpoints.acquire(slots[0]!);
    for (let i = 0; i < 3; i++) shm!.endpoints.acquire(slots[2]!);
    const balancer = createBalancer('least_request', { inFlight: (slot) => shm!.endpoints.inFlight(slot), random: seededRandom(5) });
    const counts = tally(balancer, group, 3000);
    assert.equal(counts[0], 0, 'the busiest replica is never picked');
    assert.ok(counts[1]! > 1900, `idle replica picked whenever sampled: ${counts.join(',')}`);
    assert.ok(counts[2]! > 0 && counts[2]! < 1100, counts.join(','));
  });
});

describe('createBalancer', () => {
  it('builds each balancer by its configured name', () => {
    assert.ok(createBalancer('round_robin') instanceof RoundRobinBalancer);
    assert.ok(createBalancer('weighted') instanceof WeightedBalancer);
    assert.ok(createBalancer('least_request', { inFlight: () => 0 }) instanceof LeastRequestBalancer);
    assert.equal(createBalancer('weighted').name, 'weighted');
  });

  it('refuses least_request without an in-flight reader, and unknown names', () => {
    assert.throws(() => createBalancer('least_request'), /in-flight/);
    assert.throws(() => createBalancer('random' as 'weighted'), /unknown balancer/);
  });
});
