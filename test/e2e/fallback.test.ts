/**
 * Fallback along a route's targets: a failure another upstream may not share (unreachable, timeout,
 * 429, 5xx), while nothing has reached the client, moves the request to the next target — also to
 * another provider speaking another protocol. After the first byte there is no silent retry.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { cleanupE2E, closedPort, parseSse, postJson, startGateway, startMock, type GatewayProcess } from '../helpers/index.js';

let gw: GatewayProcess;
let openai: OpenAI;
let anthropic: Anthropic;
const user = [{ role: 'user' as const, content: 'hello fallback' }];

before(async () => {
  const mock = await startMock();
  const dead = await closedPort();
  gw = await startGateway({
    config: {
      providers: [
        { name: 'dead', type: 'openai-compatible', base_url: `http://127.0.0.1:${dead}/v1`, timeouts: { connect_ms: 1000 } },
        { name: 'oai', type: 'openai-compatible', base_url: `${mock.url}/v1` },
        { name: 'anth', type: 'anthropic', base_url: mock.url, api_key: 'x' },
        // Every request to these answers with an error status.
        { name: 'oai-500', type: 'mock', mock: { error_status: 500, error_every: 1 } },
        { name: 'oai-429', type: 'mock', mock: { error_status: 429, error_every: 1 } },
        { name: 'oai-400', type: 'mock', mock: { error_status: 400, error_every: 1 } },
        { name: 'mk', type: 'mock' },
      ],
      models: [
        { name: 'unreachable-then-ok', targets: [{ provider: 'dead', model: 'mock' }], fallbacks: [{ provider: 'oai', model: 'mock' }] },
        { name: 'five-hundred-then-anthropic', targets: [{ provider: 'oai-500', model: 'mock' }], fallbacks: [{ provider: 'anth', model: 'mock' }] },
        { name: 'rate-limited-then-ok', targets: [{ provider: 'oai-429', model: 'mock' }], fallbacks: [{ provider: 'mk', model: 'mock' }] },
        { name: 'client-error-no-fallback', targets: [{ provider: 'oai-400', model: 'mock' }], fallbacks: [{ provider: 'mk', model: 'mock' }] },
        { name: 'all-fail', targets: [{ provider: 'dead', model: 'mock' }], fallbacks: [{ provider: 'oai-500', model: 'mock' }], retry: { max_retries: 0 } },
        { name: 'midstream', targets: [{ provider: 'mk', model: 'mock' }], fallbacks: [{ provider: 'oai', model: 'mock' }] },
      ],
    },
  });
  openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'k', maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'k', maxRetries: 0 });
});

after(cleanupE2E);

describe('fallback before the first byte', () => {
  it('an unreachable first target falls back to the next; the headers say what happened', async () => {
    const res = await postJson(gw.url, '/v1/chat/completions', { model: 'unreachable-then-ok', messages: user });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-sluice-provider'], 'oai');
    assert.equal(res.headers['x-sluice-attempts'], '2');
    assert.match(JSON.parse(res.text).choices[0].message.content, /hello fallback/);
  });

  it('a 5xx falls back across protocols (OpenAI client → Anthropic upstream), streaming too', async () => {
    const done = await openai.chat.completions.create({ model: 'five-hundred-then-anthropic', messages: user });
    assert.match(done.choices[0]?.message.content ?? '', /hello fallback/);
    const stream = await openai.chat.completions.create({ model: 'five-hundred-then-anthropic', messages: user, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    assert.match(text, /hello fallback/);
    const raw = await postJson(gw.url, '/v1/chat/completions', { model: 'five-hundred-then-anthropic', messages: user });
    assert.equal(raw.headers['x-sluice-provider'], 'anth');
    assert.equal(raw.headers['x-sluice-attempts'], '2');
  });

  it('a 429 falls back; an Anthropic client sees only the good answer', async () => {
    const msg = await anthropic.messages.create({ model: 'rate-limited-then-ok', max_tokens: 50, messages: user });
    const block = msg.content[0];
    assert.ok(block && block.type === 'text');
    assert.match(block.text, /hello fallback/);
  });

  it('a client error (400) is not retried elsewhere: it would fail the same way', async () => {
    const res = await postJson(gw.url, '/v1/chat/completions', { model: 'client-error-no-fallback', messages: user });
    assert.equal(res.status, 400);
    assert.equal(res.headers['x-sluice-attempts'], '1');
  });

  it('when every target fails, the last failure is the answer, in the client protocol', async () => {
    const res = await postJson(gw.url, '/v1/chat/completions', { model: 'all-fail', messages: user });
    assert.equal(res.status, 500, res.text);
    assert.equal(res.headers['x-sluice-attempts'], '2');
    const anth = await postJson(gw.url, '/v1/messages', { model: 'all-fail', max_tokens: 5, messages: user });
    assert.equal(anth.status, 500);
    assert.equal(JSON.parse(anth.text).type, 'error');
  });
});

describe('after the first byte, never a silent retry', () => {
  it('a reset mid-stream ends the stream with an error event even though another target exists', async () => {
    const res = await postJson(
      gw.url,
      '/v1/chat/completions',
      { model: 'midstream', stream: true, messages: [{ role: 'user', content: 'one two three four five six' }] },
      { 'x-mock-reset-after': '3', 'x-mock-tps': '200' },
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-sluice-attempts'], '1');
    const events = parseSse(res.text).filter((e) => e.data !== undefined);
    assert.ok(!events.some((e) => e.data === '[DONE]'));
    assert.equal(JSON.parse(events[events.length - 1]!.data!).error.code, 'upstream_unreachable');
  });
});
