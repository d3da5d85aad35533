/**
 * The shared prefix index (src/shm/prefix-index.ts): longest held prefix per endpoint, eviction by
 * each replica's modelled capacity (tail before head), TTL, forgetting a restarted replica, a table
 * smaller than the working set, export marks for sharing, and one index seen by two processes.
 */

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';

import { blockHashes } from '../../src/routing/prompt-blocks.js';
import { PREFIX_TICK_MS, SharedMemory } from '../../src/shm/index.js';
import { freshSegment } from './helpers.js';

/** A chain of `blocks` blocks of 16 tokens; `seed` makes unrelated chains, `shared` leading blocks copy `base`. */
function chain(seed: number, blocks: number, base?: { seed: number; shared: number }): Float64Array {
  const tokens: number[] = [];
  for (let i = 0; i < blocks * 16; i++) {
    const fromBase = base !== undefined && i < base.shared * 16;
    tokens.push(((fromBase ? base.seed : seed) * 7919 + i * 31) % 100_000);
  }
  return blockHashes(tokens);
}

function matches(shm: SharedMemory, blocks: Float64Array, slots: number[], nowMs: number): number[] {
  const out = new Int32Array(slots.length);
  shm.prefixIndex.matchLengths(blocks, slots, slots.length, out, nowMs);
  return [...out];
}

const T0 = 1_000_000;
const children: ReturnType<typeof spawn>[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

describe('PrefixIndex', () => {
  it('finds the longest prefix each endpoint holds, and only on indexed endpoints', () => {
    const [shm] = freshSegment();
    const index = shm!.prefixIndex;
    for (const slot of [1, 2]) index.configure(slot, 1000, 60_000);
    const a = chain(1, 10);
    assert.equal(index.record(1, a, T0), 10);
    assert.equal(index.record(1, a, T0), 0, 'recording it again adds nothing');
    const b = chain(2, 12, { seed: 1, shared: 4 });
    assert.deepEqual(matches(shm!, a, [1, 2], T0), [10, 0]);
    assert.deepEqual(matches(shm!, b, [1, 2], T0), [4, 0], 'a prompt sharing 4 blocks matches 4');
    index.record(2, b, T0);
    assert.deepEqual(matches(shm!, b, [1, 2], T0), [4, 12]);
    // Slot 3 was never configured: not indexed, never matches, recording is a no-op.
    assert.equal(index.record(3, a, T0), 0);
    assert.deepEqual(matches(shm!, a, [3, 1], T0), [0, 10]);
    assert.equal(index.clock(1), 10);
    assert.equal(index.countHeld(1, T0), 10);
  });

  it("evicts by the replica's capacity, a chain's tail before its head; a touch keeps blocks", () => {
    const [shm] = freshSegment();
    const index = shm!.prefixIndex;
    index.configure(5, 10, 60_000);
    const a = chain(10, 6);
    const b = chain(11, 6);
    index.record(5, a, T0);
    index.record(5, b, T0);
    // 12 blocks recorded into a 10-block cache: A's last two are gone, its head still there.
    assert.deepEqual(matches(shm!, a, [5], T0), [4]);
    assert.deepEqual(matches(shm!, b, [5], T0), [6]);
    // Touching A's head makes it as new as B's head; 8 more new blocks then cost B its tail, not A's head.
    index.record(5, a.subarray(0, 4), T0);
    index.record(5, chain(12, 8), T0);
    assert.deepEqual(matches(shm!, a, [5], T0), [4]);
    assert.deepEqual(matches(shm!, b, [5], T0), [2]);
    // A prompt longer than the whole cache keeps only what fits, from its head.
    const long = chain(13, 25);
    index.record(5, long, T0);
    assert.deepEqual(matches(shm!, long, [5], T0), [10]);
    assert.deepEqual(matches(shm!, a, [5], T0), [0]);
  });

  it('ages entries out after the TTL, and forgets a replica at once', () => {
    const [shm] = freshSegment();
    const index = shm!.prefixIndex;
    index.configure(7, 1000, 10_000);
    const a = chain(20, 5);
    index.record(7, a, T0);
    assert.deepEqual(matches(shm!, a, [7], T0 + 10_000 - PREFIX_TICK_MS), [5]);
    assert.deepEqual(matches(shm!, a, [7], T0 + 10_000 + 2 * PREFIX_TICK_MS), [0]);
    // Recording refreshes: new TTL from now.
    index.record(7, a, T0 + 20_000);
    assert.deepEqual(matches(shm!, a, [7], T0 + 25_000), [5]);
    index.forget(7);
    assert.deepEqual(matches(shm!, a, [7], T0 + 25_000), [0]);
    assert.equal(index.record(7, a, T0 + 25_000), 5, 'after forget every block is new again');
  });

  it('keeps working when the table is smaller than what replicas hold: the least recently used ways go', () => {
    const shm = SharedMemory.private({ workerSlots: 2, endpointCapacity: 16, prefixIndexEntries: 64 });
    const index = shm.prefixIndex;
    assert.equal(index.entries, 64);
    index.configure(0, 100_000, 600_000);
    const old = chain(30, 8);
    index.record(0, old, T0);
    for (let i = 0; i < 40; i++) index.record(0, chain(100 + i, 8), T0 + 1000 + i * PREFIX_TICK_MS);
    const fresh = chain(31, 8);
    index.record(0, fresh, T0 + 10_000);
    assert.equal(matches(shm, fresh, [0], T0 + 10_000)[0], 8, 'the newest chain is whole');
    assert.ok(matches(shm, old, [0], T0 + 10_000)[0]! < 8, 'the oldest lost blocks to newer ones');
    assert.ok(index.countHeld(0, T0 + 10_000) <= 64);
  });

  it('marks what it learned for export once; blocks learned from other nodes are not echoed back', () => {
    const [shm] = freshSegment();
    const index = shm!.prefixIndex;
    index.configure(1, 1000, 60_000);
    index.configure(2, 1000, 60_000);
    const a = chain(40, 3);
    index.record(1, a, T0);
    index.record(2, chain(41, 2), T0, false);
    for (const h of chain(42, 2)) assert.equal(index.learn(1, h, T0), true);
    const seen: [number, number][] = [];
    const visit = (slot: number, hash: number) => seen.push([slot, hash]);
    index.drainExports(() => true, visit, 100, T0);
    assert.deepEqual(seen.sort((x, y) => x[1] - y[1]), [...a].map((h) => [1, h] as [number, number]).sort((x, y) => x[1] - y[1]));
    seen.length = 0;
    index.drainExports(() => true, visit, 100, T0);
    assert.deepEqual(seen, [], 'each entry is exported once');
    // Learned blocks count on the clock like recorded ones (they use the replica's cache too).
    assert.equal(index.clock(1), 5);
  });

  it('is one index for every process: a block recorded by one worker is matched by another', async () => {
    const [shm] = freshSegment();
    const index = shm!.prefixIndex;
    index.configure(3, 5000, 60_000);
    index.configure(4, 5000, 60_000);
    const a = chain(50, 20);
    const b = chain(51, 30, { seed: 50, shared: 8 });
    // The other worker records a chain on slot 4 and, concurrently with us, many chains on slot 3.
    const module = new URL('../../src/shm/index.js', import.meta.url).href;
    const code = `
      const { SharedMemory } = await import(${JSON.stringify(module)});
      const shm = SharedMemory.open(${JSON.stringify(shm!.name)}, { workerIndex: 1 });
      const b = ${JSON.stringify([...b])};
      shm.prefixIndex.record(4, b, ${T0});
      for (let i = 0; i < 200; i++) shm.prefixIndex.record(3, [1e6 + i * 3, 1e6 + i * 3 + 1, 1e6 + i * 3 + 2], ${T0});
      console.log('done');
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    for (let i = 0; i < 200; i++) index.record(3, [2e6 + i * 3, 2e6 + i * 3 + 1, 2e6 + i * 3 + 2], T0);
    const [code0] = (await once(child, 'exit')) as [number | null];
    assert.equal(code0, 0);
    index.record(3, a, T0);
    assert.deepEqual(matches(shm!, b, [3, 4], T0), [8, 30], 'b shares 8 blocks with a, now on slot 3');
    assert.deepEqual(matches(shm!, a, [3, 4], T0), [20, 8]);
    // Both processes' new blocks were counted on slot 3's clock: none lost to a race.
    assert.equal(index.clock(3), 200 * 3 * 2 + 20);
    for (let i = 0; i < 200; i++) {
      assert.ok(index.holds(3, 1e6 + i * 3 + 2, T0), `the other worker's chain ${i} is there`);
      assert.ok(index.holds(3, 2e6 + i * 3 + 2, T0), `our chain ${i} is there`);
    }
  });
});
