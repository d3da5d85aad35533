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

import { ENDPOINT_KEY_BYTES, type Layout } from './layout.js';
import { SlotTable, slotKeyHash } from './slot-table.js';

/** What identifies an endpoint for counting. Key index, not the key: no secret is hashed or stored. */
export interface EndpointIdentity {
  readonly provider: string;
  readonly url: string;
  readonly keyIndex: number;
}

/** The 64-bit key stored in the table; never 0, which marks a free bucket. */
export function endpointKeyHash(identity: EndpointIdentity): bigint {
  // Newlines cannot occur in a provider name or a URL, so the joined text is unambiguous.
  return slotKeyHash(`${identity.provider}\n${identity.url}\n${identity.keyIndex}`);
}

export class EndpointSlots extends SlotTable {
  constructor(buffer: ArrayBuffer, layout: Layout) {
    const capacity = layout.params.endpointCapacity;
    const region = layout.regions.endpointKeys;
    super(
      new BigInt64Array(buffer, region.offset, region.bytes / ENDPOINT_KEY_BYTES),
      capacity,
      `shared-memory endpoint table is full (${capacity} slots): raise the endpoint capacity and restart the gateway`,
      'endpoint',
    );
  }

  /** The endpoint's slot, claiming a free one the first time any process asks. */
  slotFor(identity: EndpointIdentity): number {
    return this.slotForHash(endpointKeyHash(identity));
  }

  /** The endpoint's slot, or -1 when no process has claimed one for it. Claims nothing. */
  find(identity: EndpointIdentity): number {
    return this.findHash(endpointKeyHash(identity));
  }
}
