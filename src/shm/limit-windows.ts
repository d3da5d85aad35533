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
 * Reads of the ring need no re-check after the Atomics load of the head: the only concurrent ring
 * writes are refunds (a lower count: at worst a conservative refusal) and copies of the head's current
 * bucket, which are ignored.
 *
 * Charges and refunds run in the addon (native/limit-windows.cc), the same algorithm on 64-bit
 * words: in JavaScript a 64-bit CAS goes through BigInt64Array, and every BigInt it reads or builds
 * is garbage (about 225 bytes per charge, five per limited request, measured). Reads for admin and
 * Retry-After stay here.
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

import { nativeWindows, type NativeWindows, type NativeWindowsHandle } from './segment.js';
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
}

/**
 * Constants precomputed per packing, for decode() (charges and refunds take `highBits` to the addon,
 * which derives the rest): a `2 ** x` with a variable exponent is slow in V8 11.
 */
function packing(countBits: 32 | 42): WindowPacking {
  const highBits = countBits - 32;
  return { countBits, highBits, highMask: (1 << highBits) - 1, bias: Math.pow(2, countBits - 1) };
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

  private readonly w64: BigInt64Array;
  private readonly w32: Int32Array;
  private readonly s64 = new BigInt64Array(1);
  private readonly s32 = new Int32Array(this.s64.buffer);
  /** What the last decode() found (fields rather than a tuple: no allocation per call). */
  private decodedEpoch = 0;
  private decodedCount = 0;
  /** The addon writes the usage it saw and the epoch it counted at here: [lastUsed, lastEpoch]. */
  private readonly seen = new Float64Array(2);
  private readonly handle: NativeWindowsHandle;
  private readonly charge: NativeWindows['windowsCharge'];
  private readonly give: NativeWindows['windowsRefund'];

  constructor(buffer: ArrayBuffer, layout: Layout) {
    this.capacity = limitKeyCapacity(layout.params);
    const region = layout.regions.limitWindows;
    this.w64 = new BigInt64Array(buffer, region.offset, region.bytes / FIELD_BYTES.i64);
    this.w32 = new Int32Array(buffer, region.offset, region.bytes / FIELD_BYTES.i32);
    const native = nativeWindows();
    this.handle = native.windowsAttach(buffer, region.offset, region.bytes, this.seen);
    this.charge = native.windowsCharge;
    this.give = native.windowsRefund;
  }

  /** Usage of the window before the last tryCharge / usage call, from this process's view. */
  get lastUsed(): number {
    return this.seen[0]!;
  }

  /** Epoch the last tryCharge / usage call counted at (the head's, when it was ahead of ours). */
  get lastEpoch(): number {
    return this.seen[1]!;
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
    return this.charge(this.handle, head, packing.highBits, buckets, epoch, cost, limit);
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
    return this.give(this.handle, head, packing.highBits, buckets, epoch, charged, amount) === 1;
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
