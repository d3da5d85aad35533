/**
 * What each replica's /metrics last said (requests waiting, running, KV-cache usage, KV size), per
 * endpoint slot in shared memory: written by the supervisor's scraper (routing/metrics-scraper.ts)
 * once per interval, read by every worker's prefix balancer on every pick.
 *
 * The fields live in the endpoint's prefixEndpoints record beside the prefix index's eviction clock
 * (layout.ts). A reader may see one scrape's `waiting` with the next scrape's `running`: each is a
 * gauge that was true a moment ago, and a balancer needs no more than that. What it must know is how
 * old they are, so every read comes with the scrape's time and the caller decides what is stale.
 */

import { FIELD_BYTES, type Layout, PREFIX_ENDPOINT_FIELDS, PREFIX_ENDPOINT_RECORD_BYTES } from './layout.js';

const I32_STRIDE = PREFIX_ENDPOINT_RECORD_BYTES / FIELD_BYTES.i32;
const I64_STRIDE = PREFIX_ENDPOINT_RECORD_BYTES / FIELD_BYTES.i64;
const KV_TOKENS = PREFIX_ENDPOINT_FIELDS.kvTokens.offset / FIELD_BYTES.i32;
const WAITING = PREFIX_ENDPOINT_FIELDS.waiting.offset / FIELD_BYTES.i32;
const RUNNING = PREFIX_ENDPOINT_FIELDS.running.offset / FIELD_BYTES.i32;
const KV_USAGE_PPM = PREFIX_ENDPOINT_FIELDS.kvUsagePpm.offset / FIELD_BYTES.i32;
const SCRAPE_FAILURES = PREFIX_ENDPOINT_FIELDS.scrapeFailures.offset / FIELD_BYTES.i32;
const SCRAPED_AT = PREFIX_ENDPOINT_FIELDS.scrapedAtMs.offset / FIELD_BYTES.i64;

/** One scrape's numbers. */
export interface ReplicaSample {
  readonly waiting: number;
  readonly running: number;
  /** Share of KV-cache blocks in use, 0..1. */
  readonly kvUsage: number;
  /** KV-cache size in tokens, when the replica says (vLLM cache_config_info); 0 = unknown. */
  readonly kvTokens?: number;
}

function count(value: number): number {
  return Number.isFinite(value) ? Math.max(0, Math.min(0x7fffffff, Math.round(value))) : 0;
}

export class ReplicaMetrics {
  readonly capacity: number;
  private readonly i32: Int32Array;
  private readonly i64: BigInt64Array;

  constructor(buffer: ArrayBuffer, layout: Layout) {
    this.capacity = layout.params.endpointCapacity;
    const region = layout.regions.prefixEndpoints;
    this.i32 = new Int32Array(buffer, region.offset, region.bytes / FIELD_BYTES.i32);
    this.i64 = new BigInt64Array(buffer, region.offset, region.bytes / FIELD_BYTES.i64);
  }

  private check(slot: number): void {
    if (!(slot >= 0 && slot < this.capacity && (slot | 0) === slot)) {
      throw new RangeError(`endpoint slot ${slot} outside [0, ${this.capacity})`);
    }
  }

  /** A successful scrape at shared-clock `nowMs`: the gauges, then the time, so a fresh time means fresh gauges. */
  write(slot: number, sample: ReplicaSample, nowMs: number): void {
    this.check(slot);
    const base = slot * I32_STRIDE;
    Atomics.store(this.i32, base + WAITING, count(sample.waiting));
    Atomics.store(this.i32, base + RUNNING, count(sample.running));
    const usage = Number.isFinite(sample.kvUsage) ? Math.max(0, Math.min(1, sample.kvUsage)) : 0;
    Atomics.store(this.i32, base + KV_USAGE_PPM, Math.round(usage * 1e6));
    if (sample.kvTokens !== undefined && sample.kvTokens > 0) Atomics.store(this.i32, base + KV_TOKENS, count(sample.kvTokens));
    Atomics.store(this.i32, base + SCRAPE_FAILURES, 0);
    Atomics.store(this.i64, slot * I64_STRIDE + SCRAPED_AT, BigInt(Math.max(1, Math.trunc(nowMs))));
  }

  /** A failed scrape; returns the failures in a row. The last good numbers stay, aging. */
  recordFailure(slot: number): number {
    this.check(slot);
    return Atomics.add(this.i32, slot * I32_STRIDE + SCRAPE_FAILURES, 1) + 1;
  }

  /** Forget everything scraped (scraping of this endpoint stopped): readers see "never scraped". */
  clear(slot: number): void {
    this.check(slot);
    const base = slot * I32_STRIDE;
    Atomics.store(this.i64, slot * I64_STRIDE + SCRAPED_AT, 0n);
    Atomics.store(this.i32, base + WAITING, 0);
    Atomics.store(this.i32, base + RUNNING, 0);
    Atomics.store(this.i32, base + KV_USAGE_PPM, 0);
    Atomics.store(this.i32, base + SCRAPE_FAILURES, 0);
  }

  /** Shared-clock ms of the last successful scrape; 0 = never. */
  scrapedAt(slot: number): number {
    this.check(slot);
    return Number(Atomics.load(this.i64, slot * I64_STRIDE + SCRAPED_AT));
  }

  waiting(slot: number): number {
    this.check(slot);
    return Atomics.load(this.i32, slot * I32_STRIDE + WAITING);
  }

  running(slot: number): number {
    this.check(slot);
    return Atomics.load(this.i32, slot * I32_STRIDE + RUNNING);
  }

  /** Share of KV-cache blocks in use, 0..1. */
  kvUsage(slot: number): number {
    this.check(slot);
    return Atomics.load(this.i32, slot * I32_STRIDE + KV_USAGE_PPM) / 1e6;
  }

  /** KV-cache size in tokens as last reported; 0 = unknown. */
  kvTokens(slot: number): number {
    this.check(slot);
    return Atomics.load(this.i32, slot * I32_STRIDE + KV_TOKENS);
  }

  scrapeFailures(slot: number): number {
    this.check(slot);
    return Atomics.load(this.i32, slot * I32_STRIDE + SCRAPE_FAILURES);
  }
}
