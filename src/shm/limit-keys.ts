/**
 * Which limiter slot belongs to which limit or quota key: a hash table in shared memory whose bucket
 * index IS the slot, claimed by compare-and-swap from any process, exactly like endpoint-slots.ts
 * (read that file for why: a claim is one atomic step a killed process cannot leave half done, and
 * every process maps a key to the same slot without asking anyone).
 *
 * Slots are never freed while the segment lives, so a free bucket ends every probe and a slot's
 * windows are never inherited by another key. The table fills after `limitKeyCapacity` distinct keys
 * over the gateway's life; the error says to raise the capacity.
 *
 * The 64-bit hash of a key string is computed once per process per key (the limiter caches slots),
 * so sha256 is affordable and makes two keys colliding as unlikely as for endpoints (~n²/2⁶⁵).
 */

import { createHash } from 'node:crypto';

import { LIMIT_KEY_BYTES, type Layout, LayoutError, limitKeyCapacity } from './layout.js';

/** The 64-bit key stored in the table for a limiter key string; never 0, which marks a free bucket. */
export function limitKeyHash(key: string): bigint {
  const hash = createHash('sha256').update(key).digest().readBigInt64LE(0);
  return hash === 0n ? 1n : hash;
}

export class LimitKeys {
  readonly capacity: number;
  private readonly keys: BigInt64Array;

  constructor(buffer: ArrayBuffer, layout: Layout) {
    this.capacity = limitKeyCapacity(layout.params);
    const region = layout.regions.limitKeys;
    this.keys = new BigInt64Array(buffer, region.offset, region.bytes / LIMIT_KEY_BYTES);
  }

  private start(hash: bigint): number {
    return Number(BigInt.asUintN(64, hash) % BigInt(this.capacity));
  }

  /** The key's slot, claiming a free one the first time any process asks. Throws LayoutError when full. */
  slotFor(key: string): number {
    return this.slotForHash(limitKeyHash(key));
  }

  slotForHash(hash: bigint): number {
    if (hash === 0n) throw new RangeError('limit key hash 0 is reserved for free slots');
    const start = this.start(hash);
    for (let probe = 0; probe < this.capacity; probe++) {
      const slot = (start + probe) % this.capacity;
      const current = Atomics.load(this.keys, slot);
      if (current === hash) return slot;
      if (current !== 0n) continue;
      const previous = Atomics.compareExchange(this.keys, slot, 0n, hash);
      // Ours, or another process claimed it for the same key between our load and our CAS.
      if (previous === 0n || previous === hash) return slot;
    }
    throw new LayoutError(
      `shared-memory limiter table is full (${this.capacity} keys): raise the limiter key capacity and restart the gateway`,
    );
  }

  /** The key's slot, or -1 when no process has claimed one for it. Claims nothing. */
  find(key: string): number {
    const hash = limitKeyHash(key);
    const start = this.start(hash);
    for (let probe = 0; probe < this.capacity; probe++) {
      const slot = (start + probe) % this.capacity;
      const current = Atomics.load(this.keys, slot);
      if (current === hash) return slot;
      if (current === 0n) return -1;
    }
    return -1;
  }

  /** Slots claimed so far. */
  used(): number {
    let count = 0;
    for (let slot = 0; slot < this.capacity; slot++) if (Atomics.load(this.keys, slot) !== 0n) count++;
    return count;
  }
}
