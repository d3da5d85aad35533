/**
 * The host's view of one instance's linear memory. Views are re-created lazily because `memory.grow`
 * (inside the guest, or inside the guest's allocator that the host itself calls) detaches the old
 * ArrayBuffer. Pointers and sizes arrive from Wasm as signed i32, so every entry point takes them
 * through `>>> 0`.
 */

import type { WasmMemory } from './wasm-api.js';
import { Status, type StatusCode } from './abi-constants.js';

type Allocate = (size: number) => number;

/** Per byte: 0 not allowed in a header name, 1 a token character, 2 an upper-case letter. */
const NAME_BYTES = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") NAME_BYTES[c.charCodeAt(0)] = 1;
for (let c = 65; c <= 90; c++) NAME_BYTES[c] = 2;

/**
 * Recently decoded short ASCII names and values, by a hash of their bytes. Plugins send the same few
 * header names and configured values on every request; finding them here costs a few compares, where
 * decoding means a call into the runtime and a new string each time.
 */
const RECENT_SLOTS = 512;
const RECENT_MAX_LENGTH = 64;
const recent: string[] = new Array<string>(RECENT_SLOTS).fill('');

export class GuestMemory {
  private memory: WasmMemory | undefined;
  private allocate: Allocate | undefined;
  private buffer: ArrayBuffer | undefined;
  private u8 = new Uint8Array(0);
  private view = new DataView(new ArrayBuffer(0));
  /** A Buffer over the same bytes, for its fast latin1/utf8 slicing. */
  private buf = Buffer.alloc(0);

  bind(memory: WasmMemory, allocate: Allocate | undefined): void {
    this.memory = memory;
    this.allocate = allocate;
    this.buffer = undefined;
    this.u8 = new Uint8Array(0);
  }

  get byteLength(): number {
    return this.refresh().byteLength;
  }

  private refresh(): Uint8Array {
    // memory.grow detaches the old ArrayBuffer, and a detached view has length 0: checking that is
    // cheaper than the `buffer` getter on every host call.
    if (this.u8.byteLength !== 0) return this.u8;
    const mem = this.memory;
    if (mem === undefined) throw new Error('guest memory used before the instance was bound');
    if (mem.buffer !== this.buffer) {
      this.buffer = mem.buffer;
      this.u8 = new Uint8Array(this.buffer);
      this.view = new DataView(this.buffer);
      this.buf = Buffer.from(this.buffer);
    }
    return this.u8;
  }

  inBounds(ptr: number, len: number): boolean {
    return (ptr >>> 0) + (len >>> 0) <= this.refresh().byteLength;
  }

  /** A view into guest memory, valid until the guest runs again; undefined when out of bounds. */
  view8(ptr: number, len: number): Uint8Array | undefined {
    const p = ptr >>> 0;
    const n = len >>> 0;
    const u8 = this.refresh();
    if (p + n > u8.byteLength) return undefined;
    return u8.subarray(p, p + n);
  }

  /** A copy, safe to keep after the guest runs again. */
  copy(ptr: number, len: number): Uint8Array | undefined {
    const v = this.view8(ptr, len);
    return v === undefined ? undefined : v.slice();
  }

  string(ptr: number, len: number): string | undefined {
    const p = ptr >>> 0;
    const n = len >>> 0;
    this.refresh();
    if (p + n > this.u8.byteLength) return undefined;
    return this.buf.toString('utf8', p, p + n);
  }

  /**
   * A header name from the guest, lower-cased: null when it is not an HTTP token (optionally after
   * one ':', for pseudo-headers), undefined when out of bounds.
   */
  fieldName(ptr: number, len: number): string | null | undefined {
    const p = ptr >>> 0;
    const n = len >>> 0;
    const u8 = this.refresh();
    if (p + n > u8.byteLength) return undefined;
    const from = n > 0 && u8[p] === 58 /* ':' */ ? p + 1 : p;
    if (from === p + n) return null;
    let hash = n;
    let upper = false;
    for (let i = from; i < p + n; i++) {
      const c = u8[i]!;
      const kind = NAME_BYTES[c];
      if (kind === 0) return null;
      if (kind === 2) upper = true;
      hash = (Math.imul(hash, 31) + c) | 0;
    }
    if (upper) return this.buf.toString('latin1', p, p + n).toLowerCase();
    return this.ascii(u8, p, n, hash);
  }

  /** A header value from the guest: null when it holds CR, LF or NUL, undefined when out of bounds. */
  fieldValue(ptr: number, len: number): string | null | undefined {
    const p = ptr >>> 0;
    const n = len >>> 0;
    const u8 = this.refresh();
    if (p + n > u8.byteLength) return undefined;
    if (n === 0) return '';
    let hash = n;
    let ascii = true;
    for (let i = p; i < p + n; i++) {
      const c = u8[i]!;
      if (c === 13 || c === 10 || c === 0) return null;
      if (c > 127) ascii = false;
      hash = (Math.imul(hash, 31) + c) | 0;
    }
    return ascii ? this.ascii(u8, p, n, hash) : this.buf.toString('utf8', p, p + n);
  }

  /** ASCII bytes as a string, from the recent ones when they match. */
  private ascii(u8: Uint8Array, p: number, n: number, hash: number): string {
    if (n > RECENT_MAX_LENGTH) return this.buf.toString('latin1', p, p + n);
    const slot = hash & (RECENT_SLOTS - 1);
    const known = recent[slot]!;
    if (known.length === n) {
      let i = 0;
      while (i < n && known.charCodeAt(i) === u8[p + i]) i++;
      if (i === n) return known;
    }
    const fresh = this.buf.toString('latin1', p, p + n);
    recent[slot] = fresh;
    return fresh;
  }

  writeU32(ptr: number, value: number): boolean {
    const p = ptr >>> 0;
    this.refresh();
    if (p + 4 > this.u8.byteLength) return false;
    this.view.setUint32(p, value >>> 0, true);
    return true;
  }

  writeU64(ptr: number, value: bigint): boolean {
    const p = ptr >>> 0;
    this.refresh();
    if (p + 8 > this.u8.byteLength) return false;
    this.view.setBigUint64(p, BigInt.asUintN(64, value), true);
    return true;
  }

  readU32(ptr: number): number | undefined {
    const p = ptr >>> 0;
    this.refresh();
    if (p + 4 > this.u8.byteLength) return undefined;
    return this.view.getUint32(p, true);
  }

  /**
   * Allocates `size` bytes in the guest (its own allocator, so the guest may free them) and returns
   * the address; 0 for an empty request, undefined when the guest could not allocate.
   */
  alloc(size: number): number | undefined {
    if (size === 0) return 0;
    if (this.allocate === undefined) return undefined;
    const ptr = this.allocate(size) >>> 0;
    if (ptr === 0 || !this.inBounds(ptr, size)) return undefined;
    return ptr;
  }

  /**
   * The usual "return a value" pattern of the ABI: copy `data` into guest-allocated memory and store
   * its address and size at the two out-pointers.
   */
  returnBytes(data: Uint8Array, retPtr: number, retLen: number): StatusCode {
    if (!this.inBounds(retPtr, 4) || !this.inBounds(retLen, 4)) return Status.InvalidMemoryAccess;
    const ptr = this.alloc(data.byteLength);
    if (ptr === undefined) return Status.InvalidMemoryAccess;
    if (data.byteLength > 0) this.refresh().set(data, ptr);
    this.writeU32(retPtr, ptr);
    this.writeU32(retLen, data.byteLength);
    return Status.Ok;
  }

  returnString(value: string, retPtr: number, retLen: number): StatusCode {
    if (!this.inBounds(retPtr, 4) || !this.inBounds(retLen, 4)) return Status.InvalidMemoryAccess;
    const size = Buffer.byteLength(value, 'utf8');
    const ptr = this.alloc(size);
    if (ptr === undefined) return Status.InvalidMemoryAccess;
    if (size > 0) {
      this.refresh();
      this.buf.write(value, ptr, size, 'utf8');
    }
    this.writeU32(retPtr, ptr);
    this.writeU32(retLen, size);
    return Status.Ok;
  }

  /**
   * Allocate `size` bytes and let `fill` write them directly (no intermediate copy), then store the
   * address and size at the out-pointers.
   */
  returnFilled(size: number, fill: (target: Buffer, offset: number) => void, retPtr: number, retLen: number): StatusCode {
    if (!this.inBounds(retPtr, 4) || !this.inBounds(retLen, 4)) return Status.InvalidMemoryAccess;
    const ptr = this.alloc(size);
    if (ptr === undefined) return Status.InvalidMemoryAccess;
    if (size > 0) {
      this.refresh();
      fill(this.buf, ptr);
    }
    this.writeU32(retPtr, ptr);
    this.writeU32(retLen, size);
    return Status.Ok;
  }
}
