/**
 * The worker's limiter, made when a config first needs one and replaced only when the settings that
 * shape it change (backend, Redis address): counts must survive ordinary reloads.
 */

import type { Config } from '../config/schema.js';
import { describeError, log } from '../observability/logger.js';
import type { SharedMemory } from '../shm/shared-memory.js';
import { RedisLimiter } from './limiter/redis-limiter.js';
import { SharedMemoryLimiter } from './limiter/shm-limiter.js';
import type { Limiter } from './limiter/types.js';
import { LimitPolicy } from './limits-filter.js';
import { warmUpTokenEstimator } from './token-estimate.js';

export class LimiterHolder {
  private current: Limiter | undefined;
  private shape = '';

  constructor(private readonly shm: SharedMemory) {}

  /** The limiter for `config`, or undefined when it configures no limit. */
  forConfig(config: Config): Limiter | undefined {
    if (!new LimitPolicy(config).active) return this.current;
    // The tokenizer's first load takes a few hundred ms: at start or reload, not on a request.
    if (this.current === undefined) warmUpTokenEstimator();
    const redis = config.limiter.backend === 'redis' || (config.limiter.backend === 'auto' && config.redis !== undefined) ? config.redis : undefined;
    const shape = redis ? JSON.stringify(['redis', redis.url, redis.key_prefix, config.limiter.on_redis_error, config.limiter.lease_ttl_ms]) : 'local';
    if (this.current !== undefined && shape === this.shape) return this.current;
    const old = this.current;
    this.current = redis
      ? new RedisLimiter({
          redis: redis.url,
          keyPrefix: redis.key_prefix,
          onRedisError: config.limiter.on_redis_error,
          commandTimeoutMs: redis.command_timeout_ms,
          leaseTtlMs: config.limiter.lease_ttl_ms,
        })
      : new SharedMemoryLimiter(this.shm);
    this.shape = shape;
    // Requests admitted by the old one settle against it; it stays usable until they have.
    if (old) setTimeout(() => void old.close().catch((err) => log.warn('closing a replaced limiter failed', describeError(err))), 60_000).unref();
    return this.current;
  }

  async close(): Promise<void> {
    await this.current?.close();
  }
}
