/**
 * Balancers: which endpoint of one group (a provider's base URLs or replicas) serves the next
 * attempt. One balancer instance per group per worker, built with the config snapshot; the request's
 * attempt loop calls `pick` once per attempt.
 *
 * The contract is deliberately small so later balancers (prefix-cache-aware, metrics-aware) plug in
 * beside the built-in three:
 *   - the group is an array of BalancerEndpoint, made once per snapshot (`endpointGroup`), with
 *     `endpoints[i].index === i`;
 *   - what a pick must avoid (endpoints already tried for this request, ejected ones) arrives as an
 *     EndpointMask, a bitset over those indexes;
 *   - `pick` returns one of the array's own elements, or undefined when every endpoint is excluded
 *     or has weight 0. It allocates nothing.
 *
 * Why a bitset for exclusion rather than a Set<number> or a number used as a bitmask: membership is
 * one shift and one AND, clearing is a fill of ⌈n/32⌉ words, and the caller allocates one mask per
 * request (or reuses one) instead of hashing indexes into a Set on every attempt. A plain number
 * would be cheaper still but caps a group at 32 endpoints, and a fleet of self-hosted replicas can
 * exceed that; correctness must not depend on the group's size.
 */

import type { EndpointIdentity } from '../shm/index.js';
import { PrefixBalancer, type PrefixBalancerDeps, type PrefixSettings } from './prefix-balancer.js';

export interface BalancerEndpoint {
  /** Position in the group, 0..n-1 (`endpoints[i].index === i`): masks and balancer state use it. */
  readonly index: number;
  /**
   * Relative share of traffic. 0 takes the endpoint out of rotation (draining it) without removing
   * it from the group. Integers keep smooth weighted round-robin exact.
   */
  readonly weight: number;
  /** Shared-memory slot of the endpoint's counters (in-flight, failures, ejection). */
  readonly slot: number;
}

/** A set of endpoint indexes as a bitset: O(1) add / has, no allocation after construction. */
export class EndpointMask {
  /** How many endpoint indexes the mask can hold: 0..capacity-1. */
  readonly capacity: number;
  private readonly words: Uint32Array;
  private members = 0;

  constructor(capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 0)) throw new RangeError(`mask capacity ${capacity} is not a count`);
    this.capacity = capacity;
    this.words = new Uint32Array(Math.max(1, Math.ceil(capacity / 32)));
  }

  /** Members currently in the mask. */
  get size(): number {
    return this.members;
  }

  has(index: number): boolean {
    // Outside the capacity nothing was ever added; `>>> 5` of a negative would index garbage.
    if (!(index >= 0 && index < this.capacity)) return false;
    return (this.words[index >>> 5]! & (1 << (index & 31))) !== 0;
  }

  add(index: number): void {
    if (!(Number.isInteger(index) && index >= 0 && index < this.capacity)) {
      throw new RangeError(`endpoint index ${index} outside [0, ${this.capacity})`);
    }
    const word = index >>> 5;
    const bit = 1 << (index & 31);
    if ((this.words[word]! & bit) === 0) {
      this.words[word]! |= bit;
      this.members++;
    }
  }

  delete(index: number): void {
    if (!this.has(index)) return;
    this.words[index >>> 5]! &= ~(1 << (index & 31));
    this.members--;
  }

  clear(): void {
    if (this.members === 0) return;
    this.words.fill(0);
    this.members = 0;
  }
}

/**
 * What one pick may take into account. The attempt loop keeps one object per request and updates
 * its fields between attempts, so picking allocates nothing.
 */
export interface PickInput {
  /** Endpoints this pick must not return (tried already for this request, ejected); null = none. */
  readonly excluded: EndpointMask | null;
  /**
   * An affinity key (a session id, a conversation or prompt-prefix hash) for balancers that keep
   * related requests on one endpoint so its prompt cache is warm. The three built-in balancers
   * ignore it.
   */
  readonly stickyKey: string | undefined;
  /**
   * The request's prompt as chained KV-block hashes (prompt-blocks.ts), for the prefix balancer;
   * computed only for groups that use it, absent otherwise (and ignored by every other balancer).
   */
  readonly blocks?: Float64Array | undefined;
}

export interface Balancer {
  /** The configured name (`round_robin`, …), for logs and metrics. */
  readonly name: string;
  /** One of `endpoints` (the same object), or undefined when none may be picked. */
  pick(endpoints: readonly BalancerEndpoint[], input: PickInput): BalancerEndpoint | undefined;
}

/** A uniform random number in [0, 1); injectable so tests are deterministic. */
export type RandomSource = () => number;

/** Reads the requests in flight to an endpoint slot, summed over every worker (shm EndpointCounters.inFlight). */
export type InFlightReader = (slot: number) => number;

/** Builds a group with `index === position`, checking each weight once here instead of per pick. */
export function endpointGroup(specs: readonly { readonly weight?: number; readonly slot: number }[]): BalancerEndpoint[] {
  return specs.map((spec, index) => {
    const weight = spec.weight ?? 1;
    if (!(Number.isFinite(weight) && weight >= 0)) throw new RangeError(`endpoint ${index}: weight ${weight} must be a finite number ≥ 0`);
    if (!(Number.isInteger(spec.slot) && spec.slot >= 0)) throw new RangeError(`endpoint ${index}: slot ${spec.slot} is not a slot`);
    return { index, weight, slot: spec.slot };
  });
}

/**
 * The shm identity of an endpoint for balancing and ejection: per base URL, independent of the key
 * (a replica's health does not depend on which key called it). keyIndex -1 keeps these slots apart
 * from the per-key slots of key-pool.ts, whose cooldowns use the same `ejectedUntil` field.
 */
export function endpointSlotIdentity(provider: string, url: string): EndpointIdentity {
  return { provider, url, keyIndex: -1 };
}

function usable(endpoint: BalancerEndpoint, excluded: EndpointMask | null): boolean {
  return endpoint.weight > 0 && (excluded === null || !excluded.has(endpoint.index));
}

/** A random integer in [0, n) that stays in range even if an injected source returns 1. */
function randomBelow(random: RandomSource, n: number): number {
  const r = Math.floor(random() * n);
  return r < n ? r : n - 1;
}

/**
 * Plain rotation over usable endpoints; weights other than 0 are ignored. The counter is per worker:
 * N workers each rotating give the same even spread in aggregate. It starts at a random position so
 * the workers do not all send their first request to endpoint 0.
 */
export class RoundRobinBalancer implements Balancer {
  readonly name = 'round_robin';
  private next: number;

  constructor(random: RandomSource = Math.random) {
    this.next = randomBelow(random, 0x40000000);
  }

  pick(endpoints: readonly BalancerEndpoint[], input: PickInput): BalancerEndpoint | undefined {
    const n = endpoints.length;
    if (n === 0) return undefined;
    const start = this.next % n;
    for (let k = 0; k < n; k++) {
      const i = start + k < n ? start + k : start + k - n;
      const endpoint = endpoints[i]!;
      if (usable(endpoint, input.excluded)) {
        this.next = i + 1;
        return endpoint;
      }
    }
    return undefined;
  }
}

/**
 * Smooth weighted round-robin (the nginx algorithm): every pick adds each usable endpoint's weight
 * to its running score, takes the highest score (lowest index on a tie) and subtracts the total
 * weight from the winner. Deterministic, exact over every period of Σweights picks, and interleaved
 * (3:1 gives a a b a, not a a a b), so no endpoint gets a burst. Excluded endpoints sit the round out
 * with their score frozen.
 */
export class WeightedBalancer implements Balancer {
  readonly name = 'weighted';
  /** Running scores by endpoint index; re-made only if the group's size changes. */
  private scores = new Float64Array(0);

  pick(endpoints: readonly BalancerEndpoint[], input: PickInput): BalancerEndpoint | undefined {
    const n = endpoints.length;
    if (this.scores.length !== n) this.scores = new Float64Array(n);
    const scores = this.scores;
    let total = 0;
    let best = -1;
    let bestScore = -Infinity;
    for (let i = 0; i < n; i++) {
      const endpoint = endpoints[i]!;
      if (!usable(endpoint, input.excluded)) continue;
      const score = scores[i]! + endpoint.weight;
      scores[i] = score;
      total += endpoint.weight;
      if (score > bestScore) {
        bestScore = score;
        best = i;
      }
    }
    if (best < 0) return undefined;
    scores[best]! -= total;
    return endpoints[best];
  }
}

/**
 * Least request by the power of two choices: two distinct usable endpoints at random, the one with
 * fewer requests in flight (across all workers, from shared memory) wins. Sampling two instead of
 * scanning all keeps workers that read the same counters at the same moment from all stampeding to
 * the one idle endpoint, and the busiest endpoint never wins a comparison, so it drains.
 *
 * Weights as in Envoy's weighted least request with an active-request bias of 1: the load compared
 * is (inFlight + 1) / weight, cross-multiplied so there is no division. The +1 lets weight decide
 * between idle endpoints (3:1 weights, both idle: the heavier wins) instead of a 0 = 0 tie. Ties are
 * broken at random. With one or two usable endpoints there is nothing to sample: all are compared.
 */
export class LeastRequestBalancer implements Balancer {
  constructor(
    private readonly inFlight: InFlightReader,
    private readonly random: RandomSource = Math.random,
    /** `global_least_request` is the same algorithm over counts that include other gateway nodes. */
    readonly name: 'least_request' | 'global_least_request' = 'least_request',
  ) {}

  pick(endpoints: readonly BalancerEndpoint[], input: PickInput): BalancerEndpoint | undefined {
    const excluded = input.excluded;
    const n = endpoints.length;
    let count = 0;
    let first = -1;
    let second = -1;
    for (let i = 0; i < n; i++) {
      if (!usable(endpoints[i]!, excluded)) continue;
      if (count === 0) first = i;
      else if (count === 1) second = i;
      count++;
    }
    if (count === 0) return undefined;
    if (count === 1) return endpoints[first];
    if (count === 2) return this.lessLoaded(endpoints[first]!, endpoints[second]!);

    // Two distinct ranks among the usable endpoints, then one scan to find both.
    const rankA = randomBelow(this.random, count);
    let rankB = randomBelow(this.random, count - 1);
    if (rankB >= rankA) rankB++;
    let a = -1;
    let b = -1;
    for (let i = 0, rank = 0; i < n && (a < 0 || b < 0); i++) {
      if (!usable(endpoints[i]!, excluded)) continue;
      if (rank === rankA) a = i;
      else if (rank === rankB) b = i;
      rank++;
    }
    return this.lessLoaded(endpoints[a]!, endpoints[b]!);
  }

  private lessLoaded(x: BalancerEndpoint, y: BalancerEndpoint): BalancerEndpoint {
    // (ix + 1) / wx  vs  (iy + 1) / wy, both weights > 0 here.
    const loadX = (this.inFlight(x.slot) + 1) * y.weight;
    const loadY = (this.inFlight(y.slot) + 1) * x.weight;
    if (loadX < loadY) return x;
    if (loadY < loadX) return y;
    return this.random() < 0.5 ? x : y;
  }
}

export const BALANCER_NAMES = ['round_robin', 'weighted', 'least_request', 'global_least_request', 'prefix'] as const;
export type BalancerName = (typeof BALANCER_NAMES)[number];

export interface BalancerDeps {
  /** Required by least_request: requests in flight per endpoint slot, e.g. `(s) => shm.endpoints.inFlight(s)`. */
  readonly inFlight?: InFlightReader;
  /** Required by global_least_request: in flight here plus on other nodes (`shm.endpoints.globalInFlight`). */
  readonly globalInFlight?: InFlightReader;
  readonly random?: RandomSource;
  /** Required by prefix: its settings, the shared index and metrics, the group's endpoints (prefix-balancer.ts). */
  readonly prefix?: {
    readonly settings: PrefixSettings;
    readonly deps: Omit<PrefixBalancerDeps, 'random'>;
    readonly endpoints: readonly BalancerEndpoint[];
  };
}

/** A balancer by its configured name. Called once per group per snapshot, never per request. */
export function createBalancer(name: BalancerName, deps: BalancerDeps = {}): Balancer {
  const random = deps.random ?? Math.random;
  switch (name) {
    case 'round_robin':
      return new RoundRobinBalancer(random);
    case 'weighted':
      return new WeightedBalancer();
    case 'least_request':
      if (!deps.inFlight) throw new Error('least_request balancer needs an in-flight reader (shared memory)');
      return new LeastRequestBalancer(deps.inFlight, random);
    case 'global_least_request':
      if (!deps.globalInFlight) throw new Error('global_least_request balancer needs a global in-flight reader (shared memory)');
      return new LeastRequestBalancer(deps.globalInFlight, random, 'global_least_request');
    case 'prefix':
      if (!deps.prefix) throw new Error('prefix balancer needs its settings and the shared prefix index');
      return new PrefixBalancer(deps.prefix.settings, { ...deps.prefix.deps, random }, deps.prefix.endpoints);
    default: {
      const unknown: never = name;
      throw new Error(`unknown balancer "${String(unknown)}" (known: ${BALANCER_NAMES.join(', ')})`);
    }
  }
}
