/**
 * The HTTP contexts of one instance, by context id. The host chooses the ids, so it picks ones whose
 * slot in a power-of-two array is free: finding a context is an index, not a hash lookup, and the
 * table only grows with the number of requests in flight at once.
 */

import type { HttpStream } from './http-stream.js';

const INITIAL_SLOTS = 64;
const MAX_ID = 0x7fffffff;

export class StreamTable {
  private slots: (HttpStream | undefined)[] = new Array<HttpStream | undefined>(INITIAL_SLOTS).fill(undefined);
  private mask = INITIAL_SLOTS - 1;
  private count = 0;
  private next: number;

  /** Ids below `firstId` are never handed out (the root context's). */
  constructor(private readonly firstId: number) {
    this.next = firstId;
  }

  get size(): number {
    return this.count;
  }

  /** An unused id; its slot stays free until `add` takes it. */
  freeId(): number {
    // At most half full, so a free slot is never far.
    if (this.count * 2 >= this.slots.length) this.grow();
    for (;;) {
      const id = this.next;
      this.next = id >= MAX_ID ? this.firstId : id + 1;
      if (this.slots[id & this.mask] === undefined) return id;
    }
  }

  add(stream: HttpStream): void {
    this.slots[stream.id & this.mask] = stream;
    this.count++;
  }

  get(id: number): HttpStream | undefined {
    const s = this.slots[id & this.mask];
    return s !== undefined && s.id === id ? s : undefined;
  }

  delete(stream: HttpStream): void {
    const at = stream.id & this.mask;
    if (this.slots[at] !== stream) return;
    this.slots[at] = undefined;
    this.count--;
  }

  forEach(f: (stream: HttpStream) => void): void {
    for (const s of this.slots.slice()) if (s !== undefined) f(s);
  }

  private grow(): void {
    const old = this.slots;
    const size = old.length * 2;
    // Distinct slots under the old mask stay distinct under the wider one.
    this.slots = new Array<HttpStream | undefined>(size).fill(undefined);
    this.mask = size - 1;
    for (const s of old) if (s !== undefined) this.slots[s.id & this.mask] = s;
  }
}
