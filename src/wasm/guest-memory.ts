/**
 * The host's view of one instance's linear memory. Views are re-created lazily because `memory.grow`
 * (inside the guest, or inside the guest's allocator that the host itself calls) detaches the old
 * ArrayBuffer. Pointers and sizes arrive from Wasm as signed i32, so every entry point takes them
 * through `>>> 0`.
 */

import type { WasmMemory } from './wasm-api.js';
import { Status, type StatusCode } from './abi-constants.js';

type Allocate = (size: number) => number;

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
