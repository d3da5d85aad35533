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

import { LIMIT_KEY_BYTES, type Layout, limitKeyCapacity } from './layout.js';
import { SlotTable, slotKeyHash } from './slot-table.js';

/** The 64-bit key stored in the table for a limiter key string; never 0, which marks a free bucket. */
export function limitKeyHash(key: string): bigint {
  return slotKeyHash(key);
}

export class LimitKeys extends SlotTable {
  constructor(buffer: ArrayBuffer, layout: Layout) {
    const capacity = limitKeyCapacity(layout.params);
    const region = layout.regions.limitKeys;
    super(
      new BigInt64Array(buffer, region.offset, region.bytes / LIMIT_KEY_BYTES),
      capacity,
      `shared-memory limiter table is full (${capacity} keys): raise the limiter key capacity and restart the gateway`,
      'limit',
    );
  }

  /** The key's slot, claiming a free one the first time any process asks. Throws LayoutError when full. */
  slotFor(key: string): number {
    return this.slotForHash(limitKeyHash(key));
  }

  /** The key's slot, or -1 when no process has claimed one for it. Claims nothing. */
  find(key: string): number {
    return this.findHash(limitKeyHash(key));
  }
}
