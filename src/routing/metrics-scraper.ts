/**
 * The `metrics` input of the prefix balancer: the supervisor scrapes each replica's Prometheus
 * endpoint on a timer and publishes requests waiting, running and KV-cache usage in shared memory
 * (shm ReplicaMetrics), where every worker's balancer reads them. Nothing of it is on the request
 * path: a pick reads a few words, at most an interval old.
 *
 * Metric names, vLLM (v1 and the older v0 names) and SGLang:
 *
 * | what | vLLM | SGLang |
 * |---|---|---|
 * | waiting | `vllm:num_requests_waiting` | `sglang:num_queue_reqs` |
 * | running | `vllm:num_requests_running` | `sglang:num_running_reqs` |
 * | KV usage (0-1) | `vllm:kv_cache_usage_perc`, else `vllm:gpu_cache_usage_perc` | `sglang:token_usage` |
 * | KV size | `vllm:cache_config_info{num_gpu_blocks, block_size}` | `sglang:max_total_num_tokens` |
 * | restart | `vllm:prompt_tokens_total` going down | `sglang:prompt_tokens_total` going down |
 *
 * Several series of one name (data-parallel engines, several served models) are summed for counts
 * and averaged for usage. A counter that goes down means the replica restarted with an empty cache,
 * so the prefix index forgets what it believed the replica held. A reported KV size becomes the
 * index's capacity for the replica unless the provider configures one.
 *
 * Failure: a scrape that fails (connect, status, timeout, nothing recognisable in the text) leaves the
 * last numbers to age; balancers ignore numbers older than their stale limit (three intervals) and
 * fall back to in-flight counts, which is least request. One log line when a replica's scraping
 * starts failing and one when it recovers, never one per scrape.
 */

import { Agent, request } from 'undici';

import { clock } from '../clock.js';
import { log } from '../observability/logger.js';
import type { ReplicaSample } from '../shm/replica-metrics.js';
import { sharedClockMs } from '../shm/shared-clock.js';
import { redactProbeUrl } from './health-checker.js';

/** Scraped text beyond this is not read: a replica's /metrics is tens of KiB. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Each interval is drawn from ±this fraction around the configured one, so replicas are not scraped in lockstep. */
const JITTER = 0.1;

/** What one scrape found; fields the text did not have are undefined. */
export interface ScrapedMetrics {
  waiting?: number;
  running?: number;
  kvUsage?: number;
  kvTokens?: number;
  /** Prompt tokens ever processed: to notice a restart. */
  promptTokens?: number;
}

type Field = 'waiting' | 'running' | 'kvUsage' | 'kvUsageOld' | 'kvInfo' | 'kvTokens' | 'promptTokens';

const NAMES: ReadonlyMap<string, Field> = new Map([
  ['vllm:num_requests_waiting', 'waiting'],
  ['sglang:num_queue_reqs', 'waiting'],
  ['vllm:num_requests_running', 'running'],
  ['sglang:num_running_reqs', 'running'],
  ['vllm:kv_cache_usage_perc', 'kvUsage'],
  ['sglang:token_usage', 'kvUsage'],
  ['vllm:gpu_cache_usage_perc', 'kvUsageOld'],
  ['vllm:cache_config_info', 'kvInfo'],
  ['sglang:max_total_num_tokens', 'kvTokens'],
  ['vllm:prompt_tokens_total', 'promptTokens'],
  ['sglang:prompt_tokens_total', 'promptTokens'],
]);

function labelValue(labels: string, name: string): number {
  const m = new RegExp(`(?:^|,)\\s*${name}="([^"]*)"`).exec(labels);
  return m ? Number(m[1]) : NaN;
}

/**
 * The numbers a balancer wants from a Prometheus text exposition. Lines of other metrics are
 * skipped after a prefix check; comments, histograms and malformed lines are ignored.
 */
export function parseReplicaMetrics(text: string): ScrapedMetrics {
  const sums: Partial<Record<Field, number>> = {};
  const counts: Partial<Record<Field, number>> = {};
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    const c = line.charCodeAt(0);
    // Every name we read starts with 'v' or 's'; this skips comments and other metrics cheaply.
    if (c !== 0x76 && c !== 0x73) continue;
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    if (space < 0) continue;
    const nameEnd = brace >= 0 && brace < space ? brace : space;
    const field = NAMES.get(line.slice(0, nameEnd));
    if (field === undefined) continue;
    let labels = '';
    let rest = line.slice(space + 1);
    if (nameEnd === brace) {
      const close = line.lastIndexOf('}');
      if (close < 0) continue;
      labels = line.slice(brace + 1, close);
      rest = line.slice(close + 1);
    }
    // The value, then an optional timestamp.
    let value = Number(rest.trim().split(/\s+/)[0]);
    if (!Number.isFinite(value)) continue;
    if (field === 'kvInfo') {
      value = labelValue(labels, 'num_gpu_blocks') * labelValue(labels, 'block_size');
      if (!Number.isFinite(value)) continue;
    }
    sums[field] = (sums[field] ?? 0) + value;
    counts[field] = (counts[field] ?? 0) + 1;
  }
  const out: ScrapedMetrics = {};
  if (sums.waiting !== undefined) out.waiting = sums.waiting;
  if (sums.running !== undefined) out.running = sums.running;
  // The v1 name when present; vLLM exports both for a while and they are the same number.
  const usageField = counts.kvUsage !== undefined ? 'kvUsage' : counts.kvUsageOld !== undefined ? 'kvUsageOld' : undefined;
  if (usageField !== undefined) out.kvUsage = sums[usageField]! / counts[usageField]!;
  const kvTokens = sums.kvInfo ?? sums.kvTokens;
  if (kvTokens !== undefined && kvTokens > 0) out.kvTokens = kvTokens;
  if (sums.promptTokens !== undefined) out.promptTokens = sums.promptTokens;
  return out;
}

export interface ScrapeTarget {
  /** The endpoint's shm slot. */
  readonly slot: number;
  /** The full URL, e.g. `http://gpu-1:8000/metrics`. */
  readonly url: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

/** Where scrapes go (shm ReplicaMetrics and PrefixIndex on a real node; fakes in tests). */
export interface ScrapeSink {
  write(slot: number, sample: ReplicaSample, nowMs: number): void;
  recordFailure(slot: number): number;
  clear(slot: number): void;
  /** The replica restarted: forget what it was believed to hold. */
  restarted(slot: number): void;
  /** The replica reported its KV size (tokens). */
  kvSize(slot: number, tokens: number): void;
}

class Scrape {
  timer: NodeJS.Timeout | undefined;
  abort: AbortController | null = null;
  running: Promise<void> | null = null;
  retired = false;
  failing = false;
  lastPromptTokens = -1;
  scrapes = 0;
  constructor(public target: ScrapeTarget) {}
}

const keyOf = (t: ScrapeTarget): string => `${t.slot}\n${t.url}`;

export class MetricsScraper {
  private readonly sink: ScrapeSink;
  private readonly random: () => number;
  private readonly dispatcher: Agent;
  private readonly scrapes = new Map<string, Scrape>();
  private stopped = false;

  constructor(options: { readonly sink: ScrapeSink; readonly random?: () => number }) {
    this.sink = options.sink;
    this.random = options.random ?? Math.random;
    // Its own small pool: scrapes reuse connections and never queue behind the traffic's.
    this.dispatcher = new Agent({ connections: 2, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000 });
  }

  /**
   * Replaces the target list (config reload). An unchanged target keeps its schedule and state; a
   * removed one stops and its published numbers are cleared; a new one is first scraped at a random
   * point of its first interval.
   */
  update(targets: readonly ScrapeTarget[]): void {
    if (this.stopped) throw new Error('metrics scraper is stopped');
    const next = new Map(targets.map((t) => [keyOf(t), t]));
    for (const [key, scrape] of this.scrapes) {
      if (next.has(key)) continue;
      this.retire(scrape);
      this.scrapes.delete(key);
      this.sink.clear(scrape.target.slot);
    }
    for (const [key, target] of next) {
      const existing = this.scrapes.get(key);
      if (existing) {
        existing.target = target;
        continue;
      }
      const scrape = new Scrape(target);
      this.scrapes.set(key, scrape);
      this.schedule(scrape, this.random() * Math.min(target.intervalMs, 1000));
    }
  }

  private schedule(scrape: Scrape, delayMs: number): void {
    if (scrape.retired) return;
    scrape.timer = setTimeout(() => {
      scrape.timer = undefined;
      scrape.running = this.scrapeOnce(scrape).finally(() => {
        scrape.running = null;
      });
    }, delayMs);
    scrape.timer.unref();
  }

  private async scrapeOnce(scrape: Scrape): Promise<void> {
    const { target } = scrape;
    const began = clock.monotonicMs();
    const abort = new AbortController();
    scrape.abort = abort;
    const deadline = setTimeout(() => abort.abort(new Error('timeout')), target.timeoutMs);
    let failure: string | null = null;
    let parsed: ScrapedMetrics | undefined;
    try {
      const response = await request(target.url, {
        method: 'GET',
        dispatcher: this.dispatcher,
        headers: { 'user-agent': 'sluice-metrics-scraper', accept: 'text/plain' },
        headersTimeout: target.timeoutMs,
        bodyTimeout: target.timeoutMs,
        signal: abort.signal,
      });
      if (response.statusCode < 200 || response.statusCode >= 300) {
        await response.body.dump({ limit: 64 * 1024 });
        failure = `status ${response.statusCode}`;
      } else {
        const text = await readLimited(response.body, MAX_BODY_BYTES);
        parsed = parseReplicaMetrics(text);
        if (parsed.waiting === undefined && parsed.running === undefined && parsed.kvUsage === undefined) {
          failure = 'no vLLM or SGLang load metrics in the answer';
        }
      }
    } catch (err) {
      failure = abort.signal.aborted ? 'timeout' : describeScrapeError(err);
    } finally {
      clearTimeout(deadline);
      scrape.abort = null;
    }
    if (scrape.retired || this.stopped) return;
    scrape.scrapes++;
    if (failure === null && parsed !== undefined) this.publish(scrape, parsed);
    else this.fail(scrape, failure ?? 'unknown');
    const interval = target.intervalMs * (1 - JITTER + 2 * JITTER * this.random());
    this.schedule(scrape, Math.max(0, interval - (clock.monotonicMs() - began)));
  }

  private publish(scrape: Scrape, m: ScrapedMetrics): void {
    const slot = scrape.target.slot;
    if (m.promptTokens !== undefined) {
      if (scrape.lastPromptTokens >= 0 && m.promptTokens < scrape.lastPromptTokens) {
        this.sink.restarted(slot);
        log.info('metrics: replica restarted (its counters went back); its cached prefixes are forgotten', { url: redactProbeUrl(scrape.target.url) });
      }
      scrape.lastPromptTokens = m.promptTokens;
    }
    if (m.kvTokens !== undefined) this.sink.kvSize(slot, m.kvTokens);
    this.sink.write(slot, { waiting: m.waiting ?? 0, running: m.running ?? 0, kvUsage: m.kvUsage ?? 0, kvTokens: m.kvTokens }, sharedClockMs());
    if (scrape.failing) {
      scrape.failing = false;
      log.info('metrics: replica scraped again', { url: redactProbeUrl(scrape.target.url) });
    }
  }

  private fail(scrape: Scrape, reason: string): void {
    this.sink.recordFailure(scrape.target.slot);
    if (!scrape.failing) {
      scrape.failing = true;
      log.warn('metrics: replica cannot be scraped; it is balanced on in-flight counts until it can', {
        url: redactProbeUrl(scrape.target.url),
        reason,
      });
    }
  }

  private retire(scrape: Scrape): void {
    scrape.retired = true;
    clearTimeout(scrape.timer);
    scrape.timer = undefined;
    scrape.abort?.abort(new Error('scrape target removed'));
  }

  /** Targets and how their scraping goes: for the admin API and tests. */
  status(): { slot: number; url: string; scrapes: number; failing: boolean }[] {
    return [...this.scrapes.values()].map((s) => ({ slot: s.target.slot, url: redactProbeUrl(s.target.url), scrapes: s.scrapes, failing: s.failing }));
  }

  /** Stops every scrape (aborting those in flight), clears what they published, closes connections. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const running: Promise<void>[] = [];
    for (const scrape of this.scrapes.values()) {
      this.retire(scrape);
      if (scrape.running) running.push(scrape.running);
      this.sink.clear(scrape.target.slot);
    }
    this.scrapes.clear();
    await Promise.allSettled(running);
    await this.dispatcher.close().catch(() => undefined);
  }
}

async function readLimited(body: AsyncIterable<Buffer | Uint8Array>, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    if (size + buf.length > limit) {
      chunks.push(buf.subarray(0, limit - size));
      break;
    }
    chunks.push(buf);
    size += buf.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describeScrapeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ?? err.name;
  }
  return String(err);
}
