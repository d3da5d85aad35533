/**
 * The prefix-cache index in shared memory: which KV blocks (chain hashes of prompt-blocks.ts) each
 * replica is believed to hold, learned from every routing decision of every worker on this node (and,
 * with sharing, of other nodes). The prefix balancer asks it "how many leading blocks of this prompt
 * does endpoint E hold?" and tells it "E now holds these blocks".
 *
 * Table. A set-associative hash table (layout.ts: PREFIX_INDEX_WAYS ways of PREFIX_ENTRY_BYTES per
 * bucket). An entry is one (block hash, endpoint slot) pair; the bucket is a hash of both, so one
 * block held by four replicas is four entries in four buckets. Why set-associative rather than open
 * addressing: an insert never probes further than its bucket, a full bucket simply replaces its
 * least useful way (no tombstones, no rehash, nothing to clean up after a killed writer), and a
 * lookup touches at most four cache lines.
 *
 * Eviction models the replica, not the table. Each endpoint has an eviction **clock** (its
 * prefixEndpoints record) that counts blocks newly recorded on it; an entry remembers the clock at
 * its last touch (`seq`) and is gone once `capacity` newer blocks were recorded after it: an LRU of
 * `capacity` blocks, which is what vLLM's free-block queue amounts to while prompts keep arriving.
 * Within one recorded prompt the head gets the newest seq and the tail the oldest, so (as in vLLM,
 * which frees a finished sequence's blocks last-first) a chain loses its tail before its head and a
 * shared system prompt outlives the conversations behind it. Entries also age out after the
 * endpoint's TTL, which bounds how long a replica restart or traffic that bypasses the gateway can
 * mislead the balancer. `forget` drops everything an endpoint holds in O(1) by moving its clock a
 * long way forward.
 *
 * Concurrency. Every word is read and written with Atomics; there is no lock, because nothing here
 * is worth one: the index is a routing hint. A writer empties a way (owner 0), writes its fields,
 * then publishes the owner; a reader that matches re-reads the owner. Two workers writing the same
 * way in the same instant can still leave a mixed entry, which matches nothing and is replaced like
 * any stale way; two workers inserting the same new pair can leave two entries, of which lookups see
 * the first. Either costs at most one less-than-perfect routing decision, never a wrong answer.
 */

import {
  FIELD_BYTES,
  type Layout,
  PREFIX_ENDPOINT_FIELDS,
  PREFIX_ENDPOINT_RECORD_BYTES,
  PREFIX_ENTRY_BYTES,
  PREFIX_ENTRY_FIELDS,
  PREFIX_INDEX_WAYS,
  PREFIX_TICK_MS,
  prefixIndexBuckets,
} from './layout.js';

const ENTRY_STRIDE = PREFIX_ENTRY_BYTES / FIELD_BYTES.i32;
const BUCKET_STRIDE = ENTRY_STRIDE * PREFIX_INDEX_WAYS;
const HASH_LOW = PREFIX_ENTRY_FIELDS.hashLow.offset / FIELD_BYTES.i32;
const HASH_HIGH = PREFIX_ENTRY_FIELDS.hashHigh.offset / FIELD_BYTES.i32;
const OWNER = PREFIX_ENTRY_FIELDS.owner.offset / FIELD_BYTES.i32;
const SEQ = PREFIX_ENTRY_FIELDS.seq.offset / FIELD_BYTES.i32;
const TICK = PREFIX_ENTRY_FIELDS.tick.offset / FIELD_BYTES.i32;
const FLAGS = PREFIX_ENTRY_FIELDS.flags.offset / FIELD_BYTES.i32;
/** The entry was learned on this node and not yet shared with other nodes. */
const FLAG_EXPORT = 1;

const EP_STRIDE = PREFIX_ENDPOINT_RECORD_BYTES / FIELD_BYTES.i32;
const CLOCK = PREFIX_ENDPOINT_FIELDS.clock.offset / FIELD_BYTES.i32;
const CAPACITY = PREFIX_ENDPOINT_FIELDS.capacity.offset / FIELD_BYTES.i32;
const TTL_TICKS = PREFIX_ENDPOINT_FIELDS.ttlTicks.offset / FIELD_BYTES.i32;

const TWO_32 = 4294967296;
/** How far `forget` moves a clock: past any capacity, and 3 × 2^30 further records before it could wrap back. */
const FORGET_STEP = 1 << 30;
/** Capacity bound: ages are compared as unsigned 32-bit differences, and `forget` must exceed every capacity. */
export const MAX_PREFIX_CAPACITY = FORGET_STEP - 1;

/** Shared-clock ms → entry time units (wrapping 32-bit, compared by difference). */
function tickOf(nowMs: number): number {
  return Math.floor(nowMs / PREFIX_TICK_MS) | 0;
}

/** The bucket of (block hash, slot): the hash's low word is already well mixed; fold in the rest. */
function bucketIndex(low: number, high: number, slot: number, buckets: number): number {
  let h = low ^ Math.imul(high, 0x9e3779b1) ^ Math.imul(slot + 1, 0x85ebca6b);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return (h >>> 0) % buckets;
}

export class PrefixIndex {
  /** Buckets in the table (each PREFIX_INDEX_WAYS entries). */
  readonly buckets: number;
  readonly endpointCapacity: number;
  private readonly table: Int32Array;
  private readonly endpoints: Int32Array;
  /** Per lookup, per candidate: still matching? Reused; grows with the widest group seen. */
  private active = new Uint8Array(8);
  /** Per record: the way each block was found in (-1: not found). Reused; grows with the longest prompt seen. */
  private found = new Int32Array(256);
  /** Where the last export scan stopped, so successive scans share the table's work fairly. */
  private exportCursor = 0;

  constructor(buffer: ArrayBuffer, layout: Layout) {
    this.buckets = prefixIndexBuckets(layout.params);
    this.endpointCapacity = layout.params.endpointCapacity;
    const table = layout.regions.prefixIndex;
    this.table = new Int32Array(buffer, table.offset, this.buckets * BUCKET_STRIDE);
    const eps = layout.regions.prefixEndpoints;
    this.endpoints = new Int32Array(buffer, eps.offset, eps.bytes / FIELD_BYTES.i32);
  }

  /** Entries the table can hold. */
  get entries(): number {
    return this.buckets * PREFIX_INDEX_WAYS;
  }

  private check(slot: number): void {
    if (!(slot >= 0 && slot < this.endpointCapacity && (slot | 0) === slot)) {
      throw new RangeError(`endpoint slot ${slot} outside [0, ${this.endpointCapacity})`);
    }
  }

  // ── the endpoint model ─────────────────────────────────────────────────────────────────────

  /**
   * How many blocks the endpoint holds and how long an untouched entry lives. Every worker's balancer
   * calls this when it is built (and the scraper when it learns the replica's real KV size), all
   * with the same values; loads first so that repeating a value dirties no cache line.
   */
  configure(slot: number, capacity: number, ttlMs: number): void {
    this.check(slot);
    if (!(Number.isInteger(capacity) && capacity >= 0 && capacity <= MAX_PREFIX_CAPACITY)) {
      throw new RangeError(`prefix capacity ${capacity} outside [0, ${MAX_PREFIX_CAPACITY}]`);
    }
    const ttlTicks = Math.max(1, Math.min(0x7fffffff, Math.ceil(ttlMs / PREFIX_TICK_MS)));
    const base = slot * EP_STRIDE;
    if (Atomics.load(this.endpoints, base + CAPACITY) !== capacity) Atomics.store(this.endpoints, base + CAPACITY, capacity);
    if (Atomics.load(this.endpoints, base + TTL_TICKS) !== ttlTicks) Atomics.store(this.endpoints, base + TTL_TICKS, ttlTicks);
  }

  /** KV blocks the endpoint is modelled to hold (0: not indexed). */
  capacity(slot: number): number {
    this.check(slot);
    return Atomics.load(this.endpoints, slot * EP_STRIDE + CAPACITY);
  }

  /** Blocks newly recorded on the endpoint so far (wrapping): its eviction clock. */
  clock(slot: number): number {
    this.check(slot);
    return Atomics.load(this.endpoints, slot * EP_STRIDE + CLOCK) >>> 0;
  }

  /** Everything the endpoint holds is gone (it restarted, or its cache was reset). */
  forget(slot: number): void {
    this.check(slot);
    Atomics.add(this.endpoints, slot * EP_STRIDE + CLOCK, FORGET_STEP);
  }

  /** Is the entry at `e` (owned by slot `owner − 1`) still held, judged by its owner's clock and TTL? */
  private live(e: number, owner: number, nowTick: number): boolean {
    const base = (owner - 1) * EP_STRIDE;
    const capacity = Atomics.load(this.endpoints, base + CAPACITY);
    if (capacity <= 0) return false;
    const age = (Atomics.load(this.endpoints, base + CLOCK) - Atomics.load(this.table, e + SEQ)) >>> 0;
    if (age >= capacity) return false;
    return ((nowTick - Atomics.load(this.table, e + TICK)) >>> 0) <= (Atomics.load(this.endpoints, base + TTL_TICKS) >>> 0);
  }

  /** The table index of the entry for (hash, slot), live or not; -1 when absent. */
  private find(low: number, high: number, slot: number): number {
    const table = this.table;
    const owner = slot + 1;
    const start = bucketIndex(low, high, slot, this.buckets) * BUCKET_STRIDE;
    for (let e = start, end = start + BUCKET_STRIDE; e < end; e += ENTRY_STRIDE) {
      if (
        Atomics.load(table, e + OWNER) === owner &&
        Atomics.load(table, e + HASH_LOW) === low &&
        Atomics.load(table, e + HASH_HIGH) === high &&
        // Re-read: a writer empties the way before rewriting it, so a torn entry shows here.
        Atomics.load(table, e + OWNER) === owner
      ) {
        return e;
      }
    }
    return -1;
  }

  // ── lookups ───────────────────────────────────────────────────────────────────────────────

  /** Does the endpoint hold the block (present, not evicted, not expired)? */
  holds(slot: number, hash: number, nowMs: number): boolean {
    this.check(slot);
    const low = hash | 0;
    const high = Math.floor(hash / TWO_32) | 0;
    const e = this.find(low, high, slot);
    return e >= 0 && this.live(e, slot + 1, tickOf(nowMs));
  }

  /**
   * For each of `count` endpoint slots, how many leading blocks of `blocks` it holds: out[i] for
   * slots[i]. One pass over the chain for all candidates together, stopping at the first block no
   * candidate still matching holds, so a prompt costs (longest match + 1) lookups per candidate.
   */
  matchLengths(blocks: ArrayLike<number>, slots: ArrayLike<number>, count: number, out: Int32Array, nowMs: number): void {
    if (this.active.length < count) this.active = new Uint8Array(Math.max(count, this.active.length * 2));
    const active = this.active;
    let alive = 0;
    for (let i = 0; i < count; i++) {
      const slot = slots[i]!;
      this.check(slot);
      out[i] = 0;
      const indexed = Atomics.load(this.endpoints, slot * EP_STRIDE + CAPACITY) > 0;
      active[i] = indexed ? 1 : 0;
      if (indexed) alive++;
    }
    const nowTick = tickOf(nowMs);
    for (let b = 0; b < blocks.length && alive > 0; b++) {
      const hash = blocks[b]!;
      const low = hash | 0;
      const high = Math.floor(hash / TWO_32) | 0;
      for (let i = 0; i < count; i++) {
        if (active[i] === 0) continue;
        const slot = slots[i]!;
        const e = this.find(low, high, slot);
        if (e >= 0 && this.live(e, slot + 1, nowTick)) {
          out[i] = b + 1;
        } else {
          active[i] = 0;
          alive--;
        }
      }
    }
  }

  // ── recording ─────────────────────────────────────────────────────────────────────────────

  /**
   * The endpoint now holds `blocks` (a prompt's chain, head first): held ones are touched, missing
   * or evicted ones inserted and counted on the endpoint's eviction clock. `share` marks inserted
   * entries for export to other nodes. Returns how many blocks were new. Does nothing for an
   * endpoint that is not indexed (capacity 0).
   */
  record(slot: number, blocks: ArrayLike<number>, nowMs: number, share = true): number {
    this.check(slot);
    const n = blocks.length;
    const base = slot * EP_STRIDE;
    const capacity = Atomics.load(this.endpoints, base + CAPACITY);
    if (capacity <= 0 || n === 0) return 0;
    if (this.found.length < n) this.found = new Int32Array(Math.max(n, this.found.length * 2));
    const found = this.found;
    const nowTick = tickOf(nowMs);
    const owner = slot + 1;
    let fresh = 0;
    for (let b = 0; b < n; b++) {
      const hash = blocks[b]!;
      const e = this.find(hash | 0, Math.floor(hash / TWO_32) | 0, slot);
      const held = e >= 0 && this.live(e, owner, nowTick);
      found[b] = held ? e : -1;
      if (!held) fresh++;
    }
    // Claim `fresh` places on the clock at once; the head gets the newest seq, the tail the oldest.
    const newest = (Atomics.add(this.endpoints, base + CLOCK, fresh) + fresh) | 0;
    let rank = 0;
    const flags = share ? FLAG_EXPORT : 0;
    for (let b = 0; b < n; b++) {
      const e = found[b]!;
      if (e >= 0) {
        this.touch(e, newest, nowTick, capacity);
        continue;
      }
      // A prompt longer than the replica's cache cannot be held whole: its tail is already evicted.
      if (rank < capacity) {
        const hash = blocks[b]!;
        this.insert(hash | 0, Math.floor(hash / TWO_32) | 0, slot, (newest - rank) | 0, nowTick, flags);
      }
      rank++;
    }
    return fresh;
  }

  /**
   * One block learned from another node: inserted (counting on the clock) when absent, touched when
   * held. Never marked for export, so what other nodes taught is not echoed back to them.
   */
  learn(slot: number, hash: number, nowMs: number): boolean {
    this.check(slot);
    const base = slot * EP_STRIDE;
    if (Atomics.load(this.endpoints, base + CAPACITY) <= 0) return false;
    const low = hash | 0;
    const high = Math.floor(hash / TWO_32) | 0;
    const nowTick = tickOf(nowMs);
    const e = this.find(low, high, slot);
    if (e >= 0 && this.live(e, slot + 1, nowTick)) {
      this.touch(e, Atomics.load(this.endpoints, base + CLOCK), nowTick, Atomics.load(this.endpoints, base + CAPACITY));
      return false;
    }
    const seq = (Atomics.add(this.endpoints, base + CLOCK, 1) + 1) | 0;
    this.insert(low, high, slot, seq, nowTick, 0);
    return true;
  }

  /**
   * A touch refreshes seq and time; skipped when this very tick already refreshed it to within 1/16
   * of the capacity of this clock, so a hot shared prefix does not have every worker dirty the same
   * lines on every request, while its place in the LRU order stays right to a few percent.
   */
  private touch(e: number, seq: number, nowTick: number, capacity: number): void {
    const table = this.table;
    if (Atomics.load(table, e + TICK) === nowTick && ((seq - Atomics.load(table, e + SEQ)) >>> 0) * 16 < capacity) return;
    Atomics.store(table, e + SEQ, seq);
    Atomics.store(table, e + TICK, nowTick);
  }

  /** Writes the pair into its bucket: an empty way, else an evicted one, else the least recently touched. */
  private insert(low: number, high: number, slot: number, seq: number, nowTick: number, flags: number): void {
    const table = this.table;
    const start = bucketIndex(low, high, slot, this.buckets) * BUCKET_STRIDE;
    let victim = -1;
    let oldest = -1;
    for (let e = start, end = start + BUCKET_STRIDE; e < end; e += ENTRY_STRIDE) {
      const owner = Atomics.load(table, e + OWNER);
      if (owner === 0 || !this.live(e, owner, nowTick)) {
        victim = e;
        break;
      }
      const age = (nowTick - Atomics.load(table, e + TICK)) >>> 0;
      if (age > oldest) {
        oldest = age;
        victim = e;
      }
    }
    Atomics.store(table, victim + OWNER, 0);
    Atomics.store(table, victim + HASH_LOW, low);
    Atomics.store(table, victim + HASH_HIGH, high);
    Atomics.store(table, victim + SEQ, seq);
    Atomics.store(table, victim + TICK, nowTick);
    Atomics.store(table, victim + FLAGS, flags);
    Atomics.store(table, victim + OWNER, slot + 1);
  }

  // ── sharing between nodes ─────────────────────────────────────────────────────────────────

  /**
   * Visits up to `max` live entries marked for export whose endpoint `accept`s, clearing their mark:
   * what this node learned since the last call, for the supervisor to publish. Scans on from where
   * the previous call stopped, so a busy table is covered over several calls rather than all at once.
   * Returns how many entries were visited.
   */
  drainExports(accept: (slot: number) => boolean, visit: (slot: number, hash: number) => void, max: number, nowMs: number): number {
    const table = this.table;
    const total = this.buckets * PREFIX_INDEX_WAYS;
    const nowTick = tickOf(nowMs);
    let visited = 0;
    let scanned = 0;
    let cursor = this.exportCursor;
    while (scanned < total && visited < max) {
      const e = cursor * ENTRY_STRIDE;
      cursor = cursor + 1 < total ? cursor + 1 : 0;
      scanned++;
      if ((Atomics.load(table, e + FLAGS) & FLAG_EXPORT) === 0) continue;
      const owner = Atomics.load(table, e + OWNER);
      if (owner === 0 || !accept(owner - 1)) continue;
      Atomics.and(table, e + FLAGS, ~FLAG_EXPORT);
      if (!this.live(e, owner, nowTick)) continue;
      const low = Atomics.load(table, e + HASH_LOW) >>> 0;
      const high = Atomics.load(table, e + HASH_HIGH) >>> 0;
      visit(owner - 1, high * TWO_32 + low);
      visited++;
    }
    this.exportCursor = cursor;
    return visited;
  }

  /** Live entries of one endpoint (a full scan: for tests, metrics and the admin API, not the request path). */
  countHeld(slot: number, nowMs: number): number {
    this.check(slot);
    const table = this.table;
    const owner = slot + 1;
    const nowTick = tickOf(nowMs);
    let held = 0;
    for (let e = 0; e < table.length; e += ENTRY_STRIDE) {
      if (Atomics.load(table, e + OWNER) === owner && this.live(e, owner, nowTick)) held++;
    }
    return held;
  }
}
