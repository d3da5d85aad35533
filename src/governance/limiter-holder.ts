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
import { Counter, Gauge, type Registry } from 'prom-client';
import { LimitPolicy } from './limits-filter.js';
import type { RedisLimiterStatus } from './limiter/redis-health.js';
import { warmUpTokenEstimator } from './token-estimate.js';

export class LimiterHolder {
  private current: Limiter | undefined;
  private shape = '';

  constructor(private readonly shm: SharedMemory) {}

  /** The limiter for `config`, or undefined when it configures no limit. */
  forConfig(config: Config, policy: LimitPolicy = new LimitPolicy(config)): Limiter | undefined {
    if (!policy.active) return this.current;
    // The tokenizer's first load takes a hundred ms or more: at start or reload, not on a request.
    if (policy.countsTokens) warmUpTokenEstimator();
    const redis = config.limiter.backend === 'redis' || (config.limiter.backend === 'auto' && config.redis !== undefined) ? config.redis : undefined;
    const shape = redis ? JSON.stringify(['redis', redis.url, redis.key_prefix, config.limiter.on_redis_error, config.limiter.lease_ttl_ms, config.limiter.settle_delay_ms]) : 'local';
    if (this.current !== undefined && shape === this.shape) return this.current;
    const old = this.current;
    this.current = redis
      ? new RedisLimiter({
          redis: redis.url,
          keyPrefix: redis.key_prefix,
          onRedisError: config.limiter.on_redis_error,
          commandTimeoutMs: redis.command_timeout_ms,
          leaseTtlMs: config.limiter.lease_ttl_ms,
          settleDelayMs: config.limiter.settle_delay_ms,
        })
      : new SharedMemoryLimiter(this.shm);
    this.shape = shape;
    // Requests admitted by the old one settle against it; it stays usable until they have.
    if (old) setTimeout(() => void old.close().catch((err) => log.warn('closing a replaced limiter failed', describeError(err))), 60_000).unref();
    return this.current;
  }

  /** Health of a Redis-backed limiter (undefined for shared memory, which cannot fail that way). */
  redisStatus(): RedisLimiterStatus | undefined {
    return this.current instanceof RedisLimiter ? this.current.status() : undefined;
  }

  async close(): Promise<void> {
    await this.current?.close();
  }
}

/**
 * Redis faults as metrics (a log line per state change comes from the limiter itself): whether Redis
 * answers, and how many admissions the fail policy decided. Read when scraped.
 */
export function registerLimiterMetrics(registry: Registry, holder: LimiterHolder): void {
  const seen = { errors: 0, open: 0, closed: 0 };
  // Each metric's collect() brings all four up to date, whichever prom-client reads first.
  const refresh = (): void => {
    const s = holder.redisStatus();
    if (s === undefined) return;
    up.set(s.state === 'ok' ? 1 : 0);
    errors.inc(Math.max(0, s.redisErrors - seen.errors));
    failOpen.inc(Math.max(0, s.failOpen - seen.open));
    failClosed.inc(Math.max(0, s.failClosed - seen.closed));
    seen.errors = s.redisErrors;
    seen.open = s.failOpen;
    seen.closed = s.failClosed;
  };
  const up = new Gauge({
    name: 'sluice_limiter_redis_up',
    help: 'Whether the Redis behind rate limits answers (1) or fails (0); absent without a Redis limiter.',
    registers: [registry],
    collect: refresh,
  });
  const errors = new Counter({
    name: 'sluice_limiter_redis_errors_total',
    help: 'Redis calls of the limiter that failed or timed out.',
    registers: [registry],
    collect: refresh,
  });
  const failOpen = new Counter({
    name: 'sluice_limiter_fail_open_total',
    help: 'Requests admitted without limits because Redis was unavailable (on_redis_error: open).',
    registers: [registry],
    collect: refresh,
  });
  const failClosed = new Counter({
    name: 'sluice_limiter_fail_closed_total',
    help: 'Requests refused because Redis was unavailable (on_redis_error: closed).',
    registers: [registry],
    collect: refresh,
  });
}
