/**
 * The admin side of budgets, served by the supervisor: read a consumer's quotas, reset them, top
 * them up. It counts through the same store as the workers (the node's shared memory, or Redis),
 * so what it shows and changes is what the next request sees.
 */

import type { Config } from '../config/schema.js';
import type { SharedMemory } from '../shm/shared-memory.js';
import { consumerQuotas, costToMicros } from './limiter/config.js';
import type { MetricUsage, QuotaRule } from './limiter/types.js';
import { LimiterHolder } from './limiter-holder.js';

export class QuotaAdmin {
  private readonly limiters: LimiterHolder;

  constructor(
    shm: SharedMemory,
    private readonly config: () => Config,
  ) {
    this.limiters = new LimiterHolder(shm);
  }

  async read(consumer: string): Promise<unknown[] | undefined> {
    const quotas = this.quotas(consumer, undefined);
    if (quotas === undefined) return undefined;
    const limiter = this.limiters.forConfig(this.config())!;
    return Promise.all(
      quotas.map(async (q) => {
        const u = await limiter.quotaUsage(q);
        return {
          period: q.period,
          mode: q.mode,
          tokens: metric(u.tokens, 1),
          cost_usd: metric(u.costMicros, 1e6),
          window_start: new Date(u.windowStartMs).toISOString(),
          next_change: new Date(u.nextChangeMs).toISOString(),
        };
      }),
    );
  }

  async reset(consumer: string, period: string | undefined): Promise<boolean> {
    const quotas = this.quotas(consumer, period);
    if (quotas === undefined) return false;
    const limiter = this.limiters.forConfig(this.config())!;
    for (const q of quotas) await limiter.resetQuota(q);
    return true;
  }

  async topUp(consumer: string, period: string | undefined, tokens: number | undefined, cost: number | undefined): Promise<boolean> {
    const quotas = this.quotas(consumer, period);
    if (quotas === undefined) return false;
    const limiter = this.limiters.forConfig(this.config())!;
    const amount = { ...(tokens !== undefined ? { tokens: Math.round(tokens) } : {}), ...(cost !== undefined ? { costMicros: costToMicros(cost) } : {}) };
    for (const q of quotas) await limiter.topUp(q, amount);
    return true;
  }

  async close(): Promise<void> {
    await this.limiters.close();
  }

  /** The consumer's quotas (of one period if given); undefined when it has none. */
  private quotas(consumer: string, period: string | undefined): QuotaRule[] | undefined {
    const c = this.config().consumers.find((x) => x.name === consumer);
    if (c?.quotas === undefined || c.quotas.length === 0) return undefined;
    const all = consumerQuotas(c.name, c.quotas);
    const picked = period === undefined ? all : all.filter((q) => q.period === period);
    return picked.length === 0 ? undefined : picked;
  }
}

function metric(m: MetricUsage, scale: number): { used: number; limit: number | null; remaining: number | null } {
  return {
    used: m.used / scale,
    limit: m.limit === undefined ? null : m.limit / scale,
    remaining: m.remaining === undefined ? null : m.remaining / scale,
  };
}
