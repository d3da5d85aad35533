/**
 * Which endpoint slot belongs to which endpoint: a hash table in shared memory whose bucket index
 * IS the slot.
 *
 * Allocation is by compare-and-swap, from any process: a bucket holds 0 (free) or the 64-bit hash of
 * an endpoint's identity (provider name, base URL, key index). To find or claim, probe linearly from
 * hash mod capacity; a bucket holding the hash is the answer; a free one is claimed with one
 * Atomics.compareExchange(0 → hash). Two workers claiming the same new endpoint at once both end in
 * the same bucket (the loser of the CAS sees the winner's hash there), so every process maps an
 * endpoint to the same slot without asking the supervisor, and endpoints found at run time
 * (discovery) need no IPC either.
 *
 * Why this rather than supervisor-only allocation: the claim is a single atomic step, so there is no
 * half-done state a killed process could leave (no "key written, slot not yet published"), and the
 * lookup is done once per endpoint per config snapshot, so probing cost does not matter.
 *
 * Slots are never freed while the segment lives: linear probing then needs no tombstones, a free
 * bucket ends every search, and a slot's counters are never inherited by another endpoint. An
 * endpoint removed from config keeps its slot (and a later return finds its history). The cost is
 * that the table fills after `endpointCapacity` distinct endpoints over the gateway's life; the error
 * says to raise the capacity. Reuse, if ever needed, belongs to the supervisor once every worker has
 * moved to a config generation without the endpoint.
 *
 * 64-bit hashes: two distinct endpoints collide (and would share counters) with probability about
 * n²/2⁶⁵, ~3e-14 for 1024 endpoints.
 */

import { createHash } from 'node:crypto';

import { ENDPOINT_KEY_BYTES, type Layout, LayoutError } from './layout.js';

/** What identifies an endpoint for counting. Key index, not the key: no secret is hashed or stored. */
export interface EndpointIdentity {
  readonly provider: string;
  readonly url: string;
  readonly keyIndex: number;
}

/** The 64-bit key stored in the table; never 0, which marks a free bucket. */
export function endpointKeyHash(identity: EndpointIdentity): bigint {
  // Newlines cannot occur in a provider name or a URL, so the joined text is unambiguous.
  const text = `${identity.provider}\n${identity.url}\n${identity.keyIndex}`;
  const hash = createHash('sha256').update(text).digest().readBigInt64LE(0);
  return hash === 0n ? 1n : hash;
}

export class EndpointSlots {
  readonly capacity: number;
  private readonly keys: BigInt64Array;

  constructor(buffer: ArrayBuffer, layout: Layout) {
    this.capacity = layout.params.endpointCapacity;
    const region = layout.regions.endpointKeys;
    this.keys = new BigInt64Array(buffer, region.offset, region.bytes / ENDPOINT_KEY_BYTES);
  }

  private start(hash: bigint): number {
    return Number(BigInt.asUintN(64, hash) % BigInt(this.capacity));
  }

  /** The endpoint's slot, claiming a free one the first time any process asks. */
  slotFor(identity: EndpointIdentity): number {
    return this.slotForHash(endpointKeyHash(identity));
  }

  slotForHash(hash: bigint): number {
    if (hash === 0n) throw new RangeError('endpoint key hash 0 is reserved for free slots');
    const start = this.start(hash);
    for (let probe = 0; probe < this.capacity; probe++) {
      const slot = (start + probe) % this.capacity;
      const current = Atomics.load(this.keys, slot);
      if (current === hash) return slot;
      if (current !== 0n) continue;
      const previous = Atomics.compareExchange(this.keys, slot, 0n, hash);
      // Ours, or another process claimed it for the same endpoint between our load and our CAS.
      if (previous === 0n || previous === hash) return slot;
    }
    throw new LayoutError(
      `shared-memory endpoint table is full (${this.capacity} slots): raise the endpoint capacity and restart the gateway`,
    );
  }

  /** The endpoint's slot, or -1 when no process has claimed one for it. Claims nothing. */
  find(identity: EndpointIdentity): number {
    const hash = endpointKeyHash(identity);
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

  /**
   * The identity hash stored in `slot` (0n when free). Every node computes the same hash for the same
   * provider and URL, so it names an endpoint between gateway nodes, where slot numbers differ.
   */
  hashAt(slot: number): bigint {
    if (!(slot >= 0 && slot < this.capacity && (slot | 0) === slot)) throw new RangeError(`endpoint slot ${slot} outside [0, ${this.capacity})`);
    return Atomics.load(this.keys, slot);
  }

  /** Slots claimed so far. */
  used(): number {
    let count = 0;
    for (let slot = 0; slot < this.capacity; slot++) if (Atomics.load(this.keys, slot) !== 0n) count++;
    return count;
  }
}
