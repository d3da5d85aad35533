/**
 * Per-endpoint counters in shared memory: in-flight requests, totals, failure streak, ejection.
 *
 * Crash consistency. Every count that must return to zero (in-flight) is kept as one Int32 per worker
 * slot: worker i only ever writes row i, and a reader sums the rows. When a worker dies mid-request,
 * even by SIGKILL with no chance to run a `finally`, its requests are exactly the values in its row,
 * so the supervisor, on the worker's exit and before starting its replacement in the same slot,
 * zeroes that row (reclaimWorker) and every sum is correct again. With one shared Int32 per endpoint
 * there would be no way to know how much of it belonged to the dead worker, and least-request routing
 * would avoid that endpoint forever.
 *
 * Counters that only grow or are reset on the next event (requests, failures, failure streak,
 * ejected-until) are shared by all workers: a killed worker can at worst lose its last few
 * increments, which no decision depends on exactly.
 *
 * All accesses are Atomics on Int32Array / BigInt64Array views made once in the constructor.
 * Atomics work on the addon's external (non-shared) ArrayBuffer: V8 emits the same locked
 * instructions as for a SharedArrayBuffer, and the mapping is MAP_SHARED, so they are atomic across
 * processes (test/shm checks 4 processes × 1,000,000 increments). Atomics.wait does not work on it;
 * nothing here waits.
 */

import {
  ENDPOINT_FIELDS,
  ENDPOINT_RECORD_BYTES,
  FIELD_BYTES,
  inFlightRowBytes,
  type Layout,
} from './layout.js';
import { sharedClockMs } from './shared-clock.js';

const STATS_I64_STRIDE = ENDPOINT_RECORD_BYTES / FIELD_BYTES.i64;
const STATS_I32_STRIDE = ENDPOINT_RECORD_BYTES / FIELD_BYTES.i32;
const TOTAL_REQUESTS = ENDPOINT_FIELDS.totalRequests.offset / FIELD_BYTES.i64;
const TOTAL_FAILURES = ENDPOINT_FIELDS.totalFailures.offset / FIELD_BYTES.i64;
const EJECTED_UNTIL = ENDPOINT_FIELDS.ejectedUntilMs.offset / FIELD_BYTES.i64;
const CONSECUTIVE_FAILURES = ENDPOINT_FIELDS.consecutiveFailures.offset / FIELD_BYTES.i32;
const REMOTE_IN_FLIGHT = ENDPOINT_FIELDS.remoteInFlight.offset / FIELD_BYTES.i32;
const UNHEALTHY = ENDPOINT_FIELDS.unhealthy.offset / FIELD_BYTES.i32;

export class EndpointCounters {
  readonly capacity: number;
  readonly workerSlots: number;
  /** The row this process writes, or null for a process that only reads (the supervisor). */
  readonly workerIndex: number | null;

  private readonly inFlightRows: Int32Array;
  /** Int32 elements between two workers' rows. */
  private readonly rowStride: number;
  /** Start of this worker's row in inFlightRows; -1 when there is none. */
  private readonly ownRow: number;
  private readonly stats64: BigInt64Array;
  private readonly stats32: Int32Array;

  constructor(buffer: ArrayBuffer, layout: Layout, workerIndex: number | null) {
    const { workerSlots, endpointCapacity } = layout.params;
    if (workerIndex !== null && !(Number.isInteger(workerIndex) && workerIndex >= 0 && workerIndex < workerSlots)) {
      throw new RangeError(`worker index ${workerIndex} outside [0, ${workerSlots})`);
    }
    this.capacity = endpointCapacity;
    this.workerSlots = workerSlots;
    this.workerIndex = workerIndex;
    const inFlight = layout.regions.endpointInFlight;
    this.inFlightRows = new Int32Array(buffer, inFlight.offset, inFlight.bytes / FIELD_BYTES.i32);
    this.rowStride = inFlightRowBytes(layout.params) / FIELD_BYTES.i32;
    this.ownRow = workerIndex === null ? -1 : workerIndex * this.rowStride;
    const stats = layout.regions.endpointStats;
    this.stats64 = new BigInt64Array(buffer, stats.offset, stats.bytes / FIELD_BYTES.i64);
    this.stats32 = new Int32Array(buffer, stats.offset, stats.bytes / FIELD_BYTES.i32);
  }

  /**
   * Rows are contiguous, so an out-of-range slot would not fail: it would land in the next worker's
   * row. One comparison per call prevents that.
   */
  private check(slot: number): void {
    if (!(slot >= 0 && slot < this.capacity && (slot | 0) === slot)) {
      throw new RangeError(`endpoint slot ${slot} outside [0, ${this.capacity})`);
    }
  }

  private row(): number {
    if (this.ownRow < 0) throw new Error('this process has no worker row: open shared memory with a workerIndex to acquire');
    return this.ownRow;
  }

  /** A request to the endpoint starts: +1 in this worker's row, +1 total requests. */
  acquire(slot: number): void {
    this.check(slot);
    Atomics.add(this.inFlightRows, this.row() + slot, 1);
    Atomics.add(this.stats64, slot * STATS_I64_STRIDE + TOTAL_REQUESTS, 1n);
  }

  /**
   * The request ended (any outcome). Releasing more than was acquired is a bug in the caller; it is
   * undone and reported rather than letting the sum drift below the truth. Undoing is safe without a
   * CAS because only this worker writes its row.
   */
  release(slot: number): void {
    this.check(slot);
    const index = this.row() + slot;
    if (Atomics.sub(this.inFlightRows, index, 1) <= 0) {
      Atomics.add(this.inFlightRows, index, 1);
      throw new Error(`release of endpoint slot ${slot} without a matching acquire`);
    }
  }

  /** Requests in flight to the endpoint, summed over every worker's row. */
  inFlight(slot: number): number {
    this.check(slot);
    let sum = 0;
    for (let index = slot; index < this.inFlightRows.length; index += this.rowStride) {
      sum += Atomics.load(this.inFlightRows, index);
    }
    return sum;
  }

  /**
   * In flight on other gateway nodes (global least-request), as their last report said. Kept apart
   * from the per-worker rows: those must be exact and reclaimable, this one is a remote estimate.
   */
  remoteInFlight(slot: number): number {
    this.check(slot);
    return Atomics.load(this.stats32, slot * STATS_I32_STRIDE + REMOTE_IN_FLIGHT);
  }

  setRemoteInFlight(slot: number, count: number): void {
    this.check(slot);
    Atomics.store(this.stats32, slot * STATS_I32_STRIDE + REMOTE_IN_FLIGHT, count);
  }

  /** In flight here (every worker) plus on other nodes: what global least-request compares. */
  globalInFlight(slot: number): number {
    return this.inFlight(slot) + this.remoteInFlight(slot);
  }

  /** The active health check's verdict: true while the endpoint is found down. */
  isUnhealthy(slot: number): boolean {
    this.check(slot);
    return Atomics.load(this.stats32, slot * STATS_I32_STRIDE + UNHEALTHY) !== 0;
  }

  setUnhealthy(slot: number, unhealthy: boolean): void {
    this.check(slot);
    Atomics.store(this.stats32, slot * STATS_I32_STRIDE + UNHEALTHY, unhealthy ? 1 : 0);
  }

  /** This worker's own in-flight count for the endpoint (0 without a row). */
  ownInFlight(slot: number): number {
    this.check(slot);
    return this.ownRow < 0 ? 0 : Atomics.load(this.inFlightRows, this.ownRow + slot);
  }

  /** One worker's in-flight count for the endpoint: for metrics and tests. */
  workerInFlight(workerIndex: number, slot: number): number {
    this.checkWorker(workerIndex);
    this.check(slot);
    return Atomics.load(this.inFlightRows, workerIndex * this.rowStride + slot);
  }

  totalRequests(slot: number): bigint {
    this.check(slot);
    return Atomics.load(this.stats64, slot * STATS_I64_STRIDE + TOTAL_REQUESTS);
  }

  totalFailures(slot: number): bigint {
    this.check(slot);
    return Atomics.load(this.stats64, slot * STATS_I64_STRIDE + TOTAL_FAILURES);
  }

  consecutiveFailures(slot: number): number {
    this.check(slot);
    return Atomics.load(this.stats32, slot * STATS_I32_STRIDE + CONSECUTIVE_FAILURES);
  }

  /**
   * Ends the failure streak. Loads before storing because the streak is almost always 0 already, and
   * a store would dirty a cache line that every worker reads.
   */
  recordSuccess(slot: number): void {
    this.check(slot);
    const index = slot * STATS_I32_STRIDE + CONSECUTIVE_FAILURES;
    if (Atomics.load(this.stats32, index) !== 0) Atomics.store(this.stats32, index, 0);
  }

  /** Counts a failure; returns the streak including this one, for the caller's ejection threshold. */
  recordFailure(slot: number): number {
    this.check(slot);
    Atomics.add(this.stats64, slot * STATS_I64_STRIDE + TOTAL_FAILURES, 1n);
    return Atomics.add(this.stats32, slot * STATS_I32_STRIDE + CONSECUTIVE_FAILURES, 1) + 1;
  }

  /** Shared-clock ms (shared-clock.ts) until which the endpoint is ejected; 0 when never ejected. */
  ejectedUntil(slot: number): number {
    this.check(slot);
    return Number(Atomics.load(this.stats64, slot * STATS_I64_STRIDE + EJECTED_UNTIL));
  }

  setEjectedUntil(slot: number, untilMs: number): void {
    this.check(slot);
    Atomics.store(this.stats64, slot * STATS_I64_STRIDE + EJECTED_UNTIL, BigInt(Math.trunc(untilMs)));
  }

  isEjected(slot: number, nowMs: number = sharedClockMs()): boolean {
    return this.ejectedUntil(slot) > nowMs;
  }

  /**
   * Ejects the endpoint until `untilMs` unless it is ejected already. Returns true for exactly one of
   * several workers that cross the failure threshold together, so one of them logs the ejection and
   * nobody extends another's.
   */
  tryEject(slot: number, untilMs: number, nowMs: number = sharedClockMs()): boolean {
    this.check(slot);
    const index = slot * STATS_I64_STRIDE + EJECTED_UNTIL;
    const current = Atomics.load(this.stats64, index);
    if (Number(current) > nowMs) return false;
    return Atomics.compareExchange(this.stats64, index, current, BigInt(Math.trunc(untilMs))) === current;
  }

  private checkWorker(workerIndex: number): void {
    if (!(Number.isInteger(workerIndex) && workerIndex >= 0 && workerIndex < this.workerSlots)) {
      throw new RangeError(`worker index ${workerIndex} outside [0, ${this.workerSlots})`);
    }
  }

  /**
   * Zeroes a dead worker's in-flight row and returns how many requests it still held. Only for a
   * worker that has exited: the supervisor calls it from the child's exit handler, before forking the
   * replacement into the same slot. Zeroing a live worker's row would make its later releases throw.
   */
  reclaimWorker(workerIndex: number): number {
    this.checkWorker(workerIndex);
    const start = workerIndex * this.rowStride;
    let held = 0;
    for (let slot = 0; slot < this.capacity; slot++) {
      held += Atomics.exchange(this.inFlightRows, start + slot, 0);
    }
    return held;
  }
}
