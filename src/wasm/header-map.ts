/**
 * HTTP fields as the host keeps them (ordered pairs, lower-case names, repeats allowed) and their
 * proxy-wasm wire form: u32 count, then (u32 key length, u32 value length) per pair, then each key and
 * value followed by a NUL byte; little-endian.
 */

import type { RequestContext } from '../pipeline/context.js';

export type HeaderPairs = [string, string][];

const ADD = 0;
const REPLACE = 1;
const REMOVE = 2;

/** Where a map over a record finds the fields that are not in the record (`:method`, `:status` …). */
export type PseudoFields = (ctx: RequestContext) => HeaderPairs;

const NO_PSEUDO: PseudoFields = () => [];

/**
 * A header map. Names passed to its methods must already be lower-case (the host functions lower-case
 * what the guest sends).
 *
 * A map made with `over(record)` is a view: until something needs the pairs in order (the whole map,
 * its size or serialized form, a whole-map replace), it keeps only the plugin's edits, as a log
 * replayed over the record per name. A typical plugin reads or sets a header or two per request, and
 * building the whole list of pairs would cost more than the plugin.
 */
export class HeaderMap {
  /** Bumped on every change, so the host writes back only maps that changed since it last looked. */
  version = 0;
  /** Names changed since the host last took them: write-back touches only these. */
  private touched: string[] | undefined = undefined;
  /** The pairs, once built (always, for a map made from pairs). */
  private list: HeaderPairs | undefined;
  private base: Readonly<Record<string, string>> | undefined = undefined;
  private pseudo: PseudoFields = NO_PSEUDO;
  private pseudoOf: RequestContext | undefined = undefined;
  private pseudoPairs: HeaderPairs | undefined = undefined;
  /** Edits over `base` while `list` is not built: op, name, value, op, name, value … */
  private log: (number | string)[] | undefined = undefined;

  constructor(pairs: HeaderPairs = []) {
    this.list = pairs;
  }

  /** A view of `record` (one value per name) preceded by the pseudo-fields `pseudo(ctx)` lists. */
  static over(record: Readonly<Record<string, string>>, pseudo: PseudoFields, ctx: RequestContext): HeaderMap {
    const m = new HeaderMap();
    m.list = undefined;
    m.base = record;
    m.pseudo = pseudo;
    m.pseudoOf = ctx;
    return m;
  }

  get pairs(): HeaderPairs {
    return this.list ?? this.build();
  }

  set pairs(pairs: HeaderPairs) {
    this.list = pairs;
    this.base = undefined;
    this.log = undefined;
  }

  get size(): number {
    if (this.list !== undefined) return this.list.length;
    if (this.log !== undefined) return this.build().length;
    let n = this.pseudoFields().length;
    for (const _ in this.base) n++;
    return n;
  }

  /** The first value; repeated fields are rare in what a gateway sees and SDKs expect one string. */
  get(key: string): string | undefined {
    const list = this.list;
    if (list === undefined) return this.fold(key, false);
    for (let i = 0; i < list.length; i++) if (list[i]![0] === key) return list[i]![1];
    return undefined;
  }

  /** All values of a name folded with ", " (RFC 9110 list syntax); undefined when absent. */
  joined(key: string): string | undefined {
    const list = this.list;
    if (list === undefined) return this.fold(key, true);
    let out: string | undefined;
    for (let i = 0; i < list.length; i++) {
      const p = list[i]!;
      if (p[0] === key) out = out === undefined ? p[1] : `${out}, ${p[1]}`;
    }
    return out;
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

  add(key: string, value: string): void {
    if (this.list === undefined) this.record(ADD, key, value);
    else this.list.push([key, value]);
    this.touch(key);
  }

  replace(key: string, value: string): void {
    if (this.list === undefined) this.record(REPLACE, key, value);
    else this.replaceIn(this.list, key, value);
    this.touch(key);
  }

  remove(key: string): void {
    // Removing what is not there (a rewriter's `remove` on most requests) changes nothing to write back.
    if (this.list === undefined) {
      if (this.fold(key, false) === undefined) return;
      this.record(REMOVE, key, '');
    } else {
      if (!this.list.some((p) => p[0] === key)) return;
      this.list = this.list.filter((p) => p[0] !== key);
    }
    this.touch(key);
  }

  private replaceIn(pairs: HeaderPairs, key: string, value: string): void {
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
      return;
    }
    let seen = false;
    const out: HeaderPairs = [];
    for (const p of pairs) {
      if (p[0] !== key) out.push(p);
      else if (!seen) {
        out.push([key, value]);
        seen = true;
      }
    }
    this.list = out;
  }

  setAll(pairs: HeaderPairs): void {
    for (const [k] of this.pairs) this.touch(k);
    this.pairs = pairs.map(([k, v]) => [k.toLowerCase(), v]);
    for (const [k] of this.pairs) this.touch(k);
  }

  /**
   * The record this view reads is about to receive the edits made so far (the host writes them
   * back): forget them, so that reads do not apply them twice. A view whose edits a record cannot
   * hold exactly (repeated fields, pseudo-fields) builds its pairs now, from the record as it still
   * is, and no longer follows the record.
   */
  settle(): void {
    const log = this.log;
    if (log === undefined) return;
    for (let i = 0; i < log.length; i += 3) {
      if (log[i] === ADD || (log[i + 1] as string).charCodeAt(0) === 58 /* ':' */) {
        this.build();
        return;
      }
    }
    this.log = undefined;
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

  // ── the view over a record ────────────────────────────────────────────────────────────────

  private record(op: number, key: string, value: string): void {
    (this.log ??= []).push(op, key, value);
  }

  private pseudoFields(): HeaderPairs {
    return (this.pseudoPairs ??= this.pseudo(this.pseudoOf!));
  }

  /** The name's first value (or all of them joined) as the base plus the edits logged so far. */
  private fold(key: string, join: boolean): string | undefined {
    let value: string | undefined;
    if (key.charCodeAt(0) === 58 /* ':' */) {
      for (const p of this.pseudoFields()) {
        if (p[0] === key) {
          value = p[1];
          break;
        }
      }
    } else {
      const v = this.base![key];
      // Own string values only: `constructor` and friends come from the prototype.
      if (typeof v === 'string') value = v;
    }
    const log = this.log;
    if (log === undefined) return value;
    for (let i = 0; i < log.length; i += 3) {
      if (log[i + 1] !== key) continue;
      const op = log[i];
      const v = log[i + 2] as string;
      if (op === REPLACE) value = v;
      else if (op === REMOVE) value = undefined;
      else if (value === undefined) value = v;
      else if (join) value = `${value}, ${v}`;
    }
    return value;
  }

  /** The pairs in order: pseudo-fields, the record's fields, then the logged edits replayed on them. */
  private build(): HeaderPairs {
    const pairs = this.pseudoFields().slice();
    const base = this.base!;
    for (const k in base) pairs.push([k, base[k]!]);
    const log = this.log;
    this.pairs = pairs;
    if (log !== undefined) {
      for (let i = 0; i < log.length; i += 3) {
        const key = log[i + 1] as string;
        if (log[i] === ADD) this.list!.push([key, log[i + 2] as string]);
        else if (log[i] === REPLACE) this.replaceIn(this.list!, key, log[i + 2] as string);
        else this.list = this.list!.filter((p) => p[0] !== key);
      }
    }
    return this.list!;
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
