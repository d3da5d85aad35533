/**
 * The shared-memory segment behind plugin shared data, shared queues and plugin metrics: one per
 * gateway, created by the supervisor next to the main segment and opened by every worker, so a plugin
 * sees the same keys, queues and counters in every worker process (as Envoy's worker threads do).
 *
 * It is a segment of its own rather than a region of src/shm/layout.ts so that the plugin host's
 * layout can change without touching the routing counters; folding it into the main layout later is
 * a matter of moving the offsets below into that table.
 *
 * Layout (byte offsets; every table at a multiple of 8):
 *
 *   header      128 B   magic, version, lock, cas sequence, heap top, free-list heads per size class
 *   data index  DATA_SLOTS × 16 B    open addressing: key hash, key block, value block, cas
 *   queues      QUEUE_SLOTS × 32 B   name block, head, tail, count, enqueue sequence
 *   metrics     METRIC_SLOTS × METRIC_SLOT_BYTES   kind, name, value, count, sum, buckets
 *   heap        HEAP_BYTES            blocks of 2^(5+c) bytes (c = 0..15), one free list per size
 *
 * Structure changes (a new key, a value replaced, a queue item linked or unlinked, a metric defined)
 * happen under one spin lock held for microseconds; no guest code runs while it is held. Counter and
 * gauge updates are single atomic adds and take no lock. The lock word holds the owner's pid, so a
 * process that died holding it (SIGKILL in those microseconds) is detected and the lock taken over;
 * what that process was half-way through writing may then be inconsistent for that one entry.
 *
 * V8 gives no Atomics.wait on a segment mapped by the addon (it is not a SharedArrayBuffer), so
 * waiters spin; with sections this short, contention costs less than a wake-up would.
 */

import { createSegment, openSegment, pidIsAlive, segmentName, unlinkSegment } from '../../shm/segment.js';

const MAGIC = 0x504c5753; // 'SWLP'
const VERSION = 1;

export const DATA_SLOTS = 4096;
/** Past this many keys a new key is refused: open addressing slows down when the table fills. */
export const DATA_MAX_KEYS = (DATA_SLOTS * 3) / 4;
export const QUEUE_SLOTS = 256;
export const METRIC_SLOTS = 1024;
export const METRIC_NAME_BYTES = 192;
/** Upper bounds of the histogram buckets (the +Inf bucket is implicit: the count). */
export const HISTOGRAM_BOUNDS: readonly number[] = [
  1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
  2_500_000, 5_000_000, 10_000_000,
];
/** kind i32, name length i32, name, then value, count, sum and the buckets as i64. */
export const METRIC_SLOT_BYTES = 8 + METRIC_NAME_BYTES + 8 * (3 + HISTOGRAM_BOUNDS.length);
export const HEAP_BYTES = 16 * 1024 * 1024;

const SIZE_CLASSES = 16;
const MIN_BLOCK_SHIFT = 5;
/** Block header: size class (u32) and payload length (u32). */
export const BLOCK_HEADER = 8;
/** Largest payload a block can hold (1 MiB minus its header). */
export const MAX_PAYLOAD = (1 << (MIN_BLOCK_SHIFT + SIZE_CLASSES - 1)) - BLOCK_HEADER;

// Header fields, as Int32/Uint32 indices.
const H_MAGIC = 0;
const H_VERSION = 1;
const H_LOCK = 2;
const H_CAS = 3;
const H_HEAP_TOP = 4;
const H_KEYS = 5;
const H_FREE = 8; // 16 heads: indices 8..23
const HEADER_BYTES = 128;

export const DATA_OFFSET = HEADER_BYTES;
export const QUEUE_OFFSET = DATA_OFFSET + DATA_SLOTS * 16;
export const METRIC_OFFSET = QUEUE_OFFSET + QUEUE_SLOTS * 32;
export const HEAP_OFFSET = METRIC_OFFSET + METRIC_SLOTS * METRIC_SLOT_BYTES;
export const SEGMENT_BYTES = HEAP_OFFSET + HEAP_BYTES;

/** After this long spinning on the lock, check whether its holder is still alive. */
const LOCK_CHECK_MS = 50;

export class PluginSegmentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PluginSegmentError';
  }
}

export class PluginSegment {
  readonly u8: Uint8Array;
  readonly i32: Int32Array;
  readonly u32: Uint32Array;
  readonly i64: BigInt64Array;
  private readonly pid = process.pid;

  private constructor(
    readonly name: string,
    readonly buffer: ArrayBuffer,
  ) {
    this.u8 = new Uint8Array(buffer);
    this.i32 = new Int32Array(buffer);
    this.u32 = new Uint32Array(buffer);
    this.i64 = new BigInt64Array(buffer);
  }

  /** The name for a gateway's plugin segment (stale ones are removed with the main segment's). */
  static nameFor(label: string | number, ownerPid: number = process.pid): string {
    return segmentName(`wasm.${label}`, ownerPid);
  }

  /** Supervisor: a new zero-filled segment with its header written. */
  static create(name: string): PluginSegment {
    const seg = new PluginSegment(name, createSegment(name, SEGMENT_BYTES));
    seg.writeHeader();
    return seg;
  }

  /** Worker: the supervisor's segment. */
  static open(name: string): PluginSegment {
    const buffer = openSegment(name);
    if (buffer.byteLength < SEGMENT_BYTES) throw new PluginSegmentError(`plugin segment ${name} is ${buffer.byteLength} bytes, expected ${SEGMENT_BYTES}`);
    const seg = new PluginSegment(name, buffer);
    if (seg.u32[H_MAGIC] !== MAGIC || seg.u32[H_VERSION] !== VERSION) {
      throw new PluginSegmentError(`plugin segment ${name} has another layout (magic/version mismatch)`);
    }
    return seg;
  }

  /** The same layout in this process's memory: a gateway without a supervisor (tests, benches). */
  static private(): PluginSegment {
    const seg = new PluginSegment('(private)', new ArrayBuffer(SEGMENT_BYTES));
    seg.writeHeader();
    return seg;
  }

  static unlink(name: string): void {
    unlinkSegment(name);
  }

  private writeHeader(): void {
    this.u32[H_VERSION] = VERSION;
    this.u32[H_HEAP_TOP] = 0;
    Atomics.store(this.u32, H_MAGIC, MAGIC);
  }

  // ── the lock ──────────────────────────────────────────────────────────────────────────────

  /** Runs `f` holding the segment lock. `f` must not call guest code or anything that may throw late. */
  locked<T>(f: () => T): T {
    this.lock();
    try {
      return f();
    } finally {
      Atomics.store(this.i32, H_LOCK, 0);
    }
  }

  private lock(): void {
    const me = this.pid;
    if (Atomics.compareExchange(this.i32, H_LOCK, 0, me) === 0) return;
    let since = performance.now();
    for (;;) {
      for (let i = 0; i < 256; i++) {
        if (Atomics.load(this.i32, H_LOCK) === 0 && Atomics.compareExchange(this.i32, H_LOCK, 0, me) === 0) return;
      }
      const now = performance.now();
      if (now - since < LOCK_CHECK_MS) continue;
      since = now;
      const owner = Atomics.load(this.i32, H_LOCK);
      if (owner === me) {
        // A dead worker held it and this process got its pid back: the lock is ours to take.
        return;
      }
      if (owner !== 0 && !pidIsAlive(owner) && Atomics.compareExchange(this.i32, H_LOCK, owner, me) === owner) return;
    }
  }

  // ── counters kept in the header ───────────────────────────────────────────────────────────

  /** A new cas value: non-zero, wrapping within u32 (0 means "no cas" in the ABI). Under the lock. */
  nextCas(): number {
    let cas = (this.u32[H_CAS]! + 1) >>> 0;
    if (cas === 0) cas = 1;
    this.u32[H_CAS] = cas;
    return cas;
  }

  get keyCount(): number {
    return this.u32[H_KEYS]!;
  }

  set keyCount(n: number) {
    this.u32[H_KEYS] = n;
  }

  // ── the heap ──────────────────────────────────────────────────────────────────────────────

  /**
   * A block whose payload holds `bytes` bytes, or 0 when the heap is exhausted. Under the lock.
   * Returns the block's offset in the segment; its payload starts BLOCK_HEADER bytes later.
   */
  alloc(bytes: number): number {
    if (bytes > MAX_PAYLOAD) return 0;
    const need = bytes + BLOCK_HEADER;
    let c = 0;
    while (1 << (MIN_BLOCK_SHIFT + c) < need) c++;
    const head = this.u32[H_FREE + c]!;
    let block: number;
    if (head !== 0) {
      block = head;
      // A free block's first payload word links to the next free block of its class.
      this.u32[H_FREE + c] = this.u32[(block + BLOCK_HEADER) >>> 2]!;
    } else {
      const size = 1 << (MIN_BLOCK_SHIFT + c);
      const top = this.u32[H_HEAP_TOP]!;
      if (top + size > HEAP_BYTES) return 0;
      this.u32[H_HEAP_TOP] = top + size;
      block = HEAP_OFFSET + top;
    }
    this.u32[block >>> 2] = c;
    this.u32[(block >>> 2) + 1] = bytes;
    return block;
  }

  free(block: number): void {
    if (block === 0) return;
    const c = this.u32[block >>> 2]!;
    this.u32[(block + BLOCK_HEADER) >>> 2] = this.u32[H_FREE + c]!;
    this.u32[H_FREE + c] = block;
  }

  /** A block holding a copy of `bytes` (after `prefix` reserved bytes), or 0 when full. */
  allocBytes(bytes: Uint8Array, prefix = 0): number {
    const block = this.alloc(prefix + bytes.byteLength);
    if (block !== 0) this.u8.set(bytes, block + BLOCK_HEADER + prefix);
    return block;
  }

  payloadLength(block: number): number {
    return this.u32[(block >>> 2) + 1]!;
  }

  /** A view (not a copy) of a block's payload after `prefix` bytes. */
  payload(block: number, prefix = 0): Uint8Array {
    const start = block + BLOCK_HEADER + prefix;
    return this.u8.subarray(start, start + this.payloadLength(block) - prefix);
  }

  /** Bytes of heap handed out so far (freed blocks are reused, never returned). */
  get heapUsed(): number {
    return this.u32[H_HEAP_TOP]!;
  }
}

/** FNV-1a over bytes: the data index's hash. */
export function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
