/** Usage read from passed-through answers without decoding them, and the hidden usage chunk. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageScan, usageOfBody } from '../../src/protocol/usage-scan.js';

const chunk = (obj: object): string => `data: ${JSON.stringify(obj)}\n\n`;
const delta = chunk({ id: 'c', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'hi' } }], usage: null });
const usageChunk = chunk({
  id: 'c',
  object: 'chat.completion.chunk',
  choices: [],
  usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17, prompt_tokens_details: { cached_tokens: 4 } },
});

describe('UsageScan', () => {
  it('reads the OpenAI usage chunk and drops it for a client that did not ask', () => {
    const scan = new UsageScan('openai-chat', true);
    const input = Buffer.from(delta + usageChunk + 'data: [DONE]\n\n');
    const out = scan.scan(input).toString();
    assert.equal(out, delta + 'data: [DONE]\n\n');
    assert.deepEqual(scan.usage, { inputTokens: 12, outputTokens: 5, cachedInputTokens: 4 });
  });

  it('keeps the chunk when the client asked, and passes the very same buffer when no usage is in it', () => {
    const scan = new UsageScan('openai-chat', false);
    const input = Buffer.from(delta + usageChunk);
    assert.equal(scan.scan(input).toString(), delta + usageChunk);
    const plain = Buffer.from(delta);
    assert.equal(scan.scan(plain), plain);
  });

  it('finds usage among many events and with CRLF framing', () => {
    const many = Buffer.from(delta.repeat(50) + usageChunk + 'data: [DONE]\n\n');
    const scan = new UsageScan('openai-chat', true);
    assert.equal(scan.scan(many).toString(), delta.repeat(50) + 'data: [DONE]\n\n');
    const crlf = (t: string) => t.replace(/\n/g, '\r\n');
    const scan2 = new UsageScan('openai-chat', true);
    assert.equal(scan2.scan(Buffer.from(crlf(delta + usageChunk + 'data: [DONE]\n\n'))).toString(), crlf(delta + 'data: [DONE]\n\n'));
    assert.equal(scan2.usage?.inputTokens, 12);
  });

  it('merges Anthropic usage from message_start and message_delta, dropping nothing', () => {
    const scan = new UsageScan('anthropic-messages', true);
    const start = `event: message_start\n${chunk({ type: 'message_start', message: { usage: { input_tokens: 20, cache_read_input_tokens: 10, output_tokens: 1 } } })}`;
    const end = `event: message_delta\n${chunk({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 42 } })}`;
    assert.equal(scan.scan(Buffer.from(start)).toString(), start);
    scan.scan(Buffer.from(end));
    assert.deepEqual(scan.usage, { inputTokens: 30, outputTokens: 42, cachedInputTokens: 10 });
  });
});

describe('usageOfBody', () => {
  it('finds the usage object of a whole answer from its end', () => {
    const body = Buffer.from(JSON.stringify({ choices: [{ message: { content: 'say "usage":{ not here' } }], usage: { prompt_tokens: 3, completion_tokens: 7, total_tokens: 10 } }));
    assert.deepEqual(usageOfBody('openai-chat', body), { inputTokens: 3, outputTokens: 7 });
    assert.equal(usageOfBody('openai-chat', Buffer.from('{"choices":[]}')), undefined);
    const anth = Buffer.from(JSON.stringify({ content: [], usage: { input_tokens: 5, output_tokens: 9 } }));
    assert.deepEqual(usageOfBody('anthropic-messages', anth), { inputTokens: 5, outputTokens: 9 });
  });
});
