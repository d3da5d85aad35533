/**
 * Failures through the real gateway process, each answered in the client's protocol: bad requests
 * (invalid JSON, bodies over the limit, unknown models), unreachable and slow upstreams, upstream
 * error replies (relayed byte for byte within one protocol, translated across protocols), streams
 * that break mid-way; and nothing secret or internal in any answer or in the gateway's stderr.
 */

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import {
  assertNoStackTrace,
  cleanupE2E,
  closedPort,
  parseSse,
  postJson,
  raw,
  startGateway,
  startGeminiFake,
  startMock,
  startRecorder,
  type GatewayProcess,
  type RawResponse,
} from '../helpers/index.js';

const SECRET = 'sk-test-SECRET-123';
const MAX_BODY = 2048;

let gw: GatewayProcess;
let openai: OpenAI;
let anthropic: Anthropic;
let mockUrl: string;
/** Every body the gateway answered in this file, checked for secrets and stack traces at the end. */
const answers: string[] = [];

function remember(res: RawResponse): RawResponse {
  answers.push(res.text);
  return res;
}

const userMsg = [{ role: 'user' as const, content: 'hello there' }];

before(async () => {
  const mock = await startMock();
  mockUrl = `http://127.0.0.1:${mock.port}`;
  const gemini = await startGeminiFake({ apiKey: 'g' });
  const garbage = await startRecorder({
    respond: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('this is not json');
    },
  });
  // Streams that start well and then report an error in-band, as each protocol does it.
  const midError = await startRecorder({
    respond: (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (req.url.endsWith('/v1/messages')) {
        const ev = (name: string, data: object) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
        res.write(ev('message_start', { type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'm', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 1, output_tokens: 1 } } }));
        res.write(ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }));
        res.write(ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'partial' } }));
        res.end(ev('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }));
      } else {
        const chunk = { id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { role: 'assistant', content: 'partial' }, finish_reason: null }] };
        res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        res.end(`data: ${JSON.stringify({ error: { message: 'backend exploded', type: 'server_error', param: null, code: null } })}\n\n`);
      }
    },
  });
  const dead = await closedPort();
  gw = await startGateway({
    config: {
      server: { max_body_bytes: MAX_BODY },
      log: { level: 'debug' },
      providers: [
        { name: 'mk', type: 'mock' },
        { name: 'mk-anth', type: 'mock', mock: { protocol: 'anthropic' } },
        // A hosted type with a key: the key must never show up anywhere.
        { name: 'oai', type: 'openai', base_url: `${mockUrl}/v1`, api_key: SECRET },
        { name: 'anth', type: 'anthropic', base_url: mockUrl, api_key: SECRET },
        { name: 'gem', type: 'gemini', base_url: gemini.url, api_key: 'g' },
        { name: 'dead', type: 'openai', base_url: `http://127.0.0.1:${dead}/v1`, api_key: SECRET },
        { name: 'dead-anth', type: 'anthropic', base_url: `http://127.0.0.1:${dead}`, api_key: SECRET },
        {
          name: 'slow',
          type: 'openai',
          base_url: `${mockUrl}/v1`,
          api_key: SECRET,
          timeouts: { connect_ms: 1000, first_byte_ms: 300, idle_ms: 300 },
        },
        { name: 'junk', type: 'anthropic', base_url: garbage.url, api_key: SECRET },
        { name: 'mid-anth', type: 'anthropic', base_url: midError.url, api_key: SECRET },
        { name: 'mid-oai', type: 'openai', base_url: `${midError.url}/v1`, api_key: SECRET },
      ],
      models: [
        { name: 'mock', targets: [{ provider: 'mk' }] },
        { name: 'mock-anthropic', targets: [{ provider: 'mk-anth', model: 'mock' }] },
        { name: 'oai-429', targets: [{ provider: 'oai', model: 'mock' }] },
        { name: 'anth-429', targets: [{ provider: 'anth', model: 'mock' }] },
        { name: 'gem-403', targets: [{ provider: 'gem', model: 'gemini-x' }] },
        { name: 'unreachable', targets: [{ provider: 'dead', model: 'm' }] },
        { name: 'unreachable-anth', targets: [{ provider: 'dead-anth', model: 'm' }] },
        { name: 'hang', targets: [{ provider: 'slow', model: 'mock' }] },
        { name: 'stall', targets: [{ provider: 'slow', model: 'mock' }] },
        { name: 'junk', targets: [{ provider: 'junk', model: 'm' }] },
        { name: 'mid-anth', targets: [{ provider: 'mid-anth', model: 'm' }] },
        { name: 'mid-oai', targets: [{ provider: 'mid-oai', model: 'm' }] },
      ],
      filters: [
        { type: 'headers', match: { models: ['oai-429', 'anth-429'] }, request: { set: { 'x-mock-status': '429', 'x-mock-retry-after': '7' } } },
        { type: 'headers', match: { models: ['gem-403'] }, request: { set: { 'x-fake-status': '403' } } },
        { type: 'headers', match: { models: ['hang'] }, request: { set: { 'x-mock-hang': '1' } } },
        // One chunk every 2 s: far longer than idle_ms, so the stream stalls after the first one.
        // (undici runs header and body timeouts on its coarse "fast timers", which fire up to about
        // a second late; the gap must outlast that.)
        { type: 'headers', match: { models: ['stall'] }, request: { set: { 'x-mock-tps': '0.5' } } },
      ],
    },
  });
  openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'k', maxRetries: 0, timeout: 10_000 });
  anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'k', maxRetries: 0, timeout: 10_000 });
});

after(async () => {
  await cleanupE2E();
  assert.equal(gw.hasExited(), true);
});

function assertOpenAIError(res: RawResponse, status: number, code: string): Record<string, unknown> {
  assert.equal(res.status, status, res.text);
  assert.match(res.headers['content-type'] ?? '', /application\/json/);
  const body = JSON.parse(res.text);
  assert.equal(typeof body.error?.message, 'string', res.text);
  assert.equal(body.error.code, code, res.text);
  assert.ok('type' in body.error && 'param' in body.error);
  return body.error;
}

function assertAnthropicError(res: RawResponse, status: number, type: string): Record<string, unknown> {
  assert.equal(res.status, status, res.text);
  assert.match(res.headers['content-type'] ?? '', /application\/json/);
  const body = JSON.parse(res.text);
  assert.equal(body.type, 'error', res.text);
  assert.equal(body.error?.type, type, res.text);
  assert.equal(typeof body.error.message, 'string');
  return body.error;
}

describe('bad requests', () => {
  it('invalid JSON → 400 OpenAI error on OpenAI routes', async () => {
    for (const path of ['/v1/chat/completions', '/v1/completions', '/v1/embeddings']) {
      const res = remember(await postJson(gw.url, path, '{"model": "mock", "messages": ['));
      const e = assertOpenAIError(res, 400, 'invalid_json');
      assert.equal(e.type, 'invalid_request_error');
    }
  });

  it('invalid JSON → 400 Anthropic error on /v1/messages', async () => {
    const res = remember(await postJson(gw.url, '/v1/messages', '{not json'));
    assertAnthropicError(res, 400, 'invalid_request_error');
  });

  it('a JSON body that is not an object, or has no model → 400', async () => {
    assertOpenAIError(remember(await postJson(gw.url, '/v1/chat/completions', '[1,2]')), 400, 'invalid_request');
    const e = assertOpenAIError(remember(await postJson(gw.url, '/v1/chat/completions', { messages: userMsg })), 400, 'invalid_request');
    assert.equal(e.param, 'model');
  });

  const big = JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: 'x'.repeat(MAX_BODY) }] });

  it('body over server.max_body_bytes with content-length → 413 (both protocols)', async () => {
    const res = remember(await postJson(gw.url, '/v1/chat/completions', big));
    const e = assertOpenAIError(res, 413, 'body_too_large');
    assert.equal(e.type, 'request_too_large');
    assertAnthropicError(remember(await postJson(gw.url, '/v1/messages', big)), 413, 'request_too_large');
  });

  it('body over server.max_body_bytes, chunked (no content-length) → 413', async () => {
    const parts = [big.slice(0, 1000), big.slice(1000, 2000), big.slice(2000)];
    const res = remember(
      await raw(gw.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body: parts }),
    );
    assertOpenAIError(res, 413, 'body_too_large');
    const anth = remember(
      await raw(gw.url, { method: 'POST', path: '/v1/messages', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body: parts }),
    );
    assertAnthropicError(anth, 413, 'request_too_large');
  });

  it('the limit is inclusive: max_body_bytes bytes pass, one more is a 413', async () => {
    const base = JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: '' }] });
    const exact = JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: 'y'.repeat(MAX_BODY - base.length) }] });
    assert.equal(Buffer.byteLength(exact), MAX_BODY);
    assert.equal((await postJson(gw.url, '/v1/chat/completions', exact)).status, 200);
    const over = exact.replace('"y', '"yy');
    assert.equal((await postJson(gw.url, '/v1/chat/completions', over)).status, 413);
  });

  it('a chunked body under the limit is accepted', async () => {
    const small = JSON.stringify({ model: 'mock', messages: userMsg });
    const res = await raw(gw.url, {
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      body: [small.slice(0, 10), small.slice(10)],
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(JSON.parse(res.text).choices[0].message.content, 'Echo: hello there');
  });

  it('unknown model → 404 model_not_found (OpenAI and Anthropic SDKs)', async () => {
    await assert.rejects(openai.chat.completions.create({ model: 'no-such-model', messages: userMsg }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.NotFoundError);
      assert.equal(err.code, 'model_not_found');
      assert.equal(err.param, 'model');
      assert.match(err.message, /no-such-model/);
      return true;
    });
    await assert.rejects(anthropic.messages.create({ model: 'no-such-model', max_tokens: 10, messages: userMsg }), (err: unknown) => {
      assert.ok(err instanceof Anthropic.NotFoundError);
      assert.equal((err.error as { error: { type: string } }).error.type, 'not_found_error');
      return true;
    });
  });
});

describe('upstream unreachable or slow', () => {
  it('connection refused → 502 upstream_unreachable (OpenAI), api_error (Anthropic)', async () => {
    const res = remember(await postJson(gw.url, '/v1/chat/completions', { model: 'unreachable', messages: userMsg }));
    const e = assertOpenAIError(res, 502, 'upstream_unreachable');
    assert.ok(!String(e.message).includes('127.0.0.1'), 'no upstream address in the message');
    const anth = remember(await postJson(gw.url, '/v1/messages', { model: 'unreachable-anth', max_tokens: 5, messages: userMsg }));
    assertAnthropicError(anth, 502, 'api_error');
    const streamed = remember(await postJson(gw.url, '/v1/chat/completions', { model: 'unreachable', stream: true, messages: userMsg }));
    assertOpenAIError(streamed, 502, 'upstream_unreachable');
  });

  it('no response headers within first_byte_ms → 504 upstream_timeout', async () => {
    const t0 = performance.now();
    const res = remember(await postJson(gw.url, '/v1/chat/completions', { model: 'hang', messages: userMsg }));
    const elapsed = performance.now() - t0;
    const e = assertOpenAIError(res, 504, 'upstream_timeout');
    assert.equal(e.type, 'timeout_error');
    assert.ok(elapsed >= 250 && elapsed < 3000, `answered after ${elapsed} ms`);
    const anth = remember(await postJson(gw.url, '/v1/messages', { model: 'hang', max_tokens: 5, stream: true, messages: userMsg }));
    assert.equal(anth.status, 504);
    assert.equal(JSON.parse(anth.text).type, 'error');
  });

  it('a stream that stalls longer than idle_ms ends with an error event, no [DONE]', async () => {
    const res = remember(await postJson(gw.url, '/v1/chat/completions', { model: 'stall', stream: true, messages: userMsg }));
    assert.equal(res.status, 200);
    const events = parseSse(res.text).filter((e) => e.data !== undefined);
    assert.ok(events.length >= 2, res.text);
    assert.ok(!events.some((e) => e.data === '[DONE]'), 'no [DONE]');
    const last = JSON.parse(events[events.length - 1]!.data!);
    assert.equal(last.error?.code, 'upstream_timeout', res.text);
    assert.ok(JSON.parse(events[0]!.data!).choices, 'content arrived before the stall');
  });
});

describe('upstream error replies', () => {
  it('same protocol (OpenAI → OpenAI): status and body byte-identical, retry-after relayed', async () => {
    const res = remember(await postJson(gw.url, '/v1/chat/completions', { model: 'oai-429', messages: userMsg }));
    const direct = await postJson(mockUrl, '/v1/chat/completions', { model: 'mock', messages: userMsg }, { 'x-mock-status': '429' });
    assert.equal(res.status, 429);
    assert.equal(res.text, direct.text);
    assert.equal(res.headers['retry-after'], '7');
    assert.equal(res.headers['x-sluice-provider'], 'oai');
  });

  it('same protocol (Anthropic → Anthropic): status and body byte-identical', async () => {
    const body = { model: 'anth-429', max_tokens: 5, messages: userMsg };
    const res = remember(await postJson(gw.url, '/v1/messages', body));
    const direct = await postJson(mockUrl, '/v1/messages', { ...body, model: 'mock' }, { 'x-mock-status': '429' });
    assert.equal(res.status, 429);
    assert.equal(res.text, direct.text);
    assert.equal(res.headers['retry-after'], '7');
  });

  it('cross protocol (OpenAI client, Anthropic upstream): status and message kept, OpenAI shape', async () => {
    await assert.rejects(openai.chat.completions.create({ model: 'anth-429', messages: userMsg }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.RateLimitError, String(err));
      assert.equal(err.status, 429);
      assert.match(err.message, /mock: injected 429 error/);
      assert.equal(err.type, 'rate_limit_error');
      assert.equal(err.headers?.get('retry-after'), '7');
      return true;
    });
  });

  it('cross protocol (Anthropic client, OpenAI upstream): status and message kept, Anthropic shape', async () => {
    await assert.rejects(anthropic.messages.create({ model: 'oai-429', max_tokens: 5, messages: userMsg }), (err: unknown) => {
      assert.ok(err instanceof Anthropic.RateLimitError, String(err));
      assert.equal(err.status, 429);
      const body = err.error as { type: string; error: { type: string; message: string } };
      assert.equal(body.type, 'error');
      assert.equal(body.error.type, 'rate_limit_error');
      assert.match(body.error.message, /mock: injected 429 error/);
      return true;
    });
  });

  it('Gemini error (403) to both clients: status and message kept, each in its shape', async () => {
    const oa = remember(await postJson(gw.url, '/v1/chat/completions', { model: 'gem-403', messages: userMsg }));
    const e = assertOpenAIError(oa, 403, 'upstream_error');
    assert.equal(e.message, 'fake: injected 403 error');
    assert.equal(e.type, 'permission_error');
    const an = remember(await postJson(gw.url, '/v1/messages', { model: 'gem-403', max_tokens: 5, stream: true, messages: userMsg }));
    const ae = assertAnthropicError(an, 403, 'permission_error');
    assert.equal(ae.message, 'fake: injected 403 error');
  });

  it('an upstream answer that is not JSON → 502 upstream_protocol_error', async () => {
    const res = remember(await postJson(gw.url, '/v1/chat/completions', { model: 'junk', messages: userMsg }));
    assertOpenAIError(res, 502, 'upstream_protocol_error');
  });

  it('an injected status on the built-in mock (x-mock-status) is relayed as is', async () => {
    const res = remember(await postJson(gw.url, '/v1/chat/completions', { model: 'mock', messages: userMsg }, { 'x-mock-status': '503' }));
    assert.equal(res.status, 503);
    assert.equal(JSON.parse(res.text).error.type, 'overloaded_error');
  });
});

describe('upstream reset mid-stream', () => {
  // Paced tokens reach the client before the reset; unpaced, the reset arrives with the first
  // events in one upstream read, while nothing has reached the client yet (tested below).
  const PACED = { 'x-mock-tps': '200' };

  it('OpenAI client: the SDK iterator throws an APIError after some content', async () => {
    const stream = await openai.chat.completions.create(
      { model: 'mock', stream: true, messages: [{ role: 'user', content: 'one two three four five six' }] },
      { headers: { 'x-mock-reset-after': '3', ...PACED } },
    );
    let content = '';
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? '';
      })(),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.APIError, String(err));
        assert.match(err.message, /reset|upstream/i);
        return true;
      },
    );
    assert.ok(content.startsWith('Echo: '), `content before the reset: ${content}`);
  });

  it('OpenAI client, raw: an error event ends the stream and no [DONE] follows', async () => {
    const res = remember(
      await postJson(gw.url, '/v1/chat/completions', { model: 'mock', stream: true, messages: userMsg }, { 'x-mock-reset-after': '2', ...PACED }),
    );
    assert.equal(res.status, 200);
    const events = parseSse(res.text).filter((e) => e.data !== undefined);
    assert.ok(!events.some((e) => e.data === '[DONE]'), res.text);
    const last = JSON.parse(events[events.length - 1]!.data!);
    assert.equal(last.error.code, 'upstream_unreachable');
  });

  for (const model of ['mock', 'mock-anthropic']) {
    it(`Anthropic client (${model === 'mock' ? 'translated' : 'pass-through'}): the SDK stream throws; raw ends with event: error, no message_stop`, async () => {
      const params = { model, max_tokens: 100, messages: [{ role: 'user' as const, content: 'one two three four five six' }] };
      const stream = anthropic.messages.stream(params, { headers: { 'x-mock-reset-after': '3', ...PACED } });
      await assert.rejects(stream.finalMessage(), (err: unknown) => {
        assert.ok(err instanceof Error);
        return true;
      });
      const res = remember(await postJson(gw.url, '/v1/messages', { ...params, stream: true }, { 'x-mock-reset-after': '3', ...PACED }));
      assert.equal(res.status, 200);
      const events = parseSse(res.text).filter((e) => e.data !== undefined);
      const names = events.map((e) => e.event);
      assert.equal(names[0], 'message_start');
      assert.equal(names[names.length - 1], 'error', res.text);
      assert.ok(!names.includes('message_stop'));
      const err = JSON.parse(events[events.length - 1]!.data!);
      assert.equal(err.type, 'error');
      assert.equal(err.error.type, 'api_error');
    });
  }

  it('an Anthropic error event mid-stream reaches an OpenAI client as an error chunk (message kept)', async () => {
    const res = remember(await postJson(gw.url, '/v1/chat/completions', { model: 'mid-anth', stream: true, messages: userMsg }));
    assert.equal(res.status, 200);
    const events = parseSse(res.text).filter((e) => e.data !== undefined);
    assert.ok(!events.some((e) => e.data === '[DONE]'), res.text);
    assert.equal(JSON.parse(events[0]!.data!).choices[0].delta.content, 'partial');
    const last = JSON.parse(events[events.length - 1]!.data!);
    assert.equal(last.error.message, 'Overloaded');
    assert.equal(last.error.type, 'overloaded_error');
    const stream = await openai.chat.completions.create({ model: 'mid-anth', stream: true, messages: userMsg });
    await assert.rejects(
      (async () => {
        for await (const _ of stream) void _;
      })(),
      (err: unknown) => err instanceof OpenAI.APIError && /Overloaded/.test(err.message),
    );
  });

  it('an OpenAI error chunk mid-stream reaches an Anthropic client as an error event (message kept)', async () => {
    const res = remember(await postJson(gw.url, '/v1/messages', { model: 'mid-oai', max_tokens: 10, stream: true, messages: userMsg }));
    assert.equal(res.status, 200);
    const events = parseSse(res.text).filter((e) => e.data !== undefined);
    const names = events.map((e) => e.event);
    assert.ok(names.includes('content_block_delta'), res.text);
    assert.equal(names[names.length - 1], 'error');
    assert.ok(!names.includes('message_stop'));
    assert.equal(JSON.parse(events[events.length - 1]!.data!).error.message, 'backend exploded');
  });

  it('a reset in the same upstream read as the first events, before any byte reached the client → a plain 502', async () => {
    const res = remember(await postJson(gw.url, '/v1/chat/completions', { model: 'mock', stream: true, messages: userMsg }, { 'x-mock-reset-after': '2' }));
    assertOpenAIError(res, 502, 'upstream_unreachable');
  });

  it('a reset before the response head → a plain 502 in the client protocol', async () => {
    const res = remember(await postJson(gw.url, '/v1/chat/completions', { model: 'mock', stream: true, messages: userMsg }, { 'x-mock-reset-after': '0' }));
    assertOpenAIError(res, 502, 'upstream_unreachable');
    const anth = remember(
      await postJson(gw.url, '/v1/messages', { model: 'mock', max_tokens: 5, stream: true, messages: userMsg }, { 'x-mock-reset-after': '0' }),
    );
    assertAnthropicError(anth, 502, 'api_error');
  });
});

describe('nothing secret or internal leaks', () => {
  it('no answer body holds the API key or a stack trace', () => {
    assert.ok(answers.length > 20, `bodies collected: ${answers.length}`);
    for (const text of answers) {
      assert.ok(!text.includes('SECRET'), `key in an answer: ${text}`);
      assertNoStackTrace(text, 'answer body');
    }
  });

  it("the gateway's stderr (debug level) holds neither the key nor a stack trace", async () => {
    // Give the log lines of the last exchanges a moment to be written.
    await new Promise((r) => setTimeout(r, 100));
    const stderr = gw.stderr();
    assert.ok(stderr.length > 0, 'the gateway logged something');
    assert.ok(!stderr.includes(SECRET), 'key in stderr');
    assert.ok(!stderr.includes('SECRET'), 'part of the key in stderr');
    assertNoStackTrace(stderr, 'stderr');
    for (const line of stderr.split('\n').filter(Boolean)) {
      assert.doesNotThrow(() => JSON.parse(line), `stderr lines are JSON: ${line}`);
    }
  });
});
