/**
 * The gateway's other endpoints through the real process: legacy completions and embeddings (via
 * the OpenAI SDK, to an OpenAI-compatible server and to the built-in mock), operations a provider
 * does not support, the model list in both SDK shapes, /healthz, unknown routes and wrong methods.
 */

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import {
  cleanupE2E,
  postJson,
  raw,
  startGateway,
  startGeminiFake,
  startMock,
  type GatewayProcess,
} from '../helpers/index.js';

let gw: GatewayProcess;
let openai: OpenAI;
let anthropic: Anthropic;

before(async () => {
  const mock = await startMock({ models: ['mock', 'mock-large', 'upstream-only'] });
  const gemini = await startGeminiFake();
  gw = await startGateway({
    config: {
      log: { level: 'warn' },
      providers: [
        { name: 'oai', type: 'openai-compatible', base_url: `http://127.0.0.1:${mock.port}/v1` },
        { name: 'anth', type: 'anthropic', base_url: `http://127.0.0.1:${mock.port}`, api_key: 'x' },
        { name: 'gem', type: 'gemini', base_url: gemini.url, api_key: 'g' },
        { name: 'mk', type: 'mock' },
      ],
      models: [
        { name: 'text-oai', targets: [{ provider: 'oai', model: 'mock' }] },
        { name: 'text-mock', targets: [{ provider: 'mk', model: 'mock' }] },
        { name: 'claude-route', targets: [{ provider: 'anth', model: 'mock' }] },
        { name: 'gemini-route', targets: [{ provider: 'gem', model: 'gemini-fake' }] },
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

describe('/v1/completions', () => {
  for (const model of ['text-oai', 'text-mock']) {
    it(`${model}: text, finish_reason and usage; streamed text assembles the same`, async () => {
      const res = await openai.completions.create({ model, prompt: 'say it twice' });
      assert.equal(res.object, 'text_completion');
      assert.equal(res.choices[0]!.text, 'Echo: say it twice');
      assert.equal(res.choices[0]!.finish_reason, 'stop');
      assert.deepEqual(
        [res.usage?.prompt_tokens, res.usage?.completion_tokens, res.usage?.total_tokens],
        [3, 4, 7],
      );
      const stream = await openai.completions.create({ model, prompt: 'say it twice', stream: true, max_tokens: 3 });
      let text = '';
      let finish: string | null = null;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.text ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      assert.equal(text, 'Echo: say it ');
      assert.equal(finish, 'length');
    });
  }

  it('to a provider without completions (anthropic): 400 unsupported_operation', async () => {
    await assert.rejects(openai.completions.create({ model: 'claude-route', prompt: 'x' }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.BadRequestError);
      assert.equal(err.code, 'unsupported_operation');
      return true;
    });
  });
});

describe('/v1/embeddings', () => {
  it('through an OpenAI-compatible server and the built-in mock: same deterministic unit vectors', async () => {
    const a = await openai.embeddings.create({ model: 'text-oai', input: ['alpha', 'beta'] });
    const b = await openai.embeddings.create({ model: 'text-mock', input: ['alpha', 'beta'] });
    assert.equal(a.object, 'list');
    assert.equal(a.data.length, 2);
    assert.deepEqual(a.data.map((d) => d.index), [0, 1]);
    for (const d of a.data) {
      assert.equal(d.embedding.length, 64);
      const norm = Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0));
      assert.ok(Math.abs(norm - 1) < 1e-5, `unit vector, norm ${norm}`);
    }
    assert.deepEqual(a.data.map((d) => d.embedding), b.data.map((d) => d.embedding));
    assert.notDeepEqual(a.data[0]!.embedding, a.data[1]!.embedding);
    assert.equal(a.usage.prompt_tokens, 2);
  });

  it('float and base64 encodings agree; dimensions is honoured', async () => {
    const floats = await openai.embeddings.create({ model: 'text-oai', input: 'alpha', encoding_format: 'float', dimensions: 8 });
    const b64 = await postJson(gw.url, '/v1/embeddings', { model: 'text-oai', input: 'alpha', encoding_format: 'base64', dimensions: 8 });
    assert.equal(b64.status, 200);
    const bytes = Buffer.from(JSON.parse(b64.text).data[0].embedding as string, 'base64');
    const decoded = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
    assert.equal(floats.data[0]!.embedding.length, 8);
    assert.deepEqual(decoded, floats.data[0]!.embedding);
  });

  for (const model of ['claude-route', 'gemini-route']) {
    it(`to a provider without embeddings (${model}): 400 unsupported_operation in OpenAI shape`, async () => {
      await assert.rejects(openai.embeddings.create({ model, input: 'x' }), (err: unknown) => {
        assert.ok(err instanceof OpenAI.BadRequestError, String(err));
        assert.equal(err.status, 400);
        assert.equal(err.code, 'unsupported_operation');
        assert.equal(err.type, 'invalid_request_error');
        return true;
      });
    });
  }
});

describe('GET /v1/models', () => {
  const expected = ['text-oai', 'text-mock', 'claude-route', 'gemini-route', 'mock', 'mock-large', 'upstream-only'];

  it('OpenAI shape via models.list(): routes, discovered models and exact provider models', async () => {
    const ids: string[] = [];
    for await (const m of openai.models.list()) {
      assert.equal(m.object, 'model');
      assert.equal(typeof m.owned_by, 'string');
      ids.push(m.id);
    }
    for (const id of expected) assert.ok(ids.includes(id), `${id} listed in ${ids.join(', ')}`);
    assert.ok(!ids.some((id) => id.includes('*')), 'patterns are not listed');
    assert.equal(new Set(ids).size, ids.length, 'no duplicates');
  });

  it('Anthropic shape via anthropic.models.list() (anthropic-version header)', async () => {
    const ids: string[] = [];
    for await (const m of anthropic.models.list()) {
      assert.equal(m.type, 'model');
      assert.equal(typeof m.display_name, 'string');
      assert.ok(!Number.isNaN(Date.parse(m.created_at)));
      ids.push(m.id);
    }
    for (const id of expected) assert.ok(ids.includes(id), `${id} listed`);
    const rawPage = JSON.parse((await raw(gw.url, { path: '/v1/models', headers: { 'anthropic-version': '2023-06-01' } })).text);
    assert.equal(rawPage.has_more, false);
    assert.equal(rawPage.first_id, rawPage.data[0].id);
    assert.equal(rawPage.last_id, rawPage.data[rawPage.data.length - 1].id);
  });
});

describe('routing table edges', () => {
  it('a query string does not change the route (Azure-style clients add one)', async () => {
    const res = await postJson(gw.url, '/v1/chat/completions?api-version=2024-10-21', { model: 'text-mock', messages: [{ role: 'user', content: 'q' }] });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.text).choices[0].message.content, 'Echo: q');
  });

  it('/healthz answers 200 {"status":"ok"}', async () => {
    const res = await raw(gw.url, { path: '/healthz' });
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] ?? '', /application\/json/);
    assert.deepEqual(JSON.parse(res.text), { status: 'ok' });
  });

  it('an unknown route is a 404 with an OpenAI-shaped error', async () => {
    const res = await raw(gw.url, { path: '/v1/nothing-here' });
    assert.equal(res.status, 404);
    assert.match(res.headers['content-type'] ?? '', /application\/json/);
    const body = JSON.parse(res.text);
    assert.equal(body.error.type, 'not_found_error');
    assert.equal(body.error.code, 'not_found');
    assert.equal(typeof body.error.message, 'string');
    assert.ok('param' in body.error);
  });

  it('an unknown route under /v1/messages answers in Anthropic shape', async () => {
    const res = await postJson(gw.url, '/v1/messages/count_tokens', { model: 'x', messages: [] });
    assert.equal(res.status, 404);
    const body = JSON.parse(res.text);
    assert.equal(body.type, 'error');
    assert.equal(body.error.type, 'not_found_error');
  });

  it('the SDK surfaces an unknown route as NotFoundError', async () => {
    await assert.rejects(openai.get('/nope'), (err: unknown) => err instanceof OpenAI.NotFoundError);
  });

  for (const [method, path] of [
    ['GET', '/v1/chat/completions'],
    ['PUT', '/v1/messages'],
    ['DELETE', '/v1/models'],
    ['POST', '/healthz'],
    ['GET', '/v1/embeddings'],
  ] as const) {
    it(`${method} ${path} is a 405 in the route's protocol`, async () => {
      const res = await raw(gw.url, { method, path, ...(method === 'GET' ? {} : { body: '{}' }) });
      assert.equal(res.status, 405);
      const body = JSON.parse(res.text);
      if (path === '/v1/messages') assert.equal(body.type, 'error');
      else assert.equal(body.error.code, 'method_not_allowed');
    });
  }
});
