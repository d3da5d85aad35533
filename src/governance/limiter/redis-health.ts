/**
 * Whether the Redis limiter can reach Redis, what it does when it cannot, and the counters the lead
 * exports as metrics. One log line per change of state, never one per request.
 *
 * - `connecting`: no answer yet since start;
 * - `ok`: the last exchange succeeded;
 * - `degraded`: the last exchange failed or timed out: admissions follow the fail policy without
 *   waiting on Redis, except one probe per probe interval (and the lease tick), whose success
 *   brings the state back to `ok`;
 * - `closed`.
 */

import { log } from '../../observability/logger.js';

export type RedisLimiterState = 'connecting' | 'ok' | 'degraded' | 'closed';
export type FailPolicy = 'open' | 'closed';

export interface RedisLimiterCounters {
  /** Admissions decided by Redis. */
  readonly admitted: number;
  readonly refused: number;
  /** Admissions decided by the fail policy because Redis was unavailable. */
  readonly failOpen: number;
  readonly failClosed: number;
  /** Redis calls that failed or timed out (admissions, settlements, ticks). */
  readonly redisErrors: number;
  /** Settlements given up (Redis failed after they were sent): refunds lost, places repaired by the next tick. */
  readonly settlementsLost: number;
}

export interface RedisLimiterStatus extends RedisLimiterCounters {
  readonly state: RedisLimiterState;
  readonly policy: FailPolicy;
  readonly nodeId: string;
  readonly lastError: string | null;
}

export class RedisHealth {
  state: RedisLimiterState = 'connecting';
  lastError: string | null = null;
  admitted = 0;
  refused = 0;
  failOpen = 0;
  failClosed = 0;
  redisErrors = 0;
  settlementsLost = 0;
  private probing = false;
  private lastProbeAt = -Infinity;

  constructor(
    readonly policy: FailPolicy,
    readonly nodeId: string,
    /** The Redis URL without credentials, or "(caller's client)". */
    private readonly redisLabel: string,
    private readonly probeIntervalMs: number,
    private readonly nowMs: () => number,
  ) {}

  /**
   * Whether this admission should ask Redis. In `degraded`, only one probe at a time, at most one
   * per probe interval: the rest are decided by the policy at once instead of each waiting for a
   * timeout. `probeDone` must follow a true answer given in degraded state.
   */
  shouldTry(): boolean {
    if (this.state !== 'degraded') return this.state !== 'closed';
    const now = this.nowMs();
    if (this.probing || now - this.lastProbeAt < this.probeIntervalMs) return false;
    this.probing = true;
    this.lastProbeAt = now;
    return true;
  }

  probeDone(): void {
    this.probing = false;
  }

  succeeded(): void {
    this.lastError = null;
    this.transition('ok');
  }

  /** An admission found the connection down without sending anything: no error to count. */
  unreachable(reason: string): void {
    this.lastError = reason;
    this.transition('degraded');
  }

  failed(err: unknown): void {
    this.redisErrors++;
    this.lastError = err instanceof Error ? err.message : String(err);
    this.transition('degraded');
  }

  close(): void {
    this.state = 'closed';
  }

  private transition(next: RedisLimiterState): void {
    const previous = this.state;
    if (previous === next || previous === 'closed') return;
    this.state = next;
    // A failure starts the probe clock: the next probe waits a full interval.
    if (next === 'degraded') this.lastProbeAt = this.nowMs();
    const fields = { node: this.nodeId, redis: this.redisLabel, from: previous, to: next, policy: this.policy };
    if (next === 'ok') {
      if (previous === 'connecting') log.debug('limiter: Redis connected', fields);
      else log.info('limiter: Redis answers again; limits are enforced across nodes', fields);
    } else if (next === 'degraded') {
      log.warn(
        this.policy === 'open'
          ? 'limiter: Redis unavailable; admitting requests without limits (fail-open) until it answers'
          : 'limiter: Redis unavailable; refusing requests (fail-closed) until it answers',
        { ...fields, reason: this.lastError },
      );
    }
  }

  status(): RedisLimiterStatus {
    return {
      state: this.state,
      policy: this.policy,
      nodeId: this.nodeId,
      lastError: this.lastError,
      admitted: this.admitted,
      refused: this.refused,
      failOpen: this.failOpen,
      failClosed: this.failClosed,
      redisErrors: this.redisErrors,
      settlementsLost: this.settlementsLost,
    };
  }
}
