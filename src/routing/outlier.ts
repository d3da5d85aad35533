/**
 * Passive outlier ejection: an endpoint that fails `consecutiveFailures` times in a row is taken out
 * of its group's rotation for a while, and for longer each time it happens again.
 *
 * State lives in shared memory (EndpointCounters), so every worker sees one failure streak and one
 * ejection per endpoint: the streak is counted by `recordFailure` from all workers together, the
 * ejection is written once by `tryEject` (exactly one worker wins when several cross the threshold
 * together), and a success from any worker ends the streak.
 *
 * Duration: base × 2^(n−1), capped at max, where n counts this endpoint's ejections. The shm record
 * has no field for n, so each worker keeps it, and keeps it close to the true count by noticing
 * ejections made by other workers: an `ejectedUntil` it has not seen before is a new ejection
 * (observed whenever it checks the endpoint, i.e. on every pick). A worker that sends no traffic to
 * the group meanwhile misses some and errs towards shorter ejections. One idle `base` period after an
 * ejection ends forgives one step of n, so an endpoint that failed once last week starts over at
 * `base`, while one that keeps failing as soon as it returns is ejected for longer each time.
 *
 * Defaults, chosen for LLM upstreams (few endpoints, slow requests, incidents that last minutes):
 *   - 5 consecutive failures: one bad answer or a brief network blip must not eject;
 *   - 30 s base, 300 s max: a provider incident or an overloaded replica usually outlasts a few
 *     seconds; probing every 30 s at first and at most every 5 minutes later costs one request each;
 *   - 50 % of a group at most: groups are small (2-4 replicas or regions), so Envoy's 10 % would
 *     allow only its "at least one"; half lets a pair lose one member and keeps the rest serving.
 *     As in Envoy, one ejection is always allowed (max(1, ⌊n × percent / 100⌋)), so a group of one
 *     can be ejected: the attempt loop then goes straight to the route's fallback instead of paying
 *     a timeout per request, and when there is no fallback it picks ignoring ejection (a "panic"
 *     pick) rather than refusing the client.
 *
 * The cap is checked by scanning the group's shm records, then ejecting with a CAS on one record:
 * two workers ejecting two different endpoints at the same instant may both pass the check and
 * exceed the cap by one. Exactness would need a per-group counter in shm; the overshoot is rare,
 * bounded and ends with the ejection.
 */

import type { EndpointCounters } from '../shm/index.js';
import { sharedClockMs } from '../shm/shared-clock.js';
import type { BalancerEndpoint, EndpointMask } from './balancer.js';
import type { FailureKind } from './retry-policy.js';

/** The shm counters outlier detection uses: EndpointCounters, or a fake in tests. */
export type OutlierCounters = Pick<EndpointCounters, 'recordFailure' | 'recordSuccess' | 'ejectedUntil' | 'tryEject'>;

export interface OutlierOptions {
  /** Failures in a row that eject. Default 5; 0 disables ejection (failures are still counted). */
  readonly consecutiveFailures?: number;
  /** First ejection's length. Default 30 s. */
  readonly baseEjectionMs?: number;
  /** Longest ejection. Default 300 s. */
  readonly maxEjectionMs?: number;
  /** Most of the group that may be ejected at once, in percent. Default 50. */
  readonly maxEjectedPercent?: number;
}

export const OUTLIER_DEFAULTS = {
  consecutiveFailures: 5,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  maxEjectedPercent: 50,
} as const;

/**
 * Whether an attempt's outcome counts against the endpoint: it could not be reached, did not answer
 * in time, or answered with a server error. Anything else, 4xx included, shows a working endpoint
 * and should be reported with `recordSuccess`. A 429 is about the key or the account, not the
 * replica: the key pool handles it.
 */
export function isEndpointFailure(kind: FailureKind, status = 0): boolean {
  return kind !== 'status' || status >= 500;
}

/** One group's detector in one worker: built with the snapshot, alongside the group's balancer. */
export class OutlierDetector {
  readonly consecutiveFailures: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  /** Endpoints of this group that may be ejected at once. */
  readonly maxEjected: number;

  /** This worker's count of each endpoint's ejections (see the top of the file). */
  private readonly ejections: Float64Array;
  /** The last `ejectedUntil` this worker saw per endpoint; a different one is a new ejection. */
  private readonly seenUntil: Float64Array;

  constructor(
    private readonly endpoints: readonly BalancerEndpoint[],
    private readonly counters: OutlierCounters,
    options: OutlierOptions = {},
    private readonly now: () => number = sharedClockMs,
  ) {
    this.consecutiveFailures = count('consecutive_failures', options.consecutiveFailures ?? OUTLIER_DEFAULTS.consecutiveFailures);
    this.baseEjectionMs = count('base_ejection_ms', options.baseEjectionMs ?? OUTLIER_DEFAULTS.baseEjectionMs);
    this.maxEjectionMs = count('max_ejection_ms', options.maxEjectionMs ?? OUTLIER_DEFAULTS.maxEjectionMs);
    const percent = options.maxEjectedPercent ?? OUTLIER_DEFAULTS.maxEjectedPercent;
    if (!(Number.isFinite(percent) && percent >= 0 && percent <= 100)) {
      throw new RangeError(`outlier: max_ejected_percent ${percent} must be in [0, 100]`);
    }
    if (this.maxEjectionMs < this.baseEjectionMs) {
      throw new RangeError(`outlier: max_ejection_ms ${this.maxEjectionMs} is below base_ejection_ms ${this.baseEjectionMs}`);
    }
    const n = endpoints.length;
    this.maxEjected = percent === 0 || this.consecutiveFailures === 0 ? 0 : Math.max(1, Math.floor((n * percent) / 100));
    this.ejections = new Float64Array(n);
    this.seenUntil = new Float64Array(n);
  }

  /** The attempt reached a working endpoint (any outcome `isEndpointFailure` rejects): the streak ends. */
  recordSuccess(index: number): void {
    this.counters.recordSuccess(this.endpoints[index]!.slot);
  }

  /**
   * Counts an endpoint failure; ejects the endpoint when this failure completes a streak and the
   * group's cap allows. Returns true when this call ejected it (the caller logs it; exactly one
   * worker sees true per ejection).
   */
  recordFailure(index: number, nowMs: number = this.now()): boolean {
    const slot = this.endpoints[index]!.slot;
    const streak = this.counters.recordFailure(slot);
    if (this.maxEjected === 0 || streak < this.consecutiveFailures) return false;
    const until = this.counters.ejectedUntil(slot);
    // Counts an ejection by another worker that this one has not seen yet, current or past.
    this.observe(index, until, nowMs);
    if (until > nowMs) return false;
    // The streak is kept when the cap refuses: the next failure asks again, by when another
    // endpoint may have come back.
    if (this.ejectedCount(nowMs) >= this.maxEjected) return false;

    const times = this.decayed(index, nowMs) + 1;
    const duration = Math.min(this.maxEjectionMs, this.baseEjectionMs * 2 ** (times - 1));
    const ejectUntil = nowMs + duration;
    if (!this.counters.tryEject(slot, ejectUntil, nowMs)) {
      this.observe(index, this.counters.ejectedUntil(slot), nowMs);
      return false;
    }
    this.ejections[index] = times;
    this.seenUntil[index] = ejectUntil;
    // A fresh streak for when it returns: it must fail `consecutiveFailures` times again, as in
    // Envoy. recordSuccess is the counters' only way to zero the streak; it touches nothing else.
    this.counters.recordSuccess(slot);
    return true;
  }

  isEjected(index: number, nowMs: number = this.now()): boolean {
    const until = this.counters.ejectedUntil(this.endpoints[index]!.slot);
    this.observe(index, until, nowMs);
    return until > nowMs;
  }

  /**
   * Adds every ejected endpoint to `mask` (the balancer's exclusion) and returns how many there are.
   * One shm read per endpoint; no allocation.
   */
  excludeEjected(mask: EndpointMask, nowMs: number = this.now()): number {
    let ejected = 0;
    for (let i = 0; i < this.endpoints.length; i++) {
      if (this.isEjected(i, nowMs)) {
        mask.add(i);
        ejected++;
      }
    }
    return ejected;
  }

  ejectedCount(nowMs: number = this.now()): number {
    let ejected = 0;
    for (let i = 0; i < this.endpoints.length; i++) if (this.isEjected(i, nowMs)) ejected++;
    return ejected;
  }

  /** This worker's count of the endpoint's ejections, before forgiveness: for metrics and tests. */
  timesEjected(index: number): number {
    return this.ejections[index]!;
  }

  /** Ejection length this worker would use if the endpoint were ejected now. */
  nextEjectionMs(index: number, nowMs: number = this.now()): number {
    return Math.min(this.maxEjectionMs, this.baseEjectionMs * 2 ** this.decayed(index, nowMs));
  }

  private observe(index: number, until: number, nowMs: number): void {
    if (until === 0 || until === this.seenUntil[index]) return;
    this.ejections[index] = this.decayed(index, nowMs) + 1;
    this.seenUntil[index] = until;
  }

  /** The ejection count after forgiving one step per idle base period since the last ejection ended. */
  private decayed(index: number, nowMs: number): number {
    const times = this.ejections[index]!;
    const idle = nowMs - this.seenUntil[index]!;
    if (times === 0 || idle <= 0 || this.baseEjectionMs === 0) return times;
    return Math.max(0, times - Math.floor(idle / this.baseEjectionMs));
  }
}

function count(name: string, value: number): number {
  if (!(Number.isInteger(value) && value >= 0)) throw new RangeError(`outlier: ${name} must be an integer ≥ 0, got ${value}`);
  return value;
}
