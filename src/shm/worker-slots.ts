/**
 * The workers region: which pid holds each worker slot, and when it last showed signs of life.
 *
 * The supervisor registers a worker in slot i when it forks it (the worker learns i from its
 * environment) and clears the slot when the worker exits; the worker writes only its heartbeat. A
 * heartbeat that stops advancing while the pid lives is a hung worker (a busy event loop), which the
 * exit event alone cannot reveal.
 */

import { FIELD_BYTES, type Layout, WORKER_FIELDS, WORKER_RECORD_BYTES } from './layout.js';
import { sharedClockMs } from './shared-clock.js';

const I32_STRIDE = WORKER_RECORD_BYTES / FIELD_BYTES.i32;
const I64_STRIDE = WORKER_RECORD_BYTES / FIELD_BYTES.i64;
const PID = WORKER_FIELDS.pid.offset / FIELD_BYTES.i32;
const INCARNATION = WORKER_FIELDS.incarnation.offset / FIELD_BYTES.i32;
const HEARTBEAT = WORKER_FIELDS.heartbeatMs.offset / FIELD_BYTES.i64;
const STARTED_AT = WORKER_FIELDS.startedAtMs.offset / FIELD_BYTES.i64;

export interface WorkerSlotState {
  readonly index: number;
  readonly pid: number;
  readonly incarnation: number;
  readonly heartbeatMs: number;
  readonly startedAtMs: number;
}

export class WorkerSlots {
  readonly count: number;
  private readonly r32: Int32Array;
  private readonly r64: BigInt64Array;

  constructor(buffer: ArrayBuffer, layout: Layout) {
    this.count = layout.params.workerSlots;
    const region = layout.regions.workers;
    this.r32 = new Int32Array(buffer, region.offset, region.bytes / FIELD_BYTES.i32);
    this.r64 = new BigInt64Array(buffer, region.offset, region.bytes / FIELD_BYTES.i64);
  }

  private check(index: number): void {
    if (!(Number.isInteger(index) && index >= 0 && index < this.count)) {
      throw new RangeError(`worker index ${index} outside [0, ${this.count})`);
    }
  }

  /**
   * Records that `pid` now holds slot `index`; returns its incarnation (1 for the first holder).
   * The pid is stored last, so a reader that sees it also sees the fresh heartbeat.
   */
  register(index: number, pid: number, nowMs: number = sharedClockMs()): number {
    this.check(index);
    const now = BigInt(Math.trunc(nowMs));
    Atomics.store(this.r64, index * I64_STRIDE + STARTED_AT, now);
    Atomics.store(this.r64, index * I64_STRIDE + HEARTBEAT, now);
    const incarnation = Atomics.add(this.r32, index * I32_STRIDE + INCARNATION, 1) + 1;
    Atomics.store(this.r32, index * I32_STRIDE + PID, pid);
    return incarnation;
  }

  /** Called by the worker itself, on a timer. */
  heartbeat(index: number, nowMs: number = sharedClockMs()): void {
    this.check(index);
    Atomics.store(this.r64, index * I64_STRIDE + HEARTBEAT, BigInt(Math.trunc(nowMs)));
  }

  /** Marks the slot free (pid 0). The incarnation count is kept. */
  clear(index: number): void {
    this.check(index);
    Atomics.store(this.r32, index * I32_STRIDE + PID, 0);
  }

  pid(index: number): number {
    this.check(index);
    return Atomics.load(this.r32, index * I32_STRIDE + PID);
  }

  lastHeartbeatMs(index: number): number {
    this.check(index);
    return Number(Atomics.load(this.r64, index * I64_STRIDE + HEARTBEAT));
  }

  state(index: number): WorkerSlotState {
    this.check(index);
    return {
      index,
      pid: this.pid(index),
      incarnation: Atomics.load(this.r32, index * I32_STRIDE + INCARNATION),
      heartbeatMs: this.lastHeartbeatMs(index),
      startedAtMs: Number(Atomics.load(this.r64, index * I64_STRIDE + STARTED_AT)),
    };
  }

  /** Slots currently held (pid ≠ 0). */
  active(): WorkerSlotState[] {
    const states: WorkerSlotState[] = [];
    for (let index = 0; index < this.count; index++) {
      if (this.pid(index) !== 0) states.push(this.state(index));
    }
    return states;
  }
}
