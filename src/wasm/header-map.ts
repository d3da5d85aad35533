/**
 * HTTP fields as the host keeps them (ordered pairs, lower-case names, repeats allowed) and their
 * proxy-wasm wire form: u32 count, then (u32 key length, u32 value length) per pair, then each key and
 * value followed by a NUL byte; little-endian.
 */

export type HeaderPairs = [string, string][];

export class HeaderMap {
  /** Bumped on every change, so the host writes back only maps that changed since it last looked. */
  version = 0;
  /** Names changed since the host last took them: write-back touches only these. */
  private touched: string[] | undefined = undefined;

  constructor(public pairs: HeaderPairs = []) {}

  static fromRecord(record: Readonly<Record<string, string>>, pseudo?: HeaderPairs): HeaderMap {
    const pairs: HeaderPairs = pseudo ? pseudo.slice() : [];
    for (const k in record) pairs.push([k, record[k]!]);
    return new HeaderMap(pairs);
  }

  get size(): number {
    return this.pairs.length;
  }

  /** The first value; repeated fields are rare in what a gateway sees and SDKs expect one string. */
  get(name: string): string | undefined {
    const key = name.toLowerCase();
    for (const [k, v] of this.pairs) if (k === key) return v;
    return undefined;
  }

  private touch(key: string): void {
    (this.touched ??= []).push(key);
    this.version++;
  }

  /** The names changed since the last call (undefined: none; a name may repeat). */
  takeTouched(): string[] | undefined {
    const t = this.touched;
    this.touched = undefined;
    return t;
  }

  /** All values of a name folded with ", " (RFC 9110 list syntax); undefined when absent. */
  joined(key: string): string | undefined {
    let out: string | undefined;
    for (const [k, v] of this.pairs) if (k === key) out = out === undefined ? v : `${out}, ${v}`;
    return out;
  }

  add(name: string, value: string): void {
    const key = name.toLowerCase();
    this.pairs.push([key, value]);
    this.touch(key);
  }

  replace(name: string, value: string): void {
    const key = name.toLowerCase();
    const pairs = this.pairs;
    let first = -1;
    let repeats = false;
    for (let i = 0; i < pairs.length; i++) {
      if (pairs[i]![0] !== key) continue;
      if (first < 0) first = i;
      else repeats = true;
    }
    // The common case (one or no field of that name) needs no new array.
    if (!repeats) {
      if (first >= 0) pairs[first] = [key, value];
      else pairs.push([key, value]);
      this.touch(key);
      return;
    }
    let seen = false;
    const out: HeaderPairs = [];
    for (const p of this.pairs) {
      if (p[0] !== key) out.push(p);
      else if (!seen) {
        out.push([key, value]);
        seen = true;
      }
    }
    if (!seen) out.push([key, value]);
    this.pairs = out;
    this.touch(key);
  }

  remove(name: string): void {
    const key = name.toLowerCase();
    // Removing what is not there (a rewriter's `remove` on most requests) changes nothing to write back.
    if (!this.pairs.some((p) => p[0] === key)) return;
    this.pairs = this.pairs.filter((p) => p[0] !== key);
    this.touch(key);
  }

  setAll(pairs: HeaderPairs): void {
    for (const [k] of this.pairs) this.touch(k);
    this.pairs = pairs.map(([k, v]) => [k.toLowerCase(), v]);
    for (const [k] of this.pairs) this.touch(k);
  }

  /** Folds repeats with ", " (RFC 9110 list syntax) for a one-value-per-name record. */
  toRecord(includePseudo = false): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of this.pairs) {
      if (!includePseudo && k.charCodeAt(0) === 58 /* ':' */) continue;
      out[k] = k in out ? `${out[k]}, ${v}` : v;
    }
    return out;
  }
}

export function serializedSize(pairs: HeaderPairs): number {
  let size = 4;
  for (const [k, v] of pairs) size += 8 + Buffer.byteLength(k) + Buffer.byteLength(v) + 2;
  return size;
}

/** Writes the wire form at `offset`; `target` must hold `serializedSize(pairs)` bytes from there. */
export function writeHeaderPairs(pairs: HeaderPairs, target: Buffer, offset: number): void {
  target.writeUInt32LE(pairs.length, offset);
  let lens = offset + 4;
  let data = offset + 4 + pairs.length * 8;
  for (const [k, v] of pairs) {
    const kl = target.write(k, data, 'utf8');
    target[data + kl] = 0;
    data += kl + 1;
    const vl = target.write(v, data, 'utf8');
    target[data + vl] = 0;
    data += vl + 1;
    target.writeUInt32LE(kl, lens);
    target.writeUInt32LE(vl, lens + 4);
    lens += 8;
  }
}

export function serializeHeaderPairs(pairs: HeaderPairs): Buffer {
  const out = Buffer.alloc(serializedSize(pairs));
  writeHeaderPairs(pairs, out, 0);
  return out;
}

/** Undefined when the bytes are not a well-formed map (the ABI's ParseFailure/BadArgument case). */
export function parseHeaderPairs(bytes: Uint8Array): HeaderPairs | undefined {
  // The spec allows an empty map as zero bytes or a single 0x00.
  if (bytes.byteLength <= 1) return bytes.byteLength === 0 || bytes[0] === 0 ? [] : undefined;
  if (bytes.byteLength < 4) return undefined;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = buf.readUInt32LE(0);
  let data = 4 + count * 8;
  if (data > buf.byteLength) return undefined;
  const pairs: HeaderPairs = [];
  for (let i = 0; i < count; i++) {
    const kl = buf.readUInt32LE(4 + i * 8);
    const vl = buf.readUInt32LE(8 + i * 8);
    if (data + kl + 1 + vl + 1 > buf.byteLength) return undefined;
    const k = buf.toString('utf8', data, data + kl);
    data += kl + 1;
    const v = buf.toString('utf8', data, data + vl);
    data += vl + 1;
    pairs.push([k, v]);
  }
  return pairs;
}
