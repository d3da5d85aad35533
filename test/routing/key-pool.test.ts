import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { EndpointMask } from '../../src/routing/balancer.js';
import { KeyPool, type KeyPoolCounters, type KeyPoolOptions, keySlotIdentity } from '../../src/routing/key-pool.js';
import type { SharedMemory } from '../../src/shm/index.js';
import { freshSegment } from './helpers.js';

/** Shared-clock ms the tests run at. */
const NOW = 7_000_000;
/** Wall clock for date headers: 2025-03-04T05:06:07Z. */
const WALL = Date.UTC(2025, 2, 4, 5, 6, 7);

/** `keys` keys of one provider in a fresh segment, with a pool per worker view. */
function setup(keys: number, options: KeyPoolOptions = {}, workers = 1) {
  const views = freshSegment(workers - 1);
  const slots = Array.from({ length: keys }, (_, k) => views[0]!.slots.slotFor(keySlotIdentity('keys-test', k)));
  const pools = views.map((shm) => new KeyPool(slots, shm.endpoints, { now: () => NOW, wallNow: () => WALL, ...options }));
  return { shm: views[0]!, views, slots, pools, pool: pools[0]! };
}

function busy(shm: SharedMemory, slot: number, requests: number): void {
  for (let i = 0; i < requests; i++) shm.endpoints.acquire(slot);
}

describe('KeyPool: choosing a key', () => {
  it('takes the key with the fewest requests in flight across workers', () => {
    const { views, slots, pool } = setup(3, {}, 2);
    busy(views[0]!, slots[0]!, 3);
    busy(views[1]!, slots[1]!, 1); // in flight from the other worker counts too
    busy(views[0]!, slots[2]!, 2);
    for (let i = 0; i < 6; i++) assert.equal(pool.pick(), 1);
    busy(views[1]!, slots[1]!, 2); // key 1 now at 3
    assert.equal(pool.pick(), 2);
  });

  it('shares idle traffic across keys in rotation', () => {
    const { pool } = setup(3);
    assert.deepEqual(Array.from({ length: 7 }, () => pool.pick()), [0, 1, 2, 0, 1, 2, 0]);
  });

  it('skips keys excluded by the caller', () => {
    const { pool } = setup(3);
    const mask = new EndpointMask(3);
    mask.add(0);
    mask.add(2);
    for (let i = 0; i < 5; i++) assert.equal(pool.pick(mask), 1);
    mask.add(1);
    assert.equal(pool.pick(mask), -1);
  });

  it('gives keys shm slots apart from endpoints', () => {
    assert.deepEqual(keySlotIdentity('openai', 2), { provider: 'openai', url: '', keyIndex: 2 });
  });
});

describe('KeyPool: invalid keys', () => {
  it('401 and 403 take a key out until the pool is rebuilt', () => {
    const { slots, shm, pool } = setup(3);
    assert.equal(pool.markResult(0, 401), 'invalid');
    assert.equal(pool.markResult(2, 403), 'invalid');
    assert.equal(pool.markResult(2, 403), 'invalid'); // twice: counted once
    assert.equal(pool.validCount, 1);
    assert.equal(pool.isInvalid(0), true);
    for (let i = 0; i < 5; i++) assert.equal(pool.pick(), 1);
    // Even when it is the busiest.
    busy(shm, slots[1]!, 10);
    assert.equal(pool.pick(), 1);
    assert.equal(pool.markResult(1, 401), 'invalid');
    assert.equal(pool.pick(), -1);
    assert.equal(pool.nextAvailableAt(), Infinity);
    // The next snapshot's pool starts clean (the state is this worker's, not shm's).
    assert.equal(new KeyPool(slots, shm.endpoints, { now: () => NOW }).pick(), 0);
  });

  it('follows configured statuses', () => {
    const { pool } = setup(2, { invalidStatuses: [401] });
    assert.equal(pool.markResult(0, 403), 'ok');
    assert.equal(pool.isInvalid(0), false);
  });
});

describe('KeyPool: cooldown after 429', () => {
  it('rests a key for the Retry-After the provider sent, in every worker', () => {
    const { pools, pool } = setup(2, {}, 2);
    assert.equal(pool.markResult(0, 429, { 'retry-after': '2' }), 'cooling');
    assert.equal(pool.coolingUntil(0), NOW + 2000);
    for (let i = 0; i < 4; i++) {
      assert.equal(pool.pick(null, NOW), 1);
      assert.equal(pools[1]!.pick(null, NOW + 1999), 1, 'the other worker skips it too');
    }
    assert.deepEqual([pool.pick(null, NOW + 2000), pool.pick(null, NOW + 2000)].sort(), [0, 1]);
  });

  it('reads reset headers: OpenAI durations and Anthropic timestamps', () => {
    const { pool } = setup(3);
    pool.markResult(0, 429, { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1m30s' });
    assert.equal(pool.coolingUntil(0), NOW + 90_000);
    pool.markResult(1, 429, {
      'anthropic-ratelimit-tokens-remaining': '0',
      'anthropic-ratelimit-tokens-reset': '2025-03-04T05:06:52Z',
    });
    assert.equal(pool.coolingUntil(1), NOW + 45_000);
    assert.equal(pool.pick(), 2);
  });

  it('uses the default without a hint and caps what the provider asks', () => {
    const { pool } = setup(3, { defaultCooldownMs: 10_000, maxCooldownMs: 300_000 });
    pool.markResult(0, 429);
    assert.equal(pool.coolingUntil(0), NOW + 10_000);
    pool.markResult(1, 429, { 'retry-after': 'whenever' });
    assert.equal(pool.coolingUntil(1), NOW + 10_000);
    pool.markResult(2, 429, { 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '23h59m' });
    assert.equal(pool.coolingUntil(2), NOW + 300_000);
  });

  it('never shortens a cooldown already running', () => {
    const { pool } = setup(2);
    pool.markResult(0, 429, { 'retry-after': '30' });
    pool.markResult(0, 429, { 'retry-after': '1' });
    assert.equal(pool.coolingUntil(0), NOW + 30_000);
    pool.markResult(0, 429, { 'retry-after': '60' });
    assert.equal(pool.coolingUntil(0), NOW + 60_000);
  });

  it('says when a key will be back when every key rests', () => {
    const { pool } = setup(3);
    assert.equal(pool.nextAvailableAt(), NOW);
    pool.markResult(0, 429, { 'retry-after': '5' });
    pool.markResult(1, 429, { 'retry-after': '3' });
    pool.markResult(2, 401);
    assert.equal(pool.pick(), -1);
    assert.equal(pool.nextAvailableAt(), NOW + 3000);
    assert.equal(pool.pick(null, NOW + 3000), 1);
  });

  it('rests a key before a 429 when a success shows a limit at 0', () => {
    const { pool } = setup(2);
    assert.equal(pool.markResult(0, 200, { 'x-ratelimit-remaining-requests': '4', 'x-ratelimit-reset-requests': '1s' }), 'ok');
    assert.equal(pool.markResult(0, 200, { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1s' }), 'cooling');
    assert.equal(pool.coolingUntil(0), NOW + 1000);
    const passive = setup(2, { proactiveCooldown: false }).pool;
    assert.equal(passive.markResult(0, 200, { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1s' }), 'ok');
  });

  it('ignores server errors: they are not the key\'s fault', () => {
    const { pool } = setup(2);
    assert.equal(pool.markResult(0, 500, { 'retry-after': '10' }), 'ok');
    assert.equal(pool.markResult(0, 503), 'ok');
    assert.equal(pool.isInvalid(0), false);
    assert.equal(pool.coolingUntil(0), 0);
    assert.throws(() => pool.markResult(2, 401), RangeError);
  });
});

describe('KeyPool with a fake counter source', () => {
  it('needs only inFlight, ejectedUntil and setEjectedUntil', () => {
    const inFlight = [5, 0, 2];
    const until = [0, NOW + 1, 0];
    const fake: KeyPoolCounters = {
      inFlight: (slot) => inFlight[slot]!,
      ejectedUntil: (slot) => until[slot]!,
      setEjectedUntil: (slot, ms) => {
        until[slot] = ms;
      },
    };
    const pool = new KeyPool([0, 1, 2], fake, { now: () => NOW, wallNow: () => WALL });
    assert.equal(pool.pick(), 2, 'key 1 idle but cooling; key 2 less loaded than key 0');
    pool.markResult(2, 429, { 'retry-after-ms': '150' });
    assert.equal(until[2], NOW + 150);
    assert.equal(pool.pick(), 0);
  });
});
