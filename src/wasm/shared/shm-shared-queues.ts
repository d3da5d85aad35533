/**
 * Shared queues over the plugin segment: a queue registered under (vm_id, name) has the same id in
 * every worker, any worker may enqueue, and each item is dequeued exactly once, by whichever worker
 * asks first.
 *
 * proxy_on_queue_ready: listeners in the enqueuing process are called at once (in a microtask); the
 * other processes notice a queue's enqueue sequence moving by polling it every POLL_MS while they
 * have listeners, and call theirs if items are still waiting. A plugin draining on ticks as well (as
 * Envoy plugins usually do) never waits for the poll.
 */

import type { SharedQueueStore } from '../seams.js';
import { BLOCK_HEADER, QUEUE_OFFSET, QUEUE_SLOTS, sameBytes, type PluginSegment } from './plugin-segment.js';

const Q_NAME = 0;
const Q_HEAD = 1;
const Q_TAIL = 2;
const Q_COUNT = 3;
const Q_SEQ = 4;
/** An item block's payload starts with the offset of the next item. */
const NEXT = 4;
/** Items waiting in one queue before enqueue is refused (a consumer that stopped draining). */
export const MAX_QUEUE_ITEMS = 65_536;
const POLL_MS = 20;

export class ShmSharedQueues implements SharedQueueStore {
  private readonly listeners = new Map<number, Set<() => void>>();
  private readonly seen = new Map<number, number>();
  private poller: NodeJS.Timeout | undefined;

  constructor(private readonly seg: PluginSegment) {}

  register(vmId: string, name: string): number | undefined {
    const want = nameBytes(vmId, name);
    return this.seg.locked(() => {
      let free = -1;
      for (let q = 0; q < QUEUE_SLOTS; q++) {
        const nameBlock = this.seg.u32[slot(q) + Q_NAME]!;
        if (nameBlock === 0) {
          if (free < 0) free = q;
        } else if (sameBytes(this.seg.payload(nameBlock), want)) {
          return q + 1;
        }
      }
      if (free < 0) return undefined;
      const block = this.seg.allocBytes(want);
      if (block === 0) return undefined;
      this.seg.u32[slot(free) + Q_NAME] = block;
      return free + 1;
    });
  }

  resolve(vmId: string, name: string): number | undefined {
    const want = nameBytes(vmId, name);
    return this.seg.locked(() => {
      for (let q = 0; q < QUEUE_SLOTS; q++) {
        const nameBlock = this.seg.u32[slot(q) + Q_NAME]!;
        if (nameBlock !== 0 && sameBytes(this.seg.payload(nameBlock), want)) return q + 1;
      }
      return undefined;
    });
  }

  enqueue(queueId: number, value: Uint8Array): 'ok' | 'not_found' | 'full' {
    const s = this.slotOf(queueId);
    if (s < 0) return 'not_found';
    const seg = this.seg;
    const result = seg.locked(() => {
      if (seg.u32[s + Q_NAME] === 0) return 'not_found';
      if (seg.u32[s + Q_COUNT]! >= MAX_QUEUE_ITEMS) return 'full';
      const item = seg.allocBytes(value, NEXT);
      if (item === 0) return 'full';
      seg.u32[payloadWord(item)] = 0;
      const tail = seg.u32[s + Q_TAIL]!;
      if (tail === 0) seg.u32[s + Q_HEAD] = item;
      else seg.u32[payloadWord(tail)] = item;
      seg.u32[s + Q_TAIL] = item;
      seg.u32[s + Q_COUNT] = seg.u32[s + Q_COUNT]! + 1;
      Atomics.add(seg.u32, s + Q_SEQ, 1);
      return 'ok';
    });
    if (result === 'ok') {
      const ls = this.listeners.get(queueId);
      if (ls !== undefined && ls.size > 0) queueMicrotask(() => notify(ls));
    }
    return result;
  }

  dequeue(queueId: number): Uint8Array | 'empty' | 'not_found' {
    const s = this.slotOf(queueId);
    if (s < 0) return 'not_found';
    const seg = this.seg;
    return seg.locked(() => {
      if (seg.u32[s + Q_NAME] === 0) return 'not_found';
      const head = seg.u32[s + Q_HEAD]!;
      if (head === 0) return 'empty';
      const value = seg.payload(head, NEXT).slice();
      const next = seg.u32[payloadWord(head)]!;
      seg.u32[s + Q_HEAD] = next;
      if (next === 0) seg.u32[s + Q_TAIL] = 0;
      seg.u32[s + Q_COUNT] = seg.u32[s + Q_COUNT]! - 1;
      seg.free(head);
      return value;
    });
  }

  onReady(queueId: number, listener: () => void): () => void {
    let ls = this.listeners.get(queueId);
    if (ls === undefined) {
      this.listeners.set(queueId, (ls = new Set()));
      const s = this.slotOf(queueId);
      if (s >= 0) this.seen.set(queueId, Atomics.load(this.seg.u32, s + Q_SEQ));
    }
    ls.add(listener);
    this.poller ??= setInterval(() => this.poll(), POLL_MS).unref();
    return () => {
      ls.delete(listener);
      if (ls.size === 0) {
        this.listeners.delete(queueId);
        this.seen.delete(queueId);
      }
      if (this.listeners.size === 0 && this.poller !== undefined) {
        clearInterval(this.poller);
        this.poller = undefined;
      }
    };
  }

  /** Items another worker enqueued since the last look: tell this process's listeners. */
  private poll(): void {
    const u32 = this.seg.u32;
    for (const [queueId, ls] of this.listeners) {
      const s = this.slotOf(queueId);
      if (s < 0) continue;
      const seq = Atomics.load(u32, s + Q_SEQ);
      if (seq === this.seen.get(queueId)) continue;
      this.seen.set(queueId, seq);
      if (Atomics.load(u32, s + Q_COUNT) > 0) notify(ls);
    }
  }

  private slotOf(queueId: number): number {
    return queueId >= 1 && queueId <= QUEUE_SLOTS ? slot(queueId - 1) : -1;
  }
}

function slot(q: number): number {
  return (QUEUE_OFFSET >>> 2) + q * 8;
}

function payloadWord(block: number): number {
  return (block + BLOCK_HEADER) >>> 2;
}

function nameBytes(vmId: string, name: string): Uint8Array {
  return Buffer.from(`${vmId}\0${name}`, 'utf8');
}

function notify(ls: ReadonlySet<() => void>): void {
  for (const l of ls) l();
}
