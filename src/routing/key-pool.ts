/**
 * Several API keys for one provider: which key the next attempt uses, and what a response says
 * about the key it used.
 *
 * A key is its index in the provider's `api_key` list and owns one shm slot (`keySlotIdentity`), so
 * the pool reads two things every worker shares:
 *   - in flight per key, summed over workers: the pick takes the least loaded usable key, which
 *     spreads a provider's per-key rate limits evenly without counting tokens;
 *   - `ejectedUntil` per key as its cooldown: after a 429 the key rests until the time the provider
 *     named (Retry-After, rate-limit reset headers; retry-policy.ts parses them) or a default, and
 *     since it is in shm every worker stops using it at once instead of each drawing its own 429.
 *     The same is done, before any 429, when a successful response says a limit is at 0.
 *
 * A key answered with 401 or 403 is invalid until the next config snapshot, and this is per worker:
 * the pool is rebuilt with each snapshot, which is exactly when keys change, so the state needs no
 * generation tag or supervisor reset that shm would; and it costs at most one rejected attempt per
 * worker per bad key, which the attempt loop retries at once with another key, unseen by the client.
 *
 * Ties on in-flight (typically all 0 on a quiet gateway) go to the next key in rotation, so idle
 * traffic still uses every key.
 */

import type { EndpointCounters, EndpointIdentity } from '../shm/index.js';
import { sharedClockMs } from '../shm/shared-clock.js';
import { clock } from '../clock.js';
import type { EndpointMask } from './balancer.js';
import { exhaustedResetMs, type ResponseHeaders, retryHintMs } from './retry-policy.js';

/** The shm counters the key pool uses: EndpointCounters, or a fake in tests. */
export type KeyPoolCounters = Pick<EndpointCounters, 'inFlight' | 'ejectedUntil' | 'setEjectedUntil'>;

/**
 * The shm identity of one key of a provider: independent of the base URL, because providers limit
 * by key (or its account), not by which replica or region served it. url '' keeps these slots apart
 * from the endpoints' (balancer.ts endpointSlotIdentity, keyIndex -1).
 */
export function keySlotIdentity(provider: string, keyIndex: number): EndpointIdentity {
  return { provider, url: '', keyIndex };
}

export interface KeyPoolOptions {
  /** Cooldown after a 429 that names no time. Default 10 s. */
  readonly defaultCooldownMs?: number;
  /** Longest cooldown, whatever the provider says (a daily limit may name hours). Default 300 s. */
  readonly maxCooldownMs?: number;
  /** Statuses that make a key invalid until reload. Default 401, 403. */
  readonly invalidStatuses?: readonly number[];
  /** Rest a key when a successful response shows a limit at 0. Default true. */
  readonly proactiveCooldown?: boolean;
  /** Shared-clock ms (compared with `ejectedUntil` across processes). */
  readonly now?: () => number;
  /** Wall-clock ms, for reset headers that are dates. */
  readonly wallNow?: () => number;
}

/** What `markResult` concluded about the key. */
export type KeyVerdict = 'ok' | 'invalid' | 'cooling';

export class KeyPool {
  readonly size: number;
  readonly defaultCooldownMs: number;
  readonly maxCooldownMs: number;
  private readonly slots: Int32Array;
  private readonly invalid: Uint8Array;
  private invalidCount = 0;
  private readonly invalidStatuses: ReadonlySet<number>;
  private readonly proactive: boolean;
  private readonly now: () => number;
  private readonly wallNow: () => number;
  /** Where the next pick starts looking: rotates so ties are shared. */
  private cursor = 0;

  /** `slots[k]` is key k's shm slot. */
  constructor(
    slots: readonly number[],
    private readonly counters: KeyPoolCounters,
    options: KeyPoolOptions = {},
  ) {
    if (slots.length === 0) throw new RangeError('key pool: a provider with keys has at least one');
    this.size = slots.length;
    this.slots = Int32Array.from(slots);
    this.invalid = new Uint8Array(slots.length);
    this.defaultCooldownMs = nonNegative('default_cooldown_ms', options.defaultCooldownMs ?? 10_000);
    this.maxCooldownMs = nonNegative('max_cooldown_ms', options.maxCooldownMs ?? 300_000);
    this.invalidStatuses = new Set(options.invalidStatuses ?? [401, 403]);
    this.proactive = options.proactiveCooldown ?? true;
    this.now = options.now ?? sharedClockMs;
    this.wallNow = options.wallNow ?? clock.wallMs;
  }

  /** The key's shm slot: the caller acquires / releases it around the attempt, as for endpoints. */
  slot(keyIndex: number): number {
    return this.slots[keyIndex]!;
  }

  /**
   * The usable key with the fewest requests in flight, or -1 when every key is invalid, cooling
   * down or in `excluded` (see `nextAvailableAt` to decide between waiting and giving up).
   */
  pick(excluded: EndpointMask | null = null, nowMs: number = this.now()): number {
    const n = this.size;
    const start = this.cursor;
    this.cursor = start + 1 < n ? start + 1 : 0;
    let best = -1;
    let bestLoad = Infinity;
    for (let k = 0; k < n; k++) {
      const key = start + k < n ? start + k : start + k - n;
      if (this.invalid[key] === 1 || (excluded !== null && excluded.has(key))) continue;
      const slot = this.slots[key]!;
      if (this.counters.ejectedUntil(slot) > nowMs) continue;
      const load = this.counters.inFlight(slot);
      if (load < bestLoad) {
        best = key;
        bestLoad = load;
        // Nothing beats idle, and the rotation already made this the fair choice among idle keys.
        if (load === 0) break;
      }
    }
    return best;
  }

  /**
   * Records what the response to a request made with `keyIndex` says about the key: 401/403 make it
   * invalid, 429 starts a cooldown, anything else may start one when a limit shows 0 remaining.
   * Only headers are read; call it once the status is known, whatever happens next.
   */
  markResult(keyIndex: number, status: number, headers?: ResponseHeaders, nowMs: number = this.now()): KeyVerdict {
    if (!(Number.isInteger(keyIndex) && keyIndex >= 0 && keyIndex < this.size)) {
      throw new RangeError(`key index ${keyIndex} outside [0, ${this.size})`);
    }
    if (this.invalidStatuses.has(status)) {
      if (this.invalid[keyIndex] === 0) {
        this.invalid[keyIndex] = 1;
        this.invalidCount++;
      }
      return 'invalid';
    }
    let waitMs: number | undefined;
    if (status === 429) {
      waitMs = (headers === undefined ? undefined : retryHintMs(headers, this.wallNow())) ?? this.defaultCooldownMs;
    } else if (this.proactive && headers !== undefined && status < 400) {
      waitMs = exhaustedResetMs(headers, this.wallNow());
    }
    if (waitMs === undefined || waitMs <= 0) return 'ok';
    this.coolDown(keyIndex, nowMs + Math.min(waitMs, this.maxCooldownMs));
    return 'cooling';
  }

  /**
   * Extends the key's cooldown to `untilMs` unless it already lasts longer: a later, shorter hint
   * (another worker's 429 with less left to wait) must not cut it short. Load-then-store can race
   * with another worker's store; the loser's 429 simply comes again and extends it.
   */
  coolDown(keyIndex: number, untilMs: number): void {
    const slot = this.slots[keyIndex]!;
    if (untilMs > this.counters.ejectedUntil(slot)) this.counters.setEjectedUntil(slot, untilMs);
  }

  isInvalid(keyIndex: number): boolean {
    return this.invalid[keyIndex] === 1;
  }

  /** Shared-clock ms until which the key rests; in the past (or 0) when it does not. */
  coolingUntil(keyIndex: number): number {
    return this.counters.ejectedUntil(this.slots[keyIndex]!);
  }

  /** Keys not invalid (cooling ones included). */
  get validCount(): number {
    return this.size - this.invalidCount;
  }

  /**
   * When a key will next be usable: `nowMs` if one is now, the earliest end of a cooldown if all
   * valid keys rest, Infinity if every key is invalid. The attempt loop compares it with how long it
   * is willing to hold the client.
   */
  nextAvailableAt(nowMs: number = this.now()): number {
    let earliest = Infinity;
    for (let key = 0; key < this.size; key++) {
      if (this.invalid[key] === 1) continue;
      const until = this.counters.ejectedUntil(this.slots[key]!);
      if (until <= nowMs) return nowMs;
      if (until < earliest) earliest = until;
    }
    return earliest;
  }
}

function nonNegative(name: string, value: number): number {
  if (!(Number.isFinite(value) && value >= 0)) throw new RangeError(`key pool: ${name} must be ≥ 0, got ${value}`);
  return value;
}
