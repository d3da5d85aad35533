/**
 * `balancer: prefix` — send each request to the replica that already holds the longest prefix of
 * its prompt in KV cache, unless that would pile load on one replica.
 *
 * Per pick, over the usable endpoints:
 *   1. match: how many leading blocks of the request's chain (PickInput.blocks) each endpoint holds,
 *      from the shared prefix index (shm/prefix-index.ts: every worker's and, with sharing, every
 *      node's decisions, with each replica's KV capacity and a TTL modelled);
 *   2. load: requests in flight to the endpoint across all workers (and other nodes, for providers
 *      that also report global load), or with `load: waiting` the replica's own queue from /metrics;
 *   3. balance guard (SGLang's cache-aware router uses the same two thresholds, system-wide): an
 *      endpoint whose load exceeds the least loaded one's by more than `abs_threshold` AND is more
 *      than `rel_threshold` times it is not a candidate, whatever it has cached. The least loaded
 *      endpoint always is, so a hot prefix spreads to a second replica as soon as its first is
 *      overloaded, and the second then holds it too;
 *   4. score the candidates (llm-d's scorers, weighted and summed):
 *        prefix × matched / prompt blocks − queue × (load − least load) / abs_threshold
 *          − kv_usage × share of the replica's KV cache in use (fresh /metrics only)
 *      and take the best, ties at random. Without blocks (no prompt, or nothing cached anywhere) this
 *      is least load;
 *   5. record the chain on the winner: it now holds the prompt (or will, in a moment), so the next
 *      request of the same conversation, in any worker, finds it there.
 *
 * Metrics older than `staleMs` (three scrape intervals) are ignored, so a replica whose /metrics
 * cannot be read is balanced on in-flight counts alone: least request plus affinity.
 *
 * Weights other than 0 are ignored, as in round_robin: the score has no natural place for them, and
 * replicas of one model server are alike.
 */

import type { PrefixConfig } from '../config/schema.js';
import type { Balancer, BalancerEndpoint, InFlightReader, PickInput, RandomSource } from './balancer.js';

/** Capacity of a replica when neither config nor /metrics says: 16384 blocks × 16 = 256 K tokens. */
export const DEFAULT_PREFIX_CAPACITY_BLOCKS = 16384;

export interface PrefixSettings {
  readonly blockSize: number;
  /** Configured KV blocks per replica; undefined = learn from /metrics or take the default. */
  readonly capacityBlocks: number | undefined;
  readonly ttlMs: number;
  readonly load: 'in_flight' | 'waiting';
  readonly absThreshold: number;
  readonly relThreshold: number;
  readonly prefixWeight: number;
  readonly queueWeight: number;
  readonly kvWeight: number;
  /** Scraped metrics older than this are ignored; 0 = scraping is off. */
  readonly metricsStaleMs: number;
  /** Mark recorded blocks for sharing with other nodes. */
  readonly share: boolean;
}

/** The balancer's settings from a provider's `prefix` block (defaults when absent). */
export function prefixSettings(config: PrefixConfig | undefined): PrefixSettings {
  const c = config;
  const metrics = c?.metrics;
  const metricsOn = metrics?.enabled ?? true;
  const intervalMs = metrics?.interval_ms ?? 1000;
  const timeoutMs = metrics?.timeout_ms ?? 1000;
  return {
    blockSize: c?.block_size ?? 16,
    capacityBlocks: c?.capacity_blocks,
    ttlMs: c?.ttl_ms ?? 600_000,
    load: c?.balance.load ?? 'in_flight',
    absThreshold: c?.balance.abs_threshold ?? 8,
    relThreshold: c?.balance.rel_threshold ?? 1.5,
    prefixWeight: c?.weights.prefix ?? 1,
    queueWeight: c?.weights.queue ?? 0.25,
    kvWeight: c?.weights.kv_usage ?? 0.25,
    // Three missed scrapes, and never less than one scrape plus its timeout.
    metricsStaleMs: metricsOn ? Math.max(3 * intervalMs, intervalMs + timeoutMs) : 0,
    share: c?.share.enabled ?? false,
  };
}

/** Does any provider balance by prefix (and so need the tokenizer)? */
export function usesPrefixBalancer(providers: readonly { readonly balancer: string }[]): boolean {
  return providers.some((p) => p.balancer === 'prefix');
}

/** The KV blocks an endpoint is modelled to hold: configured, else reported by /metrics, else the default. */
export function prefixCapacity(settings: PrefixSettings, kvTokens: number): number {
  if (settings.capacityBlocks !== undefined) return settings.capacityBlocks;
  if (kvTokens > 0) return Math.max(1, Math.floor(kvTokens / settings.blockSize));
  return DEFAULT_PREFIX_CAPACITY_BLOCKS;
}

/** What the balancer needs of the shared prefix index (shm PrefixIndex). */
export interface PrefixIndexView {
  configure(slot: number, capacity: number, ttlMs: number): void;
  matchLengths(blocks: ArrayLike<number>, slots: ArrayLike<number>, count: number, out: Int32Array, nowMs: number): void;
  record(slot: number, blocks: ArrayLike<number>, nowMs: number, share?: boolean): number;
  /** Blocks newly recorded on the endpoint so far: how much cache churn it has taken. */
  clock(slot: number): number;
}

/** What the balancer needs of the scraped replica metrics (shm ReplicaMetrics). */
export interface ReplicaMetricsView {
  scrapedAt(slot: number): number;
  waiting(slot: number): number;
  running(slot: number): number;
  kvUsage(slot: number): number;
  kvTokens(slot: number): number;
}

export interface PrefixBalancerDeps {
  readonly index: PrefixIndexView;
  /** Requests in flight per endpoint slot (all workers; plus other nodes where reported). */
  readonly inFlight: InFlightReader;
  /** Absent: no metrics input at all. */
  readonly metrics?: ReplicaMetricsView;
  readonly random?: RandomSource;
  /** Shared-clock ms (shm/shared-clock.ts): index times and scrape times are compared across processes. */
  readonly now: () => number;
}

/** Why the last pick went where it did: for tests and debugging, never for decisions. */
export type PrefixDecision = 'none' | 'load' | 'prefix' | 'spread';

export class PrefixBalancer implements Balancer {
  readonly name = 'prefix';
  readonly settings: PrefixSettings;
  private readonly index: PrefixIndexView;
  private readonly inFlight: InFlightReader;
  private readonly metrics: ReplicaMetricsView | undefined;
  private readonly random: RandomSource;
  private readonly now: () => number;
  // Per-pick scratch over the usable endpoints, sized to the widest group seen.
  private candidates = new Int32Array(8);
  private slots = new Int32Array(8);
  private matches = new Int32Array(8);
  private loads = new Float64Array(8);
  private kv = new Float64Array(8);
  /** Picks by decision, since construction (per worker). */
  readonly decisions: Record<PrefixDecision, number> = { none: 0, load: 0, prefix: 0, spread: 0 };
  lastDecision: PrefixDecision = 'none';

  constructor(settings: PrefixSettings, deps: PrefixBalancerDeps, endpoints: readonly BalancerEndpoint[] = []) {
    this.settings = settings;
    this.index = deps.index;
    this.inFlight = deps.inFlight;
    this.metrics = settings.metricsStaleMs > 0 ? deps.metrics : undefined;
    this.random = deps.random ?? Math.random;
    this.now = deps.now;
    for (const e of endpoints) this.configure(e.slot);
  }

  /** Tells the index what the endpoint holds and for how long (idempotent; every worker does it). */
  configure(slot: number): void {
    const kvTokens = this.metrics?.kvTokens(slot) ?? 0;
    this.index.configure(slot, prefixCapacity(this.settings, kvTokens), this.settings.ttlMs);
  }

  private grow(n: number): void {
    if (this.candidates.length >= n) return;
    const size = Math.max(n, this.candidates.length * 2);
    this.candidates = new Int32Array(size);
    this.slots = new Int32Array(size);
    this.matches = new Int32Array(size);
    this.loads = new Float64Array(size);
    this.kv = new Float64Array(size);
  }

  pick(endpoints: readonly BalancerEndpoint[], input: PickInput): BalancerEndpoint | undefined {
    const excluded = input.excluded;
    this.grow(endpoints.length);
    const { candidates, slots, matches, loads, kv } = this;
    let count = 0;
    for (const e of endpoints) {
      if (e.weight <= 0 || (excluded !== null && excluded.has(e.index))) continue;
      candidates[count] = e.index;
      slots[count] = e.slot;
      count++;
    }
    if (count === 0) return undefined;

    const nowMs = this.now();
    const blocks = input.blocks;
    const total = blocks === undefined ? 0 : blocks.length;
    if (total > 0) this.index.matchLengths(blocks!, slots, count, matches, nowMs);
    else matches.fill(0, 0, count);

    const s = this.settings;
    let minLoad = Infinity;
    let bestMatch = 0;
    for (let i = 0; i < count; i++) {
      const slot = slots[i]!;
      let load = this.inFlight(slot);
      let usage = 0;
      const m = this.metrics;
      if (m !== undefined) {
        const at = m.scrapedAt(slot);
        if (at > 0 && nowMs - at <= s.metricsStaleMs) {
          usage = m.kvUsage(slot);
          // The scrape is up to an interval old; in-flight counts are exact now. What the gateway
          // has sent beyond the replica's running batch is queued there too, scrape or not.
          if (s.load === 'waiting') load = Math.max(m.waiting(slot), load - m.running(slot));
        }
      }
      loads[i] = load;
      kv[i] = usage;
      if (load < minLoad) minLoad = load;
      if (matches[i]! > bestMatch) bestMatch = matches[i]!;
    }

    const queueScale = Math.max(1, s.absThreshold);
    let best = -1;
    let bestScore = -Infinity;
    let ties = 0;
    let spread = false;
    for (let i = 0; i < count; i++) {
      const load = loads[i]!;
      if (load - minLoad > s.absThreshold && load > s.relThreshold * minLoad) {
        if (matches[i] === bestMatch && bestMatch > 0) spread = true;
        continue;
      }
      const score =
        (total > 0 ? (s.prefixWeight * matches[i]!) / total : 0) - (s.queueWeight * (load - minLoad)) / queueScale - s.kvWeight * kv[i]!;
      if (score > bestScore + 1e-12) {
        bestScore = score;
        best = i;
        ties = 1;
      } else if (score >= bestScore - 1e-12) {
        // Equal otherwise: the replica whose cache has taken the fewest new blocks (SGLang's
        // "smallest tree"), so new prompts spread cache pressure evenly even while every replica
        // is idle; then reservoir sampling, each tied endpoint winning with probability 1/ties.
        const mine = this.index.clock(slots[i]!);
        const theirs = this.index.clock(slots[best]!);
        if (mine < theirs) {
          best = i;
          ties = 1;
        } else if (mine === theirs) {
          ties++;
          if (this.random() * ties < 1) best = i;
        }
      }
    }

    const decision: PrefixDecision = total === 0 ? 'none' : spread ? 'spread' : matches[best]! > 0 ? 'prefix' : 'load';
    this.decisions[decision]++;
    this.lastDecision = decision;
    const chosen = endpoints[candidates[best]!]!;
    if (total > 0) this.index.record(chosen.slot, blocks!, nowMs, s.share);
    return chosen;
  }
}
