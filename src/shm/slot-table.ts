/**
 * A hash table in shared memory whose bucket index IS the slot: the mechanism behind the endpoint
 * slots and the limiter keys (see endpoint-slots.ts for why it is built this way). A bucket holds 0
 * (free) or a 64-bit key hash; finding or claiming probes linearly from hash mod capacity, and a
 * free bucket is claimed with one compare-and-swap, so every process maps a key to the same slot
 * without asking anyone. Slots are never freed: a free bucket ends every probe.
 */

import { createHash } from 'node:crypto';

import { LayoutError } from './layout.js';

/** The 64-bit key of a text: the first 8 bytes of its sha256; never 0, which marks a free bucket. */
export function slotKeyHash(text: string): bigint {
  const hash = createHash('sha256').update(text).digest().readBigInt64LE(0);
  return hash === 0n ? 1n : hash;
}

export class SlotTable {
  constructor(
    private readonly keys: BigInt64Array,
    readonly capacity: number,
    /** What a full table is called in its error (`endpoint table`, `limiter table`) and how to fix it. */
    private readonly fullMessage: string,
    /** What a slot names in range errors (`endpoint`, `limit key`). */
    private readonly what: string,
  ) {}

  private start(hash: bigint): number {
    return Number(BigInt.asUintN(64, hash) % BigInt(this.capacity));
  }

  /** The hash's slot, claiming a free one the first time any process asks. Throws LayoutError when full. */
  slotForHash(hash: bigint): number {
    if (hash === 0n) throw new RangeError(`${this.what} key hash 0 is reserved for free slots`);
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
    throw new LayoutError(this.fullMessage);
  }

  /** The hash's slot, or -1 when no process has claimed one for it. Claims nothing. */
  findHash(hash: bigint): number {
    const start = this.start(hash);
    for (let probe = 0; probe < this.capacity; probe++) {
      const slot = (start + probe) % this.capacity;
      const current = Atomics.load(this.keys, slot);
      if (current === hash) return slot;
      // No slot is ever freed, so a free bucket ends the probe sequence.
      if (current === 0n) return -1;
    }
    return -1;
  }

  /** The key hash stored in `slot` (0n when free). */
  hashAt(slot: number): bigint {
    if (!(slot >= 0 && slot < this.capacity && (slot | 0) === slot)) throw new RangeError(`${this.what} slot ${slot} outside [0, ${this.capacity})`);
    return Atomics.load(this.keys, slot);
  }

  /** Slots claimed so far. */
  used(): number {
    let count = 0;
    for (let slot = 0; slot < this.capacity; slot++) if (Atomics.load(this.keys, slot) !== 0n) count++;
    return count;
  }
}
