import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import type { ChatRequest } from '../../src/protocol/canonical.js';
import { exactKey, type KeyOptions, namespaceKey, semanticParts, stableStringify } from '../../src/cache/request-key.js';
import { chat } from './helpers.js';

const opts: KeyOptions = { ignoreFields: ['metadata', 'service_tier'], partitionByEndUser: false };
const ns = namespaceKey({ scope: 'consumer:alice', provider: 'openai', model: 'gpt-4o' });
const key = (req: ChatRequest, o: KeyOptions = opts): string => exactKey(ns, req, o);

describe('exact key', () => {
  const base = chat('What is the capital of France?');

  it('changes with every parameter that changes the answer', () => {
    const variants: Partial<ChatRequest>[] = [
      { maxTokens: 100 },
      { temperature: 0 },
      { topP: 0.9 },
      { topK: 40 },
      { stop: ['\n'] },
      { n: 2 },
      { seed: 7 },
      { presencePenalty: 0.5 },
      { frequencyPenalty: 0.5 },
      { tools: [{ name: 'lookup', parameters: { type: 'object', properties: {} } }] },
      { toolChoice: 'required' },
      { parallelToolCalls: false },
      { responseFormat: { type: 'json_object' } },
      { logprobs: true },
      { topLogprobs: 3 },
      { reasoningBudget: 1024 },
      { reasoningEffort: 'high' },
      { extra: { chat_template_kwargs: { enable_thinking: false } } },
    ];
    const seen = new Set([key(base)]);
    for (const v of variants) {
      const k = key({ ...base, ...v });
      assert.ok(!seen.has(k), `${JSON.stringify(v)} must change the key`);
      seen.add(k);
    }
  });

  it('changes with the messages: system prompt, earlier turns, text, images, names, tool calls', () => {
    const variants: ChatRequest[] = [
      chat('What is the capital of France?', { messages: [{ role: 'user', content: [{ type: 'text', text: 'What is the capital of France?' }] }] }),
      { ...base, messages: [{ role: 'system', content: [{ type: 'text', text: 'Answer in French.' }] }, base.messages[1]!] },
      chat('What is the capital of France? '),
      { ...base, messages: [base.messages[0]!, { role: 'user', name: 'bob', content: [{ type: 'text', text: 'What is the capital of France?' }] }] },
      {
        ...base,
        messages: [
          base.messages[0]!,
          { role: 'user', content: [{ type: 'text', text: 'What is the capital of France?' }, { type: 'image', source: { kind: 'url', url: 'https://x/y.png' } }] },
        ],
      },
      {
        ...base,
        messages: [
          ...base.messages,
          { role: 'assistant', content: [], toolCalls: [{ id: 'call_1', name: 'f', arguments: '{}' }] },
          { role: 'tool', toolCallId: 'call_1', content: [{ type: 'text', text: 'ok' }] },
        ],
      },
    ];
    const seen = new Set([key(base)]);
    for (const v of variants) {
      const k = key(v);
      assert.ok(!seen.has(k), `variant ${JSON.stringify(v.messages).slice(0, 120)} must change the key`);
      seen.add(k);
    }
  });

  it('does not change with presentation: stream, usage chunk, the alias asked for, ignored fields, key order', () => {
    const k = key(base);
    assert.equal(key({ ...base, stream: true, includeUsage: true }), k);
    assert.equal(key({ ...base, model: 'my-alias' }), k);
    assert.equal(key({ ...base, extra: { metadata: { trace: 'x' }, service_tier: 'auto', stream_options: { include_usage: true } } }), k);
    const schemaA = { type: 'object', properties: { a: { type: 'string' }, b: { type: 'number' } } };
    const schemaB = { properties: { b: { type: 'number' }, a: { type: 'string' } }, type: 'object' };
    assert.equal(key({ ...base, tools: [{ name: 't', parameters: schemaA }] }), key({ ...base, tools: [{ name: 't', parameters: schemaB }] }));
  });

  it('an explicit default is not an absent parameter', () => {
    assert.notEqual(key({ ...base, temperature: 1 }), key(base));
  });

  it('the end-user id counts only when configured', () => {
    assert.equal(key({ ...base, user: 'u1' }), key({ ...base, user: 'u2' }));
    const byUser: KeyOptions = { ...opts, partitionByEndUser: true };
    assert.notEqual(key({ ...base, user: 'u1' }, byUser), key({ ...base, user: 'u2' }, byUser));
  });

  it('namespaces isolate scope, provider and model', () => {
    const a = namespaceKey({ scope: 'consumer:alice', provider: 'openai', model: 'gpt-4o' });
    const others = [
      namespaceKey({ scope: 'consumer:bob', provider: 'openai', model: 'gpt-4o' }),
      namespaceKey({ scope: 'shared', provider: 'openai', model: 'gpt-4o' }),
      namespaceKey({ scope: 'consumer:alice', provider: 'azure', model: 'gpt-4o' }),
      namespaceKey({ scope: 'consumer:alice', provider: 'openai', model: 'gpt-4o-mini' }),
    ];
    for (const o of others) {
      assert.notEqual(o, a);
      assert.notEqual(exactKey(o, base, opts), exactKey(a, base, opts));
    }
  });

  it('stableStringify sorts keys at every depth and drops undefined', () => {
    assert.equal(stableStringify({ b: 1, a: { d: [1, { y: 2, x: undefined, w: 3 }], c: null } }), '{"a":{"c":null,"d":[1,{"w":3,"y":2}]},"b":1}');
  });
});

describe('semantic parts', () => {
  it('last_user_turn: the question text is embedded, everything before it is the context', () => {
    const a = semanticParts(ns, chat('How do I reverse a list in Python?'), opts, 'last_user_turn')!;
    const b = semanticParts(ns, chat('In Python, how do I reverse a list?'), opts, 'last_user_turn')!;
    assert.equal(a.text, 'How do I reverse a list in Python?');
    assert.equal(a.contextKey, b.contextKey, 'only the question differs');
    const otherSystem = chat('How do I reverse a list in Python?');
    otherSystem.messages[0] = { role: 'system', content: [{ type: 'text', text: 'You are a pirate.' }] };
    assert.notEqual(semanticParts(ns, otherSystem, opts, 'last_user_turn')!.contextKey, a.contextKey);
    assert.notEqual(semanticParts(ns, chat('How do I reverse a list in Python?', { temperature: 0 }), opts, 'last_user_turn')!.contextKey, a.contextKey);
    const otherNs = namespaceKey({ scope: 'consumer:bob', provider: 'openai', model: 'gpt-4o' });
    assert.notEqual(semanticParts(otherNs, chat('How do I reverse a list in Python?'), opts, 'last_user_turn')!.contextKey, a.contextKey);
  });

  it('no question text, no semantic layer: image, tool result or assistant last', () => {
    const withImage = chat('What is this?');
    withImage.messages[1] = { role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image', source: { kind: 'url', url: 'https://x/y.png' } }] };
    assert.equal(semanticParts(ns, withImage, opts, 'last_user_turn'), undefined);
    const assistantLast = chat('Hi');
    assistantLast.messages.push({ role: 'assistant', content: [{ type: 'text', text: 'Hello' }] });
    assert.equal(semanticParts(ns, assistantLast, opts, 'last_user_turn'), undefined);
    assert.equal(semanticParts(ns, chat('   '), opts, 'last_user_turn'), undefined);
  });

  it('conversation: every turn is text, only system prompt and parameters must match', () => {
    const conv = chat('And in Ruby?');
    conv.messages.splice(1, 0, { role: 'user', content: [{ type: 'text', text: 'How do I reverse a list in Python?' }] }, { role: 'assistant', content: [{ type: 'text', text: 'Use reversed().' }] });
    const parts = semanticParts(ns, conv, opts, 'conversation')!;
    assert.equal(parts.text, 'user: How do I reverse a list in Python?\nassistant: Use reversed().\nuser: And in Ruby?');
  });
});
