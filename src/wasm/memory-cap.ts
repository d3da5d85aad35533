/**
 * Enforces a memory cap on a module that defines its own memory. V8 has no per-instance memory limit,
 * but it honours the maximum a module declares: `memory.grow` past it fails (returns -1), which the
 * guest's allocator turns into a trap. So the host rewrites the maximum in the module's memory section
 * before compiling. Only the limits bytes change; everything else is copied as it is.
 */

const WASM_PAGE = 65536;

export class MemoryCapError extends Error {
  readonly code = 'wasm_memory_cap';
  constructor(message: string) {
    super(message);
    this.name = 'MemoryCapError';
  }
}

interface Cursor {
  pos: number;
}

function readLeb(bytes: Uint8Array, c: Cursor): number {
  let result = 0;
  let shift = 0;
  for (;;) {
    if (c.pos >= bytes.length) throw new MemoryCapError('truncated LEB128 in module');
    const b = bytes[c.pos++]!;
    result += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return result;
    shift += 7;
    if (shift > 35) throw new MemoryCapError('LEB128 too long in module');
  }
}

function leb(value: number): number[] {
  const out: number[] = [];
  let v = value;
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
}

export interface CappedModule {
  bytes: Uint8Array;
  /** Pages the module asks for at start. */
  initialPages: number;
  /** True when the module imports its memory instead (the host then creates it with the cap). */
  importsMemory: boolean;
}

export function pagesFor(bytes: number): number {
  return Math.max(1, Math.floor(bytes / WASM_PAGE));
}

export function capModuleMemory(input: Uint8Array, maxPages: number): CappedModule {
  if (input.length < 8 || input[0] !== 0 || input[1] !== 0x61 || input[2] !== 0x73 || input[3] !== 0x6d) {
    throw new MemoryCapError('not a WebAssembly binary');
  }
  const c: Cursor = { pos: 8 };
  let importsMemory = false;
  while (c.pos < input.length) {
    const sectionStart = c.pos;
    const id = input[c.pos++]!;
    const size = readLeb(input, c);
    const contentStart = c.pos;
    const contentEnd = contentStart + size;
    if (contentEnd > input.length) throw new MemoryCapError('section runs past the end of the module');
    if (id === 2) importsMemory = scanImportsForMemory(input, contentStart);
    if (id === 5) {
      const body: number[] = [];
      const m: Cursor = { pos: contentStart };
      const count = readLeb(input, m);
      body.push(...leb(count));
      let initialPages = 0;
      for (let i = 0; i < count; i++) {
        const flags = input[m.pos++]!;
        if (flags & 0x04) throw new MemoryCapError('64-bit memories are not supported');
        const min = readLeb(input, m);
        const max = flags & 0x01 ? readLeb(input, m) : undefined;
        if (i === 0) initialPages = min;
        if (min > maxPages) {
          throw new MemoryCapError(
            `module needs ${min * 64} KiB of memory at start; the plugin's limit is ${maxPages * 64} KiB`,
          );
        }
        const capped = max === undefined ? maxPages : Math.min(max, maxPages);
        body.push((flags & 0x02) | 0x01, ...leb(min), ...leb(capped));
      }
      if (m.pos !== contentEnd) throw new MemoryCapError('unexpected bytes in the memory section');
      const section = [5, ...leb(body.length), ...body];
      const out = new Uint8Array(sectionStart + section.length + (input.length - contentEnd));
      out.set(input.subarray(0, sectionStart), 0);
      out.set(section, sectionStart);
      out.set(input.subarray(contentEnd), sectionStart + section.length);
      return { bytes: out, initialPages, importsMemory };
    }
    c.pos = contentEnd;
  }
  return { bytes: input, initialPages: 0, importsMemory };
}

/** Import entries are (module name, field name, kind, type); memory imports have kind 2. */
function scanImportsForMemory(bytes: Uint8Array, start: number): boolean {
  const c: Cursor = { pos: start };
  const count = readLeb(bytes, c);
  for (let i = 0; i < count; i++) {
    // Read the length first: `c.pos += readLeb(...)` would add to the position before the read.
    const moduleLen = readLeb(bytes, c);
    c.pos += moduleLen;
    const fieldLen = readLeb(bytes, c);
    c.pos += fieldLen;
    const kind = bytes[c.pos++]!;
    switch (kind) {
      case 0: // function: type index
        readLeb(bytes, c);
        break;
      case 1: {
        // table: reftype + limits
        c.pos++;
        const flags = bytes[c.pos++]!;
        readLeb(bytes, c);
        if (flags & 1) readLeb(bytes, c);
        break;
      }
      case 2:
        return true;
      case 3: // global: valtype + mutability
        c.pos += 2;
        break;
      case 4: // tag: attribute + type index
        c.pos++;
        readLeb(bytes, c);
        break;
      default:
        throw new MemoryCapError(`unknown import kind ${kind}`);
    }
  }
  return false;
}
