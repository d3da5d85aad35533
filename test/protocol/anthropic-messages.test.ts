import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';

import {
  anthropicMessagesCodec as codec,
  DEFAULT_MAX_TOKENS,
  UNPARSED_ARGUMENTS_KEY,
} from '../../src/protocol/anthropic-messages.js';
import type { ChatRequest, ChatResponse, StreamEvent } from '../../src/protocol/canonical.js';
import type { JsonObject } from '../../src/protocol/codec.js';
import { setClock } from '../../src/clock.js';
import { GatewayError } from '../../src/errors.js';

const NOW = 1_760_000_000;
before(() => setClock({ monotonicMs: () => 0, wallMs: () => NOW * 1000 }));
after(() => setClock(null));

const utf8 = new TextEncoder();

/** Asserts that `fn` throws a GatewayError with the given fields. */
function throwsGateway(fn: () => unknown, expected: Partial<Pick<GatewayError, 'code' | 'status' | 'param' | 'kind' | 'message'>>): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof GatewayError, `expected a GatewayError, got ${String(err)}`);
    for (const [key, value] of Object.entries(expected)) {
      assert.equal(err[key as keyof typeof expected], value, `GatewayError.${key}`);
    }
    return true;
  });
}

function sse(events: ReadonlyArray<readonly [string, unknown]>): string {
  return events.map(([name, data]) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`).join('');
}

/** Feeds `text` to a fresh stream decoder in pieces of `size` bytes (whole when size is 0). */
function decodeStream(text: string, size = 0): StreamEvent[] {
  const events: StreamEvent[] = [];
  const decoder = codec.createStreamDecoder((e) => events.push(e));
  const bytes = utf8.encode(text);
  if (size === 0) decoder.push(bytes);
  else for (let i = 0; i < bytes.length; i += size) decoder.push(bytes.subarray(i, i + size));
  decoder.end();
  return events;
}

interface Frame {
  event: string;
  data: JsonObject;
}

function frames(text: string): Frame[] {
  assert.ok(text.endsWith('\n\n'), 'every event is terminated by a blank line');
  return text
    .slice(0, -2)
    .split('\n\n')
    .map((chunk) => {
      const match = /^event: ([a-z_]+)\ndata: (.*)$/.exec(chunk);
      assert.ok(match, `not an event/data frame: ${JSON.stringify(chunk)}`);
      const data: unknown = JSON.parse(match[2]!);
      assert.ok(typeof data === 'object' && data !== null);
      return { event: match[1]!, data: data as JsonObject };
    });
}

function encodeStream(events: StreamEvent[]): string {
  const encoder = codec.createStreamEncoder({ id: 'fallback-id', model: 'fallback-model', created: NOW, includeUsage: false });
  let out = '';
  for (const e of events) out += encoder.encode(e);
  return out + encoder.end();
}

// ---------------------------------------------------------------------------------------------
// Fixtures, written for these tests in the shape of Anthropic's documented examples.
// ---------------------------------------------------------------------------------------------

/** A weather-tool conversation: the assistant thought, called a tool, and the user answers with its result. */
function toolConversation(): JsonObject {
  return {
    model: 'claude-sonnet-4-5',
    max_tokens: 2048,
    system: [
      { type: 'text', text: 'You are a terse travel assistant.', cache_control: { type: 'ephemeral' } },
      { type: 'text', text: 'Use metric units.' },
    ],
    messages: [
      { role: 'user', content: 'Will it rain in Porto tomorrow?' },
      {
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: 'I need the forecast tool.', signature: 'sig-abc123' },
          { type: 'redacted_thinking', data: 'opaque-bytes' },
          { type: 'text', text: 'Checking the forecast.' },
          { type: 'tool_use', id: 'toolu_01', name: 'get_forecast', input: { city: 'Porto', days: 1 } },
          { type: 'tool_use', id: 'toolu_02', name: 'get_radar', input: {} },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Here you go.' },
          { type: 'tool_result', tool_use_id: 'toolu_01', content: 'rain 80%, 14°C' },
          {
            type: 'tool_result',
            tool_use_id: 'toolu_02',
            is_error: true,
            content: [
              { type: 'text', text: 'radar offline' },
              { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
            ],
          },
          { type: 'image', source: { type: 'url', url: 'https://example.com/sky.jpg' } },
        ],
      },
    ],
    stop_sequences: ['</answer>'],
    temperature: 0.3,
    top_p: 0.9,
    top_k: 40,
    stream: true,
    tools: [
      {
        name: 'get_forecast',
        description: 'Weather forecast for a city',
        input_schema: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
      },
      { type: 'custom', name: 'get_radar', input_schema: { type: 'object', properties: {} }, strict: true },
    ],
    tool_choice: { type: 'auto', disable_parallel_tool_use: true },
    metadata: { user_id: 'user-7f3' },
    thinking: { type: 'enabled', budget_tokens: 1024 },
    service_tier: 'auto',
    chat_template_kwargs: { enable_thinking: false },
  };
}

// ---------------------------------------------------------------------------------------------

describe('anthropic-messages decodeRequest', () => {
  it('decodes every field of a tool-use conversation', () => {
    const req = codec.decodeRequest(toolConversation());
    const expected: ChatRequest = {
      model: 'claude-sonnet-4-5',
      stream: true,
      includeUsage: true,
      maxTokens: 2048,
      messages: [
        {
          role: 'system',
          content: [
            { type: 'text', text: 'You are a terse travel assistant.' },
            { type: 'text', text: 'Use metric units.' },
          ],
        },
        { role: 'user', content: [{ type: 'text', text: 'Will it rain in Porto tomorrow?' }] },
        {
          role: 'assistant',
          content: [
            { type: 'reasoning', text: 'I need the forecast tool.', signature: 'sig-abc123' },
            { type: 'text', text: 'Checking the forecast.' },
          ],
          toolCalls: [
            { id: 'toolu_01', name: 'get_forecast', arguments: '{"city":"Porto","days":1}' },
            { id: 'toolu_02', name: 'get_radar', arguments: '{}' },
          ],
        },
        { role: 'tool', toolCallId: 'toolu_01', content: [{ type: 'text', text: 'rain 80%, 14°C' }] },
        {
          role: 'tool',
          toolCallId: 'toolu_02',
          isError: true,
          content: [
            { type: 'text', text: 'radar offline' },
            { type: 'image', source: { kind: 'base64', mediaType: 'image/png', data: 'iVBORw0KGgo=' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Here you go.' },
            { type: 'image', source: { kind: 'url', url: 'https://example.com/sky.jpg' } },
          ],
        },
      ],
      stop: ['</answer>'],
      temperature: 0.3,
      topP: 0.9,
      topK: 40,
      tools: [
        {
          name: 'get_forecast',
          description: 'Weather forecast for a city',
          parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
        },
        { name: 'get_radar', parameters: { type: 'object', properties: {} }, strict: true },
      ],
      toolChoice: 'auto',
      parallelToolCalls: false,
      user: 'user-7f3',
      reasoningBudget: 1024,
      extra: { chat_template_kwargs: { enable_thinking: false } },
    };
    assert.deepEqual(req, expected);
  });

  it('decodes a minimal request, string system and tool_choice variants', () => {
    const base = { model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] };
    const plain = codec.decodeRequest({ ...base, system: 'Be brief.' });
    assert.deepEqual(plain, {
      model: 'm',
      maxTokens: 10,
      stream: false,
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'Be brief.' }] },
        { role: 'user', content: [{ type: 'text', text: 'hi' }] },
      ],
    });
    assert.equal(codec.decodeRequest({ ...base, tool_choice: { type: 'any' } }).toolChoice, 'required');
    assert.equal(codec.decodeRequest({ ...base, tool_choice: { type: 'none' } }).toolChoice, 'none');
    assert.deepEqual(codec.decodeRequest({ ...base, tool_choice: { type: 'tool', name: 'f' } }).toolChoice, { name: 'f' });
    assert.equal(codec.decodeRequest({ ...base, tool_choice: { type: 'auto', disable_parallel_tool_use: false } }).parallelToolCalls, undefined);
    assert.equal(codec.decodeRequest({ ...base, thinking: { type: 'disabled' } }).reasoningBudget, undefined);
    const structured = codec.decodeRequest({
      ...base,
      output_config: { format: { type: 'json_schema', schema: { type: 'object' } } },
    });
    assert.deepEqual(structured.responseFormat, { type: 'json_schema', name: 'output', schema: { type: 'object' } });
    assert.equal(structured.extra, undefined);
  });

  it('puts tool results before the rest of their user turn, in order', () => {
    const req = codec.decodeRequest({
      model: 'm',
      max_tokens: 5,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'a' },
            { type: 'text', text: 'next' },
            { type: 'tool_result', tool_use_id: 'b', content: [] },
          ],
        },
      ],
    });
    assert.deepEqual(req.messages, [
      { role: 'tool', toolCallId: 'a', content: [] },
      { role: 'tool', toolCallId: 'b', content: [] },
      { role: 'user', content: [{ type: 'text', text: 'next' }] },
    ]);
  });

  it('rejects invalid requests naming the field', () => {
    const ok = (): JsonObject => ({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
    const cases: Array<[string, (b: JsonObject) => void, string, GatewayError['code']]> = [
      ['missing model', (b) => delete b.model, 'model', 'invalid_request'],
      ['missing max_tokens', (b) => delete b.max_tokens, 'max_tokens', 'invalid_request'],
      ['fractional max_tokens', (b) => (b.max_tokens = 1.5), 'max_tokens', 'invalid_request'],
      ['messages not an array', (b) => (b.messages = 'hi'), 'messages', 'invalid_request'],
      ['system role in messages', (b) => (b.messages = [{ role: 'system', content: 'x' }]), 'messages.0.role', 'invalid_request'],
      ['content missing', (b) => (b.messages = [{ role: 'user' }]), 'messages.0.content', 'invalid_request'],
      [
        'document block',
        (b) =>
          (b.messages = [
            { role: 'user', content: [{ type: 'text', text: 'read' }, { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'x' } }] },
          ]),
        'messages.0.content.1.type',
        'unsupported_operation',
      ],
      [
        'tool_use in a user message',
        (b) => (b.messages = [{ role: 'user', content: [{ type: 'tool_use', id: 'x', name: 'f', input: {} }] }]),
        'messages.0.content.0.type',
        'invalid_request',
      ],
      [
        'image in an assistant message',
        (b) => (b.messages = [{ role: 'user', content: 'a' }, { role: 'assistant', content: [{ type: 'image', source: { type: 'url', url: 'u' } }] }]),
        'messages.1.content.0.type',
        'invalid_request',
      ],
      ['block without a type', (b) => (b.messages = [{ role: 'user', content: [{ text: 'x' }] }]), 'messages.0.content.0.type', 'invalid_request'],
      [
        'file image source',
        (b) => (b.messages = [{ role: 'user', content: [{ type: 'image', source: { type: 'file', file_id: 'f1' } }] }]),
        'messages.0.content.0.source.type',
        'unsupported_operation',
      ],
      [
        'tool_use input not an object',
        (b) => (b.messages = [{ role: 'assistant', content: [{ type: 'tool_use', id: 'x', name: 'f', input: '[]' }] }]),
        'messages.0.content.0.input',
        'invalid_request',
      ],
      [
        'tool_result without id',
        (b) => (b.messages = [{ role: 'user', content: [{ type: 'tool_result', content: 'x' }] }]),
        'messages.0.content.0.tool_use_id',
        'invalid_request',
      ],
      [
        'document inside a tool_result',
        (b) => (b.messages = [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: [{ type: 'search_result' }] }] }]),
        'messages.0.content.0.content.0.type',
        'unsupported_operation',
      ],
      ['system block not text', (b) => (b.system = [{ type: 'image' }]), 'system.0.type', 'invalid_request'],
      ['server tool', (b) => (b.tools = [{ type: 'web_search_20250305', name: 'web_search' }]), 'tools.0.type', 'unsupported_operation'],
      ['tool without schema', (b) => (b.tools = [{ name: 'f' }]), 'tools.0.input_schema', 'invalid_request'],
      ['tool_choice unknown type', (b) => (b.tool_choice = { type: 'sometimes' }), 'tool_choice.type', 'invalid_request'],
      ['tool_choice tool without name', (b) => (b.tool_choice = { type: 'tool' }), 'tool_choice.name', 'invalid_request'],
      ['thinking without budget', (b) => (b.thinking = { type: 'enabled' }), 'thinking.budget_tokens', 'invalid_request'],
      ['temperature as text', (b) => (b.temperature = '0.5'), 'temperature', 'invalid_request'],
      ['stop_sequences not strings', (b) => (b.stop_sequences = ['a', 3]), 'stop_sequences.1', 'invalid_request'],
      ['stream not boolean', (b) => (b.stream = 'yes'), 'stream', 'invalid_request'],
      ['metadata.user_id not a string', (b) => (b.metadata = { user_id: 5 }), 'metadata.user_id', 'invalid_request'],
    ];
    for (const [name, mutate, param, code] of cases) {
      const body = ok();
      mutate(body);
      assert.throws(
        () => codec.decodeRequest(body),
        (err: unknown) => {
          assert.ok(err instanceof GatewayError, name);
          assert.equal(err.param, param, name);
          assert.equal(err.code, code, name);
          assert.equal(err.status, 400, name);
          assert.ok(err.message.startsWith(`${param}: `), `${name}: ${err.message}`);
          return true;
        },
      );
    }
  });

  it('names the block type it cannot translate', () => {
    throwsGateway(
      () => codec.decodeRequest({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'document' }] }] }),
      { message: "messages.0.content.0.type: content block type 'document' is not supported for translation to this model's provider" },
    );
  });
});

describe('anthropic-messages encodeResponse', () => {
  const response = (over: Partial<ChatResponse['choices'][number]> = {}, usage?: ChatResponse['usage']): ChatResponse => ({
    id: 'chatcmpl-42',
    model: 'gpt-4.1',
    created: NOW,
    choices: [{ index: 0, text: 'Hello.', finishReason: 'stop', ...over }],
    ...(usage ? { usage } : {}),
  });

  it('builds a message with thinking, text and tool_use blocks and exclusive input usage', () => {
    const body = codec.encodeResponse(
      response(
        {
          reasoning: 'Think first.',
          reasoningSignature: 'sig-1',
          text: 'Calling the tool.',
          toolCalls: [{ id: 'call_1', name: 'get_forecast', arguments: '{"city":"Porto"}' }],
          finishReason: 'tool_calls',
        },
        { inputTokens: 1500, outputTokens: 30, cachedInputTokens: 1000, cacheCreationInputTokens: 200 },
      ),
    );
    assert.deepEqual(body, {
      id: 'msg_chatcmpl-42',
      type: 'message',
      role: 'assistant',
      model: 'gpt-4.1',
      content: [
        { type: 'thinking', thinking: 'Think first.', signature: 'sig-1' },
        { type: 'text', text: 'Calling the tool.' },
        { type: 'tool_use', id: 'call_1', name: 'get_forecast', input: { city: 'Porto' } },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 300, output_tokens: 30, cache_read_input_tokens: 1000, cache_creation_input_tokens: 200 },
    });
  });

  it('maps every finish reason', () => {
    const cases: Array<[ChatResponse['choices'][number]['finishReason'], string | undefined, string, string | null]> = [
      ['stop', undefined, 'end_turn', null],
      ['stop', '###', 'stop_sequence', '###'],
      ['length', undefined, 'max_tokens', null],
      ['tool_calls', undefined, 'tool_use', null],
      ['content_filter', undefined, 'refusal', null],
      ['error', undefined, 'end_turn', null],
      [null, undefined, 'end_turn', null],
    ];
    for (const [finishReason, stopSequence, reason, sequence] of cases) {
      const body = codec.encodeResponse(response(stopSequence === undefined ? { finishReason } : { finishReason, stopSequence }));
      assert.equal(body.stop_reason, reason, String(finishReason));
      assert.equal(body.stop_sequence, sequence, String(finishReason));
    }
  });

  it('keeps ids that already look like Anthropic ids, uses choice 0 only and fills missing usage', () => {
    const body = codec.encodeResponse({
      id: 'msg_abc',
      model: 'm',
      created: NOW,
      choices: [
        { index: 0, text: 'first', finishReason: 'stop' },
        { index: 1, text: 'second', finishReason: 'stop' },
      ],
    });
    assert.equal(body.id, 'msg_abc');
    assert.deepEqual(body.content, [{ type: 'text', text: 'first' }]);
    assert.deepEqual(body.usage, { input_tokens: 0, output_tokens: 0 });
  });

  it('does not turn unparsable tool arguments into an empty input', () => {
    const body = codec.encodeResponse(
      response({
        text: null,
        finishReason: 'length',
        toolCalls: [
          { id: 'c1', name: 'f', arguments: '{"path": "/tm' },
          { id: 'c2', name: 'g', arguments: '' },
          { id: 'c3', name: 'h', arguments: '[1,2]' },
        ],
      }),
    );
    assert.deepEqual(body.content, [
      { type: 'tool_use', id: 'c1', name: 'f', input: { [UNPARSED_ARGUMENTS_KEY]: '{"path": "/tm' } },
      { type: 'tool_use', id: 'c2', name: 'g', input: {} },
      { type: 'tool_use', id: 'c3', name: 'h', input: { [UNPARSED_ARGUMENTS_KEY]: '[1,2]' } },
    ]);
  });

  it('shows an OpenAI refusal as text', () => {
    const body = codec.encodeResponse(response({ text: null, refusal: 'I cannot help with that.', finishReason: 'content_filter' }));
    assert.deepEqual(body.content, [{ type: 'text', text: 'I cannot help with that.' }]);
  });
});

describe('anthropic-messages stream encoder', () => {
  const textAndTools: StreamEvent[] = [
    { type: 'start', id: 'chatcmpl-9', model: 'gpt-4.1', created: NOW },
    { type: 'text', choice: 0, text: 'Checking ' },
    { type: 'text', choice: 1, text: 'ignored choice' },
    { type: 'text', choice: 0, text: 'both cities.' },
    { type: 'tool_call', choice: 0, index: 0, id: 'call_a', name: 'get_forecast' },
    { type: 'tool_args', choice: 0, index: 0, delta: '{"city":' },
    { type: 'tool_args', choice: 0, index: 0, delta: '"Porto"}' },
    { type: 'tool_call', choice: 0, index: 1, id: 'call_b', name: 'get_forecast' },
    { type: 'tool_args', choice: 0, index: 1, delta: '{"city":"Faro"}' },
    { type: 'finish', choice: 0, reason: 'tool_calls' },
    { type: 'finish', choice: 1, reason: 'stop' },
    { type: 'usage', usage: { inputTokens: 900, outputTokens: 41, cachedInputTokens: 512 } },
  ];

  it('emits the exact Anthropic event sequence for a text + tool answer', () => {
    const out = frames(encodeStream(textAndTools));
    assert.deepEqual(
      out.map((f) => `${f.event}${typeof f.data.index === 'number' ? `:${f.data.index}` : ''}`),
      [
        'message_start',
        'ping',
        'content_block_start:0',
        'content_block_delta:0',
        'content_block_delta:0',
        'content_block_stop:0',
        'content_block_start:1',
        'content_block_delta:1',
        'content_block_delta:1',
        'content_block_stop:1',
        'content_block_start:2',
        'content_block_delta:2',
        'content_block_stop:2',
        'message_delta',
        'message_stop',
      ],
    );
    for (const f of out) assert.equal(f.data.type, f.event, 'data.type repeats the event name');
    assert.deepEqual(out[0]!.data.message, {
      id: 'msg_chatcmpl-9',
      type: 'message',
      role: 'assistant',
      model: 'gpt-4.1',
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 0, output_tokens: 0 },
    });
    assert.deepEqual(out[2]!.data.content_block, { type: 'text', text: '' });
    assert.deepEqual(out[3]!.data.delta, { type: 'text_delta', text: 'Checking ' });
    assert.deepEqual(out[6]!.data.content_block, { type: 'tool_use', id: 'call_a', name: 'get_forecast', input: {} });
    assert.deepEqual(out[7]!.data.delta, { type: 'input_json_delta', partial_json: '{"city":' });
    assert.deepEqual(out[13]!.data, {
      type: 'message_delta',
      delta: { stop_reason: 'tool_use', stop_sequence: null },
      usage: { input_tokens: 388, output_tokens: 41, cache_read_input_tokens: 512 },
    });
  });

  it('encodes thinking with its signature, and a stop sequence', () => {
    const out = frames(
      encodeStream([
        { type: 'start', id: 'msg_1', model: 'm', created: NOW },
        { type: 'reasoning', choice: 0, text: 'Hmm.' },
        { type: 'reasoning_signature', choice: 0, signature: 'sig-z' },
        { type: 'text', choice: 0, text: 'Done' },
        { type: 'finish', choice: 0, reason: 'stop', stopSequence: 'END' },
      ]),
    );
    assert.deepEqual(
      out.map((f) => f.event),
      ['message_start', 'ping', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'],
    );
    assert.deepEqual(out[2]!.data.content_block, { type: 'thinking', thinking: '', signature: '' });
    assert.deepEqual(out[3]!.data.delta, { type: 'thinking_delta', thinking: 'Hmm.' });
    assert.deepEqual(out[4]!.data.delta, { type: 'signature_delta', signature: 'sig-z' });
    assert.deepEqual(out[9]!.data.delta, { stop_reason: 'stop_sequence', stop_sequence: 'END' });
    assert.equal((out[0]!.data.message as JsonObject).id, 'msg_1');
  });

  it('still writes a valid tail when the stream ends without start or finish', () => {
    const encoder = codec.createStreamEncoder({ id: 'gen-1', model: 'fallback', created: NOW, includeUsage: false });
    const out = frames(encoder.encode({ type: 'text', choice: 0, text: 'partial' }) + encoder.end());
    assert.deepEqual(
      out.map((f) => f.event),
      ['message_start', 'ping', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'],
    );
    assert.equal((out[0]!.data.message as JsonObject).id, 'msg_gen-1');
    assert.equal((out[0]!.data.message as JsonObject).model, 'fallback');
    assert.deepEqual(out[5]!.data, { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 0 } });
    assert.equal(encoder.end(), '', 'the tail is written once');
  });

  it('renders an error event the SDK raises, and nothing after it', () => {
    const encoder = codec.createStreamEncoder({ id: 'x', model: 'm', created: NOW, includeUsage: false });
    encoder.encode({ type: 'start', id: 'x', model: 'm', created: NOW });
    const text = encoder.encode({ type: 'error', error: new GatewayError('overloaded', 'upstream is busy') });
    assert.equal(text, 'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"upstream is busy"}}\n\n');
    assert.equal(encoder.encode({ type: 'text', choice: 0, text: 'late' }), '');
    assert.equal(encoder.end(), '');
  });

  it('round-trips through the stream decoder', () => {
    const decoded = decodeStream(encodeStream(textAndTools));
    assert.deepEqual(decoded, [
      { type: 'start', id: 'msg_chatcmpl-9', model: 'gpt-4.1', created: NOW },
      { type: 'text', choice: 0, text: 'Checking ' },
      { type: 'text', choice: 0, text: 'both cities.' },
      { type: 'tool_call', choice: 0, index: 0, id: 'call_a', name: 'get_forecast' },
      { type: 'tool_args', choice: 0, index: 0, delta: '{"city":' },
      { type: 'tool_args', choice: 0, index: 0, delta: '"Porto"}' },
      { type: 'tool_call', choice: 0, index: 1, id: 'call_b', name: 'get_forecast' },
      { type: 'tool_args', choice: 0, index: 1, delta: '{"city":"Faro"}' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
      { type: 'usage', usage: { inputTokens: 900, outputTokens: 41, cachedInputTokens: 512 } },
    ]);
  });

  it('is accepted by the official SDK stream helper', async () => {
    const body = encodeStream(textAndTools);
    const client = new Anthropic({
      apiKey: 'test-key',
      maxRetries: 0,
      fetch: async () => new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }),
    });
    const message = await client.messages
      .stream({ model: 'gpt-4.1', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] })
      .finalMessage();
    assert.equal(message.id, 'msg_chatcmpl-9');
    assert.equal(message.stop_reason, 'tool_use');
    assert.deepEqual(
      message.content.map((b) => (b.type === 'text' ? b.text : b.type === 'tool_use' ? b.input : b.type)),
      ['Checking both cities.', { city: 'Porto' }, { city: 'Faro' }],
    );
    assert.equal(message.usage.input_tokens, 388);
    assert.equal(message.usage.output_tokens, 41);
    assert.equal(message.usage.cache_read_input_tokens, 512);
  });
});

describe('anthropic-messages encodeError / decodeError', () => {
  it('renders every gateway kind as an Anthropic error type', () => {
    const cases: Array<[GatewayError, string]> = [
      [new GatewayError('invalid_request', 'bad'), 'invalid_request_error'],
      [new GatewayError('unauthorized', 'no key'), 'authentication_error'],
      [new GatewayError('forbidden', 'no'), 'permission_error'],
      [new GatewayError('model_not_found', 'nope'), 'not_found_error'],
      [new GatewayError('body_too_large', 'big'), 'request_too_large'],
      [new GatewayError('rate_limited', 'slow down'), 'rate_limit_error'],
      [new GatewayError('internal_error', 'oops'), 'api_error'],
      [new GatewayError('overloaded', 'busy'), 'overloaded_error'],
      [new GatewayError('upstream_timeout', 'late'), 'timeout_error'],
    ];
    for (const [err, type] of cases) {
      assert.deepEqual(codec.encodeError(err), { type: 'error', error: { type, message: err.message } });
    }
  });

  it('renders the message, never the raw upstream body (only the relay forwards bytes, and only within one protocol)', () => {
    const anthropicBody = { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' }, request_id: 'req_1' };
    const rendered = codec.encodeError(
      new GatewayError('upstream_error', 'Overloaded', { status: 529, kind: 'overloaded_error', upstreamBody: utf8.encode(JSON.stringify(anthropicBody)) }),
    );
    assert.deepEqual(rendered, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    const openaiBody = utf8.encode(JSON.stringify({ error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } }));
    const fromOpenAI = codec.encodeError(new GatewayError('upstream_error', 'Rate limit reached', { status: 429, kind: 'rate_limit_error', upstreamBody: openaiBody }));
    assert.deepEqual(fromOpenAI, { type: 'error', error: { type: 'rate_limit_error', message: 'Rate limit reached' } });
  });

  it('decodes Anthropic error replies and non-JSON bodies', () => {
    const bytes = utf8.encode('{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}');
    const err = codec.decodeError(529, bytes);
    assert.equal(err.code, 'upstream_error');
    assert.equal(err.status, 529);
    assert.equal(err.kind, 'overloaded_error');
    assert.equal(err.message, 'Overloaded');
    assert.equal(err.upstreamBody, bytes);

    const html = codec.decodeError(502, utf8.encode('<html>Bad Gateway</html>'));
    assert.equal(html.message, 'Anthropic returned HTTP 502');
    assert.equal(html.kind, 'api_error');
    assert.equal(codec.decodeError(401, utf8.encode('{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}')).kind, 'authentication_error');
  });
});

describe('anthropic-messages encodeRequest', () => {
  it('hoists system messages, merges tool results and same-role turns', () => {
    const req: ChatRequest = {
      model: 'client-model',
      stream: false,
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'Be terse.' }] },
        { role: 'user', content: [{ type: 'text', text: 'Weather in Porto and Faro?' }] },
        {
          role: 'assistant',
          content: [
            { type: 'reasoning', text: 'Two lookups.', signature: 'sig-1' },
            { type: 'text', text: 'Looking up.' },
          ],
          toolCalls: [
            { id: 'call_1', name: 'get_forecast', arguments: '{"city":"Porto"}' },
            { id: 'call_2', name: 'get_forecast', arguments: '{"city":"Faro"}' },
          ],
        },
        { role: 'tool', toolCallId: 'call_1', content: [{ type: 'text', text: 'sunny' }] },
        {
          role: 'tool',
          toolCallId: 'call_2',
          isError: true,
          content: [
            { type: 'text', text: 'no data' },
            { type: 'image', source: { kind: 'url', url: 'data:image/png;base64,AAAA' } },
          ],
        },
        { role: 'system', content: [{ type: 'text', text: 'Answer in Portuguese.' }] },
        { role: 'user', content: [{ type: 'text', text: 'Thanks.' }] },
        { role: 'user', content: [{ type: 'image', source: { kind: 'url', url: 'https://example.com/map.png' } }] },
        { role: 'assistant', content: [{ type: 'reasoning', text: 'unsigned' }, { type: 'text', text: 'De nada.' }] },
      ],
    };
    assert.deepEqual(codec.encodeRequest(req, 'claude-sonnet-4-5'), {
      model: 'claude-sonnet-4-5',
      max_tokens: DEFAULT_MAX_TOKENS,
      system: 'Be terse.\n\nAnswer in Portuguese.',
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Weather in Porto and Faro?' }] },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'Two lookups.', signature: 'sig-1' },
            { type: 'text', text: 'Looking up.' },
            { type: 'tool_use', id: 'call_1', name: 'get_forecast', input: { city: 'Porto' } },
            { type: 'tool_use', id: 'call_2', name: 'get_forecast', input: { city: 'Faro' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'call_1', content: 'sunny' },
            {
              type: 'tool_result',
              tool_use_id: 'call_2',
              is_error: true,
              content: [
                { type: 'text', text: 'no data' },
                { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } },
              ],
            },
            { type: 'text', text: 'Thanks.' },
            { type: 'image', source: { type: 'url', url: 'https://example.com/map.png' } },
          ],
        },
        { role: 'assistant', content: [{ type: 'text', text: 'De nada.' }] },
      ],
    });
  });

  it('keeps tool results first when user text precedes them', () => {
    const body = codec.encodeRequest(
      {
        model: 'm',
        stream: false,
        messages: [
          { role: 'assistant', content: [], toolCalls: [{ id: 't', name: 'f', arguments: '' }] },
          { role: 'user', content: [{ type: 'text', text: 'also' }] },
          { role: 'tool', toolCallId: 't', content: [] },
        ],
      },
      'x',
    );
    assert.deepEqual(body.messages, [
      { role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'f', input: {} }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't' }, { type: 'text', text: 'also' }] },
    ]);
  });

  it('maps sampling, tools, tool choice, reasoning, user and drops extra', () => {
    const body = codec.encodeRequest(
      {
        model: 'gpt-4.1',
        stream: true,
        includeUsage: true,
        messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
        maxTokens: 9000,
        temperature: 0.2,
        topP: 0.8,
        topK: 12,
        stop: ['STOP'],
        seed: 7,
        tools: [
          { name: 'f', description: 'does f', parameters: { type: 'object', properties: { a: { type: 'string' } } }, strict: true },
          { name: 'g', parameters: {} },
        ],
        toolChoice: { name: 'f' },
        parallelToolCalls: false,
        reasoningBudget: 2048,
        user: 'u-1',
        extra: { logit_bias: { '50256': -100 } },
      },
      'claude-opus-4-1',
    );
    assert.deepEqual(body, {
      model: 'claude-opus-4-1',
      max_tokens: 9000,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
      stop_sequences: ['STOP'],
      temperature: 0.2,
      top_p: 0.8,
      top_k: 12,
      tools: [
        { name: 'f', description: 'does f', input_schema: { type: 'object', properties: { a: { type: 'string' } } } },
        { name: 'g', input_schema: { type: 'object', properties: {} } },
      ],
      tool_choice: { type: 'tool', name: 'f', disable_parallel_tool_use: true },
      thinking: { type: 'enabled', budget_tokens: 2048 },
      metadata: { user_id: 'u-1' },
      stream: true,
    });
  });

  it('maps each tool choice and leaves it out without tools', () => {
    const base: ChatRequest = {
      model: 'm',
      stream: false,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
      tools: [{ name: 'f', parameters: { type: 'object' } }],
    };
    const choice = (over: Partial<ChatRequest>): unknown => codec.encodeRequest({ ...base, ...over }, 'x').tool_choice;
    assert.deepEqual(choice({ toolChoice: 'auto' }), { type: 'auto' });
    assert.deepEqual(choice({ toolChoice: 'none' }), { type: 'none' });
    assert.deepEqual(choice({ toolChoice: 'required' }), { type: 'any' });
    assert.deepEqual(choice({ parallelToolCalls: false }), { type: 'auto', disable_parallel_tool_use: true });
    assert.deepEqual(choice({ toolChoice: 'required', parallelToolCalls: false }), { type: 'any', disable_parallel_tool_use: true });
    assert.equal(choice({}), undefined);
    assert.equal(choice({ tools: [], toolChoice: 'auto' }), undefined);
  });

  it('defaults max_tokens, leaving room for a reasoning budget', () => {
    const base: ChatRequest = { model: 'm', stream: false, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] };
    assert.equal(codec.encodeRequest(base, 'x').max_tokens, 4096);
    assert.equal(codec.encodeRequest({ ...base, reasoningBudget: 8000 }, 'x').max_tokens, 8000 + DEFAULT_MAX_TOKENS);
  });

  it('asks for JSON in the system prompt when a response format is set', () => {
    const base: ChatRequest = {
      model: 'm',
      stream: false,
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'Extract.' }] },
        { role: 'user', content: [{ type: 'text', text: 'Ana, 31' }] },
      ],
    };
    const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } } };
    const withSchema = codec.encodeRequest({ ...base, responseFormat: { type: 'json_schema', name: 'person', schema } }, 'x');
    assert.equal(typeof withSchema.system, 'string');
    const system = withSchema.system as string;
    assert.ok(system.startsWith('Extract.\n\n'));
    assert.ok(system.includes(JSON.stringify(schema)));
    assert.ok(system.includes('"person"'));
    const withObject = codec.encodeRequest({ ...base, responseFormat: { type: 'json_object' } }, 'x');
    assert.match(withObject.system as string, /^Extract\.\n\n.*JSON object/);
    assert.equal(codec.encodeRequest({ ...base, responseFormat: { type: 'text' } }, 'x').system, 'Extract.');
  });

  it('rejects n > 1 and unparsable tool arguments', () => {
    const base: ChatRequest = { model: 'm', stream: false, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] };
    throwsGateway(() => codec.encodeRequest({ ...base, n: 2 }, 'x'), {
      code: 'unsupported_operation',
      status: 400,
      message: 'n > 1 is not supported by Anthropic',
    });
    throwsGateway(
      () =>
        codec.encodeRequest(
          { ...base, messages: [...base.messages, { role: 'assistant', content: [], toolCalls: [{ id: 'c', name: 'f', arguments: '{oops' }] }] },
          'x',
        ),
      { code: 'invalid_request', status: 400, param: 'messages.1.tool_calls.0.function.arguments' },
    );
    throwsGateway(
      () =>
        codec.encodeRequest(
          { ...base, messages: [...base.messages, { role: 'assistant', content: [], toolCalls: [{ id: 'c', name: 'f', arguments: '"text"' }] }] },
          'x',
        ),
      { code: 'invalid_request', param: 'messages.1.tool_calls.0.function.arguments' },
    );
  });
});

describe('anthropic-messages decodeResponse', () => {
  const message = (): JsonObject => ({
    id: 'msg_01XYZ',
    type: 'message',
    role: 'assistant',
    model: 'claude-sonnet-4-5-20250929',
    content: [
      { type: 'thinking', thinking: 'The user wants Porto.', signature: 'sig-q' },
      { type: 'redacted_thinking', data: 'opaque' },
      { type: 'text', text: 'Let me look ' },
      { type: 'text', text: 'that up.' },
      { type: 'tool_use', id: 'toolu_9', name: 'get_forecast', input: { city: 'Porto', days: 2 } },
    ],
    stop_reason: 'tool_use',
    stop_sequence: null,
    usage: {
      input_tokens: 25,
      cache_creation_input_tokens: 300,
      cache_read_input_tokens: 2000,
      output_tokens: 77,
      output_tokens_details: { thinking_tokens: 40 },
    },
  });

  it('maps blocks, stop reason and usage', () => {
    assert.deepEqual(codec.decodeResponse(message()), {
      id: 'msg_01XYZ',
      model: 'claude-sonnet-4-5-20250929',
      created: NOW,
      choices: [
        {
          index: 0,
          text: 'Let me look that up.',
          reasoning: 'The user wants Porto.',
          reasoningSignature: 'sig-q',
          toolCalls: [{ id: 'toolu_9', name: 'get_forecast', arguments: '{"city":"Porto","days":2}' }],
          finishReason: 'tool_calls',
        },
      ],
      usage: { inputTokens: 2325, outputTokens: 77, cachedInputTokens: 2000, cacheCreationInputTokens: 300, reasoningTokens: 40 },
    });
  });

  it('maps every stop reason', () => {
    const cases: Array<[string | null, string | null]> = [
      ['end_turn', 'stop'],
      ['stop_sequence', 'stop'],
      ['pause_turn', 'stop'],
      ['max_tokens', 'length'],
      ['tool_use', 'tool_calls'],
      ['refusal', 'content_filter'],
      [null, null],
    ];
    for (const [reason, expected] of cases) {
      const res = codec.decodeResponse({ ...message(), stop_reason: reason });
      assert.equal(res.choices[0]!.finishReason, expected, String(reason));
    }
    const bySequence = codec.decodeResponse({ ...message(), stop_reason: 'stop_sequence', stop_sequence: '</a>' });
    assert.equal(bySequence.choices[0]!.stopSequence, '</a>');
  });

  it('gives null text for a tool-only answer and empty text for an empty one', () => {
    const toolOnly = codec.decodeResponse({ ...message(), content: [{ type: 'tool_use', id: 't', name: 'f', input: {} }] });
    assert.equal(toolOnly.choices[0]!.text, null);
    assert.equal(codec.decodeResponse({ ...message(), content: [] }).choices[0]!.text, '');
  });

  it('rejects bodies that are not messages', () => {
    for (const body of [null, [], { type: 'error' }, { ...message(), content: 'text' }, { ...message(), content: [{ type: 'text' }] }, { ...message(), id: 1 }]) {
      throwsGateway(() => codec.decodeResponse(body), { code: 'upstream_protocol_error', status: 502 });
    }
  });
});

describe('anthropic-messages stream decoder', () => {
  const toolStream = sse([
    [
      'message_start',
      {
        type: 'message_start',
        message: {
          id: 'msg_01Stream',
          type: 'message',
          role: 'assistant',
          model: 'claude-sonnet-4-5',
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: 412, cache_creation_input_tokens: 50, cache_read_input_tokens: 1000, output_tokens: 2 },
        },
      },
    ],
    ['ping', { type: 'ping' }],
    ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Checking the forecast ' } }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'for São Miguel 🌦' } }],
    ['content_block_stop', { type: 'content_block_stop', index: 0 }],
    [
      'content_block_start',
      { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_01Q', name: 'get_forecast', input: {} } },
    ],
    ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '' } }],
    ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"island": "São' } }],
    ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: ' Miguel", "days": 3}' } }],
    ['content_block_stop', { type: 'content_block_stop', index: 1 }],
    ['message_delta', { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 87 } }],
    ['message_stop', { type: 'message_stop' }],
  ]);

  const expectedToolEvents: StreamEvent[] = [
    { type: 'start', id: 'msg_01Stream', model: 'claude-sonnet-4-5', created: NOW },
    { type: 'text', choice: 0, text: 'Checking the forecast ' },
    { type: 'text', choice: 0, text: 'for São Miguel 🌦' },
    { type: 'tool_call', choice: 0, index: 0, id: 'toolu_01Q', name: 'get_forecast' },
    { type: 'tool_args', choice: 0, index: 0, delta: '{"island": "São' },
    { type: 'tool_args', choice: 0, index: 0, delta: ' Miguel", "days": 3}' },
    { type: 'finish', choice: 0, reason: 'tool_calls' },
    { type: 'usage', usage: { inputTokens: 1462, outputTokens: 87, cachedInputTokens: 1000, cacheCreationInputTokens: 50 } },
  ];

  it('decodes text, tool_use and input_json_delta with merged usage', () => {
    assert.deepEqual(decodeStream(toolStream), expectedToolEvents);
  });

  it('gives the same events when fed one byte at a time, or with CRLF line ends', () => {
    assert.deepEqual(decodeStream(toolStream, 1), expectedToolEvents);
    assert.deepEqual(decodeStream(toolStream, 7), expectedToolEvents);
    assert.deepEqual(decodeStream(toolStream.replace(/\n/g, '\r\n'), 1), expectedToolEvents);
  });

  it('decodes thinking, signatures, stop sequences and newer message_delta usage', () => {
    const text = sse([
      [
        'message_start',
        {
          type: 'message_start',
          message: { id: 'msg_T', type: 'message', role: 'assistant', model: 'claude-opus-4-1', content: [], usage: { input_tokens: 10, output_tokens: 1 } },
        },
      ],
      ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Consider ' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'both options.' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'EqQBCgIYAh' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 0 }],
      ['content_block_start', { type: 'content_block_start', index: 1, content_block: { type: 'redacted_thinking', data: 'opaque' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 1 }],
      ['content_block_start', { type: 'content_block_start', index: 2, content_block: { type: 'text', text: '' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 2, delta: { type: 'text_delta', text: 'Option B.' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 2 }],
      [
        'message_delta',
        {
          type: 'message_delta',
          delta: { stop_reason: 'stop_sequence', stop_sequence: '</answer>' },
          usage: { input_tokens: 12, cache_read_input_tokens: 3000, cache_creation_input_tokens: 0, output_tokens: 64, output_tokens_details: { thinking_tokens: 50 } },
        },
      ],
      ['message_stop', { type: 'message_stop' }],
    ]);
    assert.deepEqual(decodeStream(text, 3), [
      { type: 'start', id: 'msg_T', model: 'claude-opus-4-1', created: NOW },
      { type: 'reasoning', choice: 0, text: 'Consider ' },
      { type: 'reasoning', choice: 0, text: 'both options.' },
      { type: 'reasoning_signature', choice: 0, signature: 'EqQBCgIYAh' },
      { type: 'text', choice: 0, text: 'Option B.' },
      { type: 'finish', choice: 0, reason: 'stop', stopSequence: '</answer>' },
      {
        type: 'usage',
        usage: { inputTokens: 3012, outputTokens: 64, cachedInputTokens: 3000, cacheCreationInputTokens: 0, reasoningTokens: 50 },
      },
    ]);
  });

  it('numbers tool calls per message and ignores server-tool input', () => {
    const text = sse([
      ['message_start', { type: 'message_start', message: { id: 'msg_S', model: 'm', usage: { input_tokens: 1, output_tokens: 1 } } }],
      ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'server_tool_use', id: 'srvtoolu_1', name: 'web_search', input: {} } }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"query":"x"}' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 0 }],
      ['content_block_start', { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_A', name: 'a', input: {} } }],
      ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{}' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 1 }],
      ['content_block_start', { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'toolu_B', name: 'b', input: {} } }],
      ['content_block_delta', { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{"n":1}' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 2 }],
      ['message_delta', { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 9 } }],
      ['message_stop', { type: 'message_stop' }],
    ]);
    const calls = decodeStream(text).filter((e) => e.type === 'tool_call' || e.type === 'tool_args');
    assert.deepEqual(calls, [
      { type: 'tool_call', choice: 0, index: 0, id: 'toolu_A', name: 'a' },
      { type: 'tool_args', choice: 0, index: 0, delta: '{}' },
      { type: 'tool_call', choice: 0, index: 1, id: 'toolu_B', name: 'b' },
      { type: 'tool_args', choice: 0, index: 1, delta: '{"n":1}' },
    ]);
  });

  it('turns an error event into an error StreamEvent', () => {
    const text =
      sse([['message_start', { type: 'message_start', message: { id: 'msg_E', model: 'm', usage: { input_tokens: 3, output_tokens: 1 } } }]]) +
      'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n';
    const events = decodeStream(text);
    assert.equal(events.length, 2);
    const last = events[1]!;
    assert.equal(last.type, 'error');
    if (last.type !== 'error') return;
    assert.equal(last.error.code, 'upstream_error');
    assert.equal(last.error.kind, 'overloaded_error');
    assert.equal(last.error.message, 'Overloaded');

    const unknown = decodeStream('event: error\ndata: {"type":"error","error":{"type":"billing_error","message":"no credit"}}\n\n');
    assert.equal(unknown[0]!.type === 'error' && unknown[0]!.error.kind, 'api_error');
  });

  it('throws when the stream ends before message_stop', () => {
    const cut = toolStream.slice(0, toolStream.indexOf('event: message_stop'));
    throwsGateway(() => decodeStream(cut), { code: 'upstream_protocol_error', message: 'upstream stream ended early' });
    const midEvent = toolStream.slice(0, toolStream.indexOf('event: message_delta') + 30);
    throwsGateway(() => decodeStream(midEvent, 1), { code: 'upstream_protocol_error', message: 'upstream stream ended early' });
    throwsGateway(() => decodeStream(''), { code: 'upstream_protocol_error' });
  });

  it('accepts a final message_stop without its blank line, and ignores anything after it', () => {
    assert.deepEqual(decodeStream(toolStream.slice(0, -2)), expectedToolEvents);
    assert.deepEqual(decodeStream(`${toolStream}event: content_block_delta\ndata: {trailing`), expectedToolEvents);
  });

  it('rejects an event whose data is not JSON', () => {
    throwsGateway(() => decodeStream('event: content_block_delta\ndata: {oops\n\n'), { code: 'upstream_protocol_error' });
  });
});
