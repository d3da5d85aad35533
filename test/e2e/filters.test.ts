/**
 * Request and response filters and model mapping, through the real gateway process. A recording
 * upstream (forwarding to the mock) shows what the gateway actually sent; the client sees the rest.
 */

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import {
  cleanupE2E,
  postJson,
  startGateway,
  startMock,
  startRecorder,
  type GatewayProcess,
  type RecordedRequest,
  type Recorder,
} from '../helpers/index.js';

let gw: GatewayProcess;
let rec: Recorder;
let openai: OpenAI;
let anthropic: Anthropic;

/** A self-hosted OpenAI-style server listing `shared` and `only-NAME`, answering `served by NAME`. */
async function fakeServer(name: string, modelsDelayMs: number): Promise<Recorder> {
  return startRecorder({
    respond: (req, res) => {
      if (req.method === 'GET' && req.url === '/v1/models') {
        const timer = setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' }).end(
            JSON.stringify({ object: 'list', data: [{ id: 'shared', object: 'model' }, { id: `only-${name}`, object: 'model' }] }),
          );
        }, modelsDelayMs);
        res.once('close', () => clearTimeout(timer));
        return;
      }
      const model = JSON.parse(req.body.toString() || '{}').model;
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          id: 'x',
          object: 'chat.completion',
          created: 0,
          model,
          choices: [{ index: 0, message: { role: 'assistant', content: `served by ${name}` }, finish_reason: 'stop' }],
        }),
      );
    },
  });
}

before(async () => {
  const mock = await startMock();
  rec = await startRecorder({ forwardTo: `http://127.0.0.1:${mock.port}` });
  // The first self-hosted provider answers /v1/models last.
  const slowFirst = await fakeServer('a', 400);
  const fastSecond = await fakeServer('b', 0);
  gw = await startGateway({
    config: {
      log: { level: 'warn' },
      providers: [
        { name: 'rec', type: 'openai', base_url: `${rec.url}/v1`, api_key: 'k-rec', headers: { 'x-tenant': 'default', 'x-drop': 'me' } },
        { name: 'mk', type: 'mock' },
        { name: 'anth', type: 'anthropic', base_url: `http://127.0.0.1:${mock.port}`, api_key: 'x' },
        { name: 'sh-a', type: 'openai-compatible', base_url: `${slowFirst.url}/v1` },
        { name: 'sh-b', type: 'openai-compatible', base_url: `${fastSecond.url}/v1` },
      ],
      models: [
        { name: 'alias', targets: [{ provider: 'rec', model: 'mock' }] },
        { name: 'hidden', targets: [{ provider: 'rec', model: 'mock' }] },
        { name: 'team-*', targets: [{ provider: 'rec' }] },
        { name: 'team-special', targets: [{ provider: 'mk', model: 'mock' }] },
        { name: 'glob-?x', targets: [{ provider: 'rec', model: 'mock' }] },
        { name: 'gpt-4o*', targets: [{ provider: 'mk', model: 'mock' }] },
        { name: 'gpt-*', targets: [{ provider: 'rec', model: 'mock' }] },
        { name: 'body-*', targets: [{ provider: 'rec', model: 'mock' }] },
        { name: 'order-*', targets: [{ provider: 'rec', model: 'mock' }] },
        { name: 'usage-default', targets: [{ provider: 'anth', model: 'mock' }] },
      ],
      filters: [
        { type: 'headers', request: { set: { 'x-team': 'research', 'x-order': 'one', 'x-tenant': 'override' }, remove: ['x-drop'] } },
        { type: 'headers', match: { models: ['order-*'] }, request: { set: { 'x-order': 'two' } } },
        {
          type: 'headers',
          match: { protocols: ['anthropic'] },
          request: { set: { 'x-proto': 'anthropic' } },
          response: { set: { 'x-proto-seen': 'anthropic' } },
        },
        {
          type: 'headers',
          match: { models: ['hidden'] },
          response: { set: { 'x-served-by': 'sluice' }, remove: ['x-sluice-attempts', 'x-sluice-model'] },
        },
        {
          type: 'body',
          match: { models: ['body-*'] },
          defaults: { max_tokens: 2, temperature: 0.9 },
          overrides: { top_p: 0.5, model: 'not-allowed' },
          remove: ['logit_bias'],
        },
        { type: 'body', match: { models: ['body-*'], protocols: ['anthropic'] }, overrides: { temperature: 0.3 } },
        { type: 'body', match: { models: ['usage-default'] }, defaults: { stream_options: { include_usage: true } } },
        { type: 'body', match: { models: ['order-a'] }, overrides: { max_tokens: 3 } },
        { type: 'body', match: { models: ['order-*'] }, remove: ['max_tokens'] },
        { type: 'body', match: { models: ['order-b'] }, overrides: { max_tokens: 4 } },
      ],
    },
  });
  openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'client-key', maxRetries: 0, timeout: 10_000 });
  anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'client-key', maxRetries: 0, timeout: 10_000 });
});

after(async () => {
  await cleanupE2E();
  assert.equal(gw.hasExited(), true);
});

const hi = [{ role: 'user' as const, content: 'hello there friend' }];

/** The chat request the recorder received while `fn` ran. */
async function upstreamOf(fn: () => Promise<unknown>): Promise<RecordedRequest & { json: Record<string, unknown> }> {
  const before = rec.requests.length;
  await fn();
  const sent = rec.requests.slice(before).filter((r) => r.method === 'POST');
  assert.equal(sent.length, 1, 'one upstream request');
  return Object.assign(sent[0]!, { json: JSON.parse(sent[0]!.body.toString()) as Record<string, unknown> });
}

describe('headers filter', () => {
  it('request.set reaches the upstream and replaces a provider header; request.remove drops one', async () => {
    const up = await upstreamOf(() => openai.chat.completions.create({ model: 'alias', messages: hi }));
    assert.equal(up.headers['x-team'], 'research');
    assert.equal(up.headers['x-tenant'], 'override', 'filter after the provider headers');
    assert.equal(up.headers['x-drop'], undefined);
    assert.equal(up.headers['authorization'], 'Bearer k-rec', 'provider key, not the client key');
    assert.equal(up.headers['x-proto'], undefined, 'protocol-matched filter skipped for OpenAI clients');
  });

  it('match.protocols: an Anthropic client gets the anthropic-only edits, both ways', async () => {
    let headers: Headers | undefined;
    const up = await upstreamOf(async () => {
      const { response } = await anthropic.messages.create({ model: 'alias', max_tokens: 20, messages: hi }).withResponse();
      headers = response.headers;
    });
    assert.equal(up.headers['x-proto'], 'anthropic');
    assert.equal(up.headers['x-team'], 'research');
    assert.equal(headers?.get('x-proto-seen'), 'anthropic');
  });

  it('response.set and response.remove edit what the client sees (match.models)', async () => {
    const plain = await postJson(gw.url, '/v1/chat/completions', { model: 'alias', messages: hi });
    assert.equal(plain.headers['x-served-by'], undefined);
    assert.equal(plain.headers['x-sluice-attempts'], '1');
    const hidden = await postJson(gw.url, '/v1/chat/completions', { model: 'hidden', messages: hi });
    assert.equal(hidden.status, 200);
    assert.equal(hidden.headers['x-served-by'], 'sluice');
    assert.equal(hidden.headers['x-sluice-attempts'], undefined);
    assert.equal(hidden.headers['x-sluice-model'], undefined);
    assert.equal(hidden.headers['x-sluice-provider'], 'rec');
    const streamed = await postJson(gw.url, '/v1/chat/completions', { model: 'hidden', stream: true, messages: hi });
    assert.equal(streamed.headers['x-served-by'], 'sluice');
    assert.equal(streamed.headers['x-sluice-attempts'], undefined);
  });

  it('filters run in config order: the later set wins', async () => {
    const first = await upstreamOf(() => openai.chat.completions.create({ model: 'alias', messages: hi }));
    assert.equal(first.headers['x-order'], 'one');
    const second = await upstreamOf(() => openai.chat.completions.create({ model: 'order-x', messages: hi }));
    assert.equal(second.headers['x-order'], 'two');
  });

  it('x-mock-* client headers reach only the built-in mock', async () => {
    const up = await upstreamOf(async () => {
      const res = await postJson(gw.url, '/v1/chat/completions', { model: 'alias', messages: hi }, { 'x-mock-status': '500' });
      assert.equal(res.status, 200);
    });
    assert.equal(up.headers['x-mock-status'], undefined);
    const mocked = await postJson(gw.url, '/v1/chat/completions', { model: 'team-special', messages: hi }, { 'x-mock-status': '500' });
    assert.equal(mocked.status, 500);
  });
});

describe('body filter', () => {
  it('defaults fill absent fields, overrides replace, remove drops; model is protected', async () => {
    const up = await upstreamOf(async () => {
      const res = await openai.chat.completions.create({
        model: 'body-1',
        messages: hi,
        temperature: 1.5,
        top_p: 0.1,
        logit_bias: { '50256': -100 },
      });
      // The default max_tokens (2) cut the answer.
      assert.equal(res.choices[0]!.message.content, 'Echo: hello ');
      assert.equal(res.choices[0]!.finish_reason, 'length');
    });
    assert.equal(up.json.max_tokens, 2, 'default applied');
    assert.equal(up.json.temperature, 1.5, 'client value kept over a default');
    assert.equal(up.json.top_p, 0.5, 'override applied');
    assert.equal('logit_bias' in up.json, false, 'removed');
    assert.equal(up.json.model, 'mock', 'model not changed by the filter');
  });

  it('a client value beats a default', async () => {
    const up = await upstreamOf(() => openai.chat.completions.create({ model: 'body-2', messages: hi, max_tokens: 50 }));
    assert.equal(up.json.max_tokens, 50);
  });

  it('match.models: other models are untouched', async () => {
    const up = await upstreamOf(() => openai.chat.completions.create({ model: 'alias', messages: hi, top_p: 0.1 }));
    assert.equal(up.json.top_p, 0.1);
    assert.equal('max_tokens' in up.json, false);
  });

  it('edits apply to the body as the client sent it, before translation (Anthropic client → OpenAI upstream)', async () => {
    const up = await upstreamOf(() =>
      anthropic.messages.create({ model: 'body-3', max_tokens: 20, messages: hi }),
    );
    assert.equal(up.json.temperature, 0.3, 'anthropic-only override, translated');
    assert.equal(up.json.top_p, 0.5, 'override for every protocol');
    assert.equal(up.json.max_tokens, 20, 'the client sent max_tokens: no default');
    assert.ok(Array.isArray(up.json.messages), 'an OpenAI body upstream');
  });

  it('filters run in config order: override-then-remove vs remove-then-override', async () => {
    const a = await upstreamOf(() => openai.chat.completions.create({ model: 'order-a', messages: hi, max_tokens: 9 }));
    assert.equal('max_tokens' in a.json, false);
    const b = await upstreamOf(() => openai.chat.completions.create({ model: 'order-b', messages: hi, max_tokens: 9 }));
    assert.equal(b.json.max_tokens, 4);
  });

  it('a default stream_options.include_usage gives a streaming client its usage chunk', async () => {
    const stream = await openai.chat.completions.create({ model: 'usage-default', messages: hi, stream: true });
    const usage = [];
    for await (const chunk of stream) if (chunk.usage) usage.push(chunk.usage);
    assert.equal(usage.length, 1);
    assert.equal(usage[0]!.completion_tokens, 4);
  });
});

describe('x-sluice-* response headers', () => {
  it('name the provider, the upstream model and the attempts (JSON, stream, upstream error)', async () => {
    const json = await postJson(gw.url, '/v1/chat/completions', { model: 'alias', messages: hi });
    assert.equal(json.headers['x-sluice-provider'], 'rec');
    assert.equal(json.headers['x-sluice-model'], 'mock');
    assert.equal(json.headers['x-sluice-attempts'], '1');
    assert.ok(json.headers['x-request-id']);
    const sse = await postJson(gw.url, '/v1/messages', { model: 'team-special', max_tokens: 10, stream: true, messages: hi });
    assert.equal(sse.headers['x-sluice-provider'], 'mk');
    assert.equal(sse.headers['x-sluice-model'], 'mock');
    const failed = await postJson(gw.url, '/v1/chat/completions', { model: 'team-special', messages: hi }, { 'x-mock-status': '429' });
    assert.equal(failed.status, 429);
    assert.equal(failed.headers['x-sluice-provider'], 'mk');
  });

  it('the client x-request-id is echoed', async () => {
    const res = await postJson(gw.url, '/v1/chat/completions', { model: 'alias', messages: hi }, { 'x-request-id': 'trace-abc.123' });
    assert.equal(res.headers['x-request-id'], 'trace-abc.123');
  });
});

describe('model mapping', () => {
  async function served(model: string): Promise<{ provider: string | undefined; upstreamModel: string | undefined; status: number; body: string }> {
    const res = await postJson(gw.url, '/v1/chat/completions', { model, messages: hi });
    return {
      provider: res.headers['x-sluice-provider'] as string | undefined,
      upstreamModel: res.headers['x-sluice-model'] as string | undefined,
      status: res.status,
      body: res.text,
    };
  }

  it('exact name → its target provider and model', async () => {
    const s = await served('alias');
    assert.deepEqual([s.status, s.provider, s.upstreamModel], [200, 'rec', 'mock']);
    const up = await upstreamOf(() => openai.chat.completions.create({ model: 'alias', messages: hi }));
    assert.equal(up.json.model, 'mock');
  });

  it('glob without a target model keeps the client name upstream', async () => {
    const up = await upstreamOf(() => openai.chat.completions.create({ model: 'team-alpha', messages: hi }));
    assert.equal(up.json.model, 'team-alpha');
    const s = await served('team-beta');
    assert.equal(s.provider, 'rec');
    assert.equal(s.upstreamModel, 'team-beta');
  });

  it('an exact route beats an earlier glob that also matches', async () => {
    const s = await served('team-special');
    assert.equal(s.provider, 'mk');
    assert.equal(s.upstreamModel, 'mock');
  });

  it('globs match in config order; ? is one character', async () => {
    assert.equal((await served('gpt-4o-mini')).provider, 'mk');
    assert.equal((await served('gpt-3.5-turbo')).provider, 'rec');
    assert.equal((await served('glob-ax')).upstreamModel, 'mock');
    assert.equal((await served('glob-abx')).status, 404);
  });

  it('provider/model addresses a provider directly', async () => {
    const up = await upstreamOf(() => openai.chat.completions.create({ model: 'rec/some-model', messages: hi }));
    assert.equal(up.json.model, 'some-model');
    const s = await served('mk/whatever');
    assert.equal(s.provider, 'mk');
    assert.equal(s.upstreamModel, 'whatever');
    assert.equal((await served('nobody/x')).status, 404);
    assert.equal((await served('rec/')).status, 404);
  });

  it("a provider's default patterns serve what no route names (mock-*)", async () => {
    const s = await served('mock-anything');
    assert.equal(s.provider, 'mk');
    assert.equal(s.upstreamModel, 'mock-anything');
  });

  it('models discovered from self-hosted servers are served by the server that lists them', async () => {
    assert.match((await served('only-a')).body, /served by a/);
    assert.match((await served('only-b')).body, /served by b/);
  });

  it('a model two self-hosted servers list goes to the first in config order, whichever answered first', async () => {
    const s = await served('shared');
    assert.equal(s.provider, 'sh-a', `served by ${s.provider}`);
    assert.match(s.body, /served by a/);
  });

  it('unknown model → 404 model_not_found', async () => {
    const s = await served('no-such-model');
    assert.equal(s.status, 404);
    assert.equal(JSON.parse(s.body).error.code, 'model_not_found');
    assert.equal(s.provider, undefined);
  });
});
