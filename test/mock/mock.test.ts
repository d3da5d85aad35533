import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import OpenAI, { APIError } from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { setClock } from '../../src/clock.js';
import { GatewayError } from '../../src/errors.js';
import type { UpstreamRequest } from '../../src/providers/transport.js';
import { MockTransport } from '../../src/mock/transport.js';
import { startMockServer, type MockServer } from '../../src/mock/server.js';

const WEATHER_TOOL = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] }, days: { type: 'integer' } },
      required: ['city', 'unit'],
    },
  },
};
const SEARCH_TOOL = {
  type: 'function' as const,
  function: {
    name: 'search',
    parameters: { type: 'object', properties: { q: { type: 'string' }, exact: { type: 'boolean' } }, required: ['q', 'exact'] },
  },
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function upstream(path: string, body: object | null, headers: Record<string, string> = {}, method: 'GET' | 'POST' = 'POST'): UpstreamRequest {
  return {
    origin: 'mock://local',
    path,
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: body === null ? null : JSON.stringify(body),
    timeouts: { connectMs: 1000, firstByteMs: 1000, idleMs: 1000 },
  };
}

interface Recording {
  status: number | null;
  headers: Record<string, string>;
  chunks: Buffer[];
  ended: boolean;
  error: GatewayError | null;
  /** Callback names in order, to check the handler contract. */
  calls: string[];
}

/** Sends through the transport and records every callback; `onData` may decide to pause. */
function record(transport: MockTransport, req: UpstreamRequest, onData: (rec: Recording) => boolean = () => true) {
  const rec: Recording = { status: null, headers: {}, chunks: [], ended: false, error: null, calls: [] };
  let inSend = true;
  let finish!: () => void;
  const done = new Promise<Recording>((resolve) => {
    finish = () => resolve(rec);
  });
  const exchange = transport.send(req, {
    onHeaders(status, headers) {
      assert.equal(inSend, false, 'onHeaders inside send()');
      rec.calls.push('headers');
      rec.status = status;
      rec.headers = headers;
    },
    onData(chunk) {
      assert.equal(inSend, false, 'onData inside send()');
      rec.calls.push('data');
      rec.chunks.push(Buffer.from(chunk));
      return onData(rec);
    },
    onEnd() {
      rec.calls.push('end');
      rec.ended = true;
      finish();
    },
    onError(error) {
      rec.calls.push('error');
      rec.error = error;
      finish();
    },
  });
  inSend = false;
  return { exchange, done, rec };
}

const text = (rec: Recording) => Buffer.concat(rec.chunks).toString('utf8');

/** The `data:` payloads of an SSE body. */
function sseData(body: string): string[] {
  return body
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => l.slice(6));
}

describe('mock server with the official SDKs', () => {
  let server: MockServer;
  let openai: OpenAI;
  let anthropic: Anthropic;

  before(async () => {
    server = await startMockServer({ port: 0 });
    openai = new OpenAI({ baseURL: `http://127.0.0.1:${server.port}/v1`, apiKey: 'x', maxRetries: 0 });
    anthropic = new Anthropic({ baseURL: `http://127.0.0.1:${server.port}`, apiKey: 'x', maxRetries: 0 });
  });
  after(() => server.close());

  it('binds port 0 to a real port and answers /health', async () => {
    assert.ok(server.port > 0);
    const res = await fetch(`http://127.0.0.1:${server.port}/health`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  });

  it('chat completion: echo, usage and finish reason', async () => {
    const c = await openai.chat.completions.create({
      model: 'mock',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hello there world' },
      ],
    });
    assert.equal(c.object, 'chat.completion');
    assert.equal(c.model, 'mock');
    assert.match(c.id, /^chatcmpl-mock-[0-9a-f]{24}$/);
    assert.equal(c.choices[0]?.message.content, 'Echo: hello there world');
    assert.equal(c.choices[0]?.finish_reason, 'stop');
    assert.deepEqual(
      { p: c.usage?.prompt_tokens, c: c.usage?.completion_tokens, t: c.usage?.total_tokens },
      { p: 5, c: 4, t: 9 },
    );
  });

  it('chat completion: max_tokens truncates with finish_reason length', async () => {
    const c = await openai.chat.completions.create({
      model: 'mock-large',
      max_tokens: 2,
      messages: [{ role: 'user', content: 'one two three four' }],
    });
    assert.equal(c.choices[0]?.message.content, 'Echo: one ');
    assert.equal(c.choices[0]?.finish_reason, 'length');
    assert.equal(c.usage?.completion_tokens, 2);
  });

  it('chat stream with include_usage: role chunk, one token per chunk, usage chunk, [DONE]', async () => {
    const stream = await openai.chat.completions.create({
      model: 'mock',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'alpha beta gamma' }],
    });
    let content = '';
    const deltas: string[] = [];
    let finish: string | null = null;
    let usageChunk: OpenAI.Chat.Completions.ChatCompletionChunk | null = null;
    let first = true;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (first) assert.equal(chunk.choices[0]?.delta.role, 'assistant');
      first = false;
      if (chunk.choices.length === 0) {
        usageChunk = chunk;
        continue;
      }
      assert.equal(usageChunk, null, 'usage chunk must come last');
      const d = chunk.choices[0]?.delta.content;
      if (d) deltas.push(d);
      content += d ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(content, 'Echo: alpha beta gamma');
    assert.deepEqual(deltas, ['Echo: ', 'alpha ', 'beta ', 'gamma']);
    assert.equal(finish, 'stop');
    assert.equal(usageChunk?.usage?.completion_tokens, 4);
    assert.equal(usageChunk?.usage?.prompt_tokens, 3);
  });

  it('tool call when the user mentions a tool; arguments from the schema', async () => {
    const c = await openai.chat.completions.create({
      model: 'mock',
      messages: [{ role: 'user', content: 'what does get_weather say?' }],
      tools: [WEATHER_TOOL, SEARCH_TOOL],
    });
    const choice = c.choices[0];
    assert.equal(choice?.finish_reason, 'tool_calls');
    assert.equal(choice?.message.content, null);
    const calls = choice?.message.tool_calls ?? [];
    assert.equal(calls.length, 1);
    const call = calls[0];
    assert.ok(call !== undefined && call.type === 'function');
    assert.equal(call.id, 'call_mock_0');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'mock', unit: 'celsius' });
  });

  it('parallel tool calls in mention order, streamed and reassembled by the SDK', async () => {
    const stream = openai.chat.completions.stream({
      model: 'mock',
      messages: [{ role: 'user', content: 'use search, then get_weather' }],
      tools: [WEATHER_TOOL, SEARCH_TOOL],
    });
    const final = await stream.finalChatCompletion();
    const calls = final.choices[0]?.message.tool_calls ?? [];
    assert.deepEqual(
      calls.map((c) => (c.type === 'function' ? [c.id, c.function.name, JSON.parse(c.function.arguments)] : null)),
      [
        ['call_mock_0', 'search', { q: 'mock', exact: true }],
        ['call_mock_1', 'get_weather', { city: 'mock', unit: 'celsius' }],
      ],
    );
    assert.equal(final.choices[0]?.finish_reason, 'tool_calls');
  });

  it('parallel_tool_calls false, tool_choice required / named / none', async () => {
    const ask = async (extra: Partial<OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming>, say: string) => {
      const c = await openai.chat.completions.create({
        model: 'mock',
        messages: [{ role: 'user', content: say }],
        tools: [WEATHER_TOOL, SEARCH_TOOL],
        ...extra,
      });
      return c.choices[0]?.message.tool_calls?.map((t) => (t.type === 'function' ? t.function.name : '')) ?? c.choices[0]?.message.content;
    };
    assert.deepEqual(await ask({ parallel_tool_calls: false }, 'search and get_weather'), ['search']);
    assert.deepEqual(await ask({ tool_choice: 'required' }, 'nothing in particular'), ['get_weather']);
    assert.deepEqual(await ask({ tool_choice: { type: 'function', function: { name: 'search' } } }, 'hi'), ['search']);
    assert.equal(await ask({ tool_choice: 'none' }, 'search it'), 'Echo: search it');
    assert.equal(await ask({}, 'a research topic'), 'Echo: a research topic', 'substring of a word is no mention');
  });

  it('after tool results: "Tool result: ..." and new call ids continue the numbering', async () => {
    const c = await openai.chat.completions.create({
      model: 'mock',
      messages: [
        { role: 'user', content: 'search and get_weather' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_mock_0', type: 'function', function: { name: 'search', arguments: '{}' } },
            { id: 'call_mock_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_mock_0', content: 'found it' },
        { role: 'tool', tool_call_id: 'call_mock_1', content: 'sunny' },
      ],
      tools: [WEATHER_TOOL, SEARCH_TOOL],
      tool_choice: 'required',
    });
    assert.equal(c.choices[0]?.message.content, 'Tool result: found it sunny');
    assert.equal(c.choices[0]?.finish_reason, 'stop');

    const again = await openai.chat.completions.create({
      model: 'mock',
      messages: [
        { role: 'user', content: 'search' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_mock_0', type: 'function', function: { name: 'search', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'call_mock_0', content: 'x' },
        { role: 'user', content: 'now get_weather' },
      ],
      tools: [WEATHER_TOOL],
    });
    assert.equal(again.choices[0]?.message.tool_calls?.[0]?.id, 'call_mock_1');
  });

  it('legacy completions, plain and streamed', async () => {
    const c = await openai.completions.create({ model: 'mock', prompt: 'say something' });
    assert.equal(c.object, 'text_completion');
    assert.equal(c.choices[0]?.text, 'Echo: say something');
    assert.equal(c.choices[0]?.finish_reason, 'stop');
    assert.equal(c.usage?.completion_tokens, 3);

    const stream = await openai.completions.create({
      model: 'mock',
      prompt: 'say something',
      stream: true,
      stream_options: { include_usage: true },
    });
    let textOut = '';
    let usage: number | undefined;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'text_completion');
      textOut += chunk.choices[0]?.text ?? '';
      if (chunk.usage) usage = chunk.usage.completion_tokens;
    }
    assert.equal(textOut, 'Echo: say something');
    assert.equal(usage, 3);
  });

  it('embeddings: deterministic unit vectors, 64 dims by default, dimensions honoured, both encodings agree', async () => {
    const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    const a = await openai.embeddings.create({ model: 'mock', input: 'the quick brown fox' });
    const v = a.data[0]?.embedding ?? [];
    assert.equal(v.length, 64);
    assert.ok(Math.abs(norm(v) - 1) < 1e-5);
    assert.equal(a.usage.prompt_tokens, 4);

    const again = await openai.embeddings.create({ model: 'mock', input: 'the quick brown fox', encoding_format: 'float' });
    assert.deepEqual(again.data[0]?.embedding, v, 'float and base64 give the same vector');

    const many = await openai.embeddings.create({ model: 'mock', input: ['the quick brown fox', 'other'], dimensions: 8 });
    assert.deepEqual(
      many.data.map((d) => [d.index, d.embedding.length]),
      [
        [0, 8],
        [1, 8],
      ],
    );
    assert.notDeepEqual(many.data[0]?.embedding, many.data[1]?.embedding);
    assert.ok(Math.abs(norm(many.data[1]?.embedding ?? []) - 1) < 1e-5);
  });

  it('models: the configured names', async () => {
    const ids: string[] = [];
    for await (const m of openai.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['mock', 'mock-large']);
  });

  it('anthropic messages: plain and streamed text', async () => {
    const m = await anthropic.messages.create({
      model: 'mock',
      max_tokens: 100,
      system: 'be nice',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hi Claude' }] }],
    });
    assert.equal(m.type, 'message');
    assert.match(m.id, /^msg_mock_/);
    assert.deepEqual(m.content.map((b) => (b.type === 'text' ? b.text : b.type)), ['Echo: hi Claude']);
    assert.equal(m.stop_reason, 'end_turn');
    assert.equal(m.usage.input_tokens, 4);
    assert.equal(m.usage.output_tokens, 3);

    const events: string[] = [];
    const stream = anthropic.messages.stream({ model: 'mock', max_tokens: 2, messages: [{ role: 'user', content: 'one two three' }] });
    stream.on('streamEvent', (e) => events.push(e.type));
    const final = await stream.finalMessage();
    assert.deepEqual(final.content.map((b) => (b.type === 'text' ? b.text : b.type)), ['Echo: one ']);
    assert.equal(final.stop_reason, 'max_tokens');
    assert.equal(final.usage.output_tokens, 2);
    assert.deepEqual(events, [
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
  });

  it('anthropic messages: tool use, plain and streamed (input_json_delta)', async () => {
    const tools: Anthropic.Tool[] = [
      { name: 'get_weather', input_schema: WEATHER_TOOL.function.parameters as Anthropic.Tool.InputSchema },
      { name: 'search', input_schema: SEARCH_TOOL.function.parameters as Anthropic.Tool.InputSchema },
    ];
    const params = { model: 'mock', max_tokens: 100, tools, messages: [{ role: 'user' as const, content: 'get_weather and search please' }] };
    const plain = await anthropic.messages.create(params);
    const streamed = await anthropic.messages.stream(params).finalMessage();
    for (const m of [plain, streamed]) {
      assert.equal(m.stop_reason, 'tool_use');
      assert.deepEqual(
        m.content.map((b) => (b.type === 'tool_use' ? [b.id, b.name, b.input] : b.type)),
        [
          ['call_mock_0', 'get_weather', { city: 'mock', unit: 'celsius' }],
          ['call_mock_1', 'search', { q: 'mock', exact: true }],
        ],
      );
    }
    const forced = await anthropic.messages.create({ ...params, tool_choice: { type: 'tool', name: 'search' }, messages: [{ role: 'user', content: 'hi' }] });
    assert.deepEqual(forced.content.map((b) => (b.type === 'tool_use' ? b.name : b.type)), ['search']);

    const result = await anthropic.messages.create({
      ...params,
      messages: [
        { role: 'user', content: 'get_weather' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'call_mock_0', name: 'get_weather', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_mock_0', content: 'rainy' }] },
      ],
    });
    assert.deepEqual(result.content.map((b) => (b.type === 'text' ? b.text : b.type)), ['Tool result: rainy']);
  });

  it('anthropic messages: max_tokens is required and system turns are refused, Anthropic-shaped', async () => {
    const post = async (body: object) => {
      const res = await fetch(`http://127.0.0.1:${server.port}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': 'anything' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as { type: string; error: { type: string } } };
    };
    const missing = await post({ model: 'mock', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.type, 'error');
    assert.equal(missing.body.error.type, 'invalid_request_error');
    const system = await post({ model: 'mock', max_tokens: 5, messages: [{ role: 'system', content: 'hi' }] });
    assert.equal(system.status, 400);
  });

  it('injected errors reach the SDKs with status, error type and retry-after', async () => {
    await assert.rejects(
      openai.chat.completions.create(
        { model: 'mock', messages: [{ role: 'user', content: 'hi' }] },
        { headers: { 'x-mock-status': '429', 'x-mock-retry-after': '7' } },
      ),
      (err: unknown) => {
        assert.ok(err instanceof APIError);
        assert.equal(err.status, 429);
        assert.equal(err.type, 'rate_limit_error');
        assert.equal(err.headers?.get('retry-after'), '7');
        return true;
      },
    );
    await assert.rejects(
      anthropic.messages.create(
        { model: 'mock', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] },
        { headers: { 'x-mock-status': '529' } },
      ),
      (err: unknown) => {
        assert.ok(err instanceof Anthropic.APIError);
        assert.equal(err.status, 529);
        assert.deepEqual(err.error, { type: 'error', error: { type: 'overloaded_error', message: 'mock: injected 529 error' } });
        return true;
      },
    );
  });

  it('a malformed x-mock header is a 400, not silently ignored', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-mock-tps': 'fast' },
      body: JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(res.status, 400);
    assert.deepEqual(((await res.json()) as { error: { param: string } }).error.param, 'x-mock-tps');
  });

  it('x-mock-reset-after breaks a stream mid-body; the SDK sees a connection error', async () => {
    const stream = await openai.chat.completions.create(
      { model: 'mock', stream: true, messages: [{ role: 'user', content: 'a b c d e f' }] },
      { headers: { 'x-mock-reset-after': '3' } },
    );
    const got: string[] = [];
    await assert.rejects(async () => {
      for await (const chunk of stream) got.push(chunk.choices[0]?.delta.content ?? '');
    });
    // The first part carries the role chunk along with the first token.
    assert.deepEqual(got, ['', 'Echo: ', 'a ', 'b ']);
  });

  it('x-mock-reset-after 0 drops the connection before any response', async () => {
    await assert.rejects(
      fetch(`http://127.0.0.1:${server.port}/v1/models`, { headers: { 'x-mock-reset-after': '0' } }),
      TypeError,
    );
  });

  it('paces a stream: ttft, then tokens per second', async () => {
    const t0 = performance.now();
    const res = await fetch(`http://127.0.0.1:${server.port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-mock-ttft-ms': '60', 'x-mock-tps': '100', 'x-mock-output-tokens': '5' },
      body: JSON.stringify({ model: 'mock', stream: true, messages: [{ role: 'user', content: 'x' }] }),
    });
    const headersAt = performance.now() - t0;
    const body = await res.text();
    const total = performance.now() - t0;
    assert.ok(headersAt >= 55, `headers after ${headersAt} ms`);
    // 5 token chunks 10 ms apart: the last one 40 ms after the first.
    assert.ok(total >= headersAt + 35, `body took ${total - headersAt} ms`);
    assert.equal(sseData(body).length, 1 + 5 + 1 + 1);
  });

  it('streams a large answer to a slow reader intact (write backpressure)', async () => {
    const tokens = 60000;
    const body = JSON.stringify({ model: 'mock', stream: true, messages: [{ role: 'user', content: 'w' }] });
    const received = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: server.port,
          path: '/v1/chat/completions',
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-mock-output-tokens': String(tokens) },
        },
        (res) => {
          res.pause();
          const parts: Buffer[] = [];
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
          res.on('error', reject);
          setTimeout(() => res.resume(), 300);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    const events = sseData(received);
    assert.equal(events.at(-1), '[DONE]');
    assert.equal(events.length, 1 + tokens + 1 + 1);
    let content = '';
    for (const e of events.slice(0, -1)) {
      const chunk = JSON.parse(e) as { choices: { delta: { content?: string } }[] };
      content += chunk.choices[0]?.delta.content ?? '';
    }
    assert.equal(content.split(' ').length, tokens);
  });

  it('a client leaving mid-stream stops the stream; the server keeps serving', async () => {
    const ac = new AbortController();
    const res = await fetch(`http://127.0.0.1:${server.port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-mock-tps': '50', 'x-mock-output-tokens': '100' },
      body: JSON.stringify({ model: 'mock', stream: true, messages: [{ role: 'user', content: 'slow' }] }),
      signal: ac.signal,
    });
    const reader = res.body?.getReader();
    await reader?.read();
    ac.abort();
    await sleep(50);
    const c = await openai.chat.completions.create({ model: 'mock', messages: [{ role: 'user', content: 'still here' }] });
    assert.equal(c.choices[0]?.message.content, 'Echo: still here');
  });

  it('close() drops a hanging request and stops listening', async () => {
    const own = await startMockServer({ port: 0 });
    const pending = fetch(`http://127.0.0.1:${own.port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-mock-hang': '1' },
      body: JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: 'hi' }] }),
    });
    await sleep(50);
    await own.close();
    await assert.rejects(pending, TypeError);
    await assert.rejects(fetch(`http://127.0.0.1:${own.port}/health`), TypeError);
  });
});

describe('MockTransport', () => {
  it('sends the same bytes as the server for the same request', async (t) => {
    setClock({ monotonicMs: () => performance.now(), wallMs: () => 1_700_000_000_000 });
    const server = await startMockServer({ port: 0 });
    t.after(async () => {
      setClock(null);
      await server.close();
    });
    const transport = new MockTransport();
    const cases: { path: string; body: object | null; headers?: Record<string, string> }[] = [
      { path: '/v1/chat/completions', body: { model: 'mock', messages: [{ role: 'user', content: 'héllo wörld ✓' }] } },
      {
        path: '/v1/chat/completions',
        body: { model: 'mock', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'a b c' }] },
        headers: { 'x-mock-chunk-tokens': '2' },
      },
      {
        path: '/v1/chat/completions',
        body: { model: 'mock', stream: true, messages: [{ role: 'user', content: 'search, get_weather' }], tools: [WEATHER_TOOL, SEARCH_TOOL] },
      },
      { path: '/v1/completions', body: { model: 'mock', prompt: ['x', 'y'], stream: true } },
      { path: '/v1/embeddings', body: { model: 'mock', input: ['p', 'q'], encoding_format: 'base64' } },
      { path: '/v1/models', body: null },
      {
        path: '/v1/messages',
        body: { model: 'mock', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'search' }], tools: [{ name: 'search', input_schema: SEARCH_TOOL.function.parameters }] },
      },
      { path: '/v1/messages', body: { model: 'mock', max_tokens: 50, messages: [{ role: 'user', content: 'plain' }] } },
      { path: '/v1/messages', body: { model: 'mock' }, headers: { 'x-mock-status': '503', 'x-mock-retry-after': '2' } },
      { path: '/v1/nothing', body: {} },
    ];
    for (const c of cases) {
      const method = c.body === null ? 'GET' : 'POST';
      const res = await fetch(`http://127.0.0.1:${server.port}${c.path}`, {
        method,
        headers: { 'content-type': 'application/json', ...c.headers },
        body: c.body === null ? null : JSON.stringify(c.body),
      });
      const serverBytes = Buffer.from(await res.arrayBuffer());
      const rec = await record(transport, upstream(c.path, c.body, c.headers, method)).done;
      assert.equal(rec.status, res.status, c.path);
      assert.equal(rec.headers['content-type'], res.headers.get('content-type'));
      assert.equal(rec.headers['retry-after'], res.headers.get('retry-after') ?? undefined);
      assert.equal(text(rec), serverBytes.toString('utf8'), `${c.path} ${JSON.stringify(c.body)}`);
      assert.deepEqual(rec.calls.at(-1), 'end');
    }
  });

  it('delivers a non-streamed body with content-length, asynchronously, even with zero delays', async () => {
    const transport = new MockTransport();
    const { done } = record(transport, upstream('/v1/chat/completions', { model: 'mock', messages: [{ role: 'user', content: 'hi' }] }));
    const rec = await done;
    assert.deepEqual(rec.calls, ['headers', 'data', 'end']);
    assert.equal(rec.status, 200);
    assert.equal(rec.headers['content-length'], String(Buffer.concat(rec.chunks).length));
    assert.equal((JSON.parse(text(rec)) as { choices: { message: { content: string } }[] }).choices[0]?.message.content, 'Echo: hi');
  });

  it('pauses when onData returns false and continues on resume()', async () => {
    const transport = new MockTransport();
    const req = upstream('/v1/chat/completions', { model: 'mock', stream: true, messages: [{ role: 'user', content: 'one two three four' }] });
    const reference = text(await record(transport, req).done);
    let paused = false;
    const { exchange, done, rec } = record(transport, req, (r) => {
      if (r.chunks.length === 2) {
        paused = true;
        return false;
      }
      return true;
    });
    await sleep(40);
    assert.ok(paused);
    assert.equal(rec.chunks.length, 2, 'no data while paused');
    assert.equal(rec.ended, false);
    exchange.resume();
    const finished = await done;
    assert.equal(text(finished), reference);
    assert.equal(finished.calls.filter((c) => c === 'end').length, 1);
  });

  it('abort() stops all callbacks, also from inside onData and while pacing', async () => {
    const transport = new MockTransport({ tokensPerSecond: 200 });
    const req = upstream('/v1/chat/completions', { model: 'mock', stream: true, messages: [{ role: 'user', content: 'a b c d e f g h' }] });
    const paced = record(transport, req, (r) => {
      if (r.chunks.length === 2) paced.exchange.abort();
      return true;
    });
    await sleep(120);
    assert.deepEqual(paced.rec.calls, ['headers', 'data', 'data']);

    const fast = new MockTransport();
    const early = record(fast, req);
    early.exchange.abort();
    early.exchange.abort();
    await sleep(20);
    assert.deepEqual(early.rec.calls, []);
  });

  it('x-mock-reset-after N: N chunks, then onError(upstream_unreachable); 0: error before headers', async () => {
    const transport = new MockTransport();
    const req = upstream('/v1/chat/completions', { model: 'mock', stream: true, messages: [{ role: 'user', content: 'a b c d' }] }, { 'x-mock-reset-after': '2' });
    const rec = await record(transport, req).done;
    assert.deepEqual(rec.calls, ['headers', 'data', 'data', 'error']);
    assert.ok(rec.error instanceof GatewayError);
    assert.equal(rec.error.code, 'upstream_unreachable');
    assert.equal(rec.error.message, 'upstream connection reset');

    const before = await record(transport, { ...req, headers: { 'x-mock-reset-after': '0' } }).done;
    assert.deepEqual(before.calls, ['error']);
  });

  it('injects a 429 with retry-after, OpenAI- or Anthropic-shaped by route', async () => {
    const transport = new MockTransport();
    const h = { 'x-mock-status': '429', 'x-mock-retry-after': '12' };
    const oa = await record(transport, upstream('/v1/chat/completions', { model: 'mock', messages: [] }, h)).done;
    assert.equal(oa.status, 429);
    assert.equal(oa.headers['retry-after'], '12');
    assert.deepEqual(JSON.parse(text(oa)), { error: { message: 'mock: injected 429 error', type: 'rate_limit_error', param: null, code: null } });
    const an = await record(transport, upstream('/v1/messages', { model: 'mock' }, h)).done;
    assert.equal(an.status, 429);
    assert.deepEqual(JSON.parse(text(an)), { type: 'error', error: { type: 'rate_limit_error', message: 'mock: injected 429 error' } });
  });

  it('errorEvery fails every Nth request with errorStatus', async () => {
    const transport = new MockTransport({ errorEvery: 3, errorStatus: 503 });
    const statuses: (number | null)[] = [];
    for (let i = 0; i < 6; i++) {
      statuses.push((await record(transport, upstream('/v1/chat/completions', { model: 'mock', messages: [{ role: 'user', content: 'hi' }] })).done).status);
    }
    assert.deepEqual(statuses, [200, 200, 503, 200, 200, 503]);
  });

  it('x-mock-hang never answers (until aborted)', async () => {
    const transport = new MockTransport();
    const { exchange, rec } = record(transport, upstream('/v1/models', null, { 'x-mock-hang': 'true' }, 'GET'));
    await sleep(50);
    assert.deepEqual(rec.calls, []);
    exchange.abort();
  });

  it('waits ttft before the head and paces chunks by tokens per second', async () => {
    const transport = new MockTransport({ ttftMs: 40, tokensPerSecond: 100 });
    const t0 = performance.now();
    const times: number[] = [];
    const { done } = record(
      transport,
      upstream('/v1/chat/completions', { model: 'mock', stream: true, messages: [{ role: 'user', content: 'a b c' }] }),
      () => {
        times.push(performance.now() - t0);
        return true;
      },
    );
    await done;
    assert.equal(times.length, 4);
    assert.ok((times[0] ?? 0) >= 35, `first chunk at ${times[0]} ms`);
    assert.ok((times[3] ?? 0) - (times[0] ?? 0) >= 25, `chunks spread over ${(times[3] ?? 0) - (times[0] ?? 0)} ms`);
  });

  it('fixed output length repeats the echo; the non-streamed answer waits for the whole generation', async () => {
    const transport = new MockTransport({ outputTokens: 7 });
    const body = { model: 'mock', messages: [{ role: 'user', content: 'ping pong' }] };
    const rec = await record(transport, upstream('/v1/chat/completions', body)).done;
    const c = JSON.parse(text(rec)) as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
    assert.equal(c.choices[0]?.message.content, 'Echo: ping pong Echo: ping pong Echo: ');
    assert.equal(c.usage.completion_tokens, 7);

    const t0 = performance.now();
    await record(transport, upstream('/v1/chat/completions', body, { 'x-mock-tps': '200', 'x-mock-output-tokens': '10' })).done;
    assert.ok(performance.now() - t0 >= 45, 'ten tokens at 200/s take 50 ms');
  });

  it('unknown routes and wrong methods answer 404 / 405 in JSON', async () => {
    const transport = new MockTransport();
    const nf = await record(transport, upstream('/v2/whatever', {})).done;
    assert.equal(nf.status, 404);
    assert.equal((JSON.parse(text(nf)) as { error: { type: string } }).error.type, 'not_found_error');
    const na = await record(transport, upstream('/v1/chat/completions', null, {}, 'GET')).done;
    assert.equal(na.status, 405);
  });
});
