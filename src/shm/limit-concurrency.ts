/**
 * Concurrent-request limits in shared memory: per limiter slot, one Int32 per worker slot holding the
 * requests that worker has admitted under the key and not yet released. Worker w writes only its own
 * element, so a worker that dies (even by SIGKILL) leaves exactly its own requests there, and the
 * supervisor zeroes them (reclaimWorker) before forking the replacement, as endpoint-counters.ts
 * does for in-flight counts. A single shared counter could not be corrected after a crash.
 *
 * Check-and-acquire without a lock: increment your own element, then sum all elements; if the sum
 * is over the limit, take the increment back (and try again, or refuse). Both steps are sequentially consistent
 * (a locked add, then loads), so of two workers racing for the last place at least one sees the
 * other's increment: the number admitted never exceeds the limit. The price is that two racers can
 * both see each other and both back off; they retry a few times, spread apart, before refusing, so
 * a spurious refusal needs several collisions in a row at the exact moment the key is one short of
 * its limit.
 *
 * Elements of one key are adjacent (key-major blocks), so a sum reads a few cache lines.
 */

import { FIELD_BYTES, type Layout, limitConcurrencyBlockBytes, limitKeyCapacity } from './layout.js';

/**
 * On x86 a locked add is a full fence, so plain loads after it cannot be satisfied before it and the
 * sum may use them (~1 ns each instead of ~10 ns for Atomics.load in V8 11). Elsewhere (arm64) only
 * Atomics.load orders a load after the add's store, so the sum uses it.
 */
const PLAIN_SUM_IS_ORDERED = process.arch === 'x64' || process.arch === 'ia32';

/** Acquire attempts before a contended acquire is refused. */
const ATTEMPTS = 4;

export class LimitConcurrency {
  readonly capacity: number;
  readonly workerSlots: number;
  readonly workerIndex: number | null;

  private readonly counts: Int32Array;
  /** Int32 elements between two slots' blocks. */
  private readonly stride: number;

  constructor(buffer: ArrayBuffer, layout: Layout, workerIndex: number | null) {
    this.capacity = limitKeyCapacity(layout.params);
    this.workerSlots = layout.params.workerSlots;
    if (workerIndex !== null && !(Number.isInteger(workerIndex) && workerIndex >= 0 && workerIndex < this.workerSlots)) {
      throw new RangeError(`worker index ${workerIndex} outside [0, ${this.workerSlots})`);
    }
    this.workerIndex = workerIndex;
    const region = layout.regions.limitConcurrency;
    this.counts = new Int32Array(buffer, region.offset, region.bytes / FIELD_BYTES.i32);
    this.stride = limitConcurrencyBlockBytes(layout.params) / FIELD_BYTES.i32;
  }

  private check(slot: number): void {
    if (!(slot >= 0 && slot < this.capacity && (slot | 0) === slot)) {
      throw new RangeError(`limiter slot ${slot} outside [0, ${this.capacity})`);
    }
  }

  private own(slot: number): number {
    this.check(slot);
    if (this.workerIndex === null) throw new Error('this process has no worker row: open shared memory with a workerIndex to acquire');
    return slot * this.stride + this.workerIndex;
  }

  private sum(base: number): number {
    const counts = this.counts;
    let sum = 0;
    if (PLAIN_SUM_IS_ORDERED) {
      for (let w = 0; w < this.workerSlots; w++) sum += counts[base + w]!;
    } else {
      for (let w = 0; w < this.workerSlots; w++) sum += Atomics.load(counts, base + w);
    }
    return sum;
  }

  /** Takes one place under `limit` for this worker; false (nothing held) when the key is full. */
  tryAcquire(slot: number, limit: number): boolean {
    const own = this.own(slot);
    const base = slot * this.stride;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      // A full key is refused before any increment, so a key kept full by overload costs one sum
      // per refusal and its refusals never disturb the workers releasing and re-acquiring places.
      if (this.sum(base) >= limit) return false;
      Atomics.add(this.counts, own, 1);
      if (this.sum(base) <= limit) return true;
      Atomics.sub(this.counts, own, 1);
      // Someone raced us for the last place. Wait a random moment (≤ ~2 µs) so the next attempts
      // do not collide again.
      const spins = 1 + Math.random() * 64 * (attempt + 1);
      for (let i = 0; i < spins; i++) Atomics.load(this.counts, own);
    }
    return false;
  }

  /** Gives back one place this worker holds. A release without an acquire is undone and reported. */
  release(slot: number): void {
    const own = this.own(slot);
    if (Atomics.sub(this.counts, own, 1) <= 0) {
      Atomics.add(this.counts, own, 1);
      throw new Error(`release of limiter slot ${slot} without a matching acquire`);
    }
  }

  /** Places held under the key, summed over every worker. */
  held(slot: number): number {
    this.check(slot);
    let sum = 0;
    for (let w = 0; w < this.workerSlots; w++) sum += Atomics.load(this.counts, slot * this.stride + w);
    return sum;
  }

  /** One worker's places under the key: for metrics and tests. */
  workerHeld(workerIndex: number, slot: number): number {
    this.checkWorker(workerIndex);
    this.check(slot);
    return Atomics.load(this.counts, slot * this.stride + workerIndex);
  }

  private checkWorker(workerIndex: number): void {
    if (!(Number.isInteger(workerIndex) && workerIndex >= 0 && workerIndex < this.workerSlots)) {
      throw new RangeError(`worker index ${workerIndex} outside [0, ${this.workerSlots})`);
    }
  }

  /**
   * Zeroes a dead worker's places under every key and returns how many it held. Only for a worker
   * that has exited (SharedMemory.reclaimWorker), before its replacement starts in the same slot.
   */
  reclaimWorker(workerIndex: number): number {
    this.checkWorker(workerIndex);
    let held = 0;
    for (let slot = 0; slot < this.capacity; slot++) {
      const index = slot * this.stride + workerIndex;
      // Loads first: most keys were never used by this worker, and a store would dirty their lines.
      if (Atomics.load(this.counts, index) !== 0) held += Atomics.exchange(this.counts, index, 0);
    }
    return held;
  }
}
