import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { encodeText } from '../../src/routing/prompt-blocks.js';
import { withSim } from './helpers.js';

const messages = [
  { role: 'system' as const, content: 'You are a patient assistant who explains caching to new engineers in plain words.' },
  { role: 'user' as const, content: 'What does a KV cache hold?' },
];

describe('vLLM simulator: OpenAI wire format', () => {
  it('answers chat completions without streaming, with usage and cached_tokens', async () => {
    await withSim({ model: 'sim-a' }, async (sim, client) => {
      const r = await client.chat.completions.create({ model: 'sim-a', messages, max_tokens: 12 });
      assert.equal(r.object, 'chat.completion');
      assert.equal(r.model, 'sim-a');
      assert.match(r.id, /^chatcmpl-/);
      assert.equal(r.choices.length, 1);
      const choice = r.choices[0]!;
      assert.equal(choice.message.role, 'assistant');
      assert.equal(choice.finish_reason, 'length');
      assert.equal(encodeText(choice.message.content ?? '').length, 12, 'the content is exactly max_tokens tokens');
      assert.ok(r.usage);
      assert.equal(r.usage.completion_tokens, 12);
      assert.ok(r.usage.prompt_tokens > 20);
      assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 12);
      assert.equal(r.usage.prompt_tokens_details?.cached_tokens, 0);
    });
  });

  it('streams the same answer as SSE chunks, ending with a usage chunk and [DONE]', async () => {
    await withSim({}, async (sim, client) => {
      const whole = await client.chat.completions.create({ model: 'sim-model', messages, max_tokens: 9 });
      const stream = await client.chat.completions.create({
        model: 'sim-model',
        messages,
        max_tokens: 9,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = '';
      let role: string | undefined;
      let finish: string | null = null;
      let usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens?: number } } | undefined;
      let chunks = 0;
      for await (const chunk of stream) {
        chunks++;
        assert.equal(chunk.object, 'chat.completion.chunk');
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices) {
          role ??= c.delta.role;
          text += c.delta.content ?? '';
          if (c.finish_reason) finish = c.finish_reason;
        }
      }
      assert.equal(role, 'assistant');
      assert.equal(text, whole.choices[0]!.message.content, 'same prompt, same deterministic answer');
      assert.equal(finish, 'length');
      assert.equal(chunks, 1 + 9 + 1, 'role chunk, one chunk per token, usage chunk');
      assert.ok(usage);
      assert.equal(usage.completion_tokens, 9);
      assert.equal(usage.prompt_tokens, whole.usage!.prompt_tokens);
      assert.ok((usage.prompt_tokens_details?.cached_tokens ?? 0) > 0, 'the repeated prompt hit the prefix cache');

      // The raw stream ends with the [DONE] sentinel.
      const raw = await fetch(`${sim.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages, max_tokens: 2, stream: true }),
      });
      assert.equal(raw.headers.get('content-type'), 'text/event-stream');
      const body = await raw.text();
      assert.ok(body.endsWith('data: [DONE]\n\n'));
      assert.ok(!body.includes('"usage"'), 'no usage without stream_options.include_usage');
    });
  });

  it('grows cached_tokens on a repeated prompt, by whole blocks', async () => {
    await withSim({}, async (_sim, client) => {
      const long = [{ role: 'user' as const, content: 'Explain prefix caching. '.repeat(30) }];
      const first = await client.chat.completions.create({ model: 'sim-model', messages: long, max_tokens: 2 });
      const second = await client.chat.completions.create({ model: 'sim-model', messages: long, max_tokens: 2 });
      const prompt = first.usage!.prompt_tokens;
      assert.equal(first.usage!.prompt_tokens_details?.cached_tokens, 0);
      const cached = second.usage!.prompt_tokens_details?.cached_tokens ?? 0;
      assert.equal(cached, Math.floor((prompt - 1) / 16) * 16, 'every full block except a last one that would leave nothing to compute');
    });
  });

  it('serves n choices, max_completion_tokens and a default length with finish_reason stop', async () => {
    await withSim({ maxTokensDefault: 5 }, async (_sim, client) => {
      const r = await client.chat.completions.create({ model: 'sim-model', messages, n: 3, max_completion_tokens: 4 });
      assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
      assert.equal(r.usage!.completion_tokens, 12);
      const d = await client.chat.completions.create({ model: 'sim-model', messages });
      assert.equal(d.choices[0]!.finish_reason, 'stop');
      assert.equal(d.usage!.completion_tokens, 5);
    });
  });

  it('answers completions: text prompts, token prompts, batches, streaming', async () => {
    await withSim({}, async (_sim, client) => {
      const r = await client.completions.create({ model: 'sim-model', prompt: 'Once upon a time', max_tokens: 6 });
      assert.equal(r.object, 'text_completion');
      assert.equal(r.choices[0]!.finish_reason, 'length');
      assert.equal(r.usage!.prompt_tokens, encodeText('Once upon a time').length);
      assert.equal(r.usage!.completion_tokens, 6);

      const batch = await client.completions.create({ model: 'sim-model', prompt: [[1, 2, 3, 4], [5, 6]], max_tokens: 2 });
      assert.deepEqual(batch.choices.map((c) => c.index), [0, 1]);
      assert.equal(batch.usage!.prompt_tokens, 6);

      const stream = await client.completions.create({ model: 'sim-model', prompt: 'Once upon a time', max_tokens: 6, stream: true, stream_options: { include_usage: true } });
      let text = '';
      let completion = 0;
      for await (const chunk of stream) {
        for (const c of chunk.choices) text += c.text;
        if (chunk.usage) completion = chunk.usage.completion_tokens;
      }
      assert.equal(text, r.choices[0]!.text);
      assert.equal(completion, 6);
    });
  });

  it('lists the model, answers /health, and refuses bad requests as vLLM does', async () => {
    await withSim({ model: 'm1', kvBlocks: 4, blockSize: 16 }, async (sim, client) => {
      const models = await client.models.list();
      assert.deepEqual(models.data.map((m) => m.id), ['m1']);
      const health = await fetch(`${sim.url}/health`);
      assert.equal(health.status, 200);
      assert.equal(await health.text(), '');

      await assert.rejects(client.chat.completions.create({ model: 'other', messages }), (err: unknown) => err instanceof Error && 'status' in err && err.status === 404);
      // 4 blocks x 16 = 64 tokens of context.
      await assert.rejects(client.chat.completions.create({ model: 'm1', messages, max_tokens: 60 }), (err: unknown) => err instanceof Error && 'status' in err && err.status === 400);
      const post = (path: string, body: string): Promise<Response> => fetch(`${sim.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const bad = await post('/v1/chat/completions', '{"messages": [');
      assert.equal(bad.status, 400);
      const error = (await bad.json()) as { error: { type: string; code: number } };
      assert.equal(error.error.type, 'BadRequestError');
      assert.equal(error.error.code, 400);
      assert.equal((await post('/v1/chat/completions', '{"messages": []}')).status, 400);
      assert.equal((await post('/v1/chat/completions', '{"messages": [{"role":"user","content":"x"}], "max_tokens": 0}')).status, 400);
      assert.equal((await post('/v1/completions', '{"prompt": 5}')).status, 400);
      assert.equal((await fetch(`${sim.url}/v1/chat/completions`)).status, 405);
      assert.equal((await fetch(`${sim.url}/nope`)).status, 404);
    });
  });
});
