/**
 * The exact layer's store: cached answers by key, bounded in entries and in (estimated) bytes,
 * expiring after their TTL, least recently used evicted first. A Map keeps insertion order, so
 * "move to the back on use" is delete + set and the front is always the eviction candidate: every
 * operation is O(1) apart from the evictions it causes.
 *
 * Synchronous and per process: the request thread reads it directly (a lookup is one Map get).
 */

import type { CacheEntry } from './cache-entry.js';

export interface AnswerStoreLimits {
  maxEntries: number;
  maxBytes: number;
  /** Entries larger than this are refused. */
  maxEntryBytes: number;
}

export type EvictionCause = 'capacity' | 'expired' | 'replaced' | 'deleted';

export class AnswerStore {
  private readonly map = new Map<string, CacheEntry>();
  private total = 0;

  constructor(
    private readonly limits: AnswerStoreLimits,
    /** Told about every entry that leaves, so the semantic index can drop it too. */
    private readonly onEvict: (entry: CacheEntry, cause: EvictionCause) => void = () => {},
  ) {}

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.total;
  }

  /** The live entry for `key`, marked as recently used; expired entries are dropped on sight. */
  get(key: string, nowMs: number): CacheEntry | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAtMs <= nowMs) {
      this.drop(e, 'expired');
      return undefined;
    }
    this.map.delete(key);
    this.map.set(key, e);
    return e;
  }

  /** Without touching recency or expiry (for replication and tests). */
  peek(key: string): CacheEntry | undefined {
    return this.map.get(key);
  }

  /** Stores an entry; false when it is too large or already expired. */
  set(entry: CacheEntry, nowMs: number): boolean {
    if (entry.bytes > this.limits.maxEntryBytes || entry.bytes > this.limits.maxBytes || entry.expiresAtMs <= nowMs) return false;
    const old = this.map.get(entry.key);
    if (old !== undefined) this.drop(old, 'replaced');
    this.map.set(entry.key, entry);
    this.total += entry.bytes;
    while (this.map.size > this.limits.maxEntries || this.total > this.limits.maxBytes) {
      const oldest = this.map.values().next().value!;
      this.drop(oldest, oldest.expiresAtMs <= nowMs ? 'expired' : 'capacity');
    }
    return true;
  }

  delete(key: string): boolean {
    const e = this.map.get(key);
    if (e === undefined) return false;
    this.drop(e, 'deleted');
    return true;
  }

  /** Drops every expired entry; returns how many. */
  purgeExpired(nowMs: number): number {
    let n = 0;
    for (const e of [...this.map.values()]) {
      if (e.expiresAtMs <= nowMs) {
        this.drop(e, 'expired');
        n++;
      }
    }
    return n;
  }

  entries(): IterableIterator<CacheEntry> {
    return this.map.values();
  }

  clear(): void {
    for (const e of [...this.map.values()]) this.drop(e, 'deleted');
  }

  private drop(e: CacheEntry, cause: EvictionCause): void {
    this.map.delete(e.key);
    this.total -= e.bytes;
    this.onEvict(e, cause);
  }
}
