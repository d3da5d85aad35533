import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { metric, scrape, tokenPrompt, until, withSim } from './helpers.js';

describe('vLLM simulator: continuous batching', () => {
  it('with max-running 1, a second request waits until the first finishes', async () => {
    await withSim({ maxRunning: 1, decodeMs: 4 }, async (sim, client) => {
      const first = client.completions.create({ model: 'sim-model', prompt: 'first', max_tokens: 100 });
      await until(() => sim.stats().running === 1, 2000, 'the first request to run');
      const secondStarted = performance.now();
      const second = client.completions.create({ model: 'sim-model', prompt: 'second', max_tokens: 2 });
      await until(async () => metric(await scrape(sim), 'vllm:num_requests_waiting') === 1, 2000, 'num_requests_waiting 1');
      const text = await scrape(sim);
      assert.equal(metric(text, 'vllm:num_requests_running'), 1);
      assert.equal(metric(text, 'vllm:num_requests_waiting'), 1);
      assert.ok(metric(text, 'vllm:kv_cache_usage_perc') > 0, 'the running request holds KV blocks');
      await first;
      await second;
      const secondTook = performance.now() - secondStarted;
      assert.ok(secondTook > 60, `the second request waited for the first (${secondTook.toFixed(0)} ms)`);
      const after = await scrape(sim);
      assert.equal(metric(after, 'vllm:num_requests_waiting'), 0);
      assert.equal(metric(after, 'vllm:num_requests_running'), 0);
      assert.ok(metric(after, 'vllm:request_queue_time_seconds_sum') > 0.05);
    });
  });

  it('batches concurrent requests, and a bigger batch makes each step slower', async () => {
    await withSim({ decodeMs: 1, decodeMsPerSeq: 4 }, async (sim, client) => {
      const run = async (): Promise<number> => {
        const t = performance.now();
        await client.completions.create({ model: 'sim-model', prompt: 'x y z', max_tokens: 10 });
        return performance.now() - t;
      };
      const alone = await run();
      const stepsBefore = sim.stats().steps;
      const together = await Promise.all(Array.from({ length: 8 }, run));
      const steps = sim.stats().steps - stepsBefore;
      assert.ok(steps < 8 * 10, `8 requests of 10 tokens shared steps (${steps})`);
      const mean = together.reduce((a, b) => a + b, 0) / together.length;
      assert.ok(mean > alone * 2, `a batch of 8 decodes slower per token: ${mean.toFixed(0)} ms vs ${alone.toFixed(0)} ms alone`);
    });
  });

  it('chunks a long prefill over several steps within the token budget', async () => {
    await withSim({ maxBatchedTokens: 64 }, async (sim, client) => {
      await client.completions.create({ model: 'sim-model', prompt: tokenPrompt(640, 1), max_tokens: 1 });
      assert.equal(sim.stats().steps, 10, '640 prompt tokens / 64 per step');
    });
  });

  it('preempts the newest sequence when KV blocks run out, then finishes both', async () => {
    // 8 blocks = 128 tokens; each sequence grows to 16 + 100 tokens, so two cannot both fit.
    await withSim({ kvBlocks: 8, decodeMs: 0.2 }, async (sim, client) => {
      const go = (seed: number): Promise<number> =>
        client.completions.create({ model: 'sim-model', prompt: tokenPrompt(16, seed), max_tokens: 100 }).then((r) => r.usage!.completion_tokens);
      assert.deepEqual(await Promise.all([go(1), go(2)]), [100, 100]);
      const stats = sim.stats();
      assert.ok(stats.preemptions >= 1, `preemptions ${stats.preemptions}`);
      assert.equal(stats.kvBlocksUsed, 0);
      assert.equal(metric(await scrape(sim), 'vllm:num_preemptions_total'), stats.preemptions);
    });
  });

  it('aborts a sequence whose client goes away and frees its blocks', async () => {
    await withSim({ decodeMs: 3 }, async (sim, client) => {
      const controller = new AbortController();
      const stream = await client.chat.completions.create(
        { model: 'sim-model', messages: [{ role: 'user', content: 'talk for a long time' }], max_tokens: 2000, stream: true },
        { signal: controller.signal },
      );
      let received = 0;
      try {
        for await (const chunk of stream) {
          if (chunk.choices[0]?.delta.content && ++received === 3) controller.abort();
        }
      } catch {
        // The SDK may end the iteration quietly or throw an abort error; either way the client left.
      }
      assert.equal(received, 3);
      await until(() => sim.stats().running === 0, 2000, 'the aborted sequence to leave the batch');
      const stats = sim.stats();
      assert.equal(stats.finishedAbort, 1);
      assert.equal(stats.kvBlocksUsed, 0);
      assert.equal(metric(await scrape(sim), 'vllm:request_success_total', 'finished_reason="abort"'), 1);
    });
  });
});
