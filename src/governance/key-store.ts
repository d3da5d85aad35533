/**
 * Keys created and revoked at run time through the admin API, held by the supervisor and pushed to
 * every worker as a whole set (a revocation is one message, effective at once).
 *
 * With `redis` configured they are persisted there (one hash of id → record, hash-only) and every
 * change is published on a channel; each node's supervisor subscribes and reloads, so a key made or
 * revoked on one node works or stops on all within the publish latency. A periodic reload covers a
 * message lost while a subscriber reconnected. Without Redis they live in the supervisor's memory
 * only and are gone at restart (documented).
 */

import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { RedisConfig } from '../config/schema.js';
import { describeError, log } from '../observability/logger.js';
import type { RuntimeKey } from './consumers.js';
import { generateKey, hashKey, keyHint } from './keys.js';

const RESYNC_MS = 5_000;

export class KeyStoreError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export class RuntimeKeyStore {
  private keys = new Map<string, RuntimeKey>();
  private client: Redis | undefined;
  private subscriber: Redis | undefined;
  private resync: NodeJS.Timeout | undefined;
  private redisKey = '';
  private prefix = 'sluice:';

  constructor(private readonly onChange: (keys: readonly RuntimeKey[]) => void) {}

  list(): RuntimeKey[] {
    return [...this.keys.values()];
  }

  /** Points the store at the config's Redis (or none); reloads from it when that changed. */
  async configure(redis: RedisConfig | undefined): Promise<void> {
    const key = redis ? JSON.stringify([redis.url, redis.key_prefix]) : '';
    if (key === this.redisKey) return;
    this.redisKey = key;
    await this.disconnect();
    if (!redis) return;
    this.prefix = redis.key_prefix;
    const options = { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000, commandTimeout: redis.command_timeout_ms * 5 };
    this.client = new Redis(redis.url, options);
    this.subscriber = new Redis(redis.url, { ...options, commandTimeout: undefined });
    for (const c of [this.client, this.subscriber]) c.on('error', () => undefined);
    this.subscriber.on('message', () => void this.reload());
    try {
      await Promise.all([this.client.connect(), this.subscriber.connect()]);
      await this.subscriber.subscribe(this.channel);
      await this.reload();
    } catch (err) {
      log.warn('runtime keys: Redis unavailable; will retry', { ...describeError(err), stack: undefined });
    }
    this.resync = setInterval(() => void this.reload(), RESYNC_MS);
    this.resync.unref();
  }

  async create(consumer: string): Promise<{ key: string; record: RuntimeKey }> {
    const key = generateKey();
    const record: RuntimeKey = {
      id: `key_${randomBytes(9).toString('base64url')}`,
      hash: hashKey(key),
      consumer,
      createdAt: new Date().toISOString(),
      hint: keyHint(key),
    };
    if (this.client) {
      try {
        await this.client.hset(this.hashName, record.id, JSON.stringify(record));
        await this.client.publish(this.channel, record.id);
      } catch (err) {
        throw new KeyStoreError(`the key could not be stored in Redis (${(err as Error).message}); nothing was created`, 503);
      }
    }
    this.keys.set(record.id, record);
    this.onChange(this.list());
    return { key, record };
  }

  async revoke(id: string): Promise<boolean> {
    if (this.client) {
      try {
        const removed = await this.client.hdel(this.hashName, id);
        await this.client.publish(this.channel, id);
        if (removed === 0 && !this.keys.has(id)) return false;
      } catch (err) {
        throw new KeyStoreError(`the key could not be revoked in Redis (${(err as Error).message}); try again`, 503);
      }
    }
    const existed = this.keys.delete(id);
    this.onChange(this.list());
    return existed || this.client !== undefined;
  }

  async stop(): Promise<void> {
    await this.disconnect();
  }

  private get hashName(): string {
    return `${this.prefix}keys`;
  }

  private get channel(): string {
    return `${this.prefix}keys:changed`;
  }

  /** Replace the set with what Redis holds; on failure keep the last known set. */
  private async reload(): Promise<void> {
    const client = this.client;
    if (!client) return;
    let all: Record<string, string>;
    try {
      all = await client.hgetall(this.hashName);
    } catch {
      return;
    }
    const next = new Map<string, RuntimeKey>();
    for (const [id, text] of Object.entries(all)) {
      try {
        const r = JSON.parse(text) as RuntimeKey;
        if (typeof r.hash === 'string' && typeof r.consumer === 'string') next.set(id, r);
      } catch {
        // A record another version wrote that this one cannot read: skipped, never fatal.
      }
    }
    if (sameKeys(next, this.keys)) return;
    this.keys = next;
    this.onChange(this.list());
  }

  private async disconnect(): Promise<void> {
    clearInterval(this.resync);
    this.resync = undefined;
    const clients = [this.client, this.subscriber];
    this.client = undefined;
    this.subscriber = undefined;
    for (const c of clients) c?.disconnect();
  }
}

function sameKeys(a: ReadonlyMap<string, RuntimeKey>, b: ReadonlyMap<string, RuntimeKey>): boolean {
  if (a.size !== b.size) return false;
  for (const [id, k] of a) if (b.get(id)?.hash !== k.hash) return false;
  return true;
}
