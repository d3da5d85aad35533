/**
 * One process's view of the gateway's shared-memory segment: the mapping, its checked layout, and
 * the typed accessors over it, each with its views made once.
 *
 * The supervisor creates it before forking workers (so no worker can open a half-written segment)
 * and unlinks it on shutdown; each worker opens it by name with its worker index; the mapping lasts
 * as long as the process holds this object.
 */

import { EndpointCounters } from './endpoint-counters.js';
import { EndpointSlots } from './endpoint-slots.js';
import { computeLayout, type Layout, type LayoutParams, readLayout, SegmentHeader, writeHeader } from './layout.js';
import { createSegment, openSegment, unlinkSegment } from './segment.js';
import { LimitConcurrency } from './limit-concurrency.js';
import { LimitKeys } from './limit-keys.js';
import { LimitWindows } from './limit-windows.js';
import { PrefixIndex } from './prefix-index.js';
import { ReplicaMetrics } from './replica-metrics.js';
import { WorkerSlots } from './worker-slots.js';

export interface OpenOptions {
  /** This worker's slot: the in-flight row it writes. Omit in a process that only reads. */
  readonly workerIndex?: number;
}

export class SharedMemory {
  readonly name: string;
  readonly buffer: ArrayBuffer;
  readonly layout: Layout;
  readonly header: SegmentHeader;
  readonly workers: WorkerSlots;
  /** Endpoint identity → slot. */
  readonly slots: EndpointSlots;
  /** Per-slot counters; acquire/release write this process's worker row. */
  readonly endpoints: EndpointCounters;
  /** Limiter key → slot. */
  readonly limitKeys: LimitKeys;
  /** Per limiter slot: two sliding windows (rate limits, quotas). */
  readonly limitWindows: LimitWindows;
  /** Per limiter slot: concurrent requests per worker; acquire/release write this process's element. */
  readonly limitConcurrency: LimitConcurrency;
  /** Which KV blocks each replica is believed to hold (prefix balancer), with its eviction model. */
  readonly prefixIndex: PrefixIndex;
  /** What each replica's /metrics last said (the supervisor's scraper writes, balancers read). */
  readonly replicaMetrics: ReplicaMetrics;

  private constructor(name: string, buffer: ArrayBuffer, layout: Layout, workerIndex: number | null) {
    this.name = name;
    this.buffer = buffer;
    this.layout = layout;
    this.header = new SegmentHeader(buffer);
    this.workers = new WorkerSlots(buffer, layout);
    this.slots = new EndpointSlots(buffer, layout);
    this.endpoints = new EndpointCounters(buffer, layout, workerIndex);
    this.limitKeys = new LimitKeys(buffer, layout);
    this.limitWindows = new LimitWindows(buffer, layout);
    this.limitConcurrency = new LimitConcurrency(buffer, layout, workerIndex);
    this.prefixIndex = new PrefixIndex(buffer, layout);
    this.replicaMetrics = new ReplicaMetrics(buffer, layout);
  }

  /**
   * Creates the segment (failing if the name exists) and writes its header. If the header cannot be
   * written the segment is removed again, so a failed start leaves nothing in /dev/shm.
   */
  static create(name: string, params: Partial<LayoutParams> = {}, options: OpenOptions = {}): SharedMemory {
    const layout = computeLayout(params);
    const buffer = createSegment(name, layout.totalBytes);
    try {
      writeHeader(buffer, layout, { supervisorPid: process.pid, createdAtMs: Date.now() });
      return new SharedMemory(name, buffer, layout, options.workerIndex ?? null);
    } catch (err) {
      unlinkSegment(name);
      throw err;
    }
  }

  /**
   * The same layout in this process's own memory, as worker 0: for a gateway run without a
   * supervisor (embedded, benches), so routing has one code path whether or not workers share state.
   */
  static private(params: Partial<LayoutParams> = {}): SharedMemory {
    const layout = computeLayout(params);
    const buffer = new ArrayBuffer(layout.totalBytes);
    writeHeader(buffer, layout, { supervisorPid: process.pid, createdAtMs: Date.now() });
    return new SharedMemory('(private)', buffer, layout, 0);
  }

  /** Opens an existing segment; throws LayoutError when it is not one this build can read. */
  static open(name: string, options: OpenOptions = {}): SharedMemory {
    const buffer = openSegment(name);
    const layout = readLayout(buffer, name);
    return new SharedMemory(name, buffer, layout, options.workerIndex ?? null);
  }

  get configGeneration(): bigint {
    return this.header.configGeneration;
  }

  set configGeneration(value: bigint) {
    this.header.configGeneration = value;
  }

  /**
   * After worker `index` exited (however it died): zero its in-flight row and its limiter concurrency
   * places, and free its slot. Returns how many endpoint in-flight requests it still held (its
   * limiter places are the same requests seen by the limiter, so they are not added). Call before
   * forking its replacement into the slot.
   */
  reclaimWorker(index: number): number {
    const held = this.endpoints.reclaimWorker(index);
    this.limitConcurrency.reclaimWorker(index);
    this.workers.clear(index);
    return held;
  }

  /** Removes the name (the supervisor, on shutdown); mappings stay valid until their processes exit. */
  unlink(): boolean {
    return unlinkSegment(this.name);
  }
}
