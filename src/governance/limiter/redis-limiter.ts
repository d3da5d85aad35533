/**
 * The limiter across gateway nodes: state in Redis, one Lua script per admission (one round trip,
 * every rule and quota checked and charged atomically, all or nothing), and a lease per process for
 * concurrency. Settlements do not cost a round trip of their own under load: they are queued and
 * ride along with this process's next admission (applied first, in the same script), or leave in a
 * batch after settleDelayMs when no admission comes. Keys, scripts
 * and the windows they keep: redis-scripts.ts. Semantics: docs/limits.md.
 *
 * Concurrency across nodes: each process (a worker, one "node" of the limiter) counts its places
 * per key in a hash field of its own, and renews a lease in a registry every leaseTtlMs / 3. An
 * admission sums only the fields of nodes whose lease is alive, so a node that dies (or loses Redis
 * for longer than the lease) stops holding places within leaseTtlMs, with nobody cleaning up after
 * it. The renewal re-states this node's counts as absolute numbers, which repairs an increment or a
 * release lost to a timeout.
 *
 * Redis faults: a call that fails or takes longer than commandTimeoutMs is decided by the policy
 * (`open`: admitted, unlimited, nothing charged; `closed`: refused with `limiter_unavailable`), the
 * state turns `degraded` with one log line, and from then on admissions do not wait on Redis: one
 * probe per probeIntervalMs (and the lease tick) asks it, and the first answer restores `ok`. With a
 * client the limiter makes itself, commands are never queued while disconnected (a queued admission
 * replayed after an outage would charge a request that was long decided), and ioredis reconnects on
 * its own.
 */

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

import { Redis } from 'ioredis';

import { clock } from '../../clock.js';
import { rateLimitHeaders, TightestLimit } from './headers.js';
import { type FailPolicy, RedisHealth, type RedisLimiterStatus } from './redis-health.js';
import { ADMIT_LUA, SETTLE_LUA, TICK_LUA, TOP_UP_LUA, USAGE_LUA } from './redis-scripts.js';
import { type LimitMetric, refuse, unavailable } from './refusal.js';
import type {
  Admission,
  LimitRule,
  LimitUsage,
  Limiter,
  MetricUsage,
  QuotaRef,
  QuotaRule,
  QuotaUsage,
  Ticket,
  TopUp,
} from './types.js';
import { quotaWindow, RATE_WINDOW, RATE_WINDOW_MS, type WindowGeometry } from './windows.js';

export const REDIS_LIMITER_DEFAULTS = {
  commandTimeoutMs: 200,
  leaseTtlMs: 10_000,
  probeIntervalMs: 500,
  /** Settlement items per script call; a larger backlog goes in several calls. */
  settleBatchItems: 256,
  /** A settlement that could not be sent for this long is dropped: its bucket has left the window. */
  settleMaxAgeMs: 60_000,
  /** How long a settlement waits for an admission to carry it before it is sent alone. */
  settleDelayMs: 10,
} as const;

export interface RedisLimiterOptions {
  /**
   * An ioredis client owned by the caller (not closed by close(); best made with
   * `enableOfflineQueue: false`), or a redis:// URL for a client the limiter makes and closes.
   */
  readonly redis: Redis | string;
  /** Prepended to every key, e.g. `sluice:`. */
  readonly keyPrefix: string;
  readonly onRedisError: FailPolicy;
  /** Unique per process and run; default host:pid:random. */
  readonly nodeId?: string;
  readonly commandTimeoutMs?: number;
  /** How long a silent node keeps its concurrency places; default 10 s (renewed every third of it). */
  readonly leaseTtlMs?: number;
  readonly probeIntervalMs?: number;
  /**
   * How long a settlement (places given back, the reservation reconciled) may wait to ride along
   * with this process's next admission before it is sent alone; 0 sends it within the event-loop
   * turn. Other nodes see a released place that much later at most. Default 10 ms.
   */
  readonly settleDelayMs?: number;
  /** Tests only: the time the scripts use instead of Redis TIME (ms since the epoch). */
  readonly clockMs?: () => number;
}

function defaultNodeId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

/** A Redis URL without its credentials, for logs. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return '(unparseable redis url)';
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function checkAmount(name: string, value: number): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) throw new RangeError(`limiter: ${name} must be a non-negative integer, got ${value}`);
}

function actualOr(value: number, reserved: number): number {
  return Number.isFinite(value) && value >= 0 ? Math.round(value) : reserved;
}

function metric(used: number, limit: number | undefined): MetricUsage {
  return { used, limit, remaining: limit === undefined ? undefined : Math.max(0, limit - used) };
}

type Script = (numberOfKeys: number, ...keysAndArgs: string[]) => Promise<unknown>;

/** One limit of an admission as the admit script sees it. */
interface Item {
  readonly kind: 'r' | 'c' | WindowGeometry['code'];
  readonly key: string;
  readonly a: number;
  readonly b: number;
  readonly rule?: LimitRule;
  readonly quota?: QuotaRule;
  readonly window?: WindowGeometry;
}

/** What settling a window charge needs: where it went, and which metrics carry tokens and cost. */
interface ChargedWindow {
  readonly kind: string;
  readonly key: string;
  readonly epoch: number;
  readonly tokens: 'a' | 'b' | null;
  readonly cost: 'b' | null;
}

class RedisTicket implements Ticket {
  settled = false;
  tokenHeadroom = Infinity;
  costHeadroomMicros = Infinity;
  readonly windows: ChargedWindow[] = [];
  /** Concurrency hashes holding one place each for this ticket. */
  readonly places: string[] = [];

  constructor(
    readonly reservedTokens: number,
    readonly reservedCostMicros: number,
    readonly unlimited: boolean,
    readonly owner: RedisLimiter,
  ) {}
}

interface PendingSettle {
  readonly kind: string;
  readonly key: string;
  readonly epoch: number;
  readonly deltaA: number;
  readonly deltaB: number;
  readonly queuedAt: number;
}

export class RedisLimiter implements Limiter {
  readonly nodeId: string;
  readonly commandTimeoutMs: number;
  readonly leaseTtlMs: number;
  readonly probeIntervalMs: number;
  readonly settleDelayMs: number;

  private readonly redis: Redis;
  private readonly ownsRedis: boolean;
  private readonly prefix: string;
  private readonly registryKey: string;
  private readonly clockMs: (() => number) | undefined;
  private readonly health: RedisHealth;
  private readonly runAdmit: Script;
  private readonly runSettle: Script;
  private readonly runTick: Script;
  private readonly runUsage: Script;
  private readonly runTopUp: Script;

  /** Places this node holds per concurrency hash, as the commands sent so far leave them. */
  private readonly held = new Map<string, number>();
  private pending: PendingSettle[] = [];
  private batch: { promise: Promise<void>; resolve: () => void } | null = null;
  private flushing = false;
  private flushScheduled = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  /** When Redis last confirmed this node's lease (monotonic ms). */
  private leaseRenewedAt = -Infinity;
  private ticking: Promise<boolean> | null = null;
  private readonly requests = new TightestLimit();
  private readonly tokens = new TightestLimit();

  constructor(options: RedisLimiterOptions) {
    this.nodeId = options.nodeId ?? defaultNodeId();
    this.commandTimeoutMs = options.commandTimeoutMs ?? REDIS_LIMITER_DEFAULTS.commandTimeoutMs;
    this.leaseTtlMs = options.leaseTtlMs ?? REDIS_LIMITER_DEFAULTS.leaseTtlMs;
    this.probeIntervalMs = options.probeIntervalMs ?? REDIS_LIMITER_DEFAULTS.probeIntervalMs;
    this.settleDelayMs = options.settleDelayMs ?? REDIS_LIMITER_DEFAULTS.settleDelayMs;
    if (!(Number.isInteger(this.settleDelayMs) && this.settleDelayMs >= 0)) {
      throw new RangeError(`limiter: settleDelayMs must be a non-negative integer, got ${this.settleDelayMs}`);
    }
    for (const [name, value] of [
      ['commandTimeoutMs', this.commandTimeoutMs],
      ['leaseTtlMs', this.leaseTtlMs],
      ['probeIntervalMs', this.probeIntervalMs],
    ] as const) {
      if (!(Number.isInteger(value) && value > 0)) throw new RangeError(`limiter: ${name} must be a positive integer, got ${value}`);
    }
    if (this.nodeId.length === 0) throw new RangeError('limiter: nodeId must not be empty');
    this.prefix = options.keyPrefix;
    this.registryKey = `${this.prefix}lim:nodes`;
    this.clockMs = options.clockMs;

    let label: string;
    if (typeof options.redis === 'string') {
      label = redactUrl(options.redis);
      this.redis = new Redis(options.redis, {
        commandTimeout: this.commandTimeoutMs,
        connectTimeout: Math.max(1000, this.commandTimeoutMs),
        maxRetriesPerRequest: 1,
        enableOfflineQueue: false,
        retryStrategy: (times) => Math.min(50 * times, 1000),
        disconnectTimeout: 200,
        // Admissions of one event-loop turn leave in one write: fewer syscalls per request.
        enableAutoPipelining: true,
      });
      // Failures surface through the health state, logged once per change; without a listener
      // ioredis would print every connection error.
      this.redis.on('error', () => undefined);
      this.ownsRedis = true;
    } else {
      label = "(caller's client)";
      this.redis = options.redis;
      this.ownsRedis = false;
    }
    this.health = new RedisHealth(
      options.onRedisError,
      this.nodeId,
      label,
      this.probeIntervalMs,
      () => clock.monotonicMs(),
    );
    this.runAdmit = this.define('sluiceLimitAdmit', ADMIT_LUA);
    this.runSettle = this.define('sluiceLimitSettle', SETTLE_LUA);
    this.runTick = this.define('sluiceLimitTick', TICK_LUA);
    this.runUsage = this.define('sluiceLimitUsage', USAGE_LUA);
    this.runTopUp = this.define('sluiceLimitTopUp', TOP_UP_LUA);
    this.redis.on('ready', () => {
      if (this.pending.length > 0) this.scheduleFlush();
    });
    this.tickTimer = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.leaseTtlMs / 3)));
    this.tickTimer.unref();
  }

  private define(name: string, lua: string): Script {
    const existing = (this.redis as unknown as Record<string, Script | undefined>)[name];
    if (existing === undefined) this.redis.defineCommand(name, { lua });
    return (this.redis as unknown as Record<string, Script>)[name]!.bind(this.redis);
  }

  /**
   * A call bounded by commandTimeoutMs: by ioredis itself for a client of our own (no timer and
   * race per call), by a timer for a caller's client, whose settings are not ours.
   */
  private bounded<T>(command: Promise<T>): Promise<T> {
    return this.ownsRedis ? command : withTimeout(command, this.commandTimeoutMs);
  }

  private timeArg(): string {
    return this.clockMs === undefined ? '' : String(Math.round(this.clockMs()));
  }

  /** False while a client of our own is not connected: sending would fail at once anyway. */
  private connected(): boolean {
    return !this.ownsRedis || this.redis.status === 'ready';
  }

  private rateKey(key: string): string {
    return `${this.prefix}lim:r:${key}`;
  }

  private placesKey(key: string): string {
    return `${this.prefix}lim:c:${key}`;
  }

  private quotaKey(quota: QuotaRef): string {
    return `${this.prefix}lim:q:${quotaWindow(quota.period, quota.mode).code}:${quota.key}`;
  }

  private connecting: Promise<void> | null = null;

  /** Resolves when a client of our own is ready, or after commandTimeoutMs. */
  private firstConnection(): Promise<void> {
    this.connecting ??= new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.redis.off('ready', done);
        this.connecting = null;
        resolve();
      };
      const timer = setTimeout(done, this.commandTimeoutMs);
      this.redis.once('ready', done);
    });
    return this.connecting;
  }

  /**
   * Resolves true once Redis has answered one lease tick, false after `timeoutMs` without one. For
   * startup: admissions before the first answer follow the fail policy.
   */
  async ready(timeoutMs = 5000): Promise<boolean> {
    const deadline = clock.monotonicMs() + timeoutMs;
    while (clock.monotonicMs() < deadline) {
      if (this.connected() && (await this.tick())) return true;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return false;
  }

  async admit(rules: readonly LimitRule[], quotas: readonly QuotaRule[], reserveTokens: number, reserveCostMicros: number): Promise<Admission> {
    checkAmount('reserveTokens', reserveTokens);
    checkAmount('reserveCostMicros', reserveCostMicros);
    const items = this.items(rules, quotas);
    if (items.length === 0) return { ok: true, ticket: new RedisTicket(reserveTokens, reserveCostMicros, false, this), headers: {} };
    // Right after start the connection may still be opening: wait for it (a command timeout at
    // most) rather than deciding the first requests by the fail policy.
    if (!this.connected() && this.health.state === 'connecting') await this.firstConnection();
    if (!this.connected()) {
      this.health.unreachable(`Redis connection is ${this.redis.status}`);
      return this.fallback(reserveTokens, reserveCostMicros);
    }
    const probe = this.health.state === 'degraded';
    if (!this.health.shouldTry()) return this.fallback(reserveTokens, reserveCostMicros);

    const keys: string[] = [this.registryKey];
    // The lease tick renews this node's lease; an admission does it only when no tick has lately.
    const renewLease = clock.monotonicMs() - this.leaseRenewedAt > this.leaseTtlMs / 3;
    const args: string[] = [
      this.timeArg(),
      this.nodeId,
      String(this.leaseTtlMs),
      String(reserveTokens),
      String(reserveCostMicros),
      renewLease ? '1' : '0',
      '0',
    ];
    // Queued settlements ride along: no round trip of their own, and applied before this check.
    const carried = this.carrySettlements(keys, args);
    args[6] = String(carried);
    for (const item of items) {
      keys.push(item.key);
      args.push(item.kind, String(keys.length), String(item.a), String(item.b));
    }
    // Counted as held from the moment the command is sent: a tick sent after it re-states a count
    // that includes it, in the order Redis executes them.
    this.changePlaces(items, 1);
    let reply: unknown;
    const sentAt = clock.monotonicMs();
    try {
      reply = await this.bounded(this.runAdmit(keys.length, ...keys, ...args));
    } catch (err) {
      this.changePlaces(items, -1);
      // Sent, maybe applied: like a failed batch, the carried settlements are not retried.
      this.health.settlementsLost += carried;
      this.health.failed(err);
      return this.fallback(reserveTokens, reserveCostMicros);
    } finally {
      if (probe) this.health.probeDone();
      if (carried > 0) this.settledAll();
    }
    if (!Array.isArray(reply) || reply.length < 2) {
      this.changePlaces(items, -1);
      this.health.failed(new Error('unexpected reply from the admit script'));
      return this.fallback(reserveTokens, reserveCostMicros);
    }
    this.health.succeeded();
    const now = Number(reply[1]);
    if (renewLease && items.some((item) => item.kind === 'c')) this.leaseRenewedAt = Math.max(this.leaseRenewedAt, sentAt);
    if (Number(reply[0]) !== 1) {
      this.changePlaces(items, -1);
      this.health.refused++;
      return this.refusal(items, reply, now, reserveTokens, reserveCostMicros);
    }

    const ticket = new RedisTicket(reserveTokens, reserveCostMicros, false, this);
    this.requests.clear();
    this.tokens.clear();
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      const epoch = Number(reply[2 + i * 3]);
      const usedA = Number(reply[3 + i * 3]);
      const usedB = Number(reply[4 + i * 3]);
      if (item.kind === 'c') {
        ticket.places.push(item.key);
      } else if (item.kind === 'r') {
        const rule = item.rule!;
        const resetMs = RATE_WINDOW.startOf(epoch + RATE_WINDOW.buckets) - now;
        if (rule.rpm !== undefined) this.requests.offer(rule.rpm, rule.rpm - usedA - 1, resetMs);
        if (rule.tpm !== undefined) this.tokens.offer(rule.tpm, rule.tpm - usedB - reserveTokens, resetMs);
        if (rule.tpm !== undefined) ticket.windows.push({ kind: 'r', key: item.key, epoch, tokens: 'b', cost: null });
      } else {
        const quota = item.quota!;
        if (quota.tokens !== undefined) ticket.tokenHeadroom = Math.min(ticket.tokenHeadroom, quota.tokens - usedA - reserveTokens);
        if (quota.costMicros !== undefined) ticket.costHeadroomMicros = Math.min(ticket.costHeadroomMicros, quota.costMicros - usedB - reserveCostMicros);
        ticket.windows.push({
          kind: item.kind,
          key: item.key,
          epoch,
          tokens: quota.tokens !== undefined ? 'a' : null,
          cost: quota.costMicros !== undefined ? 'b' : null,
        });
      }
    }
    this.health.admitted++;
    return { ok: true, ticket, headers: rateLimitHeaders(this.requests, this.tokens) };
  }

  private items(rules: readonly LimitRule[], quotas: readonly QuotaRule[]): Item[] {
    const items: Item[] = [];
    for (const rule of rules) {
      if (rule.rpm !== undefined || rule.tpm !== undefined) {
        items.push({ kind: 'r', key: this.rateKey(rule.key), a: rule.rpm ?? -1, b: rule.tpm ?? -1, rule });
      }
      if (rule.concurrent !== undefined) items.push({ kind: 'c', key: this.placesKey(rule.key), a: rule.concurrent, b: -1, rule });
    }
    for (const quota of quotas) {
      if (quota.tokens === undefined && quota.costMicros === undefined) continue;
      const window = quotaWindow(quota.period, quota.mode);
      items.push({ kind: window.code, key: this.quotaKey(quota), a: quota.tokens ?? -1, b: quota.costMicros ?? -1, quota, window });
    }
    return items;
  }

  private changePlaces(items: readonly Item[], delta: 1 | -1): void {
    for (const item of items) if (item.kind === 'c') this.changeHeld(item.key, delta);
  }

  private changeHeld(key: string, delta: number): void {
    this.held.set(key, (this.held.get(key) ?? 0) + delta);
  }

  private fallback(reserveTokens: number, reserveCostMicros: number): Admission {
    if (this.health.policy === 'open') {
      this.health.failOpen++;
      return { ok: true, ticket: new RedisTicket(reserveTokens, reserveCostMicros, true, this), headers: {} };
    }
    this.health.failClosed++;
    return unavailable(this.probeIntervalMs);
  }

  private refusal(items: readonly Item[], reply: unknown[], now: number, reserveTokens: number, reserveCostMicros: number): Admission {
    const item = items[Number(reply[2]) - 1]!;
    const which = String(reply[3]);
    const used = Number(reply[4]);
    const epoch = Number(reply[5]);
    const freeing = Number(reply[6]);
    if (item.kind === 'c') {
      const rule = item.rule!;
      return refuse({
        code: item.a === 0 ? 'too_large' : 'concurrency_limited',
        metric: 'concurrent',
        name: rule.label ?? rule.key,
        limit: item.a,
        used,
        cost: 1,
        retryAfterMs: 1000,
        resetMs: 0,
      });
    }
    if (item.kind === 'r') {
      const rule = item.rule!;
      const requests = which === 'a';
      const limit = requests ? rule.rpm! : rule.tpm!;
      const cost = requests ? 1 : reserveTokens;
      return refuse({
        code: cost > limit ? 'too_large' : 'rate_limited',
        metric: requests ? 'requests' : 'tokens',
        name: rule.label ?? rule.key,
        limit,
        used,
        cost,
        retryAfterMs: freeing < 0 ? RATE_WINDOW_MS : RATE_WINDOW.startOf(freeing + RATE_WINDOW.buckets) - now,
        resetMs: RATE_WINDOW.startOf(epoch + RATE_WINDOW.buckets) - now,
      });
    }
    const quota = item.quota!;
    const window = item.window!;
    const tokens = which === 'a';
    const limit = tokens ? quota.tokens! : quota.costMicros!;
    const cost = tokens ? reserveTokens : reserveCostMicros;
    let retryAfterMs: number;
    if (window.buckets === 1) retryAfterMs = window.startOf(epoch + 1) - now;
    else retryAfterMs = window.startOf((freeing < 0 ? epoch : freeing) + window.buckets) - now;
    const metricName: LimitMetric = tokens ? 'quota-tokens' : 'quota-cost';
    return refuse({
      code: cost > limit ? 'too_large' : 'quota_exceeded',
      metric: metricName,
      name: quota.label ?? quota.key,
      limit,
      used,
      cost,
      retryAfterMs,
      resetMs: 0,
      periodText: periodText(quota),
    });
  }

  /**
   * Queues the ticket's reconciliation and place releases; they leave in one script call with every
   * other settlement of this turn of the event loop. The promise resolves when that call is done
   * (or given up); it never rejects, and nobody needs to wait for it.
   */
  settle(ticket: Ticket, actualTokens: number, actualCostMicros: number): Promise<void> {
    if (!(ticket instanceof RedisTicket) || ticket.owner !== this || ticket.settled) return Promise.resolve();
    ticket.settled = true;
    if (ticket.unlimited || (ticket.windows.length === 0 && ticket.places.length === 0)) return Promise.resolve();
    const tokens = actualOr(actualTokens, ticket.reservedTokens) - ticket.reservedTokens;
    const cost = actualOr(actualCostMicros, ticket.reservedCostMicros) - ticket.reservedCostMicros;
    const queuedAt = clock.monotonicMs();
    for (const charged of ticket.windows) {
      const deltaA = charged.tokens === 'a' ? tokens : 0;
      const deltaB = charged.tokens === 'b' ? tokens : charged.cost === 'b' ? cost : 0;
      if (deltaA !== 0 || deltaB !== 0) {
        this.pending.push({ kind: charged.kind, key: charged.key, epoch: charged.epoch, deltaA, deltaB, queuedAt });
      }
    }
    for (const key of ticket.places) this.pending.push({ kind: 'c', key, epoch: 0, deltaA: 0, deltaB: 0, queuedAt });
    if (this.pending.length === 0) return Promise.resolve();
    if (this.batch === null) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.batch = { promise, resolve };
    }
    if (this.settleDelayMs === 0) this.scheduleFlush();
    else this.armFlushTimer(this.settleDelayMs);
    return this.batch.promise;
  }

  /**
   * Sends what no admission carried once the oldest queued settlement is settleDelayMs old. One
   * timer at a time, re-armed for the oldest item when it fires early (admissions took the items
   * it was set for), so a steady stream of requests never sends a batch of its own.
   */
  private armFlushTimer(ms: number): void {
    if (this.flushTimer !== undefined) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      const oldest = this.pending[0];
      if (oldest === undefined) return;
      const age = clock.monotonicMs() - oldest.queuedAt;
      if (age < this.settleDelayMs) this.armFlushTimer(Math.ceil(this.settleDelayMs - age));
      else this.scheduleFlush();
    }, ms);
    this.flushTimer.unref();
  }

  /**
   * Moves up to one batch of queued settlements into an admission's keys and arguments (key indices
   * into `keys`, as the admit script reads them); returns how many items it added.
   */
  private carrySettlements(keys: string[], args: string[]): number {
    if (this.pending.length === 0) return 0;
    const chunk = this.pending.length <= REDIS_LIMITER_DEFAULTS.settleBatchItems ? this.pending : this.pending.slice(0, REDIS_LIMITER_DEFAULTS.settleBatchItems);
    this.pending = chunk === this.pending ? [] : this.pending.slice(chunk.length);
    this.appendSettlements(chunk, keys, args);
    return chunk.length;
  }

  /** Settlement items as script arguments; each key once in `keys`. Places count as given back from here. */
  private appendSettlements(chunk: readonly PendingSettle[], keys: string[], args: string[]): void {
    const index = new Map<string, number>();
    for (const entry of chunk) {
      let at = index.get(entry.key);
      if (at === undefined) {
        keys.push(entry.key);
        at = keys.length;
        index.set(entry.key, at);
      }
      args.push(entry.kind, String(at), String(entry.epoch), String(entry.deltaA), String(entry.deltaB));
      if (entry.kind === 'c') this.changeHeld(entry.key, -1);
    }
  }

  /** Resolves the settle() promises once nothing is queued any more. */
  private settledAll(): void {
    if (this.pending.length === 0 && this.batch !== null) {
      this.batch.resolve();
      this.batch = null;
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushing) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.pending.length > 0) {
        if (!this.connected()) {
          // Not sent, so safe to keep for the reconnection ('ready' flushes again), unless the
          // buckets they refund have left the window by now.
          const cutoff = clock.monotonicMs() - REDIS_LIMITER_DEFAULTS.settleMaxAgeMs;
          const kept = this.pending.filter((entry) => entry.queuedAt >= cutoff);
          this.health.settlementsLost += this.pending.length - kept.length;
          for (const entry of this.pending) if (entry.queuedAt < cutoff && entry.kind === 'c') this.changeHeld(entry.key, -1);
          this.pending = kept;
          break;
        }
        const chunk = this.pending.splice(0, REDIS_LIMITER_DEFAULTS.settleBatchItems);
        const keys: string[] = [];
        const args: string[] = [this.timeArg(), this.nodeId];
        this.appendSettlements(chunk, keys, args);
        try {
          await this.bounded(this.runSettle(keys.length, ...keys, ...args));
          this.health.succeeded();
        } catch (err) {
          // Sent, maybe applied: retrying could refund twice. Refunds are lost (the limit errs on the
          // strict side); places are re-stated by the next tick.
          this.health.failed(err);
          this.health.settlementsLost += chunk.length;
        }
      }
    } finally {
      this.flushing = false;
      this.settledAll();
    }
  }

  /**
   * Renews this node's lease and re-states its places. Runs every leaseTtlMs / 3; exposed for
   * tests and ready(). Resolves true when Redis answered; never rejects.
   */
  tick(): Promise<boolean> {
    if (this.ticking !== null) return this.ticking;
    const run = async (): Promise<boolean> => {
      if (this.health.state === 'closed' || !this.connected()) return false;
      const entries = [...this.held];
      const keys = [this.registryKey, ...entries.map(([key]) => key)];
      const args = [this.timeArg(), this.nodeId, String(this.leaseTtlMs), ...entries.map(([, count]) => String(Math.max(0, count)))];
      const sentAt = clock.monotonicMs();
      try {
        await this.bounded(this.runTick(keys.length, ...keys, ...args));
      } catch (err) {
        this.health.failed(err);
        return false;
      }
      this.leaseRenewedAt = Math.max(this.leaseRenewedAt, sentAt);
      for (const [key] of entries) if (this.held.get(key) === 0) this.held.delete(key);
      this.health.succeeded();
      return true;
    };
    this.ticking = run().finally(() => {
      this.ticking = null;
    });
    return this.ticking;
  }

  async limitUsage(rule: LimitRule): Promise<LimitUsage> {
    const reply = (await withTimeout(
      this.runUsage(3, this.rateKey(rule.key), this.placesKey(rule.key), this.registryKey, this.timeArg(), 'r', this.nodeId),
      this.commandTimeoutMs,
    )) as unknown[];
    return {
      key: rule.key,
      requests: metric(Number(reply[2]), rule.rpm),
      tokens: metric(Number(reply[3]), rule.tpm),
      concurrent: metric(Number(reply[5]), rule.concurrent),
    };
  }

  async quotaUsage(quota: QuotaRule): Promise<QuotaUsage> {
    const window = quotaWindow(quota.period, quota.mode);
    const reply = (await withTimeout(
      this.runUsage(3, this.quotaKey(quota), '', this.registryKey, this.timeArg(), window.code, this.nodeId),
      this.commandTimeoutMs,
    )) as unknown[];
    const epoch = Number(reply[1]);
    const oldest = Number(reply[4]);
    return {
      key: quota.key,
      period: quota.period,
      mode: quota.mode,
      tokens: metric(Number(reply[2]), quota.tokens),
      costMicros: metric(Number(reply[3]), quota.costMicros),
      windowStartMs: window.startOf(epoch - window.buckets + 1),
      nextChangeMs: window.buckets > 1 && oldest > 0 ? window.startOf(oldest + window.buckets) : window.startOf(epoch + 1),
    };
  }

  async resetQuota(quota: QuotaRef): Promise<void> {
    await withTimeout(this.redis.del(this.quotaKey(quota)), this.commandTimeoutMs);
  }

  async topUp(quota: QuotaRef, amount: TopUp): Promise<void> {
    const tokens = amount.tokens ?? 0;
    const cost = amount.costMicros ?? 0;
    checkAmount('top-up tokens', tokens);
    checkAmount('top-up costMicros', cost);
    const window = quotaWindow(quota.period, quota.mode);
    await withTimeout(this.runTopUp(1, this.quotaKey(quota), this.timeArg(), window.code, String(tokens), String(cost)), this.commandTimeoutMs);
  }

  status(): RedisLimiterStatus {
    return this.health.status();
  }

  /**
   * Stops the lease tick, sends what is queued, gives this node's places back and leaves the
   * registry (best effort: whatever fails expires with the lease), and closes a client of its own.
   */
  async close(): Promise<void> {
    if (this.health.state === 'closed') return;
    clearInterval(this.tickTimer);
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.flush();
    await this.ticking?.catch(() => undefined);
    if (this.connected()) {
      const multi = this.redis.multi();
      for (const key of this.held.keys()) multi.hdel(key, this.nodeId);
      multi.zrem(this.registryKey, this.nodeId);
      await withTimeout(multi.exec(), Math.max(this.commandTimeoutMs, 1000)).catch(() => undefined);
    }
    this.health.close();
    if (this.ownsRedis) this.redis.disconnect();
  }
}

function periodText(quota: QuotaRef): string {
  if (quota.mode === 'calendar') return quota.period === 'day' ? 'per day' : 'per month';
  return quota.period === 'day' ? 'per 24 hours' : 'per 30 days';
}
