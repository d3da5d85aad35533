/**
 * The paged KV cache of one replica with automatic prefix caching, modelled on vLLM v1's block pool:
 *
 * - a fixed number of blocks, each either in use (reference count > 0: running sequences hold it)
 *   or free;
 * - a full block whose tokens are known carries its chain hash and can be found by it; a block
 *   keeps its hash after it is freed, so a later prompt with the same prefix reuses it ("hit");
 * - every free block sits in one queue. Allocation takes from the head and, if the block still
 *   carries a hash, evicts it from the cache: the least recently freed cached block goes first.
 *   A sequence's blocks are queued in reverse order when it ends, so the tail of a chain is evicted
 *   before its head (a head evicted first would make the rest of the chain unreachable);
 * - a hit on a free block takes it out of the queue again.
 *
 * The queue is a doubly linked list in typed arrays: O(1) removal from the middle, no allocation.
 */

const NONE = -1;

export class KvBlockPool {
  readonly numBlocks: number;
  private readonly refs: Int32Array;
  /** The chain hash a block carries, NaN when it carries none. */
  private readonly hashes: Float64Array;
  private readonly byHash = new Map<number, number>();
  // The free queue; index numBlocks is the sentinel, so head = next[sentinel], tail = prev[sentinel].
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly sentinel: number;
  private free: number;
  private evicted = 0;

  constructor(numBlocks: number) {
    if (!(Number.isInteger(numBlocks) && numBlocks > 0)) throw new RangeError(`KV blocks ${numBlocks} is not a positive integer`);
    this.numBlocks = numBlocks;
    this.refs = new Int32Array(numBlocks);
    this.hashes = new Float64Array(numBlocks).fill(Number.NaN);
    this.next = new Int32Array(numBlocks + 1);
    this.prev = new Int32Array(numBlocks + 1);
    this.sentinel = numBlocks;
    this.next[this.sentinel] = this.sentinel;
    this.prev[this.sentinel] = this.sentinel;
    for (let b = 0; b < numBlocks; b++) this.append(b);
    this.free = numBlocks;
  }

  /** Blocks no running sequence holds (cached or not). */
  get freeBlocks(): number {
    return this.free;
  }

  /** Blocks held by running sequences. */
  get usedBlocks(): number {
    return this.numBlocks - this.free;
  }

  /** Blocks carrying a hash, in use or not: what the prefix cache can currently serve. */
  get cachedBlocks(): number {
    return this.byHash.size;
  }

  /** Cached blocks reclaimed for other data since the start. */
  get evictions(): number {
    return this.evicted;
  }

  /** vLLM's KV-cache usage: the fraction of blocks held by running sequences. */
  usage(): number {
    return this.usedBlocks / this.numBlocks;
  }

  /** How many leading hashes of a chain are cached (at most `limit`). */
  cachedPrefix(chain: readonly number[], limit: number): number {
    const n = Math.min(limit, chain.length);
    let i = 0;
    while (i < n && this.byHash.has(chain[i]!)) i++;
    return i;
  }

  /** Of the first `count` hashes of a chain (all cached), how many sit in the free queue. */
  freeAmongCached(chain: readonly number[], count: number): number {
    let n = 0;
    for (let i = 0; i < count; i++) if (this.refs[this.byHash.get(chain[i]!)!] === 0) n++;
    return n;
  }

  /** Takes a reference on each of the first `count` (cached) blocks of a chain, appending them to `out`. */
  acquireCached(chain: readonly number[], count: number, out: number[]): void {
    for (let i = 0; i < count; i++) {
      const block = this.byHash.get(chain[i]!);
      if (block === undefined) throw new Error(`block hash ${chain[i]} is not cached`);
      if (this.refs[block]++ === 0) {
        this.unlink(block);
        this.free--;
      }
      out.push(block);
    }
  }

  /**
   * Takes `count` blocks from the head of the free queue (evicting their hashes), appending them to
   * `out`; false, taking nothing, when fewer are free.
   */
  allocate(count: number, out: number[]): boolean {
    if (count > this.free) return false;
    for (let i = 0; i < count; i++) {
      const block = this.next[this.sentinel]!;
      this.unlink(block);
      this.forget(block);
      this.refs[block] = 1;
      out.push(block);
    }
    this.free -= count;
    return true;
  }

  /**
   * Lets a full block be found by its chain hash. When another block already carries the hash (two
   * sequences computed the same prefix at once), the first stays the one found, as in vLLM.
   */
  cache(block: number, hash: number): void {
    if (!Number.isNaN(this.hashes[block]!) || this.byHash.has(hash)) return;
    this.hashes[block] = hash;
    this.byHash.set(hash, block);
  }

  /** Drops one reference on each block; blocks nobody holds join the free queue, last block first. */
  release(blocks: readonly number[]): void {
    for (let i = blocks.length - 1; i >= 0; i--) {
      const block = blocks[i]!;
      const left = --this.refs[block]!;
      if (left < 0) throw new Error(`block ${block} released more often than acquired`);
      if (left === 0) {
        this.append(block);
        this.free++;
      }
    }
  }

  /** Forgets every free block's hash (vLLM's reset_prefix_cache); blocks in use keep theirs. */
  resetPrefixCache(): number {
    let dropped = 0;
    for (let b = this.next[this.sentinel]!; b !== this.sentinel; b = this.next[b]!) {
      if (!Number.isNaN(this.hashes[b]!)) {
        this.byHash.delete(this.hashes[b]!);
        this.hashes[b] = Number.NaN;
        dropped++;
      }
    }
    return dropped;
  }

  private forget(block: number): void {
    const hash = this.hashes[block]!;
    if (Number.isNaN(hash)) return;
    this.byHash.delete(hash);
    this.hashes[block] = Number.NaN;
    this.evicted++;
  }

  private append(block: number): void {
    const tail = this.prev[this.sentinel]!;
    this.next[tail] = block;
    this.prev[block] = tail;
    this.next[block] = this.sentinel;
    this.prev[this.sentinel] = block;
  }

  private unlink(block: number): void {
    const p = this.prev[block]!;
    const n = this.next[block]!;
    this.next[p] = n;
    this.prev[n] = p;
    this.next[block] = NONE;
    this.prev[block] = NONE;
  }
}
