import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { KvBlockPool } from '../../bench/vllm-sim/kv-block-pool.js';

/** Allocates `n` blocks and caches them under `hashes` (one per block). */
function fill(pool: KvBlockPool, hashes: number[]): number[] {
  const blocks: number[] = [];
  assert.ok(pool.allocate(hashes.length, blocks));
  hashes.forEach((h, i) => pool.cache(blocks[i]!, h));
  return blocks;
}

describe('KvBlockPool', () => {
  it('counts used, free and cached blocks and refuses to over-allocate', () => {
    const pool = new KvBlockPool(4);
    const a = fill(pool, [11, 12]);
    assert.equal(pool.usedBlocks, 2);
    assert.equal(pool.freeBlocks, 2);
    assert.equal(pool.cachedBlocks, 2);
    assert.equal(pool.usage(), 0.5);
    const none: number[] = [];
    assert.equal(pool.allocate(3, none), false);
    assert.deepEqual(none, [], 'a refused allocation takes nothing');
    pool.release(a);
    assert.equal(pool.usedBlocks, 0);
    assert.equal(pool.cachedBlocks, 2, 'freed blocks keep their hashes');
  });

  it('finds the cached prefix of a chain and shares blocks by reference count', () => {
    const pool = new KvBlockPool(8);
    const a = fill(pool, [1, 2, 3]);
    assert.equal(pool.cachedPrefix([1, 2, 3, 4], 4), 3);
    assert.equal(pool.cachedPrefix([1, 9, 3], 3), 1, 'a chain stops at its first miss');
    assert.equal(pool.cachedPrefix([1, 2, 3], 2), 2, 'never beyond the limit');
    const b: number[] = [];
    pool.acquireCached([1, 2], 2, b);
    assert.deepEqual(b, a.slice(0, 2));
    pool.release(a);
    assert.equal(pool.usedBlocks, 2, 'blocks still held by the second sequence stay in use');
    pool.release(b);
    assert.equal(pool.usedBlocks, 0);
    assert.throws(() => pool.release(b), /released more often/);
  });

  it('reuses a free cached block on a hit instead of evicting it', () => {
    const pool = new KvBlockPool(2);
    const a = fill(pool, [1, 2]);
    pool.release(a);
    assert.equal(pool.freeAmongCached([1, 2], 2), 2);
    const b: number[] = [];
    pool.acquireCached([1, 2], 2, b);
    assert.equal(pool.freeBlocks, 0);
    assert.equal(pool.evictions, 0);
  });

  it('evicts the least recently freed cached blocks first, and a chain from its tail', () => {
    const pool = new KvBlockPool(6);
    const a = fill(pool, [101, 102, 103]);
    const b = fill(pool, [201, 202, 203]);
    pool.release(a);
    pool.release(b);
    // Use A again (a hit), so B becomes the least recently used.
    const again: number[] = [];
    pool.acquireCached([101, 102, 103], 3, again);
    pool.release(again);

    const c: number[] = [];
    assert.ok(pool.allocate(1, c));
    assert.equal(pool.evictions, 1);
    assert.equal(pool.cachedPrefix([201, 202, 203], 3), 2, "B's last block went first: its head is still usable");
    assert.equal(pool.cachedPrefix([101, 102, 103], 3), 3, 'A, used more recently, is untouched');
    assert.ok(pool.allocate(2, c));
    assert.equal(pool.cachedPrefix([201, 202, 203], 3), 0);
    assert.equal(pool.cachedPrefix([101, 102, 103], 3), 3);
    assert.equal(pool.evictions, 3);
  });

  it('keeps the first block cached under a hash when two blocks compute the same one', () => {
    const pool = new KvBlockPool(4);
    const a = fill(pool, [7]);
    const b = fill(pool, [7]);
    assert.equal(pool.cachedBlocks, 1);
    const hit: number[] = [];
    pool.acquireCached([7], 1, hit);
    assert.deepEqual(hit, a);
    pool.release(b);
    pool.release(a);
    pool.release(hit);
  });

  it('reset forgets the hashes of free blocks only', () => {
    const pool = new KvBlockPool(4);
    const held = fill(pool, [1]);
    pool.release(fill(pool, [2, 3]));
    assert.equal(pool.resetPrefixCache(), 2);
    assert.equal(pool.cachedPrefix([1], 1), 1);
    assert.equal(pool.cachedPrefix([2], 1), 0);
    pool.release(held);
  });
});
