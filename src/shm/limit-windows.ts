/**
 * Sliding windows in shared memory for the limiter: per limiter slot, two windows (A and B), each a
 * head word and a ring of older buckets (layout.ts, LIMIT_WINDOW_FIELDS). The limiter decides what
 * the windows count (requests and tokens, or tokens and cost) and how long a bucket is; this file
 * only knows epochs (bucket numbers), counts and the number of buckets a window spans.
 *
 * A window of `buckets` buckets at epoch e counts every bucket whose epoch is in (e − buckets, e].
 *
 * Why one CAS per check-and-charge, and no locks: a lock held by a worker that is SIGKILLed or
 * descheduled stalls every other worker on that key. Here all charges go to the head, a single
 * 64-bit word packing (epoch, count); older buckets sit in the ring and only ever decrease (refunds).
 * A charge reads the head, sums the ring, and CASes the head from the value it read: if the CAS
 * succeeds, the head did not change in between and the ring can only have shrunk, so the check held
 * at the instant of the CAS. N racing charges against a limit of N therefore admit exactly N.
 *
 * Moving to a new epoch: the head's bucket is first copied into ring[epoch % buckets] (by CAS, from
 * the value read there), then the head is CASed to (new epoch, cost). A reader ignores ring entries
 * whose epoch is not older than the head's (a copy of the head's own bucket), so the copy is never
 * counted twice, and if the head CAS fails the next attempt overwrites the copy with the head's
 * newer value. Epochs only grow per window: a process whose clock is slightly behind charges into
 * the head's epoch instead of moving it back.
 *
 * Reads of the ring are plain loads after an Atomics load of the head (an acquire: later loads are
 * not moved before it by V8 or the CPU), and need no re-check: the only concurrent ring writes are
 * refunds (a lower count: at worst a conservative refusal) and copies of the head's current bucket,
 * which are ignored. Plain loads matter here: Atomics.load on an ArrayBuffer costs ~10 ns in V8 11,
 * a plain load ~1 ns, and a window has up to 61 words.
 *
 * A refund goes to the bucket the charge went to, if that bucket is still in the window (head or
 * ring); a charge that has already left the window needs no refund. Counts are signed, so a top-up
 * (a negative charge) can leave credit in a bucket that lasts as long as the bucket does.
 *
 * Crash consistency: every change is one CAS on one word, so a SIGKILLed process leaves each word
 * either before or after its change. What it can leave behind is a charge whose refund never comes,
 * which expires with its bucket.
 */

import { endianness } from 'node:os';

import { FIELD_BYTES, type Layout, LIMIT_RECORD_BYTES, LIMIT_RING_SLOTS, LIMIT_WINDOW_FIELDS, limitKeyCapacity } from './layout.js';

if (endianness() !== 'LE') {
  // The 32-bit halves of a packed word are read through an Int32Array alias (low half first).
  throw new Error('Sluice shared-memory limiter windows assume a little-endian CPU');
}

/**
 * How a window packs (epoch, count) into 64 bits: `countBits` low bits hold count + 2^(countBits−1),
 * the rest the epoch. Rate windows: 32/32 (counts up to ±2^31, epochs of seconds for 136 years).
 * Quota windows: 22/42 (counts up to ±2.2·10^12, epochs of hours until the year 2448).
 */
export interface WindowPacking {
  readonly countBits: 32 | 42;
  /** Count bits stored in the high half, below the epoch (countBits − 32). */
  readonly highBits: number;
  readonly highMask: number;
  /** 2^(countBits−1), added to a count before it is stored. */
  readonly bias: number;
  /** 2^countBits: stored (biased) counts are below it. */
  readonly range: number;
}

/**
 * Constants precomputed per packing: a `2 ** x` with a variable exponent made the 60-word ring scan
 * twenty times slower in V8 11 (measured), so nothing on the charge path computes a power.
 */
function packing(countBits: 32 | 42): WindowPacking {
  const highBits = countBits - 32;
  return { countBits, highBits, highMask: (1 << highBits) - 1, bias: Math.pow(2, countBits - 1), range: Math.pow(2, countBits) };
}
export const RATE_PACKING: WindowPacking = packing(32);
export const QUOTA_PACKING: WindowPacking = packing(42);

/** 0 = window A, 1 = window B. */
export type WindowMetric = 0 | 1;

const WORDS_PER_RECORD = LIMIT_RECORD_BYTES / FIELD_BYTES.i64;
const HEAD_A = LIMIT_WINDOW_FIELDS.headA.offset / FIELD_BYTES.i64;
const HEAD_B = LIMIT_WINDOW_FIELDS.headB.offset / FIELD_BYTES.i64;
/** Int32 index of the record's generation (a spare word after both windows). */
const GENERATION_I32 = LIMIT_WINDOW_FIELDS.generation.offset / FIELD_BYTES.i32;
const I32_PER_RECORD = LIMIT_RECORD_BYTES / FIELD_BYTES.i32;
const TWO_32 = 4294967296;

export interface WindowBucket {
  readonly epoch: number;
  readonly count: number;
}

export class LimitWindows {
  readonly capacity: number;
  /** Usage of the window before the last tryCharge / usage call, from this process's view. */
  lastUsed = 0;
  /** Epoch the last tryCharge / usage call counted at (the head's, when it was ahead of ours). */
  lastEpoch = 0;

  private readonly w64: BigInt64Array;
  private readonly w32: Int32Array;
  /** Conversions between a BigInt word and its halves without allocating more than the BigInt. */
  private readonly s64 = new BigInt64Array(1);
  private readonly s32 = new Int32Array(this.s64.buffer);
  /** What the last decode() found (fields rather than a tuple: no allocation per call). */
  private decodedEpoch = 0;
  private decodedCount = 0;

  constructor(buffer: ArrayBuffer, layout: Layout) {
    this.capacity = limitKeyCapacity(layout.params);
    const region = layout.regions.limitWindows;
    this.w64 = new BigInt64Array(buffer, region.offset, region.bytes / FIELD_BYTES.i64);
    this.w32 = new Int32Array(buffer, region.offset, region.bytes / FIELD_BYTES.i32);
  }

  private head(slot: number, metric: WindowMetric): number {
    if (!(slot >= 0 && slot < this.capacity && (slot | 0) === slot)) {
      throw new RangeError(`limiter slot ${slot} outside [0, ${this.capacity})`);
    }
    return slot * WORDS_PER_RECORD + (metric === 0 ? HEAD_A : HEAD_B);
  }

  private static checkBuckets(buckets: number): void {
    if (!(buckets >= 1 && buckets <= LIMIT_RING_SLOTS && (buckets | 0) === buckets)) {
      throw new RangeError(`a window spans 1..${LIMIT_RING_SLOTS} buckets, got ${buckets}`);
    }
  }

  /** Packs (epoch, count) through the scratch halves and returns the 64-bit word. */
  private encode(packing: WindowPacking, epoch: number, count: number): bigint {
    const biased = count + packing.bias;
    if (!(biased >= 0 && biased < packing.range)) {
      throw new RangeError(`limiter count ${count} outside the ${packing.countBits}-bit window range`);
    }
    const high = Math.floor(biased / TWO_32);
    this.s32[0] = biased - high * TWO_32;
    this.s32[1] = epoch * (packing.highMask + 1) + high;
    return this.s64[0]!;
  }

  /**
   * Sum of ring counts with an epoch in (oldest, below): the window's older buckets, leaving out any
   * copy of the head's own bucket (epoch ≥ below). Epochs are ≥ 1, so an empty word (epoch 0) is
   * outside any window once `oldest` is clamped at 0, and a bucket outside the window costs one load.
   */
  private ringSum(head: number, buckets: number, packing: WindowPacking, oldest: number, below: number): number {
    const highBits = packing.highBits;
    const highMask = packing.highMask;
    const bias = packing.bias;
    const w32 = this.w32;
    const after = oldest > 0 ? oldest : 0;
    let sum = 0;
    let index = (head + 1) * 2;
    for (let j = 0; j < buckets; j++, index += 2) {
      const hi = w32[index + 1]! >>> 0;
      const epoch = hi >>> highBits;
      if (epoch > after && epoch < below) sum += (hi & highMask) * TWO_32 + (w32[index]! >>> 0) - bias;
    }
    return sum;
  }

  /**
   * Charges `cost` to the window at `epoch` if its usage plus `cost` stays within `limit`: one CAS,
   * exact across processes. Returns the epoch charged (≥ `epoch`; the head's when it was ahead) or
   * -1 when refused; either way `lastUsed` holds the usage it saw before charging. A cost of 0
   * writes nothing and is refused only when the window is full (usage ≥ limit). A negative cost (a
   * top-up) is never refused; neither is anything with limit = Infinity (usage beyond a reservation,
   * reported after the fact).
   */
  tryCharge(
    slot: number,
    metric: WindowMetric,
    packing: WindowPacking,
    buckets: number,
    epoch: number,
    cost: number,
    limit: number,
  ): number {
    const head = this.head(slot, metric);
    LimitWindows.checkBuckets(buckets);
    const highBits = packing.highBits;
    const highMask = packing.highMask;
    const bias = packing.bias;
    const w64 = this.w64;
    const s32 = this.s32;
    for (;;) {
      const word = Atomics.load(w64, head);
      this.s64[0] = word;
      const lo = s32[0]! >>> 0;
      const hi = s32[1]! >>> 0;
      const empty = lo === 0 && hi === 0;
      const headEpoch = empty ? 0 : hi >>> highBits;
      const headCount = empty ? 0 : (hi & highMask) * TWO_32 + lo - bias;
      const at = headEpoch > epoch ? headEpoch : epoch;
      const oldest = at - buckets;
      let used = headEpoch > oldest ? headCount : 0;
      if (buckets > 1) used += this.ringSum(head, buckets, packing, oldest, headEpoch);
      this.lastUsed = used;
      this.lastEpoch = at;
      // A charge of 0 still needs the window not to be full: a request that reserves no tokens is
      // refused once the tokens are used up, like any other.
      if (cost >= 0 && used + (cost > 0 ? cost : 1) > limit) return -1;
      if (cost === 0) return at;

      if (headEpoch === at && !empty) {
        if (Atomics.compareExchange(w64, head, word, this.encode(packing, at, headCount + cost)) === word) return at;
        continue;
      }
      // The head holds an older bucket. Still inside the window and not empty: keep it in the ring
      // before the head moves on (see the top of the file).
      if (buckets > 1 && !empty && headEpoch > oldest && headCount !== 0) {
        const ring = head + 1 + (headEpoch % buckets);
        const previous = Atomics.load(w64, ring);
        if (previous !== word && Atomics.compareExchange(w64, ring, previous, word) !== previous) continue;
      }
      if (Atomics.compareExchange(w64, head, word, this.encode(packing, at, cost)) === word) return at;
    }
  }

  /** The window's usage at `epoch` (sets lastUsed and lastEpoch too). Writes nothing. */
  usage(slot: number, metric: WindowMetric, packing: WindowPacking, buckets: number, epoch: number): number {
    this.tryCharge(slot, metric, packing, buckets, epoch, 0, Infinity);
    return this.lastUsed;
  }

  /**
   * Gives `amount` back to the bucket of `charged` (an epoch tryCharge returned) if that bucket is
   * still in the window at `epoch`. Returns whether anything was given back.
   */
  refund(
    slot: number,
    metric: WindowMetric,
    packing: WindowPacking,
    buckets: number,
    epoch: number,
    charged: number,
    amount: number,
  ): boolean {
    if (amount === 0) return false;
    const head = this.head(slot, metric);
    LimitWindows.checkBuckets(buckets);
    const w64 = this.w64;
    for (;;) {
      const word = Atomics.load(w64, head);
      this.decode(packing, word);
      const headEpoch = this.decodedEpoch;
      const headCount = this.decodedCount;
      if (headEpoch === charged) {
        if (Atomics.compareExchange(w64, head, word, this.encode(packing, charged, headCount - amount)) === word) return true;
        continue;
      }
      // Behind the charge: the window was reset since. Ahead: the bucket is in the ring, or gone.
      if (headEpoch < charged || buckets === 1) return false;
      const at = headEpoch > epoch ? headEpoch : epoch;
      if (charged <= at - buckets) return false;
      const ring = head + 1 + (charged % buckets);
      const previous = Atomics.load(w64, ring);
      this.decode(packing, previous);
      if (this.decodedEpoch !== charged) return false;
      if (Atomics.compareExchange(w64, ring, previous, this.encode(packing, charged, this.decodedCount - amount)) === previous) return true;
    }
  }

  /** Sets decodedEpoch and decodedCount from a packed word (0 = empty: epoch 0, count 0). */
  private decode(packing: WindowPacking, word: bigint): void {
    this.s64[0] = word;
    const lo = this.s32[0]! >>> 0;
    const hi = this.s32[1]! >>> 0;
    if (lo === 0 && hi === 0) {
      this.decodedEpoch = 0;
      this.decodedCount = 0;
      return;
    }
    this.decodedEpoch = hi >>> packing.highBits;
    this.decodedCount = (hi & packing.highMask) * TWO_32 + lo - packing.bias;
  }

  /** The window's buckets at `epoch` (head and ring), oldest first: for admin reads and retry times. */
  buckets(slot: number, metric: WindowMetric, packing: WindowPacking, buckets: number, epoch: number): WindowBucket[] {
    const head = this.head(slot, metric);
    LimitWindows.checkBuckets(buckets);
    this.decode(packing, Atomics.load(this.w64, head));
    const headEpoch = this.decodedEpoch;
    const headCount = this.decodedCount;
    const at = headEpoch > epoch ? headEpoch : epoch;
    const oldest = at - buckets;
    const out: WindowBucket[] = [];
    if (buckets > 1) {
      for (let j = 0; j < buckets; j++) {
        this.decode(packing, Atomics.load(this.w64, head + 1 + j));
        const ringEpoch = this.decodedEpoch;
        if (ringEpoch > oldest && ringEpoch < headEpoch && this.decodedCount !== 0) out.push({ epoch: ringEpoch, count: this.decodedCount });
      }
    }
    if (headEpoch > oldest && headCount !== 0) out.push({ epoch: headEpoch, count: headCount });
    return out.sort((a, b) => a.epoch - b.epoch);
  }

  /**
   * The epoch whose bucket, when it leaves the window, brings usage down by at least `need`; -1 when
   * even an empty window would not (the window holds less than `need`). For Retry-After.
   */
  freeingEpoch(slot: number, metric: WindowMetric, packing: WindowPacking, buckets: number, epoch: number, need: number): number {
    let freed = 0;
    for (const bucket of this.buckets(slot, metric, packing, buckets, epoch)) {
      freed += bucket.count;
      if (freed >= need) return bucket.epoch;
    }
    return -1;
  }

  /**
   * Bumped by reset: a ticket remembers the generation it charged under and skips its refund after
   * a reset, which would otherwise take from charges made since.
   */
  generation(slot: number): number {
    this.head(slot, 0);
    return this.w32[slot * I32_PER_RECORD + GENERATION_I32]!;
  }

  /** Empties both windows of the slot (admin reset). Charges racing with it may survive it. */
  reset(slot: number): void {
    const head = this.head(slot, 0);
    Atomics.add(this.w32, slot * I32_PER_RECORD + GENERATION_I32, 1);
    for (let word = 0; word < 2 * (LIMIT_RING_SLOTS + 1); word++) Atomics.store(this.w64, head + word, 0n);
  }
}
