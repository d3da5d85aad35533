/**
 * Protocol translation through the real gateway process: every inbound protocol (OpenAI chat via the
 * official `openai` SDK, Anthropic messages via `@anthropic-ai/sdk`) against every kind of upstream
 * (an OpenAI-compatible server, Anthropic, Gemini, the built-in mock), streamed and not, plain text
 * and tool calls, a tool-result turn, system prompts, usage and stop reasons; plus OpenAI extras
 * (`n`, `response_format`, `stream_options.include_usage`, logprobs, byte pass-through).
 *
 * The standalone mock and the fake Gemini answer deterministically: `Echo: <last user text>`, a
 * call of any offered tool named in the user text (arguments from the schema's required
 * properties), `Tool result: <text>` after a tool result; one token per word.
 */

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import type { ChatCompletionChunk, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import type { MockServer } from '../../src/mock/server.js';
import {
  cleanupE2E,
  postJson,
  sseJson,
  startGateway,
  startGeminiFake,
  startMock,
  startRecorder,
  type GatewayProcess,
  type GeminiFake,
  type Recorder,
} from '../helpers/index.js';

const SYSTEM = 'Be brief.'; // 2 tokens
const USER = 'hello big world'; // 3 tokens
const ECHO = 'Echo: hello big world'; // 4 tokens
const WEATHER_PARAMS = {
  type: 'object',
  properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] }, days: { type: 'integer' } },
  required: ['city', 'unit'],
};
const WEATHER_ARGS = { city: 'mock', unit: 'celsius' };
const TOOL_PROMPT = 'Please call get_weather for Paris';
const TIME_PARAMS = { type: 'object', properties: { tz: { type: 'string' } }, required: ['tz'] };
const TWO_TOOLS_PROMPT = 'First get_weather, then get_time please';
const OPENAI_TOOLS = [{ type: 'function' as const, function: { name: 'get_weather', description: 'Weather for a city', parameters: WEATHER_PARAMS } }];
const ANTHROPIC_TOOLS = [{ name: 'get_weather', description: 'Weather for a city', input_schema: WEATHER_PARAMS as Anthropic.Tool.InputSchema }];
const OPENAI_TWO_TOOLS = [...OPENAI_TOOLS, { type: 'function' as const, function: { name: 'get_time', parameters: TIME_PARAMS } }];
const ANTHROPIC_TWO_TOOLS = [...ANTHROPIC_TOOLS, { name: 'get_time', input_schema: TIME_PARAMS as Anthropic.Tool.InputSchema }];

/** Client-facing model name → the kind of upstream serving it. */
const UPSTREAMS = [
  { kind: 'openai-compatible', model: 'via-openai' },
  { kind: 'anthropic', model: 'via-anthropic' },
  { kind: 'gemini', model: 'via-gemini' },
  { kind: 'mock (built-in)', model: 'via-mock' },
] as const;

let mock: MockServer;
let gemini: GeminiFake;
let oaRec: Recorder;
let anRec: Recorder;
let gw: GatewayProcess;
let openai: OpenAI;
let anthropic: Anthropic;

before(async () => {
  mock = await startMock();
  gemini = await startGeminiFake({ apiKey: 'gemini-key' });
  oaRec = await startRecorder({ forwardTo: `http://127.0.0.1:${mock.port}` });
  anRec = await startRecorder({ forwardTo: `http://127.0.0.1:${mock.port}` });
  gw = await startGateway({
    config: {
      log: { level: 'warn' },
      providers: [
        { name: 'oai', type: 'openai-compatible', base_url: `http://127.0.0.1:${mock.port}/v1` },
        { name: 'anth', type: 'anthropic', base_url: `http://127.0.0.1:${mock.port}`, api_key: 'x' },
        { name: 'gem', type: 'gemini', base_url: gemini.url, api_key: 'gemini-key' },
        { name: 'mk', type: 'mock' },
        { name: 'oai-rec', type: 'openai-compatible', base_url: `${oaRec.url}/v1` },
        { name: 'anth-rec', type: 'anthropic', base_url: anRec.url, api_key: 'x' },
      ],
      models: [
        { name: 'via-openai', targets: [{ provider: 'oai', model: 'mock' }] },
        { name: 'via-anthropic', targets: [{ provider: 'anth', model: 'mock' }] },
        { name: 'via-gemini', targets: [{ provider: 'gem', model: 'gemini-fake' }] },
        { name: 'via-mock', targets: [{ provider: 'mk', model: 'mock' }] },
        { name: 'rec-openai', targets: [{ provider: 'oai-rec', model: 'mock' }] },
        // Same name upstream: nothing to rewrite, so the client's bytes go through untouched.
        { name: 'mock-large', targets: [{ provider: 'oai-rec' }] },
        { name: 'rec-anthropic', targets: [{ provider: 'anth-rec', model: 'mock' }] },
      ],
    },
  });
  openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'k', maxRetries: 0, timeout: 10_000 });
  anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'k', maxRetries: 0, timeout: 10_000 });
});

after(async () => {
  await cleanupE2E();
  assert.equal(gw.hasExited(), true, 'gateway process exited');
});

// ── OpenAI stream assembly ─────────────────────────────────────────────────────────────────────

interface AssembledChoice {
  role: string | undefined;
  content: string;
  finish: string | null;
  tools: { id: string; name: string; args: string }[];
}

interface Assembled {
  chunks: ChatCompletionChunk[];
  choices: AssembledChoice[];
  usage: ChatCompletionChunk['usage'][];
}

async function assemble(stream: AsyncIterable<ChatCompletionChunk>): Promise<Assembled> {
  const out: Assembled = { chunks: [], choices: [], usage: [] };
  for await (const chunk of stream) {
    out.chunks.push(chunk);
    if (chunk.usage) out.usage.push(chunk.usage);
    for (const c of chunk.choices) {
      const a = (out.choices[c.index] ??= { role: undefined, content: '', finish: null, tools: [] });
      if (c.delta.role) a.role = c.delta.role;
      if (c.delta.content) a.content += c.delta.content;
      for (const tc of c.delta.tool_calls ?? []) {
        const t = (a.tools[tc.index] ??= { id: '', name: '', args: '' });
        if (tc.id) t.id = tc.id;
        if (tc.function?.name) t.name += tc.function.name;
        if (tc.function?.arguments) t.args += tc.function.arguments;
      }
      if (c.finish_reason) {
        assert.equal(a.finish, null, 'one finish_reason per choice');
        a.finish = c.finish_reason;
      }
    }
  }
  return out;
}

function openaiTextRequest(model: string, extra: Partial<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming> = {}) {
  return {
    model,
    messages: [
      { role: 'system' as const, content: SYSTEM },
      { role: 'user' as const, content: USER },
    ],
    ...extra,
  };
}

// ── inbound OpenAI ─────────────────────────────────────────────────────────────────────────────

for (const up of UPSTREAMS) {
  describe(`OpenAI client → ${up.kind} upstream`, () => {
    it('plain text, not streamed: content, finish_reason stop, usage incl. the system prompt', async () => {
      const res = await openai.chat.completions.create(openaiTextRequest(up.model));
      assert.equal(res.object, 'chat.completion');
      assert.equal(res.choices.length, 1);
      const c = res.choices[0]!;
      assert.equal(c.index, 0);
      assert.equal(c.message.role, 'assistant');
      assert.equal(c.message.content, ECHO);
      assert.equal(c.finish_reason, 'stop');
      assert.ok(res.usage, 'usage present');
      assert.equal(res.usage.prompt_tokens, 5, 'system (2) + user (3) tokens');
      assert.equal(res.usage.completion_tokens, 4);
      assert.equal(res.usage.total_tokens, 9);
      assert.ok(typeof res.id === 'string' && res.id.length > 0);
    });

    it('plain text, streamed: deltas assemble to the answer; include_usage gives one final usage chunk', async () => {
      const stream = await openai.chat.completions.create({
        ...openaiTextRequest(up.model),
        stream: true,
        stream_options: { include_usage: true },
      });
      const a = await assemble(stream);
      assert.equal(a.choices.length, 1);
      assert.equal(a.choices[0]!.role, 'assistant');
      assert.equal(a.choices[0]!.content, ECHO);
      assert.equal(a.choices[0]!.finish, 'stop');
      assert.equal(a.usage.length, 1, 'exactly one usage chunk');
      assert.deepEqual(
        { p: a.usage[0]!.prompt_tokens, c: a.usage[0]!.completion_tokens, t: a.usage[0]!.total_tokens },
        { p: 5, c: 4, t: 9 },
      );
      const last = a.chunks[a.chunks.length - 1]!;
      assert.deepEqual(last.choices, [], 'the usage chunk is last and has no choices');
      assert.ok(last.usage);
      assert.ok(a.chunks.every((ch) => ch.object === 'chat.completion.chunk'));
      assert.equal(new Set(a.chunks.map((ch) => ch.id)).size, 1, 'one id across the stream');
    });

    it('streamed without stream_options: no usage anywhere', async () => {
      const stream = await openai.chat.completions.create({ ...openaiTextRequest(up.model), stream: true });
      const a = await assemble(stream);
      assert.equal(a.choices[0]!.content, ECHO);
      assert.equal(a.usage.length, 0);
      assert.ok(a.chunks.every((ch) => ch.choices.length > 0), 'no choice-less usage chunk');
    });

    it('max_tokens small: answer cut, finish_reason length (both modes)', async () => {
      const res = await openai.chat.completions.create(openaiTextRequest(up.model, { max_tokens: 2 }));
      assert.equal(res.choices[0]!.message.content, 'Echo: hello ');
      assert.equal(res.choices[0]!.finish_reason, 'length');
      assert.equal(res.usage?.completion_tokens, 2);
      const stream = await openai.chat.completions.create({ ...openaiTextRequest(up.model, { max_tokens: 2 }), stream: true });
      const a = await assemble(stream);
      assert.equal(a.choices[0]!.content, 'Echo: hello ');
      assert.equal(a.choices[0]!.finish, 'length');
    });

    let callId = '';
    it('tool call, not streamed: tool_calls with the name and parsed arguments, finish_reason tool_calls', async () => {
      const res = await openai.chat.completions.create({
        model: up.model,
        messages: [{ role: 'user', content: TOOL_PROMPT }],
        tools: OPENAI_TOOLS,
      });
      const c = res.choices[0]!;
      assert.equal(c.finish_reason, 'tool_calls');
      assert.ok(c.message.content === null || c.message.content === '', `no text, got ${JSON.stringify(c.message.content)}`);
      const calls = c.message.tool_calls ?? [];
      assert.equal(calls.length, 1);
      const call = calls[0]!;
      assert.equal(call.type, 'function');
      assert.ok(call.type === 'function');
      assert.equal(call.function.name, 'get_weather');
      assert.deepEqual(JSON.parse(call.function.arguments), WEATHER_ARGS);
      assert.ok(call.id.length > 0, 'a tool call id');
      callId = call.id;
      assert.ok((res.usage?.completion_tokens ?? 0) > 0);
    });

    it('tool call, streamed: tool_calls assembled from deltas', async () => {
      const stream = await openai.chat.completions.create({
        model: up.model,
        messages: [{ role: 'user', content: TOOL_PROMPT }],
        tools: OPENAI_TOOLS,
        stream: true,
      });
      const a = await assemble(stream);
      const c = a.choices[0]!;
      assert.equal(c.finish, 'tool_calls');
      assert.equal(c.content, '');
      assert.equal(c.tools.length, 1);
      assert.equal(c.tools[0]!.name, 'get_weather');
      assert.ok(c.tools[0]!.id.length > 0);
      assert.deepEqual(JSON.parse(c.tools[0]!.args), WEATHER_ARGS);
    });

    it('tool call, streamed, via the SDK helper: finalChatCompletion() has the parsed call', async () => {
      const runner = openai.chat.completions.stream({
        model: up.model,
        messages: [{ role: 'user', content: TOOL_PROMPT }],
        tools: OPENAI_TOOLS,
      });
      const final = await runner.finalChatCompletion();
      const call = final.choices[0]!.message.tool_calls?.[0];
      assert.ok(call && call.type === 'function');
      assert.equal(call.function.name, 'get_weather');
      assert.deepEqual(JSON.parse(call.function.arguments), WEATHER_ARGS);
      assert.equal(final.choices[0]!.finish_reason, 'tool_calls');
    });

    it('tool_choice: a named function is called unprompted; none suppresses a mentioned one', async () => {
      const forced = await openai.chat.completions.create({
        model: up.model,
        messages: [{ role: 'user', content: 'what now?' }],
        tools: OPENAI_TWO_TOOLS,
        tool_choice: { type: 'function', function: { name: 'get_time' } },
      });
      const call = forced.choices[0]!.message.tool_calls?.[0];
      assert.ok(call && call.type === 'function', JSON.stringify(forced.choices[0]));
      assert.equal(call.function.name, 'get_time');
      assert.deepEqual(JSON.parse(call.function.arguments), { tz: 'mock' });
      const none = await openai.chat.completions.create({
        model: up.model,
        messages: [{ role: 'user', content: TOOL_PROMPT }],
        tools: OPENAI_TWO_TOOLS,
        tool_choice: 'none',
      });
      assert.equal(none.choices[0]!.message.tool_calls?.length ?? 0, 0);
      assert.equal(none.choices[0]!.message.content, `Echo: ${TOOL_PROMPT}`);
      assert.equal(none.choices[0]!.finish_reason, 'stop');
    });

    it('non-ASCII text survives both modes', async () => {
      const text = 'héllo 世界 🌍 naïve — ok';
      const res = await openai.chat.completions.create({ model: up.model, messages: [{ role: 'user', content: text }] });
      assert.equal(res.choices[0]!.message.content, `Echo: ${text}`);
      const a = await assemble(await openai.chat.completions.create({ model: up.model, messages: [{ role: 'user', content: text }], stream: true }));
      assert.equal(a.choices[0]!.content, `Echo: ${text}`);
    });

    it('two tool calls in one turn: both arrive in order with their own ids and arguments (both modes)', async () => {
      const req = { model: up.model, messages: [{ role: 'user' as const, content: TWO_TOOLS_PROMPT }], tools: OPENAI_TWO_TOOLS };
      const res = await openai.chat.completions.create(req);
      const calls = (res.choices[0]!.message.tool_calls ?? []).map((c) => (c.type === 'function' ? [c.function.name, JSON.parse(c.function.arguments)] : []));
      assert.deepEqual(calls, [
        ['get_weather', WEATHER_ARGS],
        ['get_time', { tz: 'mock' }],
      ]);
      const ids = (res.choices[0]!.message.tool_calls ?? []).map((c) => c.id);
      assert.equal(new Set(ids).size, 2, 'distinct ids');
      const a = await assemble(await openai.chat.completions.create({ ...req, stream: true }));
      assert.deepEqual(
        a.choices[0]!.tools.map((t) => [t.name, JSON.parse(t.args)]),
        [
          ['get_weather', WEATHER_ARGS],
          ['get_time', { tz: 'mock' }],
        ],
      );
      assert.equal(a.choices[0]!.finish, 'tool_calls');
    });

    it('tool-result follow-up turn: the answer uses the tool result', async () => {
      assert.ok(callId, 'the tool-call test ran first');
      const messages: ChatCompletionMessageParam[] = [
        { role: 'system', content: SYSTEM },
        { role: 'user', content: TOOL_PROMPT },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: callId, type: 'function', function: { name: 'get_weather', arguments: JSON.stringify(WEATHER_ARGS) } }],
        },
        { role: 'tool', tool_call_id: callId, content: 'sunny and 21C' },
      ];
      const res = await openai.chat.completions.create({ model: up.model, messages, tools: OPENAI_TOOLS });
      assert.equal(res.choices[0]!.message.content, 'Tool result: sunny and 21C');
      assert.equal(res.choices[0]!.finish_reason, 'stop');
      const stream = await openai.chat.completions.create({ model: up.model, messages, tools: OPENAI_TOOLS, stream: true });
      const a = await assemble(stream);
      assert.equal(a.choices[0]!.content, 'Tool result: sunny and 21C');
      assert.equal(a.choices[0]!.finish, 'stop');
    });
  });
}

// ── inbound Anthropic ──────────────────────────────────────────────────────────────────────────

function anthropicText(model: string, extra: Partial<Anthropic.MessageCreateParamsNonStreaming> = {}): Anthropic.MessageCreateParamsNonStreaming {
  return { model, max_tokens: 256, system: SYSTEM, messages: [{ role: 'user', content: USER }], ...extra };
}

for (const up of UPSTREAMS) {
  describe(`Anthropic client → ${up.kind} upstream`, () => {
    it('plain text, not streamed: text block, end_turn, usage incl. the system prompt', async () => {
      const msg = await anthropic.messages.create(anthropicText(up.model));
      assert.equal(msg.type, 'message');
      assert.equal(msg.role, 'assistant');
      assert.ok(msg.id.startsWith('msg_'), `Anthropic-style id, got ${msg.id}`);
      assert.deepEqual(
        msg.content.map((b) => ({ type: b.type, text: b.type === 'text' ? b.text : undefined })),
        [{ type: 'text', text: ECHO }],
      );
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.usage.input_tokens, 5);
      assert.equal(msg.usage.output_tokens, 4);
    });

    it('plain text, streamed: text events and finalMessage() agree', async () => {
      let text = '';
      const stream = anthropic.messages.stream(anthropicText(up.model)).on('text', (t) => {
        text += t;
      });
      const msg = await stream.finalMessage();
      assert.equal(text, ECHO);
      assert.equal(msg.content.length, 1);
      assert.equal(msg.content[0]!.type, 'text');
      assert.equal(msg.content[0]!.type === 'text' && msg.content[0]!.text, ECHO);
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.usage.input_tokens, 5);
      assert.equal(msg.usage.output_tokens, 4);
    });

    it('max_tokens small: stop_reason max_tokens (both modes)', async () => {
      const msg = await anthropic.messages.create(anthropicText(up.model, { max_tokens: 2 }));
      assert.equal(msg.stop_reason, 'max_tokens');
      assert.equal(msg.content[0]?.type === 'text' && msg.content[0].text, 'Echo: hello ');
      assert.equal(msg.usage.output_tokens, 2);
      const streamed = await anthropic.messages.stream(anthropicText(up.model, { max_tokens: 2 })).finalMessage();
      assert.equal(streamed.stop_reason, 'max_tokens');
      assert.equal(streamed.content[0]?.type === 'text' && streamed.content[0].text, 'Echo: hello ');
      assert.equal(streamed.usage.output_tokens, 2);
    });

    let toolUse: Anthropic.ToolUseBlock | undefined;
    it('tool call, not streamed: tool_use block with name and input, stop_reason tool_use', async () => {
      const msg = await anthropic.messages.create({
        model: up.model,
        max_tokens: 256,
        tools: ANTHROPIC_TOOLS,
        messages: [{ role: 'user', content: TOOL_PROMPT }],
      });
      assert.equal(msg.stop_reason, 'tool_use');
      const uses = msg.content.filter((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
      assert.equal(uses.length, 1);
      assert.equal(uses[0]!.name, 'get_weather');
      assert.deepEqual(uses[0]!.input, WEATHER_ARGS);
      assert.ok(uses[0]!.id.length > 0);
      assert.ok(!msg.content.some((b) => b.type === 'text' && b.text === ''), 'no empty text block');
      toolUse = uses[0];
    });

    it('tool call, streamed: input_json_delta assembled by finalMessage()', async () => {
      const partials: string[] = [];
      const stream = anthropic.messages
        .stream({ model: up.model, max_tokens: 256, tools: ANTHROPIC_TOOLS, messages: [{ role: 'user', content: TOOL_PROMPT }] })
        .on('inputJson', (partial) => {
          partials.push(partial);
        });
      const msg = await stream.finalMessage();
      assert.equal(msg.stop_reason, 'tool_use');
      const uses = msg.content.filter((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
      assert.equal(uses.length, 1);
      assert.equal(uses[0]!.name, 'get_weather');
      assert.deepEqual(uses[0]!.input, WEATHER_ARGS);
      assert.ok(partials.length >= 1, 'at least one input_json_delta');
    });

    it('tool_choice: a named tool is called unprompted; none suppresses a mentioned one', async () => {
      const forced = await anthropic.messages.create({
        model: up.model,
        max_tokens: 256,
        tools: ANTHROPIC_TWO_TOOLS,
        tool_choice: { type: 'tool', name: 'get_time' },
        messages: [{ role: 'user', content: 'what now?' }],
      });
      const uses = forced.content.filter((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
      assert.deepEqual(uses.map((u) => [u.name, u.input]), [['get_time', { tz: 'mock' }]]);
      assert.equal(forced.stop_reason, 'tool_use');
      const none = await anthropic.messages.create({
        model: up.model,
        max_tokens: 256,
        tools: ANTHROPIC_TWO_TOOLS,
        tool_choice: { type: 'none' },
        messages: [{ role: 'user', content: TOOL_PROMPT }],
      });
      assert.deepEqual(none.content.map((b) => b.type), ['text']);
      assert.equal(none.stop_reason, 'end_turn');
    });

    it('non-ASCII text survives both modes', async () => {
      const text = 'héllo 世界 🌍 naïve — ok';
      const msg = await anthropic.messages.create({ model: up.model, max_tokens: 100, messages: [{ role: 'user', content: text }] });
      assert.equal(msg.content[0]?.type === 'text' && msg.content[0].text, `Echo: ${text}`);
      const streamed = await anthropic.messages.stream({ model: up.model, max_tokens: 100, messages: [{ role: 'user', content: text }] }).finalMessage();
      assert.equal(streamed.content[0]?.type === 'text' && streamed.content[0].text, `Echo: ${text}`);
    });

    it('two tool calls in one turn: two tool_use blocks in order (both modes)', async () => {
      const params = { model: up.model, max_tokens: 256, tools: ANTHROPIC_TWO_TOOLS, messages: [{ role: 'user' as const, content: TWO_TOOLS_PROMPT }] };
      const expected = [
        ['get_weather', WEATHER_ARGS],
        ['get_time', { tz: 'mock' }],
      ];
      const uses = (m: Anthropic.Message) => m.content.filter((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
      const msg = await anthropic.messages.create(params);
      assert.deepEqual(uses(msg).map((u) => [u.name, u.input]), expected);
      assert.equal(new Set(uses(msg).map((u) => u.id)).size, 2);
      const streamed = await anthropic.messages.stream(params).finalMessage();
      assert.deepEqual(uses(streamed).map((u) => [u.name, u.input]), expected);
      assert.equal(streamed.stop_reason, 'tool_use');
    });

    it('tool-result follow-up turn: the answer uses the tool result (both modes)', async () => {
      assert.ok(toolUse, 'the tool-call test ran first');
      const params: Anthropic.MessageCreateParamsNonStreaming = {
        model: up.model,
        max_tokens: 256,
        system: SYSTEM,
        tools: ANTHROPIC_TOOLS,
        messages: [
          { role: 'user', content: TOOL_PROMPT },
          { role: 'assistant', content: [{ type: 'tool_use', id: toolUse.id, name: toolUse.name, input: toolUse.input }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: toolUse.id, content: 'sunny and 21C' }] },
        ],
      };
      const msg = await anthropic.messages.create(params);
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.content[0]?.type === 'text' && msg.content[0].text, 'Tool result: sunny and 21C');
      const streamed = await anthropic.messages.stream(params).finalMessage();
      assert.equal(streamed.content[0]?.type === 'text' && streamed.content[0].text, 'Tool result: sunny and 21C');
      assert.equal(streamed.stop_reason, 'end_turn');
    });
  });
}

// ── OpenAI extras ──────────────────────────────────────────────────────────────────────────────

describe('OpenAI n', () => {
  it('n=2 to Gemini: two choices (candidateCount), in order, both modes', async () => {
    const res = await openai.chat.completions.create(openaiTextRequest('via-gemini', { n: 2 }));
    assert.deepEqual(
      res.choices.map((c) => [c.index, c.message.content, c.finish_reason]),
      [
        [0, ECHO, 'stop'],
        [1, 'Echo 1: hello big world', 'stop'],
      ],
    );
    assert.equal(res.usage?.completion_tokens, 9, 'Gemini counts every candidate');
    const a = await assemble(await openai.chat.completions.create({ ...openaiTextRequest('via-gemini', { n: 2 }), stream: true }));
    assert.deepEqual(
      a.choices.map((c) => [c.content, c.finish]),
      [
        [ECHO, 'stop'],
        ['Echo 1: hello big world', 'stop'],
      ],
    );
    const last = gemini.requests[gemini.requests.length - 1]!;
    assert.equal((last.body.generationConfig as Record<string, unknown>).candidateCount, 2);
  });

  it('n=2 to Anthropic: 400 naming the parameter (Anthropic has no n)', async () => {
    await assert.rejects(openai.chat.completions.create(openaiTextRequest('via-anthropic', { n: 2 })), (err: unknown) => {
      assert.ok(err instanceof OpenAI.APIError);
      assert.equal(err.status, 400);
      assert.equal(err.param, 'n');
      return true;
    });
  });

  it('n=2 to an OpenAI-compatible upstream: forwarded as sent', async () => {
    const before = oaRec.requests.length;
    await openai.chat.completions.create(openaiTextRequest('rec-openai', { n: 2 }));
    const sent = oaRec.requests.slice(before).find((r) => r.method === 'POST');
    assert.ok(sent);
    assert.equal(JSON.parse(sent.body.toString()).n, 2);
  });
});

describe('OpenAI response_format', () => {
  const schema = { type: 'object', properties: { echo: { type: 'string' } }, required: ['echo'], additionalProperties: false };
  const responseFormat = { type: 'json_schema' as const, json_schema: { name: 'echo', schema, strict: true } };

  it('to Gemini: responseMimeType + responseJsonSchema sent; the JSON answer arrives intact', async () => {
    const res = await openai.chat.completions.create({
      model: 'via-gemini',
      messages: [{ role: 'user', content: USER }],
      response_format: responseFormat,
    });
    assert.deepEqual(JSON.parse(res.choices[0]!.message.content!), { echo: USER });
    const sent = gemini.requests[gemini.requests.length - 1]!.body.generationConfig as Record<string, unknown>;
    assert.equal(sent.responseMimeType, 'application/json');
    assert.deepEqual(sent.responseJsonSchema, schema);
  });

  it('to Anthropic: the format becomes a system instruction carrying the schema', async () => {
    const before = anRec.requests.length;
    const res = await openai.chat.completions.create({
      model: 'rec-anthropic',
      messages: [{ role: 'user', content: USER }],
      response_format: responseFormat,
    });
    assert.equal(res.choices[0]!.finish_reason, 'stop');
    const sent = JSON.parse(anRec.requests.slice(before).find((r) => r.method === 'POST')!.body.toString());
    assert.equal(typeof sent.system, 'string');
    assert.match(sent.system, /JSON/);
    assert.ok(sent.system.includes('"echo"'), `schema in the instruction: ${sent.system}`);
    assert.equal(sent.response_format, undefined, 'no OpenAI field sent to Anthropic');
  });

  it('to an OpenAI-compatible upstream: forwarded unchanged', async () => {
    const before = oaRec.requests.length;
    await openai.chat.completions.create({ model: 'rec-openai', messages: [{ role: 'user', content: USER }], response_format: responseFormat });
    const sent = JSON.parse(oaRec.requests.slice(before).find((r) => r.method === 'POST')!.body.toString());
    assert.deepEqual(sent.response_format, responseFormat);
  });
});

describe('OpenAI stream_options.include_usage from translated upstreams', () => {
  for (const model of ['via-anthropic', 'via-gemini']) {
    it(`${model}: usage chunk only when asked, numbers match the non-streamed answer`, async () => {
      const plain = await openai.chat.completions.create(openaiTextRequest(model));
      const withUsage = await assemble(
        await openai.chat.completions.create({ ...openaiTextRequest(model), stream: true, stream_options: { include_usage: true } }),
      );
      const without = await assemble(
        await openai.chat.completions.create({ ...openaiTextRequest(model), stream: true, stream_options: { include_usage: false } }),
      );
      assert.equal(withUsage.usage.length, 1);
      assert.equal(withUsage.usage[0]!.prompt_tokens, plain.usage!.prompt_tokens);
      assert.equal(withUsage.usage[0]!.completion_tokens, plain.usage!.completion_tokens);
      assert.equal(without.usage.length, 0);
      assert.equal(without.choices[0]!.content, ECHO);
    });
  }
});

describe('OpenAI → OpenAI is byte pass-through', () => {
  // Odd spacing and key order on purpose: a re-serialised body would not keep them.
  const body = `{ "messages":[{"role":"user","content":"${USER}"}],  "model":"mock-large", "logprobs":true, "top_logprobs":2 }`;

  it('the upstream receives the exact request bytes, and the client the exact answer bytes', async () => {
    const before = oaRec.requests.length;
    const viaGateway = await postJson(gw.url, '/v1/chat/completions', body);
    assert.equal(viaGateway.status, 200);
    const sent = oaRec.requests.slice(before).find((r) => r.method === 'POST');
    assert.ok(sent);
    assert.equal(sent.body.toString('utf8'), body, 'request bytes unchanged (logprobs fields included)');
    const direct = await postJson(`http://127.0.0.1:${mock.port}`, '/v1/chat/completions', body);
    const norm = (t: string) => t.replace(/"created":\d+/, '"created":0');
    assert.equal(norm(viaGateway.text), norm(direct.text), 'answer bytes unchanged');
    const parsed = JSON.parse(viaGateway.text);
    // Fields only the upstream writes (the gateway's own encoder would not produce them).
    assert.deepEqual(parsed.choices[0].message.annotations, []);
    assert.equal(parsed.choices[0].logprobs, null);
    assert.equal(parsed.system_fingerprint, null);
    assert.equal(viaGateway.headers['x-sluice-provider'], 'oai-rec');
  });

  it('streamed: the SSE bytes are the upstream\'s, but for the usage chunk the gateway asked for itself', async () => {
    const streamBody = body.replace('"logprobs":true', '"stream":true, "logprobs":true');
    const viaGateway = await postJson(gw.url, '/v1/chat/completions', streamBody);
    // For token accounting the gateway asks for usage (stream_options.include_usage); the upstream
    // then also marks every chunk `"usage":null`, and the usage-only chunk is not relayed to a client
    // that did not ask for it. Everything else is the upstream's bytes.
    const asGatewayAsks = streamBody.replace('{', '{"stream_options":{"include_usage":true},');
    const direct = await postJson(`http://127.0.0.1:${mock.port}`, '/v1/chat/completions', asGatewayAsks);
    const withoutUsageChunk = direct.text
      .split('\n\n')
      .filter((ev) => !ev.includes('"choices":[],"usage":{'))
      .join('\n\n');
    const norm = (t: string) => t.replace(/"created":\d+/g, '"created":0');
    assert.ok(direct.text.includes('"choices":[],"usage":{'), 'the upstream sent a usage chunk');
    assert.equal(norm(viaGateway.text), norm(withoutUsageChunk));
    assert.match(viaGateway.headers['content-type'] ?? '', /^text\/event-stream/);
  });

  it('logprobs translated from Gemini arrive in OpenAI shape', async () => {
    const res = await openai.chat.completions.create({ model: 'via-gemini', messages: [{ role: 'user', content: USER }], logprobs: true, top_logprobs: 2 });
    const content = res.choices[0]!.logprobs?.content ?? [];
    assert.deepEqual(content.map((t) => t.token).join(''), ECHO);
    assert.equal(content[0]!.logprob, -0.25);
    assert.equal(content[0]!.top_logprobs.length, 2);
    const stream = await openai.chat.completions.create({
      model: 'via-gemini',
      messages: [{ role: 'user', content: USER }],
      logprobs: true,
      stream: true,
    });
    const a = await assemble(stream);
    const tokens = a.chunks.flatMap((ch) => ch.choices.flatMap((c) => c.logprobs?.content ?? [])).map((t) => t.token);
    assert.equal(tokens.join(''), ECHO);
  });
});

describe('raw wire details', () => {
  it('Anthropic SSE from an OpenAI upstream has the event sequence Anthropic clients expect', async () => {
    const res = await postJson(gw.url, '/v1/messages', { ...anthropicText('via-openai'), stream: true });
    assert.equal(res.status, 200);
    const types = sseJson(res.text).map((e) => e.type);
    assert.equal(types[0], 'message_start');
    assert.equal(types[types.length - 1], 'message_stop');
    assert.equal(types[types.length - 2], 'message_delta');
    assert.ok(types.includes('content_block_start') && types.includes('content_block_stop'));
  });

  it('Anthropic upstream: x-api-key from config, anthropic-version default or the client\'s own', async () => {
    const before = anRec.requests.length;
    await openai.chat.completions.create(openaiTextRequest('rec-anthropic'));
    await anthropic.messages.create(anthropicText('rec-anthropic'), { headers: { 'anthropic-version': '2023-06-01', 'anthropic-beta': 'test-beta-1' } });
    const [fromOpenAI, fromAnthropic] = anRec.requests.slice(before).filter((r) => r.method === 'POST');
    assert.ok(fromOpenAI && fromAnthropic);
    assert.equal(fromOpenAI.headers['x-api-key'], 'x');
    assert.equal(fromOpenAI.headers['anthropic-version'], '2023-06-01');
    assert.equal(fromOpenAI.headers['authorization'], undefined, 'the client key is not forwarded');
    assert.equal(fromAnthropic.headers['x-api-key'], 'x', 'the client key k is replaced by the provider key');
    assert.equal(fromAnthropic.headers['anthropic-beta'], 'test-beta-1');
  });

  it('the Gemini key travels in x-goog-api-key only, and the model in the path', async () => {
    await openai.chat.completions.create(openaiTextRequest('via-gemini'));
    const last = gemini.requests[gemini.requests.length - 1]!;
    assert.equal(last.headers['x-goog-api-key'], 'gemini-key');
    assert.equal(last.model, 'models/gemini-fake');
    assert.ok(!last.query.includes('gemini-key'));
    assert.deepEqual(last.body.systemInstruction, { parts: [{ text: SYSTEM }] });
  });
});
