import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { geminiCodec } from '../../src/protocol/gemini.js';
import type { ChatRequest, StreamEvent } from '../../src/protocol/canonical.js';
import { GatewayError } from '../../src/errors.js';
import { setClock } from '../../src/clock.js';

const NOW_SECONDS = 1_750_000_000;

before(() => setClock({ monotonicMs: () => 0, wallMs: () => NOW_SECONDS * 1000 + 250 }));
after(() => setClock(null));

function request(overrides: Partial<ChatRequest>): ChatRequest {
  return { model: 'client-model', messages: [], stream: false, ...overrides };
}

function assertGatewayError(fn: () => unknown, code: string, status: number): GatewayError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof GatewayError, `expected a GatewayError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  assert.equal(caught.status, status);
  return caught;
}

describe('geminiCodec.encodeRequest', () => {
  it('encodes system, multi-turn, tools, tool results, images and json_schema', () => {
    const schema = {
      type: 'object',
      properties: { harbour: { type: 'string' }, high: { type: 'boolean' } },
      required: ['harbour'],
      additionalProperties: false,
    };
    const req = request({
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'You are a harbour master.' }] },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'When is high tide at the pier in these photos?' },
            { type: 'image', source: { kind: 'base64', mediaType: 'image/png', data: 'iVBORw0KGgo=' } },
            { type: 'image', source: { kind: 'url', url: 'https://example.test/pier.webp?size=large' } },
            { type: 'image', source: { kind: 'url', url: 'https://example.test/render/pier' } },
            { type: 'image', source: { kind: 'url', url: 'data:image/gif;base64,R0lGODlh' } },
          ],
        },
        {
          role: 'assistant',
          content: [
            { type: 'reasoning', text: 'I should look up both harbours.' },
            { type: 'text', text: 'Let me check the tide tables.' },
          ],
          toolCalls: [
            { id: 'call_north', name: 'tide_times', arguments: '{"harbour":"North Quay"}' },
            { id: 'call_south', name: 'tide_times', arguments: '{"harbour":"South Quay","high":true}' },
          ],
        },
        { role: 'tool', toolCallId: 'call_north', content: [{ type: 'text', text: '{"high":"06:12","low":"12:30"}' }] },
        { role: 'tool', toolCallId: 'call_south', content: [{ type: 'text', text: 'high tide at 06:40' }] },
        { role: 'user', content: [{ type: 'text', text: 'Answer as JSON.' }] },
        { role: 'system', content: [{ type: 'text', text: 'Times are local.' }] },
        { role: 'assistant', content: [{ type: 'text', text: 'Sure.' }] },
        { role: 'user', content: [{ type: 'text', text: 'Go on.' }] },
      ],
      maxTokens: 512,
      temperature: 0.4,
      topP: 0.9,
      topK: 32,
      stop: ['END'],
      n: 2,
      seed: 7,
      presencePenalty: 0.1,
      frequencyPenalty: 0.2,
      reasoningBudget: 1024,
      logprobs: true,
      topLogprobs: 3,
      responseFormat: { type: 'json_schema', name: 'tides', schema },
      tools: [
        {
          name: 'tide_times',
          description: 'Tide times for a harbour.',
          parameters: {
            $schema: 'http://json-schema.org/draft-07/schema#',
            type: 'object',
            properties: {
              harbour: { type: 'string', description: 'Harbour name', minLength: 1 },
              high: { type: ['boolean', 'null'] },
              source: { type: 'string', format: 'uri' },
              when: { type: 'string', format: 'date-time' },
              unit: { const: 'metres' },
              level: { type: 'integer', enum: [1, 2, 3] },
              // A parameter may be named like a keyword; names are kept.
              additionalProperties: {
                type: 'array',
                items: { type: 'object', properties: { k: { type: 'string' } }, additionalProperties: false },
              },
            },
            required: ['harbour'],
            additionalProperties: false,
          },
          strict: true,
        },
        { name: 'now', parameters: { type: 'object', properties: {} } },
      ],
      toolChoice: { name: 'tide_times' },
      parallelToolCalls: false,
      user: 'user-1',
      extra: { chat_template_kwargs: { x: 1 } },
    });

    const body = geminiCodec.encodeRequest(req, 'gemini-2.5-flash');

    assert.deepEqual(body, {
      contents: [
        {
          role: 'user',
          parts: [
            { text: 'When is high tide at the pier in these photos?' },
            { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } },
            { fileData: { mimeType: 'image/webp', fileUri: 'https://example.test/pier.webp?size=large' } },
            { fileData: { mimeType: 'image/jpeg', fileUri: 'https://example.test/render/pier' } },
            { inlineData: { mimeType: 'image/gif', data: 'R0lGODlh' } },
          ],
        },
        {
          role: 'model',
          parts: [
            { text: 'Let me check the tide tables.' },
            { functionCall: { id: 'call_north', name: 'tide_times', args: { harbour: 'North Quay' } } },
            { functionCall: { id: 'call_south', name: 'tide_times', args: { harbour: 'South Quay', high: true } } },
          ],
        },
        {
          role: 'user',
          parts: [
            { functionResponse: { id: 'call_north', name: 'tide_times', response: { high: '06:12', low: '12:30' } } },
            { functionResponse: { id: 'call_south', name: 'tide_times', response: { content: 'high tide at 06:40' } } },
            { text: 'Answer as JSON.' },
          ],
        },
        { role: 'model', parts: [{ text: 'Sure.' }] },
        { role: 'user', parts: [{ text: 'Go on.' }] },
      ],
      systemInstruction: { parts: [{ text: 'You are a harbour master.' }, { text: 'Times are local.' }] },
      generationConfig: {
        maxOutputTokens: 512,
        temperature: 0.4,
        topP: 0.9,
        topK: 32,
        stopSequences: ['END'],
        candidateCount: 2,
        seed: 7,
        presencePenalty: 0.1,
        frequencyPenalty: 0.2,
        responseMimeType: 'application/json',
        responseJsonSchema: schema,
        thinkingConfig: { thinkingBudget: 1024, includeThoughts: true },
        responseLogprobs: true,
        logprobs: 3,
      },
      tools: [
        {
          functionDeclarations: [
            {
              name: 'tide_times',
              description: 'Tide times for a harbour.',
              parameters: {
                type: 'object',
                properties: {
                  harbour: { type: 'string', description: 'Harbour name', minLength: 1 },
                  high: { type: 'boolean', nullable: true },
                  source: { type: 'string' },
                  when: { type: 'string', format: 'date-time' },
                  unit: { type: 'string', enum: ['metres'] },
                  level: { type: 'integer' },
                  additionalProperties: {
                    type: 'array',
                    items: { type: 'object', properties: { k: { type: 'string' } } },
                  },
                },
                required: ['harbour'],
              },
            },
            { name: 'now' },
          ],
        },
      ],
      toolConfig: { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['tide_times'] } },
    });
    // The json_schema is sent as the client wrote it, not stripped.
    assert.equal((body.generationConfig as { responseJsonSchema: unknown }).responseJsonSchema, schema);
  });

  it('sends only what was set, and no model, stream flag or extras', () => {
    const body = geminiCodec.encodeRequest(
      request({ messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], stream: true, extra: { a: 1 } }),
      'gemini-2.5-pro',
    );
    assert.deepEqual(body, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] });
  });

  it('maps tool choices, json_object and a zero thinking budget', () => {
    const base = { messages: [{ role: 'user' as const, content: [{ type: 'text' as const, text: 'x' }] }] };
    const mode = (toolChoice: ChatRequest['toolChoice']): unknown =>
      geminiCodec.encodeRequest(request({ ...base, toolChoice }), 'm').toolConfig;
    assert.deepEqual(mode('auto'), { functionCallingConfig: { mode: 'AUTO' } });
    assert.deepEqual(mode('none'), { functionCallingConfig: { mode: 'NONE' } });
    assert.deepEqual(mode('required'), { functionCallingConfig: { mode: 'ANY' } });

    const body = geminiCodec.encodeRequest(
      request({ ...base, responseFormat: { type: 'json_object' }, reasoningBudget: 0 }),
      'm',
    );
    assert.deepEqual(body.generationConfig, {
      responseMimeType: 'application/json',
      thinkingConfig: { thinkingBudget: 0 },
    });
  });

  it('reports a failed tool call under the documented error key', () => {
    const body = geminiCodec.encodeRequest(
      request({
        messages: [
          { role: 'assistant', content: [], toolCalls: [{ id: 'c1', name: 'lookup', arguments: '' }] },
          { role: 'tool', toolCallId: 'c1', content: [{ type: 'text', text: 'not found' }], isError: true },
        ],
      }),
      'm',
    );
    assert.deepEqual(body.contents, [
      { role: 'model', parts: [{ functionCall: { id: 'c1', name: 'lookup', args: {} } }] },
      { role: 'user', parts: [{ functionResponse: { id: 'c1', name: 'lookup', response: { error: 'not found' } } }] },
    ]);
  });

  it('rejects a tool result whose call id is unknown with a 400', () => {
    const err = assertGatewayError(
      () =>
        geminiCodec.encodeRequest(
          request({
            messages: [
              { role: 'user', content: [{ type: 'text', text: 'weather?' }] },
              { role: 'tool', toolCallId: 'call_missing', content: [{ type: 'text', text: 'sunny' }] },
            ],
          }),
          'm',
        ),
      'invalid_request',
      400,
    );
    assert.equal(err.kind, 'invalid_request_error');
    assert.match(err.message, /call_missing/);
    assert.equal(err.param, 'messages[1]');
  });

  it('rejects tool call arguments that are not a JSON object with a 400', () => {
    assertGatewayError(
      () =>
        geminiCodec.encodeRequest(
          request({
            messages: [{ role: 'assistant', content: [], toolCalls: [{ id: 'c', name: 'f', arguments: '[1,2' }] }],
          }),
          'm',
        ),
      'invalid_request',
      400,
    );
  });
});

describe('geminiCodec.decodeResponse', () => {
  it('decodes function calls, thoughts and usage', () => {
    const res = geminiCodec.decodeResponse({
      candidates: [
        {
          content: {
            role: 'model',
            parts: [
              { text: 'The user wants both quays.', thought: true },
              { text: 'Checking ' },
              { text: 'now.' },
              { functionCall: { name: 'tide_times', args: { harbour: 'North Quay' } } },
              { functionCall: { id: 'fc-2', name: 'tide_times', args: { harbour: 'South Quay' } }, thoughtSignature: 'c2ln' },
            ],
          },
          finishReason: 'STOP',
        },
      ],
      usageMetadata: {
        promptTokenCount: 120,
        candidatesTokenCount: 30,
        thoughtsTokenCount: 45,
        cachedContentTokenCount: 64,
        totalTokenCount: 195,
      },
      modelVersion: 'gemini-2.5-flash',
      responseId: 'resp-tides-1',
    });

    assert.equal(res.id, 'resp-tides-1');
    assert.equal(res.model, 'gemini-2.5-flash');
    assert.equal(res.created, NOW_SECONDS);
    assert.equal(res.choices.length, 1);
    const [choice] = res.choices;
    assert.equal(choice.index, 0);
    assert.equal(choice.text, 'Checking now.');
    assert.equal(choice.reasoning, 'The user wants both quays.');
    assert.equal(choice.finishReason, 'tool_calls');
    assert.equal(choice.toolCalls?.length, 2);
    const [first, second] = choice.toolCalls ?? [];
    assert.match(first.id, /^call_[0-9a-f]+$/);
    assert.equal(first.name, 'tide_times');
    assert.deepEqual(JSON.parse(first.arguments), { harbour: 'North Quay' });
    assert.deepEqual(second, { id: 'fc-2', name: 'tide_times', arguments: '{"harbour":"South Quay"}' });
    assert.deepEqual(res.usage, { inputTokens: 120, outputTokens: 75, cachedInputTokens: 64, reasoningTokens: 45 });
  });

  it('generates distinct tool call ids', () => {
    const body = {
      candidates: [{ content: { parts: [{ functionCall: { name: 'f', args: {} } }] }, finishReason: 'STOP' }],
    };
    const a = geminiCodec.decodeResponse(body).choices[0].toolCalls?.[0].id;
    const b = geminiCodec.decodeResponse(body).choices[0].toolCalls?.[0].id;
    assert.notEqual(a, b);
  });

  it('maps finish reasons per candidate, with omitted index 0', () => {
    const res = geminiCodec.decodeResponse({
      candidates: [
        { content: { parts: [{ text: 'cut' }] }, finishReason: 'MAX_TOKENS' },
        { index: 1, finishReason: 'SAFETY', safetyRatings: [{ category: 'HARM_CATEGORY_HARASSMENT', probability: 'HIGH' }] },
        { index: 2, content: { parts: [{ text: 'quoted' }] }, finishReason: 'RECITATION' },
        { index: 3, content: { parts: [{ text: 'odd' }] }, finishReason: 'OTHER' },
        { index: 4, content: { parts: [{ text: 'fine' }] }, finishReason: 'STOP' },
      ],
      modelVersion: 'gemini-2.5-pro',
    });
    assert.deepEqual(
      res.choices.map((c) => [c.index, c.text, c.finishReason]),
      [
        [0, 'cut', 'length'],
        [1, null, 'content_filter'],
        [2, 'quoted', 'content_filter'],
        [3, 'odd', 'stop'],
        [4, 'fine', 'stop'],
      ],
    );
    assert.equal(res.usage, undefined);
    assert.equal(typeof res.id, 'string');
    assert.ok(res.id.length > 0);
  });

  it('turns a blocked prompt into a content_filter choice', () => {
    const res = geminiCodec.decodeResponse({
      promptFeedback: { blockReason: 'SAFETY', safetyRatings: [] },
      usageMetadata: { promptTokenCount: 9, totalTokenCount: 9 },
      modelVersion: 'gemini-2.0-flash',
    });
    assert.deepEqual(res.choices, [{ index: 0, text: null, finishReason: 'content_filter' }]);
    assert.deepEqual(res.usage, { inputTokens: 9, outputTokens: 0 });
  });

  it('converts logprobs to the OpenAI shape', () => {
    const res = geminiCodec.decodeResponse({
      candidates: [
        {
          content: { parts: [{ text: 'Hi' }] },
          finishReason: 'STOP',
          logprobsResult: {
            topCandidates: [{ candidates: [{ token: 'Hi', logProbability: -0.1 }, { token: 'Hey', logProbability: -2.5 }] }],
            chosenCandidates: [{ token: 'Hi', logProbability: -0.1 }],
          },
        },
      ],
    });
    assert.deepEqual(res.choices[0].logprobs, {
      content: [
        {
          token: 'Hi',
          logprob: -0.1,
          bytes: [72, 105],
          top_logprobs: [
            { token: 'Hi', logprob: -0.1, bytes: [72, 105] },
            { token: 'Hey', logprob: -2.5, bytes: [72, 101, 121] },
          ],
        },
      ],
    });
  });

  it('rejects bodies of the wrong shape as upstream_protocol_error', () => {
    const bad: unknown[] = [
      null,
      'text',
      [],
      {},
      { candidates: [] },
      { candidates: ['x'] },
      { candidates: [{ content: { parts: 'x' } }] },
      { candidates: [{ content: { parts: [{ functionCall: { args: {} } }] } }] },
    ];
    for (const body of bad) assertGatewayError(() => geminiCodec.decodeResponse(body), 'upstream_protocol_error', 502);
  });
});

/** Frames as `alt=sse` sends them: one GenerateContentResponse per `data:` line, CRLF-separated. */
const STREAM_FRAMES: unknown[] = [
  {
    candidates: [{ content: { role: 'model', parts: [{ text: 'Weighing the quays…', thought: true }] } }],
    usageMetadata: { promptTokenCount: 40, totalTokenCount: 40 },
    modelVersion: 'gemini-2.5-flash',
    responseId: 'stream-1',
  },
  {
    candidates: [{ content: { role: 'model', parts: [{ text: 'High tide ' }] } }],
    usageMetadata: { promptTokenCount: 40, candidatesTokenCount: 3, thoughtsTokenCount: 12, totalTokenCount: 55 },
    modelVersion: 'gemini-2.5-flash',
    responseId: 'stream-1',
  },
  {
    candidates: [
      {
        content: {
          role: 'model',
          parts: [{ text: 'is at 06:12 — ☂ café.' }, { functionCall: { name: 'tide_times', args: { harbour: 'Nørre' } } }],
        },
      },
    ],
    usageMetadata: { promptTokenCount: 40, candidatesTokenCount: 18, thoughtsTokenCount: 12, totalTokenCount: 70 },
    modelVersion: 'gemini-2.5-flash',
    responseId: 'stream-1',
  },
  {
    candidates: [{ content: { role: 'model', parts: [{ text: '' }] }, finishReason: 'STOP' }],
    usageMetadata: {
      promptTokenCount: 40,
      candidatesTokenCount: 20,
      thoughtsTokenCount: 12,
      cachedContentTokenCount: 16,
      totalTokenCount: 72,
    },
    modelVersion: 'gemini-2.5-flash',
    responseId: 'stream-1',
  },
];

function sse(frames: unknown[]): Uint8Array {
  return new TextEncoder().encode(frames.map((f) => `data: ${JSON.stringify(f)}\r\n\r\n`).join(''));
}

function decodeStream(bytes: Uint8Array, chunkSize: number): StreamEvent[] {
  const events: StreamEvent[] = [];
  const decoder = geminiCodec.createStreamDecoder((e) => events.push(e));
  for (let i = 0; i < bytes.length; i += chunkSize) decoder.push(bytes.subarray(i, i + chunkSize));
  decoder.end();
  return events;
}

/** Tool call ids are random when Gemini gives none; fix them so two runs compare. */
function stableIds(events: StreamEvent[]): StreamEvent[] {
  return events.map((e) => (e.type === 'tool_call' ? { ...e, id: 'ID' } : e));
}

describe('geminiCodec.createStreamDecoder', () => {
  it('decodes alt=sse frames into canonical events', () => {
    const events = decodeStream(sse(STREAM_FRAMES), Number.MAX_SAFE_INTEGER);
    const toolCall = events.find((e) => e.type === 'tool_call');
    assert.ok(toolCall !== undefined && toolCall.type === 'tool_call');
    assert.match(toolCall.id, /^call_/);
    assert.deepEqual(stableIds(events), [
      { type: 'start', id: 'stream-1', model: 'gemini-2.5-flash', created: NOW_SECONDS },
      { type: 'reasoning', choice: 0, text: 'Weighing the quays…' },
      { type: 'text', choice: 0, text: 'High tide ' },
      { type: 'text', choice: 0, text: 'is at 06:12 — ☂ café.' },
      { type: 'tool_call', choice: 0, index: 0, id: 'ID', name: 'tide_times' },
      { type: 'tool_args', choice: 0, index: 0, delta: '{"harbour":"Nørre"}' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
      {
        type: 'usage',
        usage: { inputTokens: 40, outputTokens: 32, cachedInputTokens: 16, reasoningTokens: 12 },
      },
    ]);
  });

  it('gives the same events fed one byte at a time as in one piece', () => {
    const bytes = sse(STREAM_FRAMES);
    assert.deepEqual(stableIds(decodeStream(bytes, 1)), stableIds(decodeStream(bytes, bytes.length)));
  });

  it('emits usage once, from the last frame, only when the body ends', () => {
    const events: StreamEvent[] = [];
    const decoder = geminiCodec.createStreamDecoder((e) => events.push(e));
    decoder.push(sse(STREAM_FRAMES));
    assert.equal(events.filter((e) => e.type === 'usage').length, 0);
    decoder.end();
    const usage = events.filter((e) => e.type === 'usage');
    assert.equal(usage.length, 1);
    assert.equal(events[events.length - 1], usage[0]);
  });

  it('throws upstream_protocol_error when the body ends before a finishReason', () => {
    const events: StreamEvent[] = [];
    const decoder = geminiCodec.createStreamDecoder((e) => events.push(e));
    decoder.push(sse(STREAM_FRAMES.slice(0, 3)));
    const err = assertGatewayError(() => decoder.end(), 'upstream_protocol_error', 502);
    assert.equal(err.message, 'upstream stream ended early');
    assert.equal(events.filter((e) => e.type === 'usage').length, 0);
  });

  it('reports an error object inside a frame as an error event', () => {
    const events: StreamEvent[] = [];
    const decoder = geminiCodec.createStreamDecoder((e) => events.push(e));
    decoder.push(
      sse([
        STREAM_FRAMES[0],
        { error: { code: 503, message: 'The model is overloaded. Please try again later.', status: 'UNAVAILABLE' } },
        STREAM_FRAMES[3],
      ]),
    );
    decoder.end();
    assert.deepEqual(
      events.map((e) => e.type),
      ['start', 'reasoning', 'error'],
    );
    const last = events[2];
    assert.ok(last.type === 'error');
    assert.equal(last.error.code, 'upstream_error');
    assert.equal(last.error.status, 503);
    assert.equal(last.error.kind, 'overloaded_error');
    assert.equal(last.error.message, 'The model is overloaded. Please try again later.');
  });

  it('finishes a blocked prompt with content_filter', () => {
    const events = decodeStream(
      sse([{ promptFeedback: { blockReason: 'PROHIBITED_CONTENT' }, usageMetadata: { promptTokenCount: 5 }, responseId: 'r' }]),
      7,
    );
    assert.deepEqual(
      events.map((e) => e.type),
      ['start', 'finish', 'usage'],
    );
    assert.deepEqual(events[1], { type: 'finish', choice: 0, reason: 'content_filter' });
  });

  it('keeps candidates apart and ends a STOP without calls as stop', () => {
    const events = decodeStream(
      sse([
        { candidates: [{ content: { parts: [{ text: 'a' }] } }, { index: 1, content: { parts: [{ text: 'b' }] } }] },
        { candidates: [{ finishReason: 'STOP' }, { index: 1, finishReason: 'MAX_TOKENS' }] },
      ]),
      3,
    );
    assert.deepEqual(events.slice(1), [
      { type: 'text', choice: 0, text: 'a' },
      { type: 'text', choice: 1, text: 'b' },
      { type: 'finish', choice: 0, reason: 'stop' },
      { type: 'finish', choice: 1, reason: 'length' },
    ]);
  });

  it('throws upstream_protocol_error on a frame that is not JSON', () => {
    const decoder = geminiCodec.createStreamDecoder(() => undefined);
    assertGatewayError(
      () => decoder.push(new TextEncoder().encode('data: {"candidates": [\n\n')),
      'upstream_protocol_error',
      502,
    );
  });
});

describe('geminiCodec.decodeError', () => {
  const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

  it('reads the Google error shape', () => {
    const body = bytes({ error: { code: 400, message: 'API key not valid. Please pass a valid API key.', status: 'INVALID_ARGUMENT' } });
    const err = geminiCodec.decodeError(400, body);
    assert.equal(err.code, 'upstream_error');
    assert.equal(err.status, 400);
    assert.equal(err.kind, 'invalid_request_error');
    assert.equal(err.message, 'API key not valid. Please pass a valid API key.');
    assert.equal(err.upstreamBody, body);
  });

  it('reads the shape wrapped in an array', () => {
    const err = geminiCodec.decodeError(
      429,
      bytes([{ error: { code: 429, message: 'Resource has been exhausted (e.g. check quota).', status: 'RESOURCE_EXHAUSTED' } }]),
    );
    assert.equal(err.status, 429);
    assert.equal(err.kind, 'rate_limit_error');
    assert.equal(err.message, 'Resource has been exhausted (e.g. check quota).');
  });

  it('falls back to a generic message for bodies that are not Google errors', () => {
    for (const raw of ['<html>Bad Gateway</html>', '{"detail":"x"}', '']) {
      const body = new TextEncoder().encode(raw);
      const err = geminiCodec.decodeError(503, body);
      assert.equal(err.code, 'upstream_error');
      assert.equal(err.status, 503);
      assert.equal(err.kind, 'overloaded_error');
      assert.match(err.message, /503/);
      assert.equal(err.upstreamBody, body);
    }
  });
});
