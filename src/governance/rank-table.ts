/**
 * A BPE vocabulary (token bytes → rank) kept in typed arrays instead of a Map of strings.
 *
 * Why: o200k has 200k tokens. As a Map keyed by strings it is ~15 MB of live JS objects that every
 * major garbage collection has to trace; in a gateway worker under load that tax was ~10 µs per
 * request of collector time whether or not a request counted tokens. Typed arrays are one object
 * each to the collector, whatever they hold. Lookups take a byte range, so counting needs no
 * substring per candidate either.
 *
 * Layout: the tokens' bytes back to back in `bytes`, token i at [starts[i], starts[i + 1]), its rank
 * in `ranks`; an open-addressing table (linear probing, FNV-1a of the bytes) of token index + 1.
 */

const EMPTY = 0;

function fnv1a(buf: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}

export class RankTable {
  private readonly bytes: Uint8Array;
  private readonly starts: Uint32Array;
  private readonly ranks: Int32Array;
  private readonly slots: Int32Array;
  private readonly mask: number;
  readonly size: number;

  /**
   * From tiktoken's ranks format (js-tiktoken/ranks/*): lines of `marker firstRank tok tok …`, each
   * token base64, ranks consecutive within a line.
   */
  static fromTiktoken(bpeRanks: string): RankTable {
    const lines = bpeRanks.split('\n');
    let count = 0;
    let base64Chars = 0;
    for (const line of lines) {
      if (line === '') continue;
      const fields = line.split(' ');
      count += fields.length - 2;
      for (let i = 2; i < fields.length; i++) base64Chars += fields[i]!.length;
    }
    const bytes = Buffer.alloc(Math.ceil((base64Chars * 3) / 4));
    const starts = new Uint32Array(count + 1);
    const ranks = new Int32Array(count);
    let token = 0;
    let at = 0;
    for (const line of lines) {
      if (line === '') continue;
      const fields = line.split(' ');
      let rank = Number.parseInt(fields[1]!, 10);
      for (let i = 2; i < fields.length; i++) {
        starts[token] = at;
        at += bytes.write(fields[i]!, at, 'base64');
        ranks[token++] = rank++;
      }
    }
    starts[token] = at;
    return new RankTable(new Uint8Array(bytes.buffer, bytes.byteOffset, at), starts, ranks);
  }

  private constructor(bytes: Uint8Array, starts: Uint32Array, ranks: Int32Array) {
    this.bytes = bytes;
    this.starts = starts;
    this.ranks = ranks;
    this.size = ranks.length;
    // At most ~40 % full: probes stay short.
    let capacity = 1024;
    while (capacity < ranks.length * 2.5) capacity *= 2;
    this.slots = new Int32Array(capacity);
    this.mask = capacity - 1;
    for (let t = 0; t < ranks.length; t++) {
      let s = fnv1a(bytes, starts[t]!, starts[t + 1]!) & this.mask;
      while (this.slots[s] !== EMPTY) s = (s + 1) & this.mask;
      this.slots[s] = t + 1;
    }
  }

  /** The rank of the token whose bytes are buf[start, end), or -1 when there is none. */
  rank(buf: Uint8Array, start: number, end: number): number {
    const length = end - start;
    const bytes = this.bytes;
    const starts = this.starts;
    let s = fnv1a(buf, start, end) & this.mask;
    for (;;) {
      const entry = this.slots[s]!;
      if (entry === EMPTY) return -1;
      const t = entry - 1;
      const from = starts[t]!;
      if (starts[t + 1]! - from === length) {
        let i = 0;
        while (i < length && bytes[from + i] === buf[start + i]) i++;
        if (i === length) return this.ranks[t]!;
      }
      s = (s + 1) & this.mask;
    }
  }
}
