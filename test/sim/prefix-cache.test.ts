import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type OpenAI from 'openai';

import { metric, scrape, tokenPrompt, withSim } from './helpers.js';

/** cached_tokens of a one-token completion of `prompt` (token ids). */
async function cachedTokens(client: OpenAI, prompt: number[]): Promise<number> {
  const r = await client.completions.create({ model: 'sim-model', prompt, max_tokens: 1 });
  return r.usage?.prompt_tokens_details?.cached_tokens ?? -1;
}

/** Milliseconds from sending a streamed chat request to its first content token. */
async function timeToFirstToken(client: OpenAI, content: string): Promise<number> {
  const started = performance.now();
  const stream = await client.chat.completions.create({ model: 'sim-model', messages: [{ role: 'user', content }], max_tokens: 2, stream: true });
  let first = -1;
  for await (const chunk of stream) {
    if (first < 0 && chunk.choices[0]?.delta.content) first = performance.now() - started;
  }
  return first;
}

describe('vLLM simulator: prefix cache', () => {
  it('counts prefix-cache queries and hits in tokens on /metrics, as usage reports them', async () => {
    await withSim({}, async (sim, client) => {
      const prompt = tokenPrompt(100, 1);
      assert.equal(await cachedTokens(client, prompt), 0);
      assert.equal(await cachedTokens(client, prompt), 96);
      assert.equal(await cachedTokens(client, [...prompt.slice(0, 40), ...tokenPrompt(60, 2)]), 32, 'two shared full blocks');
      const text = await scrape(sim);
      const labels = 'model_name="sim-model"';
      assert.equal(metric(text, 'vllm:prefix_cache_queries_total', labels), 300);
      assert.equal(metric(text, 'vllm:prefix_cache_hits_total', labels), 128);
      assert.equal(metric(text, 'vllm:prompt_tokens_total', labels), 300);
      assert.equal(metric(text, 'vllm:generation_tokens_total', labels), 3);
      assert.equal(metric(text, 'vllm:time_to_first_token_seconds_count', labels), 3);
      assert.equal(metric(text, 'vllm:request_success_total', 'finished_reason="length"'), 3);
      assert.equal(metric(text, 'vllm:kv_cache_usage_perc', labels), 0, 'nothing running holds blocks');
      assert.equal(metric(text, 'vllm:gpu_cache_usage_perc', labels), 0);
      assert.match(text, /vllm:cache_config_info\{block_size="16",num_gpu_blocks="4096",enable_prefix_caching="True",engine="0"\} 1/);
      assert.match(text, /# TYPE vllm:time_to_first_token_seconds histogram/);
      assert.match(text, /vllm:time_to_first_token_seconds_bucket\{model_name="sim-model",engine="0",le="\+Inf"\} 3/);
    });
  });

  it('evicts the least recently used cached blocks when the KV cache is full', async () => {
    // 8 blocks of 16 tokens; each prompt of 64 tokens takes 4.
    await withSim({ kvBlocks: 8 }, async (sim, client) => {
      const a = tokenPrompt(64, 10);
      const b = tokenPrompt(64, 20);
      const c = tokenPrompt(64, 30);
      await cachedTokens(client, a);
      await cachedTokens(client, b); // the cache is now full of A and B
      assert.equal(sim.stats().kvBlocksCached, 8);
      assert.equal(await cachedTokens(client, a), 48, 'A hits, and becomes more recent than B');
      await cachedTokens(client, c); // needs 4 blocks: B's, the least recently used, go
      assert.ok(sim.stats().evictions >= 4);
      assert.equal(await cachedTokens(client, a), 48, 'A survived');
      assert.equal(await cachedTokens(client, b), 0, 'B was evicted');
    });
  });

  it('with prefix caching off, nothing is cached or counted', async () => {
    await withSim({ prefixCaching: false }, async (sim, client) => {
      const prompt = tokenPrompt(64, 3);
      await cachedTokens(client, prompt);
      assert.equal(await cachedTokens(client, prompt), 0);
      const text = await scrape(sim);
      assert.equal(metric(text, 'vllm:prefix_cache_queries_total'), 0);
      assert.match(text, /enable_prefix_caching="False"/);
    });
  });

  it('caches generated tokens too: the next turn of a conversation hits its previous answer', async () => {
    await withSim({}, async (_sim, client) => {
      const turn1 = [
        { role: 'system' as const, content: 'Answer briefly. '.repeat(10) },
        { role: 'user' as const, content: 'Tell me about blocks.' },
      ];
      const first = await client.chat.completions.create({ model: 'sim-model', messages: turn1, max_tokens: 64 });
      const answer = first.choices[0]!.message.content ?? '';
      const prompt1 = first.usage!.prompt_tokens;
      const turn2 = [...turn1, { role: 'assistant' as const, content: answer }, { role: 'user' as const, content: 'More?' }];
      const second = await client.chat.completions.create({ model: 'sim-model', messages: turn2, max_tokens: 1 });
      const cached = second.usage!.prompt_tokens_details?.cached_tokens ?? 0;
      // Full blocks of prompt 1 + answer whose KV was computed (all but the last generated token).
      assert.equal(cached, Math.floor((prompt1 + 64 - 1) / 16) * 16);
      assert.ok(cached > prompt1, 'the hit reaches into the previous answer');
    });
  });

  it('salted prompts share nothing with unsalted ones (cache_salt)', async () => {
    await withSim({}, async (sim) => {
      const body = (salt?: string): string => JSON.stringify({ prompt: tokenPrompt(64, 5), max_tokens: 1, ...(salt ? { cache_salt: salt } : {}) });
      const cached = async (salt?: string): Promise<number> => {
        const r = await fetch(`${sim.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(salt) });
        const json = (await r.json()) as { usage: { prompt_tokens_details: { cached_tokens: number } } };
        return json.usage.prompt_tokens_details.cached_tokens;
      };
      await cached();
      assert.equal(await cached('tenant'), 0);
      assert.equal(await cached('tenant'), 48);
      assert.equal(await cached(), 48);
      const reset = await fetch(`${sim.url}/reset_prefix_cache`, { method: 'POST' });
      assert.equal(reset.status, 200);
      assert.equal(await cached(), 0, 'reset_prefix_cache forgot every free block');
    });
  });

  it('answers faster on a cache hit: time to first token skips the cached prefill', async () => {
    // 200 µs per uncached token: the ~1,200-token miss pays ~250 ms of prefill, a hit only the
    // tokens after its last cached block.
    await withSim({ prefillUsPerToken: 200, decodeMs: 2 }, async (_sim, client) => {
      const content = 'The quick brown fox jumps over the lazy dog. '.repeat(120);
      const miss = await timeToFirstToken(client, content);
      const hit = await timeToFirstToken(client, content);
      assert.ok(miss > 150, `a miss pays the prefill (${miss.toFixed(1)} ms)`);
      assert.ok(hit < miss / 3, `hit ${hit.toFixed(1)} ms should be well under miss ${miss.toFixed(1)} ms`);
    });
  });
});
