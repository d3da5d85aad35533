/**
 * The simulator's /metrics under vLLM v1's metric names and labels (`model_name`, `engine`), so a
 * metrics-aware balancer or a dashboard built for vLLM reads it unchanged. Counters and gauges come
 * from the engine's stats at scrape time; only the latency histograms keep state here.
 *
 * Units as vLLM has them: `*_usage_perc` is a fraction (1 = full) despite the name, and the prefix
 * cache counters count tokens, not blocks or requests.
 */

import { formatLabels, Histogram, type Labels, writeSample } from './prometheus.js';

export interface EngineCounters {
  readonly running: number;
  readonly waiting: number;
  readonly kvUsage: number;
  readonly prefixQueryTokens: number;
  readonly prefixHitTokens: number;
  readonly promptTokens: number;
  readonly generationTokens: number;
  readonly preemptions: number;
  readonly finishedStop: number;
  readonly finishedLength: number;
  readonly finishedAbort: number;
}

const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const REQUEST_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

export class VllmMetrics {
  readonly timeToFirstToken = new Histogram('vllm:time_to_first_token_seconds', 'Seconds from arrival to the first generated token.', TTFT_BUCKETS);
  readonly timePerOutputToken = new Histogram('vllm:time_per_output_token_seconds', 'Seconds between consecutive generated tokens of a request.', TPOT_BUCKETS);
  readonly e2eLatency = new Histogram('vllm:e2e_request_latency_seconds', 'Seconds from arrival to the last generated token.', REQUEST_BUCKETS);
  readonly queueTime = new Histogram('vllm:request_queue_time_seconds', 'Seconds a request waited before its first scheduling.', REQUEST_BUCKETS);
  private readonly labels: Labels;
  private readonly labelText: string;

  constructor(
    modelName: string,
    private readonly cacheInfo: { readonly blockSize: number; readonly numBlocks: number; readonly prefixCaching: boolean },
  ) {
    this.labels = { model_name: modelName, engine: '0' };
    this.labelText = formatLabels(this.labels);
  }

  render(c: EngineCounters): string {
    const out: string[] = [];
    const l = this.labelText;
    writeSample(out, 'vllm:num_requests_running', 'gauge', 'Requests in the running batch.', l, c.running);
    writeSample(out, 'vllm:num_requests_waiting', 'gauge', 'Requests queued for admission.', l, c.waiting);
    writeSample(out, 'vllm:gpu_cache_usage_perc', 'gauge', 'Fraction of KV blocks held by running requests (1 = full); old name of vllm:kv_cache_usage_perc.', l, c.kvUsage);
    writeSample(out, 'vllm:kv_cache_usage_perc', 'gauge', 'Fraction of KV blocks held by running requests (1 = full).', l, c.kvUsage);
    writeSample(out, 'vllm:prefix_cache_queries_total', 'counter', 'Prompt tokens looked up in the prefix cache.', l, c.prefixQueryTokens);
    writeSample(out, 'vllm:prefix_cache_hits_total', 'counter', 'Prompt tokens found in the prefix cache.', l, c.prefixHitTokens);
    // The pre-0.9 names, still exported by vLLM for old dashboards.
    writeSample(out, 'vllm:gpu_prefix_cache_queries_total', 'counter', 'Old name of vllm:prefix_cache_queries_total.', l, c.prefixQueryTokens);
    writeSample(out, 'vllm:gpu_prefix_cache_hits_total', 'counter', 'Old name of vllm:prefix_cache_hits_total.', l, c.prefixHitTokens);
    writeSample(out, 'vllm:num_preemptions_total', 'counter', 'Running requests evicted from the batch for lack of KV blocks.', l, c.preemptions);
    writeSample(out, 'vllm:prompt_tokens_total', 'counter', 'Prompt tokens of requests that produced their first token.', l, c.promptTokens);
    writeSample(out, 'vllm:generation_tokens_total', 'counter', 'Tokens generated.', l, c.generationTokens);
    out.push('# HELP vllm:request_success_total Finished requests by reason.', '# TYPE vllm:request_success_total counter');
    for (const [reason, value] of [['stop', c.finishedStop], ['length', c.finishedLength], ['abort', c.finishedAbort]] as const) {
      out.push(`vllm:request_success_total${formatLabels({ ...this.labels, finished_reason: reason })} ${value}`);
    }
    this.timeToFirstToken.write(out, this.labels);
    this.timePerOutputToken.write(out, this.labels);
    this.e2eLatency.write(out, this.labels);
    this.queueTime.write(out, this.labels);
    const info = formatLabels({
      block_size: String(this.cacheInfo.blockSize),
      num_gpu_blocks: String(this.cacheInfo.numBlocks),
      enable_prefix_caching: this.cacheInfo.prefixCaching ? 'True' : 'False',
      engine: '0',
    });
    writeSample(out, 'vllm:cache_config_info', 'gauge', 'KV-cache configuration (value always 1).', info, 1);
    out.push('');
    return out.join('\n');
  }
}
