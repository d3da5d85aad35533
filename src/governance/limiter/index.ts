/** Rate limits, concurrency limits and quotas: shared-memory and Redis backends of one contract. */

export type {
  Admission,
  Admitted,
  LimitRule,
  LimitUsage,
  Limiter,
  MetricUsage,
  QuotaMode,
  QuotaPeriod,
  QuotaRef,
  QuotaRule,
  QuotaUsage,
  RefusalCode,
  Refused,
  Ticket,
  TopUp,
} from './types.js';
export { SharedMemoryLimiter, type SharedMemoryLimiterOptions, type SharedMemoryLimiterStatus } from './shm-limiter.js';
export { REDIS_LIMITER_DEFAULTS, RedisLimiter, type RedisLimiterOptions } from './redis-limiter.js';
export type { FailPolicy, RedisLimiterCounters, RedisLimiterState, RedisLimiterStatus } from './redis-health.js';
export { goDuration, HEADER, resetDuration, retryAfterSeconds } from './headers.js';
export { consumerKey, consumerModelKey, modelKey } from './keys.js';
export {
  CALENDAR_DAY,
  CALENDAR_MONTH,
  quotaWindow,
  RATE_WINDOW,
  RATE_WINDOW_MS,
  ROLLING_DAY,
  ROLLING_MONTH,
  type WindowGeometry,
} from './windows.js';
export {
  ConsumerLimitFields,
  consumerModelRule,
  consumerQuotas,
  consumerRule,
  costToMicros,
  LimiterSettingsSchema,
  ModelLimitFields,
  modelRule,
  QuotaSchema,
  QuotasSchema,
  RateLimitSchema,
  type LimiterSettings,
  type QuotaConfig,
  type RateLimitConfig,
} from './config.js';
