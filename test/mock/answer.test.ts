import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayError } from '../../src/errors.js';
import { answer, valueFromSchema, wordTokens, type AnswerMessage, type AnswerRequest } from '../../src/mock/answer.js';
import { embed } from '../../src/mock/embedding.js';
import { DEFAULT_MOCK_OPTIONS, mockOptionsFromHeaders, resolveMockOptions } from '../../src/mock/options.js';

const user = (text: string): AnswerMessage => ({ role: 'user', text, toolCalls: 0 });

function ask(messages: AnswerMessage[], extra: Partial<AnswerRequest> = {}) {
  return answer({ messages, tools: [], toolChoice: 'auto', parallelToolCalls: true, maxTokens: null, outputTokens: null, ...extra });
}

describe('mock answer model', () => {
  it('tokens are words with their trailing whitespace and join back to the text', () => {
    assert.deepEqual(wordTokens('Echo: a  b\nc'), ['Echo: ', 'a  ', 'b\n', 'c']);
    const a = ask([user('  spaced   out ')]);
    assert.ok(a.kind === 'text');
    assert.equal(a.tokens.join(''), 'Echo:   spaced   out ');
  });

  it('counts input words across every message', () => {
    const a = ask([{ role: 'system', text: 'one two', toolCalls: 0 }, user('three'), { role: 'assistant', text: 'four five', toolCalls: 0 }, user('six')]);
    assert.equal(a.usage.inputTokens, 6);
  });

  it('a fixed output length repeats or cuts the echo, then max_tokens caps it', () => {
    const long = ask([user('x y')], { outputTokens: 5 });
    assert.ok(long.kind === 'text');
    assert.equal(long.tokens.join(''), 'Echo: x y Echo: x ');
    assert.equal(long.usage.outputTokens, 5);
    const capped = ask([user('x y')], { outputTokens: 5, maxTokens: 3 });
    assert.ok(capped.kind === 'text' && capped.truncated && capped.tokens.length === 3);
    const zero = ask([user('x y')], { outputTokens: 0 });
    assert.ok(zero.kind === 'text' && zero.tokens.length === 0 && !zero.truncated);
  });

  it('builds arguments from JSON schemas', () => {
    const schema = {
      type: 'object',
      properties: {
        s: { type: 'string' },
        n: { type: 'number' },
        i: { type: 'integer' },
        b: { type: 'boolean' },
        e: { type: 'string', enum: ['first', 'second'] },
        a: { type: 'array', items: { type: 'string' } },
        o: { type: 'object', properties: { deep: { type: ['string', 'null'] }, skip: { type: 'string' } }, required: ['deep'] },
        u: { anyOf: [{ type: 'integer' }, { type: 'string' }] },
        optional: { type: 'string' },
      },
      required: ['s', 'n', 'i', 'b', 'e', 'a', 'o', 'u'],
    };
    assert.deepEqual(valueFromSchema(schema), { s: 'mock', n: 1, i: 1, b: true, e: 'first', a: [], o: { deep: 'mock' }, u: 1 });
  });

  it('a tool with no schema gets empty arguments; an unknown forced tool is a 400', () => {
    const a = ask([user('go')], { tools: [{ name: 'noop', parameters: undefined }], toolChoice: 'required' });
    assert.ok(a.kind === 'tool_calls');
    assert.equal(a.calls[0]?.arguments, '{}');
    assert.throws(
      () => ask([user('go')], { tools: [{ name: 'noop', parameters: {} }], toolChoice: { name: 'missing' } }),
      (e: unknown) => e instanceof GatewayError && e.status === 400,
    );
  });

  it('streamed argument tokens join back to the arguments', () => {
    const a = ask([user('call t')], {
      tools: [{ name: 't', parameters: { type: 'object', properties: { x: { type: 'string' }, y: { type: 'integer' } }, required: ['x', 'y'] } }],
    });
    assert.ok(a.kind === 'tool_calls');
    const call = a.calls[0];
    assert.ok(call !== undefined);
    assert.equal(call.argumentTokens.join(''), call.arguments);
    assert.deepEqual(call.argumentTokens, ['{"x":', '"mock",', '"y":', '1}']);
    assert.equal(a.usage.outputTokens, 4);
  });
});

describe('mock options', () => {
  it('fills defaults and rejects bad values', () => {
    const o = resolveMockOptions({ ttftMs: undefined, tokensPerSecond: 50 });
    assert.equal(o.ttftMs, 0);
    assert.equal(o.tokensPerSecond, 50);
    assert.deepEqual(o.models, ['mock', 'mock-large']);
    assert.equal(o.embeddingDimensions, 64);
    assert.throws(() => resolveMockOptions({ chunkTokens: 0 }), RangeError);
    assert.throws(() => resolveMockOptions({ errorStatus: 200 }), RangeError);
    assert.throws(() => resolveMockOptions({ models: [] }), RangeError);
    assert.throws(() => resolveMockOptions({ tokensPerSecond: Number.NaN }), RangeError);
  });

  it('reads per-request overrides from x-mock-* headers', () => {
    const base = resolveMockOptions();
    const plain = mockOptionsFromHeaders(base, { 'content-type': 'application/json' });
    assert.equal(plain, mockOptionsFromHeaders(base, {}), 'no headers: the shared default object');
    assert.deepEqual(
      mockOptionsFromHeaders(base, {
        'x-mock-status': '503',
        'x-mock-retry-after': '5',
        'x-mock-ttft-ms': '12.5',
        'x-mock-tps': '40',
        'x-mock-output-tokens': '9',
        'x-mock-chunk-tokens': '3',
        'x-mock-reset-after': '0',
        'x-mock-hang': '1',
      }),
      { ttftMs: 12.5, tokensPerSecond: 40, outputTokens: 9, chunkTokens: 3, status: 503, retryAfter: '5', resetAfter: 0, hang: true },
    );
    assert.equal(mockOptionsFromHeaders(base, { 'x-mock-hang': 'false' }).hang, false);
    for (const [name, value] of [
      ['x-mock-status', '200'],
      ['x-mock-tps', '-1'],
      ['x-mock-output-tokens', '2.5'],
      ['x-mock-chunk-tokens', '0'],
      ['x-mock-retry-after', 'a\r\nb'],
    ] as const) {
      assert.throws(
        () => mockOptionsFromHeaders(base, { [name]: value }),
        (e: unknown) => e instanceof GatewayError && e.status === 400 && e.param === name,
        name,
      );
    }
    assert.equal(DEFAULT_MOCK_OPTIONS.errorEvery, 0);
  });
});

describe('mock embeddings', () => {
  it('equal inputs give equal unit vectors, different inputs different ones', () => {
    const a = embed('hello', 32);
    assert.deepEqual(a, embed('hello', 32));
    assert.notDeepEqual(a, embed('hello!', 32));
    const norm = Math.sqrt(a.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-6);
  });
});
