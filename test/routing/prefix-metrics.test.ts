/**
 * The metrics input of the prefix balancer (src/routing/metrics-scraper.ts): vLLM and SGLang
 * expositions parsed, a scraper publishing into shared memory, counting failures (so balancers fall
 * back to in-flight counts), noticing a replica restart and learning its KV size.
 */

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { MetricsScraper, parseReplicaMetrics, type ScrapeSink } from '../../src/routing/metrics-scraper.js';
import { sharedClockMs } from '../../src/shm/index.js';
import { freshSegment } from './helpers.js';

const VLLM = `# HELP vllm:num_requests_running Requests in the running batch.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m",engine="0"} 7
vllm:num_requests_running{model_name="m",engine="1"} 5
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m",engine="0"} 3
vllm:num_requests_waiting{model_name="m",engine="1"} 0
vllm:gpu_cache_usage_perc{model_name="m",engine="0"} 0.9
vllm:gpu_cache_usage_perc{model_name="m",engine="1"} 0.9
vllm:kv_cache_usage_perc{model_name="m",engine="0"} 0.5
vllm:kv_cache_usage_perc{model_name="m",engine="1"} 0.25
vllm:prompt_tokens_total{model_name="m",engine="0"} 12345
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m",engine="0"} 4
vllm:cache_config_info{block_size="16",num_gpu_blocks="2048",enable_prefix_caching="True",engine="0"} 1
`;

const VLLM_V0 = `vllm:num_requests_running{model_name="m"} 2.0
vllm:num_requests_waiting{model_name="m"} 1.0
vllm:gpu_cache_usage_perc{model_name="m"} 0.125
`;

const SGLANG = `# HELP sglang:num_running_reqs The number of running requests.
sglang:num_running_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
sglang:num_queue_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct"} 9.0
sglang:token_usage{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.28
sglang:max_total_num_tokens{model_name="meta-llama/Llama-3.1-8B-Instruct"} 500000
sglang:prompt_tokens_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 8.128902e+06
`;

describe('parseReplicaMetrics', () => {
  it('reads vLLM v1: counts summed over engines, usage averaged, the v1 usage name first, KV size from cache_config_info', () => {
    assert.deepEqual(parseReplicaMetrics(VLLM), { waiting: 3, running: 12, kvUsage: 0.375, kvTokens: 2048 * 16, promptTokens: 12345 });
  });
  it('reads the vLLM v0 names', () => {
    assert.deepEqual(parseReplicaMetrics(VLLM_V0), { waiting: 1, running: 2, kvUsage: 0.125 });
  });
  it('reads SGLang', () => {
    assert.deepEqual(parseReplicaMetrics(SGLANG), { waiting: 9, running: 4, kvUsage: 0.28, kvTokens: 500000, promptTokens: 8128902 });
  });
  it('ignores what it does not know and lines it cannot read', () => {
    assert.deepEqual(parseReplicaMetrics('other_metric 1\nvllm:num_requests_waiting{broken 3\nvllm:num_requests_running NaN\n\n'), {});
  });
});

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** A /metrics server whose answer the test swaps. */
async function metricsServer(): Promise<{ url: string; answer: { status: number; body: string }; hits: number }> {
  const state = { url: '', answer: { status: 200, body: VLLM }, hits: 0 };
  const server = createServer((req, res) => {
    state.hits++;
    res.writeHead(state.answer.status, { 'content-type': 'text/plain' }).end(state.answer.body);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  return state;
}

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('MetricsScraper', () => {
  it('publishes into shared memory, counts failures without erasing the last numbers, notices a restart, learns the KV size', async () => {
    const [shm] = freshSegment();
    const metrics = shm!.replicaMetrics;
    const index = shm!.prefixIndex;
    const slot = 9;
    index.configure(slot, 100, 60_000);
    index.record(slot, [1, 2, 3], sharedClockMs());
    const events: string[] = [];
    const sink: ScrapeSink = {
      write: (s, sample, now) => metrics.write(s, sample, now),
      recordFailure: (s) => metrics.recordFailure(s),
      clear: (s) => metrics.clear(s),
      restarted: (s) => {
        events.push('restarted');
        index.forget(s);
      },
      kvSize: (s, tokens) => {
        events.push(`kv ${tokens}`);
        index.configure(s, Math.floor(tokens / 16), 60_000);
      },
    };
    const server = await metricsServer();
    const scraper = new MetricsScraper({ sink, random: () => 0 });
    try {
      scraper.update([{ slot, url: server.url, intervalMs: 100, timeoutMs: 500 }]);
      await until(() => metrics.scrapedAt(slot) > 0, 'a first scrape');
      assert.equal(metrics.waiting(slot), 3);
      assert.equal(metrics.running(slot), 12);
      assert.equal(metrics.kvUsage(slot), 0.375);
      assert.equal(index.capacity(slot), 2048, 'the KV size became the modelled capacity');
      assert.ok(index.holds(slot, 3, sharedClockMs()));

      server.answer = { status: 500, body: 'down' };
      const at = metrics.scrapedAt(slot);
      await until(() => metrics.scrapeFailures(slot) >= 2, 'failed scrapes');
      assert.equal(metrics.scrapedAt(slot), at, 'the last good numbers stay, aging: balancers judge their age');
      assert.equal(metrics.waiting(slot), 3);

      server.answer = { status: 200, body: VLLM.replace('prompt_tokens_total{model_name="m",engine="0"} 12345', 'prompt_tokens_total{model_name="m",engine="0"} 10') };
      await until(() => events.includes('restarted'), 'the restart noticed');
      assert.equal(metrics.scrapeFailures(slot), 0);
      assert.equal(index.holds(slot, 3, sharedClockMs()), false, "a restarted replica's cache is forgotten");

      server.answer = { status: 200, body: '<html>not metrics</html>' };
      await until(() => metrics.scrapeFailures(slot) >= 1, 'an answer without load metrics counts as a failure');

      scraper.update([]);
      assert.equal(metrics.scrapedAt(slot), 0, 'a removed target is cleared');
    } finally {
      await scraper.stop();
    }
  });
});
