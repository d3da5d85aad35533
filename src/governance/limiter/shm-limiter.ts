/**
 * The limiter for one gateway node: state in the shared-memory segment, so every worker process
 * sees the same counts and an admission is exact across workers without IPC (src/shm/limit-*.ts
 * hold the lock-free primitives and say why they are exact).
 *
 * All-or-nothing over several rules and quotas: each limit is checked and charged by one CAS, in
 * order; when one refuses, the charges already made for this admission are refunded into the exact
 * buckets they went to. Between the charge and its refund another admission can see it and be
 * refused (never the reverse: nothing is ever admitted beyond a limit); that window lasts a few
 * hundred nanoseconds and only exists when a later limit refuses.
 *
 * Synchronous and allocation-light: one ticket and one headers object per admission; slots are
 * resolved once per key per process (the table is hashed with sha256 on first use only).
 */

import { clock } from '../../clock.js';
import { log } from '../../observability/logger.js';
import { LayoutError, QUOTA_PACKING, RATE_PACKING, sharedClockMs, type SharedMemory, type WindowPacking } from '../../shm/index.js';
import { rateLimitHeaders, TightestLimit } from './headers.js';
import { refuse, unavailable } from './refusal.js';
import type {
  Admission,
  LimitRule,
  LimitUsage,
  Limiter,
  QuotaRef,
  QuotaRule,
  QuotaUsage,
  Ticket,
  TopUp,
} from './types.js';
import { CALENDAR_DAY, CALENDAR_MONTH, RATE_WINDOW, RATE_WINDOW_MS, ROLLING_DAY, ROLLING_MONTH, type WindowGeometry } from './windows.js';

export interface SharedMemoryLimiterOptions {
  /**
   * Clock of the rate windows, in ms. It must read the same in every process sharing the segment:
   * the default is the shared clock (CLOCK_MONOTONIC). Tests pass their own.
   */
  readonly rateClockMs?: () => number;
  /** Wall clock (UTC ms) of quota periods; default clock.wallMs(). */
  readonly wallClockMs?: () => number;
  /**
   * When the segment's limiter table is full and a new key gets no slot: 'open' admits without that
   * key's limits, 'closed' refuses with `limiter_unavailable`. Either way one log line per key.
   * Default 'open'.
   */
  readonly onTableFull?: 'open' | 'closed';
}

export interface SharedMemoryLimiterStatus {
  readonly admitted: number;
  readonly refused: number;
  /** Keys that found the limiter table full (see onTableFull). */
  readonly keysWithoutSlot: number;
}

/** The order of quota geometries in a ticket (an index instead of a reference keeps it numeric). */
const QUOTA_GEOMETRIES: readonly WindowGeometry[] = [CALENDAR_DAY, CALENDAR_MONTH, ROLLING_DAY, ROLLING_MONTH];

function geometryIndex(quota: QuotaRef): number {
  return (quota.mode === 'calendar' ? 0 : 2) + (quota.period === 'day' ? 0 : 1);
}

const PERIOD_TEXT = ['per day', 'per month', 'per 24 hours', 'per 30 days'] as const;

/** Ticket rule entry: slot, requests epoch, tokens epoch (0 = not charged), concurrency place (0/1). */
const RULE_FIELDS = 4;
/** Ticket quota entry: slot, geometry index, tokens epoch, cost epoch, generation. */
const QUOTA_FIELDS = 5;

/** Shared by tickets without rules or quotas; never written (an end of 0 keeps it empty). */
const NO_ENTRIES: number[] = [];

class SharedMemoryTicket implements Ticket {
  settled = false;
  readonly unlimited = false;
  tokenHeadroom = Infinity;
  costHeadroomMicros = Infinity;
  /** Entries (RULE_FIELDS numbers each), sized for every rule; the first `rulesEnd` numbers are used. */
  readonly rules: number[];
  rulesEnd = 0;
  /** Entries (QUOTA_FIELDS numbers each), like rules. */
  readonly quotas: number[];
  quotasEnd = 0;

  constructor(
    readonly reservedTokens: number,
    readonly reservedCostMicros: number,
    /** Which limiter made it: a ticket is settled where it was admitted. */
    readonly owner: SharedMemoryLimiter,
    ruleCount: number,
    quotaCount: number,
  ) {
    // Sized once: arrays grown by push start at 17 elements, twice the garbage of one rule and quota.
    this.rules = ruleCount === 0 ? NO_ENTRIES : new Array<number>(ruleCount * RULE_FIELDS);
    this.quotas = quotaCount === 0 ? NO_ENTRIES : new Array<number>(quotaCount * QUOTA_FIELDS);
  }
}

function checkAmount(name: string, value: number): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) throw new RangeError(`limiter: ${name} must be a non-negative integer, got ${value}`);
}

/** A settle amount the caller could not measure (NaN, negative) counts as the reservation. */
function actualOr(value: number, reserved: number): number {
  return Number.isFinite(value) && value >= 0 ? Math.round(value) : reserved;
}

export class SharedMemoryLimiter implements Limiter {
  private readonly windows: SharedMemory['limitWindows'];
  private readonly concurrency: SharedMemory['limitConcurrency'];
  private readonly keys: SharedMemory['limitKeys'];
  private readonly rateClockMs: () => number;
  private readonly wallClockMs: () => number;
  private readonly onTableFull: 'open' | 'closed';
  private readonly rateSlots = new Map<string, number>();
  private readonly quotaSlots: Map<string, number>[] = QUOTA_GEOMETRIES.map(() => new Map<string, number>());
  private readonly requests = new TightestLimit();
  private readonly tokens = new TightestLimit();
  private admittedCount = 0;
  private refusedCount = 0;
  private keysWithoutSlot = 0;

  constructor(shm: SharedMemory, options: SharedMemoryLimiterOptions = {}) {
    this.windows = shm.limitWindows;
    this.concurrency = shm.limitConcurrency;
    this.keys = shm.limitKeys;
    this.rateClockMs = options.rateClockMs ?? sharedClockMs;
    this.wallClockMs = options.wallClockMs ?? clock.wallMs;
    this.onTableFull = options.onTableFull ?? 'open';
  }

  /** The key's slot in the segment, claimed on first use; -1 when the table is full. */
  private slot(cache: Map<string, number>, tableKey: string, key: string): number {
    const cached = cache.get(key);
    if (cached !== undefined) return cached;
    let slot: number;
    try {
      slot = this.keys.slotFor(tableKey);
    } catch (err) {
      if (!(err instanceof LayoutError)) throw err;
      slot = -1;
      this.keysWithoutSlot++;
      log.warn(`limiter: shared-memory limiter table is full; key ${this.onTableFull === 'open' ? 'admitted without limits' : 'refused'}`, {
        limit_key: key,
        capacity: this.keys.capacity,
      });
    }
    // A full table stays full for the segment's life, so -1 is cached too (one log line per key).
    cache.set(key, slot);
    return slot;
  }

  private rateSlot(key: string): number {
    return this.slot(this.rateSlots, `r|${key}`, key);
  }

  private quotaSlot(quota: QuotaRef, geometry: number): number {
    return this.slot(this.quotaSlots[geometry]!, `q|${QUOTA_GEOMETRIES[geometry]!.code}|${quota.key}`, quota.key);
  }

  admit(rules: readonly LimitRule[], quotas: readonly QuotaRule[], reserveTokens: number, reserveCostMicros: number): Admission {
    checkAmount('reserveTokens', reserveTokens);
    checkAmount('reserveCostMicros', reserveCostMicros);
    const windows = this.windows;
    const now = this.rateClockMs();
    const epoch = RATE_WINDOW.epochOf(now);
    const ticket = new SharedMemoryTicket(reserveTokens, reserveCostMicros, this, rules.length, quotas.length);
    this.requests.clear();
    this.tokens.clear();

    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      if (rule.rpm === undefined && rule.tpm === undefined && rule.concurrent === undefined) continue;
      const slot = this.rateSlot(rule.key);
      if (slot < 0) {
        if (this.onTableFull === 'open') continue;
        return this.refuseUnavailable(ticket, now);
      }
      const entry = ticket.rulesEnd;
      ticket.rulesEnd = entry + RULE_FIELDS;
      ticket.rules[entry] = slot;
      ticket.rules[entry + 1] = 0;
      ticket.rules[entry + 2] = 0;
      ticket.rules[entry + 3] = 0;
      if (rule.rpm !== undefined) {
        const at = windows.tryCharge(slot, 0, RATE_PACKING, RATE_WINDOW.buckets, epoch, 1, rule.rpm);
        if (at < 0) return this.refuseRate(ticket, rule, 'requests', slot, epoch, now, 1, rule.rpm);
        ticket.rules[entry + 1] = at;
        this.requests.offer(rule.rpm, rule.rpm - windows.lastUsed - 1, RATE_WINDOW.startOf(at + RATE_WINDOW.buckets) - now);
      }
      if (rule.tpm !== undefined) {
        const at = windows.tryCharge(slot, 1, RATE_PACKING, RATE_WINDOW.buckets, epoch, reserveTokens, rule.tpm);
        if (at < 0) return this.refuseRate(ticket, rule, 'tokens', slot, epoch, now, reserveTokens, rule.tpm);
        ticket.rules[entry + 2] = at;
        this.tokens.offer(rule.tpm, rule.tpm - windows.lastUsed - reserveTokens, RATE_WINDOW.startOf(at + RATE_WINDOW.buckets) - now);
      }
      if (rule.concurrent !== undefined) {
        if (!this.concurrency.tryAcquire(slot, rule.concurrent)) {
          this.rollback(ticket, now);
          this.refusedCount++;
          return refuse({
            code: rule.concurrent === 0 ? 'too_large' : 'concurrency_limited',
            metric: 'concurrent',
            name: rule.label ?? rule.key,
            limit: rule.concurrent,
            used: this.concurrency.held(slot),
            cost: 1,
            // Nothing says when a place frees; a second is the usual length of a short request.
            retryAfterMs: 1000,
            resetMs: 0,
          });
        }
        ticket.rules[entry + 3] = 1;
      }
    }

    if (quotas.length > 0) {
      const wall = this.wallClockMs();
      for (let i = 0; i < quotas.length; i++) {
        const quota = quotas[i]!;
        if (quota.tokens === undefined && quota.costMicros === undefined) continue;
        const geometry = geometryIndex(quota);
        const window = QUOTA_GEOMETRIES[geometry]!;
        const slot = this.quotaSlot(quota, geometry);
        if (slot < 0) {
          if (this.onTableFull === 'open') continue;
          return this.refuseUnavailable(ticket, now);
        }
        const quotaEpoch = window.epochOf(wall);
        const entry = ticket.quotasEnd;
        ticket.quotasEnd = entry + QUOTA_FIELDS;
        ticket.quotas[entry] = slot;
        ticket.quotas[entry + 1] = geometry;
        ticket.quotas[entry + 2] = 0;
        ticket.quotas[entry + 3] = 0;
        ticket.quotas[entry + 4] = windows.generation(slot);
        if (quota.tokens !== undefined) {
          const at = windows.tryCharge(slot, 0, QUOTA_PACKING, window.buckets, quotaEpoch, reserveTokens, quota.tokens);
          if (at < 0) return this.refuseQuota(ticket, quota, 'quota-tokens', slot, geometry, quotaEpoch, wall, now, reserveTokens, quota.tokens);
          ticket.quotas[entry + 2] = at;
          const headroom = quota.tokens - windows.lastUsed - reserveTokens;
          if (headroom < ticket.tokenHeadroom) ticket.tokenHeadroom = headroom;
        }
        if (quota.costMicros !== undefined) {
          const at = windows.tryCharge(slot, 1, QUOTA_PACKING, window.buckets, quotaEpoch, reserveCostMicros, quota.costMicros);
          if (at < 0) {
            return this.refuseQuota(ticket, quota, 'quota-cost', slot, geometry, quotaEpoch, wall, now, reserveCostMicros, quota.costMicros);
          }
          ticket.quotas[entry + 3] = at;
          const headroom = quota.costMicros - windows.lastUsed - reserveCostMicros;
          if (headroom < ticket.costHeadroomMicros) ticket.costHeadroomMicros = headroom;
        }
      }
    }
    this.admittedCount++;
    return { ok: true, ticket, headers: rateLimitHeaders(this.requests, this.tokens) };
  }

  private refuseRate(
    ticket: SharedMemoryTicket,
    rule: LimitRule,
    metric: 'requests' | 'tokens',
    slot: number,
    epoch: number,
    now: number,
    cost: number,
    limit: number,
  ): Admission {
    const windowMetric = metric === 'requests' ? 0 : 1;
    const used = this.windows.lastUsed;
    const newest = this.windows.lastEpoch;
    const tooLarge = cost > limit;
    const freeing = tooLarge
      ? -1
      : this.windows.freeingEpoch(slot, windowMetric, RATE_PACKING, RATE_WINDOW.buckets, epoch, used + Math.max(cost, 1) - limit);
    this.rollback(ticket, now);
    this.refusedCount++;
    return refuse({
      code: tooLarge ? 'too_large' : 'rate_limited',
      metric,
      name: rule.label ?? rule.key,
      limit,
      used,
      cost,
      retryAfterMs: freeing < 0 ? RATE_WINDOW_MS : RATE_WINDOW.startOf(freeing + RATE_WINDOW.buckets) - now,
      resetMs: RATE_WINDOW.startOf(newest + RATE_WINDOW.buckets) - now,
    });
  }

  private refuseQuota(
    ticket: SharedMemoryTicket,
    quota: QuotaRule,
    metric: 'quota-tokens' | 'quota-cost',
    slot: number,
    geometry: number,
    epoch: number,
    wall: number,
    now: number,
    cost: number,
    limit: number,
  ): Admission {
    const window = QUOTA_GEOMETRIES[geometry]!;
    const used = this.windows.lastUsed;
    const tooLarge = cost > limit;
    let retryAfterMs: number;
    if (window.buckets === 1) {
      retryAfterMs = window.startOf(epoch + 1) - wall;
    } else {
      const need = used + Math.max(cost, 1) - limit;
      const freeing = tooLarge ? -1 : this.windows.freeingEpoch(slot, metric === 'quota-tokens' ? 0 : 1, QUOTA_PACKING, window.buckets, epoch, need);
      retryAfterMs = freeing < 0 ? window.startOf(epoch + window.buckets) - wall : window.startOf(freeing + window.buckets) - wall;
    }
    this.rollback(ticket, now);
    this.refusedCount++;
    return refuse({
      code: tooLarge ? 'too_large' : 'quota_exceeded',
      metric,
      name: quota.label ?? quota.key,
      limit,
      used,
      cost,
      retryAfterMs,
      resetMs: 0,
      periodText: PERIOD_TEXT[geometry],
    });
  }

  private refuseUnavailable(ticket: SharedMemoryTicket, now: number): Admission {
    this.rollback(ticket, now);
    this.refusedCount++;
    return unavailable(RATE_WINDOW_MS);
  }

  /** Takes back every charge the ticket made, into the buckets it made them in. */
  private rollback(ticket: SharedMemoryTicket, now: number): void {
    const windows = this.windows;
    const epoch = RATE_WINDOW.epochOf(now);
    const rules = ticket.rules;
    for (let i = 0; i < ticket.rulesEnd; i += RULE_FIELDS) {
      const slot = rules[i]!;
      if (rules[i + 1]! > 0) windows.refund(slot, 0, RATE_PACKING, RATE_WINDOW.buckets, epoch, rules[i + 1]!, 1);
      if (rules[i + 2]! > 0) windows.refund(slot, 1, RATE_PACKING, RATE_WINDOW.buckets, epoch, rules[i + 2]!, ticket.reservedTokens);
      if (rules[i + 3] === 1) this.concurrency.release(slot);
    }
    const quotas = ticket.quotas;
    if (ticket.quotasEnd === 0) return;
    const wall = this.wallClockMs();
    for (let i = 0; i < ticket.quotasEnd; i += QUOTA_FIELDS) this.reconcileQuota(quotas, i, wall, 0, 0, ticket);
  }

  /** Moves a quota entry's charges from the reservation to `tokens` and `cost`. */
  private reconcileQuota(quotas: number[], i: number, wall: number, tokens: number, cost: number, ticket: SharedMemoryTicket): void {
    const slot = quotas[i]!;
    const window = QUOTA_GEOMETRIES[quotas[i + 1]!]!;
    // Reset since admission: the reservation is gone with everything else.
    if (this.windows.generation(slot) !== quotas[i + 4]) return;
    const epoch = window.epochOf(wall);
    this.reconcile(slot, 0, QUOTA_PACKING, window.buckets, epoch, quotas[i + 2]!, ticket.reservedTokens, tokens);
    this.reconcile(slot, 1, QUOTA_PACKING, window.buckets, epoch, quotas[i + 3]!, ticket.reservedCostMicros, cost);
  }

  /**
   * Less than reserved: the difference goes back to the bucket charged (if still counted). More:
   * the excess is charged to the current bucket, unconditionally (it has been used already).
   */
  private reconcile(
    slot: number,
    metric: 0 | 1,
    packing: WindowPacking,
    buckets: number,
    epoch: number,
    charged: number,
    reserved: number,
    actual: number,
  ): void {
    if (charged <= 0) return;
    const delta = actual - reserved;
    if (delta < 0) this.windows.refund(slot, metric, packing, buckets, epoch, charged, -delta);
    else if (delta > 0) this.windows.tryCharge(slot, metric, packing, buckets, epoch, delta, Infinity);
  }

  settle(ticket: Ticket, actualTokens: number, actualCostMicros: number): void {
    if (!(ticket instanceof SharedMemoryTicket) || ticket.owner !== this || ticket.settled) return;
    ticket.settled = true;
    try {
      const tokens = actualOr(actualTokens, ticket.reservedTokens);
      const cost = actualOr(actualCostMicros, ticket.reservedCostMicros);
      const epoch = RATE_WINDOW.epochOf(this.rateClockMs());
      const rules = ticket.rules;
      for (let i = 0; i < ticket.rulesEnd; i += RULE_FIELDS) {
        const slot = rules[i]!;
        this.reconcile(slot, 1, RATE_PACKING, RATE_WINDOW.buckets, epoch, rules[i + 2]!, ticket.reservedTokens, tokens);
        if (rules[i + 3] === 1) this.concurrency.release(slot);
      }
      const quotas = ticket.quotas;
      if (ticket.quotasEnd === 0) return;
      const wall = this.wallClockMs();
      for (let i = 0; i < ticket.quotasEnd; i += QUOTA_FIELDS) this.reconcileQuota(quotas, i, wall, tokens, cost, ticket);
    } catch (err) {
      // A bug, not a condition of the traffic: report it, never fail the request that settles.
      log.error('limiter: settle failed', { error: err instanceof Error ? err.message : String(err) });
    }
  }

  limitUsage(rule: LimitRule): LimitUsage {
    const slot = this.keys.find(`r|${rule.key}`);
    const epoch = RATE_WINDOW.epochOf(this.rateClockMs());
    const metric = (used: number, limit: number | undefined) => ({ used, limit, remaining: limit === undefined ? undefined : Math.max(0, limit - used) });
    const requests = slot < 0 ? 0 : this.windows.usage(slot, 0, RATE_PACKING, RATE_WINDOW.buckets, epoch);
    const tokens = slot < 0 ? 0 : this.windows.usage(slot, 1, RATE_PACKING, RATE_WINDOW.buckets, epoch);
    const concurrent = slot < 0 ? 0 : this.concurrency.held(slot);
    return { key: rule.key, requests: metric(requests, rule.rpm), tokens: metric(tokens, rule.tpm), concurrent: metric(concurrent, rule.concurrent) };
  }

  quotaUsage(quota: QuotaRule): QuotaUsage {
    const geometry = geometryIndex(quota);
    const window = QUOTA_GEOMETRIES[geometry]!;
    const slot = this.keys.find(`q|${window.code}|${quota.key}`);
    const wall = this.wallClockMs();
    const epoch = window.epochOf(wall);
    const metric = (used: number, limit: number | undefined) => ({ used, limit, remaining: limit === undefined ? undefined : Math.max(0, limit - used) });
    const tokens = slot < 0 ? 0 : this.windows.usage(slot, 0, QUOTA_PACKING, window.buckets, epoch);
    const cost = slot < 0 ? 0 : this.windows.usage(slot, 1, QUOTA_PACKING, window.buckets, epoch);
    let nextChangeMs = window.startOf(epoch + 1);
    if (window.buckets > 1 && slot >= 0) {
      const oldest = Math.min(
        ...[0, 1].map((m) => this.windows.buckets(slot, m as 0 | 1, QUOTA_PACKING, window.buckets, epoch)[0]?.epoch ?? Infinity),
      );
      if (Number.isFinite(oldest)) nextChangeMs = window.startOf(oldest + window.buckets);
    }
    return {
      key: quota.key,
      period: quota.period,
      mode: quota.mode,
      tokens: metric(tokens, quota.tokens),
      costMicros: metric(cost, quota.costMicros),
      windowStartMs: window.startOf(epoch - window.buckets + 1),
      nextChangeMs,
    };
  }

  resetQuota(quota: QuotaRef): void {
    const window = QUOTA_GEOMETRIES[geometryIndex(quota)]!;
    const slot = this.keys.find(`q|${window.code}|${quota.key}`);
    if (slot >= 0) this.windows.reset(slot);
  }

  topUp(quota: QuotaRef, amount: TopUp): void {
    const tokens = amount.tokens ?? 0;
    const cost = amount.costMicros ?? 0;
    checkAmount('top-up tokens', tokens);
    checkAmount('top-up costMicros', cost);
    const geometry = geometryIndex(quota);
    const window = QUOTA_GEOMETRIES[geometry]!;
    const slot = this.quotaSlot(quota, geometry);
    if (slot < 0) throw new LayoutError('shared-memory limiter table is full: cannot record a top-up');
    const epoch = window.epochOf(this.wallClockMs());
    if (tokens > 0) this.windows.tryCharge(slot, 0, QUOTA_PACKING, window.buckets, epoch, -tokens, Infinity);
    if (cost > 0) this.windows.tryCharge(slot, 1, QUOTA_PACKING, window.buckets, epoch, -cost, Infinity);
  }

  status(): SharedMemoryLimiterStatus {
    return { admitted: this.admittedCount, refused: this.refusedCount, keysWithoutSlot: this.keysWithoutSlot };
  }

  async close(): Promise<void> {
    // The segment belongs to the caller; nothing to release.
  }
}
