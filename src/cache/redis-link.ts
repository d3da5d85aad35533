/**
 * Sharing cached answers between gateway nodes through Redis. Redis holds the records (with their
 * TTL) and announces new ones; it never searches. Every node keeps its own exact store and HNSW
 * index, fed from the records (vectors included, so nothing is embedded twice).
 *
 *   store:   SET <prefix>:e:<key> <record> PX <ttl>; PUBLISH <prefix>:new {node, key}
 *   receive: on a message from another node, GET the record and hand it to `onRecord`
 *   start:   `records(limit)`: SCAN + MGET of the live records, for a node that starts late
 *   fallback: `get(key)` on an exact miss (not wired: it would put a Redis round trip on misses)
 *
 * Failures of Redis are never a request's failure: publishing is fire and forget, `get` resolves
 * undefined on any error or after its timeout.
 */

import { Redis } from 'ioredis';
import type { CacheRecord } from './cache-entry.js';
import { KEY_VERSION } from './request-key.js';

export interface RedisLinkOptions {
  /** `redis://host:port/db`. */
  url: string;
  /** Distinguishes this node's own announcements. */
  nodeId: string;
  /** Key and channel prefix; the key version is part of it, so nodes with another key scheme never meet. */
  prefix?: string;
  /** Longest wait for one GET. */
  timeoutMs?: number;
}

interface Announcement {
  n: string;
  k: string;
}

export class RedisCacheLink {
  private readonly prefix: string;
  private readonly channel: string;
  private readonly timeoutMs: number;
  private closed = false;
  /** Records published and received, and failures: for metrics. */
  readonly counters = { published: 0, received: 0, errors: 0 };

  private constructor(
    private readonly client: Redis,
    private readonly subscriber: Redis,
    private readonly options: RedisLinkOptions,
    private readonly onRecord: (record: unknown) => void,
  ) {
    this.prefix = options.prefix ?? `sluice:cache:${KEY_VERSION}`;
    this.channel = `${this.prefix}:new`;
    this.timeoutMs = options.timeoutMs ?? 50;
  }

  static async connect(options: RedisLinkOptions, onRecord: (record: unknown) => void): Promise<RedisCacheLink> {
    const make = (): Redis => new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2_000 });
    const client = make();
    const subscriber = make();
    // Connection errors are retried by ioredis; without a listener they would be thrown.
    const link = new RedisCacheLink(client, subscriber, options, onRecord);
    client.on('error', () => link.counters.errors++);
    subscriber.on('error', () => link.counters.errors++);
    try {
      await Promise.all([client.connect(), subscriber.connect()]);
      subscriber.on('message', (channel: string, message: string) => {
        if (channel === link.channel) void link.receive(message);
      });
      await subscriber.subscribe(link.channel);
    } catch (err) {
      // ioredis would keep reconnecting in the background: the caller decides when to try again.
      await link.close();
      throw err;
    }
    return link;
  }

  /** Stores a record and tells the other nodes. */
  publish(record: CacheRecord): void {
    if (this.closed) return;
    const ttl = Math.floor(record.expiresAtMs - Date.now());
    if (ttl <= 0) return;
    const announcement: Announcement = { n: this.options.nodeId, k: record.key };
    this.client
      .multi()
      .set(this.entryKey(record.key), JSON.stringify(record), 'PX', ttl)
      .publish(this.channel, JSON.stringify(announcement))
      .exec()
      .then(
        () => this.counters.published++,
        () => this.counters.errors++,
      );
  }

  /** The record stored under an exact key, if Redis answers in time. */
  async get(key: string): Promise<unknown> {
    if (this.closed) return undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const raw = await Promise.race([
        this.client.get(this.entryKey(key)),
        new Promise<null>((resolve) => {
          timer = setTimeout(() => resolve(null), this.timeoutMs);
        }),
      ]);
      return raw === null ? undefined : (JSON.parse(raw) as unknown);
    } catch {
      this.counters.errors++;
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Records any node stored that are still live, at most `limit`: what a node that starts late
   * begins with (announcements made before it subscribed never reached it).
   */
  async records(limit: number): Promise<unknown[]> {
    const out: unknown[] = [];
    if (this.closed || limit <= 0) return out;
    const match = `${this.prefix.replace(/[*?[\]\\]/g, '\\$&')}:e:*`;
    let cursor = '0';
    try {
      do {
        const [next, keys] = await this.client.scan(cursor, 'MATCH', match, 'COUNT', 200);
        cursor = next;
        if (keys.length === 0) continue;
        for (const raw of await this.client.mget(...keys)) {
          if (raw === null) continue;
          try {
            out.push(JSON.parse(raw) as unknown);
          } catch {
            this.counters.errors++;
          }
          if (out.length >= limit) return out;
        }
      } while (cursor !== '0' && !this.closed);
    } catch {
      this.counters.errors++;
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.subscriber.disconnect();
    this.client.disconnect();
  }

  private entryKey(key: string): string {
    return `${this.prefix}:e:${key}`;
  }

  private async receive(message: string): Promise<void> {
    let a: Announcement;
    try {
      a = JSON.parse(message) as Announcement;
    } catch {
      this.counters.errors++;
      return;
    }
    if (a.n === this.options.nodeId || typeof a.k !== 'string') return;
    const record = await this.get(a.k);
    if (record === undefined) return;
    this.counters.received++;
    try {
      this.onRecord(record);
    } catch {
      // A record this node refuses (malformed, another version) is skipped, not fatal.
      this.counters.errors++;
    }
  }
}
