import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { APIError } from 'openai';
import { ChatCompletionStream } from 'openai/lib/ChatCompletionStream';
import { Stream } from 'openai/streaming';
import type { ChatRequest, ChatResponse, StreamEvent } from '../../src/protocol/canonical.js';
import type { JsonObject, StreamInit } from '../../src/protocol/codec.js';
import {
  fromOpenAIFinishReason,
  openaiChatCodec as codec,
  parseImageUrl,
  toOpenAIFinishReason,
} from '../../src/protocol/openai-chat.js';
import { GatewayError } from '../../src/errors.js';

const enc = new TextEncoder();

/** A deep copy, so a test can tweak a fixture without touching the others. */
function copy<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

function expectGatewayError(fn: () => unknown, code: string, param?: string | null): GatewayError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof GatewayError, `expected a GatewayError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (param !== undefined) assert.equal(caught.param, param, caught.message);
  return caught;
}

// ---------------------------------------------------------------------------------------------
// Fixtures, after the shapes in OpenAI's API reference

const toolRequest = {
  model: 'gpt-4.1',
  messages: [
    { role: 'system', content: 'You report the weather and nothing else.' },
    { role: 'user', content: 'Do I need an umbrella in Lisbon today?' },
    {
      role: 'assistant',
      content: null,
      tool_calls: [
        { id: 'call_w1', type: 'function', function: { name: 'lookup_weather', arguments: '{"city":"Lisbon"}' } },
      ],
    },
    { role: 'tool', tool_call_id: 'call_w1', content: '{"rain_mm":0,"temp_c":21}' },
  ],
  tools: [
    {
      type: 'function',
      function: {
        name: 'lookup_weather',
        description: 'Current conditions for a city',
        parameters: {
          type: 'object',
          properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } },
          required: ['city'],
        },
        strict: true,
      },
    },
  ],
  tool_choice: 'auto',
  parallel_tool_calls: true,
};

const fullRequest = {
  model: 'gpt-4o-mini',
  messages: [
    { role: 'developer', content: [{ type: 'text', text: 'Be terse.' }] },
    {
      role: 'user',
      name: 'ana',
      content: [
        { type: 'text', text: 'What is in these two pictures?' },
        { type: 'image_url', image_url: { url: 'https://img.example.org/harbour.jpg', detail: 'high' } },
        { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
      ],
    },
    { role: 'assistant', content: 'A harbour and a tiny PNG.', reasoning_content: 'Two images; describe each.' },
    { role: 'user', content: 'Give me JSON.' },
  ],
  stream: true,
  stream_options: { include_usage: true },
  max_tokens: 50,
  max_completion_tokens: 300,
  temperature: 0.3,
  top_p: 0.9,
  stop: ['\n\n', 'END'],
  n: 2,
  seed: 42,
  presence_penalty: 0.5,
  frequency_penalty: -0.25,
  tools: [{ type: 'function', function: { name: 'noop' } }],
  tool_choice: { type: 'function', function: { name: 'noop' } },
  parallel_tool_calls: false,
  response_format: {
    type: 'json_schema',
    json_schema: {
      name: 'answer',
      description: 'The answer object',
      schema: { type: 'object', properties: { text: { type: 'string' } } },
      strict: true,
    },
  },
  logprobs: true,
  top_logprobs: 3,
  user: 'user-1234',
  reasoning_effort: 'low',
  chat_template_kwargs: { enable_thinking: false },
  metadata: { team: 'search' },
};

const completion = {
  id: 'chatcmpl-C1f9x2',
  object: 'chat.completion',
  created: 1741569952,
  model: 'gpt-4.1-2025-04-14',
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: 'No umbrella needed: it is dry and 21 °C.', refusal: null },
      logprobs: null,
      finish_reason: 'stop',
    },
  ],
  usage: {
    prompt_tokens: 1117,
    completion_tokens: 46,
    total_tokens: 1163,
    prompt_tokens_details: { cached_tokens: 1024 },
    completion_tokens_details: { reasoning_tokens: 12 },
  },
  system_fingerprint: 'fp_4d2c1e0b9a',
};

const toolCompletion = {
  id: 'chatcmpl-C1fA00',
  object: 'chat.completion',
  created: 1741569960,
  model: 'gpt-4.1-2025-04-14',
  choices: [
    {
      index: 0,
      message: {
        role: 'assistant',
        content: null,
        refusal: null,
        reasoning_content: 'The user wants two cities.',
        tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'lookup_weather', arguments: '{"city":"Porto"}' } },
          { id: 'call_b', type: 'function', function: { name: 'lookup_weather', arguments: '{"city":"Faro"}' } },
        ],
      },
      logprobs: { content: [{ token: 'x', logprob: -0.1, bytes: [120], top_logprobs: [] }], refusal: null },
      finish_reason: 'tool_calls',
    },
  ],
  usage: { prompt_tokens: 80, completion_tokens: 40, total_tokens: 120 },
};

function chunk(choices: unknown[], extra: JsonObject = {}): string {
  return `data: ${JSON.stringify({
    id: 'chatcmpl-S1',
    object: 'chat.completion.chunk',
    created: 1741570000,
    model: 'gpt-4.1-mini',
    choices,
    ...extra,
  })}\n\n`;
}

const usageBody = {
  prompt_tokens: 90,
  completion_tokens: 25,
  total_tokens: 115,
  prompt_tokens_details: { cached_tokens: 64 },
  completion_tokens_details: { reasoning_tokens: 0 },
};

/** A streamed tool call: role chunk, text with a multi-byte character, argument fragments, usage. */
const toolStream =
  chunk([{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }]) +
  chunk([{ index: 0, delta: { content: 'Checking café ☂ ' }, logprobs: null, finish_reason: null }]) +
  chunk([
    {
      index: 0,
      delta: {
        tool_calls: [{ index: 0, id: 'call_s1', type: 'function', function: { name: 'lookup_weather', arguments: '' } }],
      },
      logprobs: null,
      finish_reason: null,
    },
  ]) +
  chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"ci' } }] }, finish_reason: null }]) +
  chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: 'ty":"Évora"}' } }] }, finish_reason: null }]) +
  chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' }]) +
  chunk([], { usage: usageBody }) +
  'data: [DONE]\n\n';

const toolStreamEvents: StreamEvent[] = [
  { type: 'start', id: 'chatcmpl-S1', model: 'gpt-4.1-mini', created: 1741570000 },
  { type: 'text', choice: 0, text: 'Checking café ☂ ' },
  { type: 'tool_call', choice: 0, index: 0, id: 'call_s1', name: 'lookup_weather' },
  { type: 'tool_args', choice: 0, index: 0, delta: '{"ci' },
  { type: 'tool_args', choice: 0, index: 0, delta: 'ty":"Évora"}' },
  { type: 'finish', choice: 0, reason: 'tool_calls' },
  {
    type: 'usage',
    usage: { inputTokens: 90, outputTokens: 25, cachedInputTokens: 64, reasoningTokens: 0 },
  },
];

function decodeStream(pieces: Uint8Array[], callEnd = true): StreamEvent[] {
  const events: StreamEvent[] = [];
  const decoder = codec.createStreamDecoder((e) => events.push(e));
  for (const p of pieces) decoder.push(p);
  if (callEnd) decoder.end();
  return events;
}

function whole(text: string): Uint8Array[] {
  return [enc.encode(text)];
}

function byteByByte(text: string): Uint8Array[] {
  const bytes = enc.encode(text);
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i++) out.push(bytes.subarray(i, i + 1));
  return out;
}

const init: StreamInit = { id: 'chatcmpl-gw', model: 'fallback-model', created: 1700000000, includeUsage: false };

function encodeEvents(events: StreamEvent[], overrides: Partial<StreamInit> = {}): string {
  const encoder = codec.createStreamEncoder({ ...init, ...overrides });
  let out = '';
  for (const e of events) out += encoder.encode(e);
  return out + encoder.end();
}

/** The JSON payloads of an encoded SSE stream, [DONE] excluded. */
function payloads(sse: string): JsonObject[] {
  const out: JsonObject[] = [];
  for (const block of sse.split('\n\n')) {
    if (block === '') continue;
    assert.ok(block.startsWith('data: '), `not an SSE data line: ${block}`);
    const data = block.slice(6);
    if (data === '[DONE]') continue;
    out.push(JSON.parse(data) as JsonObject);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

describe('openai-chat decodeRequest', () => {
  it('decodes a tool-calling conversation', () => {
    const req = codec.decodeRequest(copy(toolRequest));
    assert.equal(req.model, 'gpt-4.1');
    assert.equal(req.stream, false);
    assert.deepEqual(req.messages, [
      { role: 'system', content: [{ type: 'text', text: 'You report the weather and nothing else.' }] },
      { role: 'user', content: [{ type: 'text', text: 'Do I need an umbrella in Lisbon today?' }] },
      {
        role: 'assistant',
        content: [],
        toolCalls: [{ id: 'call_w1', name: 'lookup_weather', arguments: '{"city":"Lisbon"}' }],
      },
      { role: 'tool', toolCallId: 'call_w1', content: [{ type: 'text', text: '{"rain_mm":0,"temp_c":21}' }] },
    ]);
    assert.deepEqual(req.tools, [
      {
        name: 'lookup_weather',
        description: 'Current conditions for a city',
        parameters: toolRequest.tools[0]!.function.parameters,
        strict: true,
      },
    ]);
    assert.equal(req.toolChoice, 'auto');
    assert.equal(req.parallelToolCalls, true);
    assert.equal(req.extra, undefined);
  });

  it('decodes every request field', () => {
    const req = codec.decodeRequest(copy(fullRequest));
    const expected: ChatRequest = {
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'Be terse.' }] },
        {
          role: 'user',
          name: 'ana',
          content: [
            { type: 'text', text: 'What is in these two pictures?' },
            { type: 'image', source: { kind: 'url', url: 'https://img.example.org/harbour.jpg' }, detail: 'high' },
            { type: 'image', source: { kind: 'base64', mediaType: 'image/png', data: 'iVBORw0KGgo=' } },
          ],
        },
        {
          role: 'assistant',
          content: [
            { type: 'reasoning', text: 'Two images; describe each.' },
            { type: 'text', text: 'A harbour and a tiny PNG.' },
          ],
        },
        { role: 'user', content: [{ type: 'text', text: 'Give me JSON.' }] },
      ],
      stream: true,
      includeUsage: true,
      maxTokens: 300,
      temperature: 0.3,
      topP: 0.9,
      stop: ['\n\n', 'END'],
      n: 2,
      seed: 42,
      presencePenalty: 0.5,
      frequencyPenalty: -0.25,
      tools: [{ name: 'noop', parameters: { type: 'object', properties: {} } }],
      toolChoice: { name: 'noop' },
      parallelToolCalls: false,
      responseFormat: {
        type: 'json_schema',
        name: 'answer',
        description: 'The answer object',
        schema: { type: 'object', properties: { text: { type: 'string' } } },
        strict: true,
      },
      logprobs: true,
      topLogprobs: 3,
      user: 'user-1234',
      reasoningEffort: 'low',
      extra: { chat_template_kwargs: { enable_thinking: false }, metadata: { team: 'search' } },
    };
    assert.deepEqual(req, expected);
  });

  it('reads the smaller variants of fields', () => {
    const req = codec.decodeRequest({
      model: 'm',
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot help with that.' }] },
        { role: 'assistant', content: null, refusal: 'No.' },
        { role: 'tool', tool_call_id: 't1', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] },
      ],
      max_tokens: 64,
      stop: 'STOP',
      stream: false,
      stream_options: null,
      temperature: null,
      response_format: { type: 'json_object' },
      tool_choice: 'required',
      reasoning_effort: 'none',
      top_k: 20,
    });
    assert.equal(req.maxTokens, 64);
    assert.deepEqual(req.stop, ['STOP']);
    assert.equal(req.temperature, undefined);
    assert.equal(req.includeUsage, undefined);
    assert.deepEqual(req.responseFormat, { type: 'json_object' });
    assert.equal(req.toolChoice, 'required');
    // Efforts the canonical model cannot say still reach OpenAI-compatible upstreams.
    assert.equal(req.reasoningEffort, undefined);
    assert.deepEqual(req.extra, { reasoning_effort: 'none', top_k: 20 });
    assert.deepEqual(req.messages[1], { role: 'assistant', content: [{ type: 'text', text: 'I cannot help with that.' }] });
    assert.deepEqual(req.messages[2], { role: 'assistant', content: [{ type: 'text', text: 'No.' }] });
    assert.deepEqual(req.messages[3], {
      role: 'tool',
      toolCallId: 't1',
      content: [
        { type: 'text', text: 'a' },
        { type: 'text', text: 'b' },
      ],
    });
    assert.deepEqual(codec.decodeRequest({ model: 'm', messages: [{ role: 'user', content: 'x' }], response_format: { type: 'text' } }).responseFormat, {
      type: 'text',
    });
  });

  it('keeps a __proto__ field out of extra', () => {
    const body = JSON.parse('{"model":"m","messages":[{"role":"user","content":"x"}],"__proto__":{"polluted":1}}') as JsonObject;
    const req = codec.decodeRequest(body);
    assert.equal(req.extra, undefined);
  });

  const base = (): JsonObject => ({ model: 'm', messages: [{ role: 'user', content: 'hello' }] });
  const withMessage = (m: unknown): JsonObject => ({ model: 'm', messages: [{ role: 'user', content: 'hello' }, m] });
  const cases: Array<[string, JsonObject, string, string]> = [
    ['missing model', { messages: [{ role: 'user', content: 'x' }] }, 'invalid_request', 'model'],
    ['non-string model', { ...base(), model: 7 }, 'invalid_request', 'model'],
    ['missing messages', { model: 'm' }, 'invalid_request', 'messages'],
    ['empty messages', { model: 'm', messages: [] }, 'invalid_request', 'messages'],
    ['message not an object', withMessage('hi'), 'invalid_request', 'messages[1]'],
    ['unknown role', withMessage({ role: 'robot', content: 'x' }), 'invalid_request', 'messages[1].role'],
    ['legacy function role', withMessage({ role: 'function', name: 'f', content: 'x' }), 'unsupported_operation', 'messages[1].role'],
    ['user without content', withMessage({ role: 'user' }), 'invalid_request', 'messages[1].content'],
    ['content of wrong type', withMessage({ role: 'user', content: 5 }), 'invalid_request', 'messages[1].content'],
    ['part without text', withMessage({ role: 'user', content: [{ type: 'text' }] }), 'invalid_request', 'messages[1].content[0].text'],
    [
      'input_audio part',
      withMessage({ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAA', format: 'wav' } }] }),
      'unsupported_operation',
      'messages[1].content[0].type',
    ],
    [
      'file part',
      withMessage({ role: 'user', content: [{ type: 'text', text: 'x' }, { type: 'file', file: { file_id: 'f' } }] }),
      'unsupported_operation',
      'messages[1].content[1].type',
    ],
    ['unknown part', withMessage({ role: 'user', content: [{ type: 'video' }] }), 'invalid_request', 'messages[1].content[0].type'],
    [
      'ftp image',
      withMessage({ role: 'user', content: [{ type: 'image_url', image_url: { url: 'ftp://x/y.png' } }] }),
      'invalid_request',
      'messages[1].content[0].image_url.url',
    ],
    [
      'non-base64 data URL',
      withMessage({ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png,abc' } }] }),
      'invalid_request',
      'messages[1].content[0].image_url.url',
    ],
    [
      'image in a system message',
      { model: 'm', messages: [{ role: 'system', content: [{ type: 'image_url', image_url: { url: 'https://a/b.png' } }] }] },
      'invalid_request',
      'messages[0].content[0].type',
    ],
    [
      'tool message without id',
      withMessage({ role: 'tool', content: 'x' }),
      'invalid_request',
      'messages[1].tool_call_id',
    ],
    [
      'tool call without name',
      withMessage({ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { arguments: '{}' } }] }),
      'invalid_request',
      'messages[1].tool_calls[0].function.name',
    ],
    [
      'tool call without id',
      withMessage({ role: 'assistant', tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{}' } }] }),
      'invalid_request',
      'messages[1].tool_calls[0].id',
    ],
    [
      'legacy function_call',
      withMessage({ role: 'assistant', content: null, function_call: { name: 'f', arguments: '{}' } }),
      'unsupported_operation',
      'messages[1].function_call',
    ],
    ['stream not boolean', { ...base(), stream: 'yes' }, 'invalid_request', 'stream'],
    ['include_usage not boolean', { ...base(), stream_options: { include_usage: 1 } }, 'invalid_request', 'stream_options.include_usage'],
    ['max_tokens fractional', { ...base(), max_tokens: 1.5 }, 'invalid_request', 'max_tokens'],
    ['max_tokens invalid beside a valid max_completion_tokens', { ...base(), max_completion_tokens: 5, max_tokens: 'x' }, 'invalid_request', 'max_tokens'],
    ['max_completion_tokens zero', { ...base(), max_completion_tokens: 0 }, 'invalid_request', 'max_completion_tokens'],
    ['temperature string', { ...base(), temperature: '0.2' }, 'invalid_request', 'temperature'],
    ['top_p string', { ...base(), top_p: 'high' }, 'invalid_request', 'top_p'],
    ['stop array with number', { ...base(), stop: ['a', 3] }, 'invalid_request', 'stop[1]'],
    ['stop object', { ...base(), stop: { a: 1 } }, 'invalid_request', 'stop'],
    ['n zero', { ...base(), n: 0 }, 'invalid_request', 'n'],
    ['seed fractional', { ...base(), seed: 0.5 }, 'invalid_request', 'seed'],
    ['presence_penalty string', { ...base(), presence_penalty: 'x' }, 'invalid_request', 'presence_penalty'],
    ['frequency_penalty bool', { ...base(), frequency_penalty: true }, 'invalid_request', 'frequency_penalty'],
    ['tools not array', { ...base(), tools: {} }, 'invalid_request', 'tools'],
    ['tool of other type', { ...base(), tools: [{ type: 'retrieval' }] }, 'invalid_request', 'tools[0].type'],
    ['custom tool', { ...base(), tools: [{ type: 'custom', custom: { name: 'x' } }] }, 'unsupported_operation', 'tools[0].type'],
    ['tool without name', { ...base(), tools: [{ type: 'function', function: {} }] }, 'invalid_request', 'tools[0].function.name'],
    [
      'tool parameters not object',
      { ...base(), tools: [{ type: 'function', function: { name: 'f', parameters: 'x' } }] },
      'invalid_request',
      'tools[0].function.parameters',
    ],
    ['tool_choice unknown', { ...base(), tool_choice: 'always' }, 'invalid_request', 'tool_choice'],
    ['tool_choice without name', { ...base(), tool_choice: { type: 'function', function: {} } }, 'invalid_request', 'tool_choice.function.name'],
    [
      'tool_choice allowed_tools',
      { ...base(), tool_choice: { type: 'allowed_tools', allowed_tools: { mode: 'auto', tools: [] } } },
      'unsupported_operation',
      'tool_choice.type',
    ],
    ['parallel_tool_calls string', { ...base(), parallel_tool_calls: 'yes' }, 'invalid_request', 'parallel_tool_calls'],
    ['response_format type', { ...base(), response_format: { type: 'yaml' } }, 'invalid_request', 'response_format.type'],
    [
      'json_schema without name',
      { ...base(), response_format: { type: 'json_schema', json_schema: { schema: {} } } },
      'invalid_request',
      'response_format.json_schema.name',
    ],
    ['logprobs string', { ...base(), logprobs: 'true' }, 'invalid_request', 'logprobs'],
    ['top_logprobs negative', { ...base(), top_logprobs: -1 }, 'invalid_request', 'top_logprobs'],
    ['user number', { ...base(), user: 5 }, 'invalid_request', 'user'],
    ['reasoning_effort number', { ...base(), reasoning_effort: 2 }, 'invalid_request', 'reasoning_effort'],
  ];
  for (const [name, body, code, param] of cases) {
    it(`rejects ${name} (param ${param})`, () => {
      const err = expectGatewayError(() => codec.decodeRequest(body), code, param);
      assert.equal(err.status, 400);
      assert.ok(err.message.includes(`'${param}'`), `message should name ${param}: ${err.message}`);
    });
  }

  it('says unsupported parts are not supported for translation', () => {
    const err = expectGatewayError(
      () => codec.decodeRequest({ model: 'm', messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }] }),
      'unsupported_operation',
    );
    assert.match(err.message, /input_audio/);
    assert.match(err.message, /not supported for translation/);
  });
});

describe('openai-chat encodeRequest', () => {
  it('round-trips a tool-calling request', () => {
    const req = codec.decodeRequest(copy(toolRequest));
    assert.deepEqual(codec.encodeRequest(req, req.model), toolRequest);
  });

  it('round-trips a request with every field in its canonical spelling', () => {
    const body = copy(fullRequest) as JsonObject;
    delete body.max_completion_tokens;
    body.max_tokens = 300;
    (body.messages as JsonObject[])[0]!.role = 'system';
    (body.messages as JsonObject[])[0]!.content = 'Be terse.';
    // Reasoning of past turns is dropped for OpenAI upstreams.
    delete (body.messages as JsonObject[])[2]!.reasoning_content;
    (body.tools as JsonObject[])[0] = { type: 'function', function: { name: 'noop', parameters: { type: 'object', properties: {} } } };
    const req = codec.decodeRequest(copy(body));
    assert.deepEqual(codec.encodeRequest(req, req.model), body);
  });

  it('uses the provider model name and always asks for usage when streaming', () => {
    const req = codec.decodeRequest({ model: 'alias', messages: [{ role: 'user', content: 'x' }], stream: true });
    assert.equal(req.includeUsage, undefined);
    const body = codec.encodeRequest(req, 'meta-llama/Llama-3.1-8B-Instruct');
    assert.equal(body.model, 'meta-llama/Llama-3.1-8B-Instruct');
    assert.equal(body.stream, true);
    assert.deepEqual(body.stream_options, { include_usage: true });
    const plain = codec.encodeRequest({ ...req, stream: false }, 'm');
    assert.equal(plain.stream, undefined);
    assert.equal(plain.stream_options, undefined);
  });

  it('spreads extra without letting it override the codec', () => {
    const req: ChatRequest = {
      model: 'm',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }] }],
      stream: true,
      maxTokens: 10,
      extra: { model: 'evil', max_tokens: 99999, stream_options: { include_usage: false }, top_k: 40, chat_template_kwargs: { a: 1 } },
    };
    const body = codec.encodeRequest(req, 'real');
    assert.equal(body.model, 'real');
    assert.equal(body.max_tokens, 10);
    assert.deepEqual(body.stream_options, { include_usage: true });
    assert.equal(body.top_k, 40);
    assert.deepEqual(body.chat_template_kwargs, { a: 1 });
  });

  it('translates canonical content the OpenAI way', () => {
    const req: ChatRequest = {
      model: 'm',
      stream: false,
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] },
        {
          role: 'user',
          content: [
            { type: 'image', source: { kind: 'base64', mediaType: 'image/jpeg', data: '/9j/4AAQ' }, detail: 'low' },
            { type: 'text', text: 'what is this?' },
          ],
        },
        {
          role: 'assistant',
          content: [
            { type: 'reasoning', text: 'hmm', signature: 'sig' },
            { type: 'text', text: 'Let me look.' },
          ],
          toolCalls: [{ id: 'c1', name: 'zoom', arguments: '{"x":1}' }],
        },
        {
          role: 'tool',
          toolCallId: 'c1',
          content: [
            { type: 'text', text: 'zoomed' },
            { type: 'image', source: { kind: 'url', url: 'https://x/z.png' } },
          ],
          isError: false,
        },
        { role: 'user', content: [] },
      ],
      topK: 5,
      reasoningBudget: 1000,
      tools: [],
      toolChoice: 'none',
      parallelToolCalls: true,
    };
    const body = codec.encodeRequest(req, 'm');
    assert.deepEqual(body, {
      model: 'm',
      messages: [
        { role: 'system', content: 'ab' },
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,/9j/4AAQ', detail: 'low' } },
            { type: 'text', text: 'what is this?' },
          ],
        },
        {
          role: 'assistant',
          content: 'Let me look.',
          tool_calls: [{ id: 'c1', type: 'function', function: { name: 'zoom', arguments: '{"x":1}' } }],
        },
        { role: 'tool', tool_call_id: 'c1', content: 'zoomed' },
        // Images of tool results follow the run of tool messages, where OpenAI allows them.
        { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/z.png' } }] },
        { role: 'user', content: '' },
      ],
    });
  });
});

describe('openai-chat responses', () => {
  it('decodes a completion with usage details', () => {
    const res = codec.decodeResponse(copy(completion));
    const expected: ChatResponse = {
      id: 'chatcmpl-C1f9x2',
      model: 'gpt-4.1-2025-04-14',
      created: 1741569952,
      choices: [{ index: 0, text: 'No umbrella needed: it is dry and 21 °C.', finishReason: 'stop' }],
      usage: { inputTokens: 1117, outputTokens: 46, cachedInputTokens: 1024, reasoningTokens: 12 },
      systemFingerprint: 'fp_4d2c1e0b9a',
    };
    assert.deepEqual(res, expected);
  });

  it('round-trips completions through decode and encode', () => {
    for (const body of [completion, toolCompletion]) {
      assert.deepEqual(codec.encodeResponse(codec.decodeResponse(copy(body))), body);
    }
  });

  it('decodes tool calls, reasoning and raw logprobs', () => {
    const res = codec.decodeResponse(copy(toolCompletion));
    const c = res.choices[0]!;
    assert.equal(c.text, null);
    assert.equal(c.reasoning, 'The user wants two cities.');
    assert.equal(c.finishReason, 'tool_calls');
    assert.deepEqual(c.toolCalls, [
      { id: 'call_a', name: 'lookup_weather', arguments: '{"city":"Porto"}' },
      { id: 'call_b', name: 'lookup_weather', arguments: '{"city":"Faro"}' },
    ]);
    assert.deepEqual(c.logprobs, toolCompletion.choices[0]!.logprobs);
    assert.deepEqual(res.usage, { inputTokens: 80, outputTokens: 40 });
  });

  it('accepts what OpenAI-compatible servers send', () => {
    const res = codec.decodeResponse({
      id: 'cmpl-vllm',
      object: 'chat.completion',
      created: 1,
      model: 'qwen',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: 'ok',
            reasoning: 'thinking text',
            tool_calls: [{ type: 'function', function: { name: 'f', arguments: { a: 1 } } }],
            annotations: [],
          },
          finish_reason: 'abort',
          stop_reason: '###',
        },
        { index: 1, message: { role: 'assistant', content: 'no', refusal: 'declined' }, finish_reason: 'weird' },
      ],
      usage: {
        prompt_tokens: 5,
        completion_tokens: 3,
        total_tokens: 8,
        prompt_tokens_details: { cached_tokens: 2, cache_write_tokens: 1, audio_tokens: 0 },
      },
      service_tier: 'default',
    });
    const [a, b] = res.choices;
    assert.equal(a!.reasoning, 'thinking text');
    assert.equal(a!.finishReason, 'error');
    assert.equal(a!.stopSequence, '###');
    assert.equal(a!.toolCalls![0]!.arguments, '{"a":1}');
    assert.match(a!.toolCalls![0]!.id, /^call_[0-9a-f]{24}$/);
    assert.equal(b!.refusal, 'declined');
    assert.equal(b!.finishReason, 'stop');
    assert.deepEqual(res.usage, { inputTokens: 5, outputTokens: 3, cachedInputTokens: 2, cacheCreationInputTokens: 1 });
  });

  it('rejects nonsense from the upstream', () => {
    for (const body of [null, 'text', [], {}, { choices: 'x' }, { choices: [1] }, { choices: [{ message: 'x' }] }, { choices: [{ message: { content: 5 } }] }]) {
      const err = expectGatewayError(() => codec.decodeResponse(body), 'upstream_protocol_error');
      assert.equal(err.message, 'upstream returned an invalid chat completion');
    }
    const err = expectGatewayError(() => codec.decodeResponse({ error: { message: 'model overloaded', code: 503 } }), 'upstream_error');
    assert.equal(err.message, 'model overloaded');
    assert.equal(err.status, 503);
  });

  it('encodes only the fields that are known', () => {
    const body = codec.encodeResponse({
      id: 'r1',
      model: 'claude-x',
      created: 5,
      choices: [
        { index: 0, text: 'hi', finishReason: 'error', reasoning: 'r', refusal: 'nope' },
        { index: 1, text: null, finishReason: null },
      ],
    });
    assert.deepEqual(body, {
      id: 'r1',
      object: 'chat.completion',
      created: 5,
      model: 'claude-x',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'hi', refusal: 'nope', reasoning_content: 'r' },
          logprobs: null,
          finish_reason: 'stop',
        },
        { index: 1, message: { role: 'assistant', content: null, refusal: null }, logprobs: null, finish_reason: null },
      ],
    });
    const withCacheWrites = codec.encodeResponse({
      id: 'r2',
      model: 'm',
      created: 5,
      choices: [],
      usage: { inputTokens: 10, outputTokens: 1, cacheCreationInputTokens: 4 },
    });
    assert.deepEqual(withCacheWrites.usage, {
      prompt_tokens: 10,
      completion_tokens: 1,
      total_tokens: 11,
      prompt_tokens_details: { cache_write_tokens: 4 },
    });
  });

  it('maps finish reasons both ways', () => {
    assert.equal(toOpenAIFinishReason('content_filter'), 'content_filter');
    assert.equal(toOpenAIFinishReason('error'), 'stop');
    assert.equal(toOpenAIFinishReason(null), null);
    assert.equal(fromOpenAIFinishReason('function_call'), 'tool_calls');
    assert.equal(fromOpenAIFinishReason('length'), 'length');
    assert.equal(fromOpenAIFinishReason('eos'), 'stop');
  });

  it('parses image URLs', () => {
    assert.deepEqual(parseImageUrl('data:image/webp;charset=x;base64,UklG'), { kind: 'base64', mediaType: 'image/webp', data: 'UklG' });
    assert.deepEqual(parseImageUrl('HTTPS://a.example/x.png'), { kind: 'url', url: 'HTTPS://a.example/x.png' });
    assert.equal(parseImageUrl('data:;base64,AAAA'), null);
    assert.equal(parseImageUrl('data:image/png;base64'), null);
    assert.equal(parseImageUrl('file:///etc/passwd'), null);
  });
});

describe('openai-chat stream decoder', () => {
  it('decodes a streamed tool call', () => {
    assert.deepEqual(decodeStream(whole(toolStream)), toolStreamEvents);
  });

  it('gives the same events one byte at a time', () => {
    assert.deepEqual(decodeStream(byteByByte(toolStream)), toolStreamEvents);
  });

  it('gives the same events whatever byte the stream is split at', () => {
    const bytes = enc.encode(toolStream);
    for (let i = 0; i <= bytes.length; i++) {
      assert.deepEqual(decodeStream([bytes.subarray(0, i), bytes.subarray(i)]), toolStreamEvents, `split at ${i}`);
    }
  });

  it('copes with CRLF framing and keep-alive comments', () => {
    const crlf = (': ping\n\n' + toolStream).replace(/\n/g, '\r\n');
    assert.deepEqual(decodeStream(byteByByte(crlf)), toolStreamEvents);
  });

  it('decodes parallel tool calls with interleaved indexes', () => {
    const text =
      chunk([
        {
          index: 0,
          delta: {
            role: 'assistant',
            tool_calls: [
              { index: 0, id: 'call_p', type: 'function', function: { name: 'weather', arguments: '{"c":' } },
              { index: 1, id: 'call_q', type: 'function', function: { name: 'time', arguments: '' } },
            ],
          },
          finish_reason: null,
        },
      ]) +
      chunk([{ index: 0, delta: { tool_calls: [{ index: 1, function: { arguments: '{"tz":' } }] }, finish_reason: null }]) +
      chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '"Oslo"}' } }] }, finish_reason: null }]) +
      chunk([{ index: 0, delta: { tool_calls: [{ index: 1, function: { arguments: '"CET"}' } }] }, finish_reason: null }]) +
      chunk([{ index: 0, delta: {}, finish_reason: 'tool_calls' }]) +
      'data: [DONE]\n\n';
    const expected: StreamEvent[] = [
      { type: 'start', id: 'chatcmpl-S1', model: 'gpt-4.1-mini', created: 1741570000 },
      { type: 'tool_call', choice: 0, index: 0, id: 'call_p', name: 'weather' },
      { type: 'tool_args', choice: 0, index: 0, delta: '{"c":' },
      { type: 'tool_call', choice: 0, index: 1, id: 'call_q', name: 'time' },
      { type: 'tool_args', choice: 0, index: 1, delta: '{"tz":' },
      { type: 'tool_args', choice: 0, index: 0, delta: '"Oslo"}' },
      { type: 'tool_args', choice: 0, index: 1, delta: '"CET"}' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
    ];
    assert.deepEqual(decodeStream(whole(text)), expected);
    assert.deepEqual(decodeStream(byteByByte(text)), expected);
  });

  it('numbers tool calls itself when a server leaves out the index', () => {
    const text =
      chunk([{ index: 0, delta: { tool_calls: [{ id: 'a', function: { name: 'f', arguments: '{' } }] }, finish_reason: null }]) +
      chunk([{ index: 0, delta: { tool_calls: [{ function: { arguments: '}' } }] }, finish_reason: null }]) +
      chunk([{ index: 0, delta: { tool_calls: [{ id: 'b', function: { name: 'g', arguments: '{}' } }] }, finish_reason: 'tool_calls' }]) +
      'data: [DONE]\n\n';
    assert.deepEqual(decodeStream(whole(text)).slice(1), [
      { type: 'tool_call', choice: 0, index: 0, id: 'a', name: 'f' },
      { type: 'tool_args', choice: 0, index: 0, delta: '{' },
      { type: 'tool_args', choice: 0, index: 0, delta: '}' },
      { type: 'tool_call', choice: 0, index: 1, id: 'b', name: 'g' },
      { type: 'tool_args', choice: 0, index: 1, delta: '{}' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
    ]);
  });

  it('takes usage from the finish chunk', () => {
    const text =
      chunk([{ index: 0, delta: { role: 'assistant', content: 'Hi' }, finish_reason: null }]) +
      chunk([{ index: 0, delta: {}, finish_reason: 'stop' }], { usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }) +
      'data: [DONE]\n\n';
    assert.deepEqual(decodeStream(whole(text)).slice(1), [
      { type: 'text', choice: 0, text: 'Hi' },
      { type: 'finish', choice: 0, reason: 'stop' },
      { type: 'usage', usage: { inputTokens: 3, outputTokens: 1 } },
    ]);
  });

  it('reports usage once when a server sends running totals on every chunk', () => {
    const u = (n: number): JsonObject => ({ usage: { prompt_tokens: 3, completion_tokens: n, total_tokens: 3 + n } });
    const text =
      chunk([{ index: 0, delta: { content: 'a' }, finish_reason: null }], u(1)) +
      chunk([{ index: 0, delta: { content: 'b' }, finish_reason: 'length' }], u(2)) +
      chunk([], u(2)) +
      'data: [DONE]\n\n';
    const usage = decodeStream(whole(text)).filter((e) => e.type === 'usage');
    assert.deepEqual(usage, [{ type: 'usage', usage: { inputTokens: 3, outputTokens: 2 } }]);
  });

  it('decodes reasoning in both spellings, refusals, logprobs and stop reasons', () => {
    const lp = { content: [{ token: 'Hi', logprob: -0.01, bytes: [72, 105], top_logprobs: [] }] };
    const text =
      chunk([{ index: 0, delta: { role: 'assistant', reasoning_content: 'step 1' }, finish_reason: null }]) +
      chunk([{ index: 0, delta: { reasoning: 'step 2' }, finish_reason: null }]) +
      chunk([{ index: 0, delta: { reasoning_content: 'same', reasoning: 'same' }, finish_reason: null }]) +
      chunk([{ index: 0, delta: { content: 'Hi' }, logprobs: lp, finish_reason: null }]) +
      chunk([{ index: 1, delta: { refusal: 'I will not.' }, finish_reason: null }]) +
      chunk([{ index: 0, delta: {}, finish_reason: 'stop', stop_reason: 'END' }]) +
      chunk([{ index: 1, delta: {}, finish_reason: 'content_filter' }]) +
      'data: [DONE]\n\n';
    assert.deepEqual(decodeStream(whole(text)).slice(1), [
      { type: 'reasoning', choice: 0, text: 'step 1' },
      { type: 'reasoning', choice: 0, text: 'step 2' },
      { type: 'reasoning', choice: 0, text: 'same' },
      { type: 'text', choice: 0, text: 'Hi' },
      { type: 'logprobs', choice: 0, logprobs: lp },
      { type: 'text', choice: 1, text: 'I will not.' },
      { type: 'finish', choice: 0, reason: 'stop', stopSequence: 'END' },
      { type: 'finish', choice: 1, reason: 'content_filter' },
    ]);
  });

  it('turns an error chunk into an error event', () => {
    const text =
      chunk([{ index: 0, delta: { content: 'partial' }, finish_reason: null }]) +
      'data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}\n\n';
    const events = decodeStream(whole(text));
    assert.equal(events.length, 3);
    const last = events[2]!;
    assert.equal(last.type, 'error');
    if (last.type !== 'error') return;
    assert.ok(last.error instanceof GatewayError);
    assert.equal(last.error.code, 'upstream_error');
    assert.equal(last.error.message, 'The server had an error while processing your request.');

    // vLLM's shape carries the status it would have answered with.
    const vllm = decodeStream(whole('data: {"error":{"object":"error","message":"too long","type":"BadRequestError","param":"messages","code":400}}\n\n'));
    assert.equal(vllm.length, 1);
    const e = vllm[0]!;
    assert.ok(e.type === 'error');
    if (e.type !== 'error') return;
    assert.equal(e.error.status, 400);
    assert.equal(e.error.kind, 'invalid_request_error');
    assert.equal(e.error.param, 'messages');

    const named = decodeStream(whole('event: error\ndata: {"message":"bad things"}\n\n'));
    assert.ok(named[0]!.type === 'error' && named[0]!.error.message === 'bad things');
  });

  it('throws when the stream ends early', () => {
    const text = chunk([{ index: 0, delta: { content: 'Hel' }, finish_reason: null }]);
    const events: StreamEvent[] = [];
    const decoder = codec.createStreamDecoder((e) => events.push(e));
    decoder.push(enc.encode(text));
    expectGatewayError(() => decoder.end(), 'upstream_protocol_error');
    assert.deepEqual(events.map((e) => e.type), ['start', 'text']);

    const err = expectGatewayError(() => decodeStream(whole(text + 'data: {"id":"x","cho')), 'upstream_protocol_error');
    assert.equal(err.message, 'upstream stream ended early');
    expectGatewayError(() => decodeStream(whole('')), 'upstream_protocol_error');
  });

  it('accepts a finished stream without [DONE] and ignores what follows [DONE]', () => {
    const text =
      chunk([{ index: 0, delta: { content: 'ok' }, finish_reason: 'stop' }]) +
      chunk([], { usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
    const events = decodeStream(whole(text));
    assert.deepEqual(events.map((e) => e.type), ['start', 'text', 'finish', 'usage']);
    const after = decodeStream(whole(text + 'data: [DONE]\n\ndata: {"choices":[{"delta":{"content":"late"}}]}\n\ngarbage'));
    assert.deepEqual(after, events);
  });

  it('decodes a last event that lacks its closing blank line', () => {
    const text = chunk([{ index: 0, delta: { content: 'ok' }, finish_reason: 'stop' }]).trimEnd();
    assert.deepEqual(decodeStream(whole(text)).map((e) => e.type), ['start', 'text', 'finish']);
  });

  it('throws on a chunk that is not JSON', () => {
    expectGatewayError(() => decodeStream(whole('data: {not json}\n\n'), false), 'upstream_protocol_error');
  });
});

describe('openai-chat stream encoder', () => {
  it('writes chunks with the ids of the start event', () => {
    const out = encodeEvents(toolStreamEvents, { includeUsage: true });
    assert.ok(out.endsWith('data: [DONE]\n\n'));
    const chunks = payloads(out);
    for (const c of chunks) {
      assert.equal(c.id, 'chatcmpl-S1');
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.created, 1741570000);
      assert.equal(c.model, 'gpt-4.1-mini');
    }
    assert.deepEqual(
      chunks.map((c) => c.choices),
      [
        [{ index: 0, delta: { role: 'assistant', content: 'Checking café ☂ ' }, logprobs: null, finish_reason: null }],
        [
          {
            index: 0,
            delta: {
              tool_calls: [{ index: 0, id: 'call_s1', type: 'function', function: { name: 'lookup_weather', arguments: '' } }],
            },
            logprobs: null,
            finish_reason: null,
          },
        ],
        [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"ci' } }] }, logprobs: null, finish_reason: null }],
        [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: 'ty":"Évora"}' } }] }, logprobs: null, finish_reason: null }],
        [{ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' }],
        [],
      ],
    );
    assert.deepEqual(chunks[5]!.usage, usageBody);
  });

  it('hides the usage chunk from clients that did not ask', () => {
    const encoder = codec.createStreamEncoder(init);
    assert.equal(encoder.encode({ type: 'usage', usage: { inputTokens: 1, outputTokens: 2 } }), '');
    const chunks = payloads(encodeEvents(toolStreamEvents, { includeUsage: false }));
    assert.equal(chunks.length, 5);
    assert.ok(chunks.every((c) => c.usage === undefined));
  });

  it('falls back to the init ids without a start event and puts the role on each choice once', () => {
    const out = encodeEvents([
      { type: 'reasoning', choice: 0, text: 'think' },
      { type: 'reasoning_signature', choice: 0, signature: 'abc' },
      { type: 'text', choice: 0, text: 'a' },
      { type: 'text', choice: 1, text: 'b' },
      { type: 'logprobs', choice: 0, logprobs: { content: [] } },
      { type: 'finish', choice: 0, reason: 'error' },
      { type: 'finish', choice: 1, reason: 'length' },
    ]);
    const chunks = payloads(out);
    assert.ok(chunks.every((c) => c.id === 'chatcmpl-gw' && c.model === 'fallback-model' && c.created === 1700000000));
    assert.deepEqual(
      chunks.map((c) => (c.choices as JsonObject[])[0]),
      [
        { index: 0, delta: { role: 'assistant', reasoning_content: 'think' }, logprobs: null, finish_reason: null },
        { index: 0, delta: { content: 'a' }, logprobs: null, finish_reason: null },
        { index: 1, delta: { role: 'assistant', content: 'b' }, logprobs: null, finish_reason: null },
        { index: 0, delta: {}, logprobs: { content: [] }, finish_reason: null },
        { index: 0, delta: {}, logprobs: null, finish_reason: 'stop' },
        { index: 1, delta: {}, logprobs: null, finish_reason: 'length' },
      ],
    );
    // A start event without ids keeps the fallbacks.
    const empty = payloads(encodeEvents([{ type: 'start', id: '', model: '', created: 0 }, { type: 'text', choice: 0, text: 'x' }]));
    assert.equal(empty[0]!.id, 'chatcmpl-gw');
    assert.equal(empty[0]!.model, 'fallback-model');
  });

  it('writes errors in OpenAI error shape, which the openai SDK raises as APIError', async () => {
    const error = new GatewayError('upstream_timeout', 'upstream took too long');
    const encoder = codec.createStreamEncoder(init);
    const text = encoder.encode({ type: 'text', choice: 0, text: 'so far' }) + encoder.encode({ type: 'error', error });
    assert.ok(text.endsWith('data: {"error":{"message":"upstream took too long","type":"timeout_error","param":null,"code":"upstream_timeout"}}\n\n'));

    const stream = Stream.fromSSEResponse<JsonObject>(new Response(text), new AbortController());
    const seen: JsonObject[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of stream) seen.push(c);
      })(),
      (err: unknown) => err instanceof APIError && err.message.includes('upstream took too long'),
    );
    assert.equal(seen.length, 1);
  });

  it('is understood by the openai SDK stream accumulator', async () => {
    const events: StreamEvent[] = [
      { type: 'start', id: 'chatcmpl-acc', model: 'm', created: 10 },
      { type: 'text', choice: 0, text: 'Looking ' },
      { type: 'text', choice: 0, text: 'up.' },
      { type: 'tool_call', choice: 0, index: 0, id: 'c0', name: 'weather' },
      { type: 'tool_call', choice: 0, index: 1, id: 'c1', name: 'time' },
      { type: 'tool_args', choice: 0, index: 1, delta: '{"tz":"UTC"}' },
      { type: 'tool_args', choice: 0, index: 0, delta: '{"city":' },
      { type: 'tool_args', choice: 0, index: 0, delta: '"Rome"}' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
      { type: 'usage', usage: { inputTokens: 7, outputTokens: 9 } },
    ];
    const chunks = payloads(encodeEvents(events, { includeUsage: true }));
    const lines = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const c of chunks) controller.enqueue(enc.encode(JSON.stringify(c) + '\n'));
        controller.close();
      },
    });
    const final = await ChatCompletionStream.fromReadableStream(lines).finalChatCompletion();
    assert.equal(final.id, 'chatcmpl-acc');
    const choice = final.choices[0]!;
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.content, 'Looking up.');
    assert.deepEqual(
      choice.message.tool_calls?.map((t) => (t.type === 'function' ? [t.id, t.function.name, t.function.arguments] : [])),
      [
        ['c0', 'weather', '{"city":"Rome"}'],
        ['c1', 'time', '{"tz":"UTC"}'],
      ],
    );
    assert.equal(final.usage?.total_tokens, 16);
  });

  it('round-trips a stream: upstream SSE → events → client SSE → the same events', () => {
    const once = decodeStream(whole(toolStream));
    const again = decodeStream(whole(encodeEvents(once, { includeUsage: true })));
    assert.deepEqual(again, once);
  });
});

describe('openai-chat errors', () => {
  it('encodes a GatewayError', () => {
    const err = new GatewayError('invalid_request', "'messages[2].content' must be a string", { param: 'messages[2].content' });
    assert.deepEqual(codec.encodeError(err), {
      error: {
        message: "'messages[2].content' must be a string",
        type: 'invalid_request_error',
        param: 'messages[2].content',
        code: 'invalid_request',
      },
    });
  });

  const decode = (status: number, body: string): GatewayError => codec.decodeError(status, enc.encode(body));

  it('decodes the OpenAI error shape', () => {
    const body =
      '{"error":{"message":"This model\'s maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}';
    const err = decode(400, body);
    assert.equal(err.code, 'upstream_error');
    assert.equal(err.status, 400);
    assert.equal(err.kind, 'invalid_request_error');
    assert.equal(err.param, 'messages');
    assert.equal(err.message, "This model's maximum context length is 8192 tokens.");
    assert.deepEqual(err.upstreamBody, enc.encode(body));
  });

  it('decodes the shapes of OpenAI-compatible servers', () => {
    const ollama = decode(404, '{"error":"model \\"llama9\\" not found, try pulling it first"}');
    assert.equal(ollama.message, 'model "llama9" not found, try pulling it first');
    assert.equal(ollama.kind, 'not_found_error');
    assert.equal(ollama.param, null);

    const vllm = decode(400, '{"object":"error","message":"max_tokens is too large","type":"BadRequestError","param":null,"code":400}');
    assert.equal(vllm.message, 'max_tokens is too large');

    const fastapi = decode(422, '{"detail":[{"loc":["body","messages"],"msg":"field required","type":"missing"}]}');
    assert.equal(fastapi.message, 'body.messages: field required');
    assert.equal(fastapi.kind, 'invalid_request_error');

    assert.equal(decode(401, '{"detail":"Not authenticated"}').kind, 'authentication_error');
    assert.equal(decode(401, '{"detail":"Not authenticated"}').message, 'Not authenticated');
    assert.equal(decode(429, '{"error":{"message":"Rate limit reached","type":"requests"}}').kind, 'rate_limit_error');
  });

  it('falls back to a generic message for bodies that say nothing', () => {
    const html = decode(502, '<html><body>Bad Gateway</body></html>');
    assert.equal(html.message, 'upstream returned HTTP 502');
    assert.equal(html.status, 502);
    assert.equal(html.kind, 'api_error');
    assert.equal(decode(503, '').message, 'upstream returned HTTP 503');
    assert.equal(decode(503, '').kind, 'overloaded_error');
    assert.equal(decode(500, '{"error":{"type":"server_error"}}').message, 'upstream returned HTTP 500');
    assert.equal(decode(500, '[1,2]').message, 'upstream returned HTTP 500');
  });

  it('masks credentials an upstream echoes back', () => {
    const err = decode(401, '{"error":{"message":"Invalid key sk-abcdefghijklmnopqrstuvwx for https://h.example/v1?key=AIzaSecret123 (Bearer abcdefghijkl)"}}');
    assert.doesNotMatch(err.message, /abcdefghijklmnopqrstuvwx|AIzaSecret123|abcdefghijkl\)/);
    assert.match(err.message, /\[redacted\]/);
    const long = decode(500, JSON.stringify({ detail: 'x'.repeat(10_000) }));
    assert.ok(long.message.length <= 2001);
  });
});
