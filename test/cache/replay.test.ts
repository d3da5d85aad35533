import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { cacheHeaderValue, hitReply } from '../../src/cache/cache-hit.js';
import type { CacheEntry } from '../../src/cache/cache-entry.js';
import { ResponseCollector } from '../../src/cache/response-collector.js';
import type { ChatResponse, StreamEvent } from '../../src/protocol/canonical.js';
import { inboundCodec } from '../../src/protocol/index.js';
import { responseToEvents } from '../../src/protocol/replay.js';
import { answer } from './helpers.js';

const stored: CacheEntry = {
  key: 'k',
  namespace: 'ns',
  response: answer('Paris is the capital of France. It has been since 987.', {
    usage: { inputTokens: 31, outputTokens: 14, reasoningTokens: 3 },
    systemFingerprint: 'fp_1',
  }),
  createdAtMs: 0,
  expiresAtMs: 1e15,
  bytes: 100,
};

function sseData(body: string): unknown[] {
  return body
    .split('\n')
    .filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]')
    .map((l) => JSON.parse(l.slice(6)));
}

describe('a hit as a reply', () => {
  it('has a fresh id and time, the stored text, and usage counted as cached input', () => {
    const { response, accounting } = hitReply(stored, 'chatcmpl-new', 1_800_000_000);
    assert.equal(response.id, 'chatcmpl-new');
    assert.equal(response.created, 1_800_000_000);
    assert.equal(response.model, stored.response.model);
    assert.equal(response.choices[0]!.text, stored.response.choices[0]!.text);
    assert.deepEqual(response.usage, { inputTokens: 31, outputTokens: 14, cachedInputTokens: 31, reasoningTokens: 3 });
    assert.deepEqual(accounting, { cachedInputTokens: 31, cachedOutputTokens: 14 });
  });

  it('cannot be edited into the store', () => {
    const { response } = hitReply(stored, 'x', 0);
    response.choices[0]!.text = 'redacted';
    assert.equal(stored.response.choices[0]!.text?.startsWith('Paris'), true);
  });

  it('header values', () => {
    assert.equal(cacheHeaderValue('hit'), 'hit');
    assert.equal(cacheHeaderValue('semantic-hit', 0.9712), 'semantic-hit;score=0.97');
    assert.equal(cacheHeaderValue('miss'), 'miss');
    assert.equal(cacheHeaderValue('bypass'), 'bypass');
  });
});

describe('streaming replay of a hit', () => {
  const { response } = hitReply(stored, 'chatcmpl-new', 1_800_000_000);
  const events = responseToEvents(response);

  it('is several events, not one blob, ending with the stored finish reason and usage', () => {
    const texts = events.filter((e) => e.type === 'text');
    assert.ok(texts.length >= 5, `${texts.length} text events`);
    const finish = events.find((e) => e.type === 'finish');
    assert.deepEqual(finish, { type: 'finish', choice: 0, reason: 'stop' });
    assert.equal(events.at(-1)?.type, 'usage');
  });

  it('renders as an OpenAI chunk stream with finish_reason and usage', () => {
    const enc = inboundCodec('openai-chat').createStreamEncoder({ id: response.id, model: response.model, created: response.created, includeUsage: true });
    const body = events.map((e) => enc.encode(e)).join('') + enc.end();
    const chunks = sseData(body) as { choices: { delta?: { content?: string }; finish_reason?: string | null }[]; usage?: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens: number } } }[];
    assert.ok(chunks.length >= 6);
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), stored.response.choices[0]!.text);
    assert.ok(chunks.some((c) => c.choices[0]?.finish_reason === 'stop'));
    const usage = chunks.find((c) => c.usage)?.usage;
    assert.equal(usage?.prompt_tokens, 31);
    assert.equal(usage?.prompt_tokens_details?.cached_tokens, 31);
    assert.ok(body.endsWith('data: [DONE]\n\n'));
  });

  it('renders as an Anthropic event stream with stop_reason and usage', () => {
    const enc = inboundCodec('anthropic-messages').createStreamEncoder({ id: response.id, model: response.model, created: response.created, includeUsage: true });
    const body = events.map((e) => enc.encode(e)).join('') + enc.end();
    const types = [...body.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
    assert.equal(types[0], 'message_start');
    assert.ok(types.filter((t) => t === 'content_block_delta').length >= 5);
    assert.equal(types.at(-1), 'message_stop');
    const delta = sseData(body).find((d) => (d as { type: string }).type === 'message_delta') as { delta: { stop_reason: string }; usage: { output_tokens: number } };
    assert.equal(delta.delta.stop_reason, 'end_turn');
    assert.equal(delta.usage.output_tokens, 14);
  });
});

describe('ResponseCollector', () => {
  it('rebuilds a streamed answer (text, reasoning, tool calls, logprobs, usage) as the response it came from', () => {
    const original: ChatResponse = {
      id: 'chatcmpl-1',
      model: 'm',
      created: 5,
      choices: [
        { index: 0, text: 'Let me look that up. ', reasoning: 'The user wants weather.', toolCalls: [{ id: 'call_1', name: 'weather', arguments: '{"city":"Paris"}' }], finishReason: 'tool_calls' },
      ],
      usage: { inputTokens: 10, outputTokens: 20 },
    };
    const c = new ResponseCollector();
    for (const e of responseToEvents(original)) c.push(e);
    assert.deepEqual(c.result(), original);
  });

  it('merges OpenAI logprobs chunks', () => {
    const c = new ResponseCollector();
    const events: StreamEvent[] = [
      { type: 'start', id: 'a', model: 'm', created: 1 },
      { type: 'text', choice: 0, text: 'Hi' },
      { type: 'logprobs', choice: 0, logprobs: { content: [{ token: 'Hi', logprob: -0.1 }] } },
      { type: 'text', choice: 0, text: '!' },
      { type: 'logprobs', choice: 0, logprobs: { content: [{ token: '!', logprob: -0.2 }] } },
      { type: 'finish', choice: 0, reason: 'stop' },
    ];
    for (const e of events) c.push(e);
    assert.deepEqual(c.result()?.choices[0]?.logprobs, { content: [{ token: 'Hi', logprob: -0.1 }, { token: '!', logprob: -0.2 }] });
  });

  it('gives nothing for an answer that did not end properly', () => {
    const cut = new ResponseCollector();
    cut.push({ type: 'start', id: 'a', model: 'm', created: 1 });
    cut.push({ type: 'text', choice: 0, text: 'Hal' });
    assert.equal(cut.result(), undefined, 'no finish');

    const failed = new ResponseCollector();
    for (const e of responseToEvents(answer('fine'))) failed.push(e);
    failed.push({ type: 'error', error: new Error('boom') as never });
    assert.equal(failed.result(), undefined, 'error event');

    const long = new ResponseCollector(10);
    for (const e of responseToEvents(answer('this answer is longer than ten characters'))) long.push(e);
    assert.equal(long.result(), undefined, 'over the size bound');
  });
});
