/**
 * Configuration of limits and quotas, to be spliced into the config schema (consumers, models, and
 * one `limiter` section), and the functions that turn it into the limiter's rules. Keys are
 * snake_case as users write them in YAML; every object is strict. Semantics: docs/limits.md.
 *
 *   consumers:
 *     - name: alice
 *       limits: { rpm: 60, tpm: 100000, concurrent: 4 }
 *       model_limits: { gpt-4o: { rpm: 10 } }
 *       quotas:
 *         - { period: day, tokens: 1000000 }
 *         - { period: month, mode: rolling, cost: 50 }
 *   models:  (or wherever client-facing models are configured)
 *     gpt-4o: { limits: { rpm: 1000 } }
 *   limiter: { on_redis_error: closed }
 */

import { z } from 'zod';

import { consumerKey, consumerModelKey, modelKey } from './keys.js';
import type { LimitRule, QuotaRule } from './types.js';

/** The largest rate limit: counts live in 32-bit bucket words (limit-windows.ts). */
const MAX_RATE = 1_000_000_000;
/** The largest quota: counts live in 42-bit bucket words. */
const MAX_QUOTA = 1_000_000_000_000;

export const RateLimitSchema = z
  .object({
    rpm: z
      .number()
      .int()
      .min(0)
      .max(MAX_RATE)
      .optional()
      .describe('Requests per sliding minute (counted in 60 one-second buckets). 0 blocks every request.'),
    tpm: z
      .number()
      .int()
      .min(0)
      .max(MAX_RATE)
      .optional()
      .describe(
        'Tokens (prompt + completion) per sliding minute. Reserved at admission (estimated prompt + max_tokens, or expected_completion_tokens) and reconciled with the real usage when the response ends.',
      ),
    concurrent: z.number().int().min(0).max(1_000_000).optional().describe('Requests in flight at once (admitted and not yet finished).'),
  })
  .strict()
  .refine((limits) => limits.rpm !== undefined || limits.tpm !== undefined || limits.concurrent !== undefined, {
    message: 'set at least one of rpm, tpm, concurrent',
  })
  .describe('Rate limits of one key; exact across workers (shared memory) and nodes (Redis).');

export const QuotaSchema = z
  .object({
    period: z.enum(['day', 'month']).describe('The length of the quota period.'),
    mode: z
      .enum(['calendar', 'rolling'])
      .default('calendar')
      .describe('calendar: resets at 00:00 UTC / on the 1st of the month UTC. rolling: the last 24 hours (hourly buckets) or 30 days (daily buckets).'),
    tokens: z.number().int().min(0).max(MAX_QUOTA).optional().describe('Tokens (prompt + completion) per period.'),
    cost: z
      .number()
      .min(0)
      .max(MAX_QUOTA / 1_000_000)
      .optional()
      .describe('Money per period in the price table\'s currency (25.5 = 25.50), counted in millionths.'),
  })
  .strict()
  .refine((quota) => quota.tokens !== undefined || quota.cost !== undefined, { message: 'set tokens, cost or both' })
  .describe('A token and/or money budget per day or month.');

export const QuotasSchema = z
  .array(QuotaSchema)
  .max(4)
  .superRefine((quotas, ctx) => {
    const seen = new Set<string>();
    quotas.forEach((quota, i) => {
      const id = `${quota.mode} ${quota.period}`;
      if (seen.has(id)) ctx.addIssue({ code: 'custom', path: [i], message: `two ${id} quotas: merge them into one` });
      seen.add(id);
    });
  })
  .describe('Budgets per day and/or month; a request must fit in all of them.');

/** The fields a consumer gains: its own limits, limits per model, and quotas. */
export const ConsumerLimitFields = {
  limits: RateLimitSchema.optional().describe('Limits of everything the consumer does.'),
  model_limits: z
    .record(z.string().min(1).max(256), RateLimitSchema)
    .optional()
    .describe('Limits of the consumer on one client-facing model (exact model name → limits), on top of `limits`.'),
  quotas: QuotasSchema.optional(),
};

/** The fields a client-facing model gains: limits over all consumers together. */
export const ModelLimitFields = {
  limits: RateLimitSchema.optional().describe('Limits of the model over all consumers together.'),
  expected_completion_tokens: z
    .number()
    .int()
    .min(0)
    .max(10_000_000)
    .optional()
    .describe('Completion tokens to reserve when a request sets no max_tokens; default the limiter section\'s.'),
};

export const LimiterSettingsSchema = z
  .object({
    backend: z
      .enum(['auto', 'local', 'redis'])
      .default('auto')
      .describe('Where counts live: local (shared memory: exact across this node\'s workers), redis (exact across nodes), auto (redis when `redis` is configured).'),
    on_redis_error: z
      .enum(['open', 'closed'])
      .default('open')
      .describe('When Redis fails or is slower than its command timeout: open admits requests unlimited, closed refuses them (503). Recovers by itself.'),
    lease_ttl_ms: z
      .number()
      .int()
      .min(1000)
      .max(600_000)
      .default(10_000)
      .describe('Redis: how long the concurrency places of a node that stopped answering (crashed) keep counting.'),
    settle_delay_ms: z
      .number()
      .int()
      .min(0)
      .max(1000)
      .default(10)
      .describe(
        "Redis: how long a finished request's settlement (its concurrency place, its reservation reconciled) may wait to ride along with this worker's next admission, so it costs no round trip of its own, before it is sent alone. Other nodes see a freed place up to this much later; 0 sends it at once.",
      ),
    key_capacity: z
      .number()
      .int()
      .min(1)
      .max(65_536)
      .default(4096)
      .describe('Shared memory: distinct limit and quota keys over the gateway\'s life (each ~1.3 KiB at 64 workers).'),
    expected_completion_tokens: z
      .number()
      .int()
      .min(0)
      .max(10_000_000)
      .default(1024)
      .describe('Completion tokens to reserve for tpm and token quotas when a request sets no max_tokens.'),
  })
  .strict()
  .describe('How rate limits and quotas are counted.');

export type RateLimitConfig = z.output<typeof RateLimitSchema>;
export type QuotaConfig = z.output<typeof QuotaSchema>;
export type LimiterSettings = z.output<typeof LimiterSettingsSchema>;

export function costToMicros(cost: number): number {
  return Math.round(cost * 1_000_000);
}

function rule(key: string, limits: RateLimitConfig, label: string): LimitRule {
  return {
    key,
    label,
    ...(limits.rpm !== undefined ? { rpm: limits.rpm } : {}),
    ...(limits.tpm !== undefined ? { tpm: limits.tpm } : {}),
    ...(limits.concurrent !== undefined ? { concurrent: limits.concurrent } : {}),
  };
}

/** The rule of a consumer's own limits. */
export function consumerRule(consumer: string, limits: RateLimitConfig): LimitRule {
  return rule(consumerKey(consumer), limits, `consumer ${consumer}`);
}

/** The rule of a consumer on one model. */
export function consumerModelRule(consumer: string, model: string, limits: RateLimitConfig): LimitRule {
  return rule(consumerModelKey(consumer, model), limits, `consumer ${consumer} on ${model}`);
}

/** The rule of a model over all consumers. */
export function modelRule(model: string, limits: RateLimitConfig): LimitRule {
  return rule(modelKey(model), limits, `model ${model}`);
}

/** A consumer's quotas as the limiter takes them. */
export function consumerQuotas(consumer: string, quotas: readonly QuotaConfig[]): QuotaRule[] {
  return quotas.map((quota) => ({
    key: consumerKey(consumer),
    label: `consumer ${consumer}`,
    period: quota.period,
    mode: quota.mode,
    ...(quota.tokens !== undefined ? { tokens: quota.tokens } : {}),
    ...(quota.cost !== undefined ? { costMicros: costToMicros(quota.cost) } : {}),
  }));
}
