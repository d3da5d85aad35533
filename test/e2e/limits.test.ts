/**
 * Limits and budgets through the real gateway: 5,000 racing requests against a limit of N admit
 * exactly N over 2 workers (shared memory) and over 2 gateway nodes (Redis); 429s carry OpenAI's
 * rate-limit headers; a token budget that runs out mid-stream finishes or cuts the answer as
 * configured; Redis down → fail-open or fail-closed.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { generateKey, hashKey } from '../../src/governance/keys.js';
import { admin, cleanupE2E, closedPort, parseSse, postJson, raw, startGateway } from '../helpers/index.js';

const prefix = `sluice-test-${randomBytes(4).toString('hex')}:`;
const agent = new Agent({ connections: 64 });
after(async () => {
  await agent.close();
  await cleanupE2E();
  const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

const key = generateKey();
const auth = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
const body = JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 });

/** `total` requests from 64 concurrent lanes spread over `urls`; the statuses counted. */
async function race(urls: string[], total: number): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  let sent = 0;
  const lane = async (i: number): Promise<void> => {
    while (sent < total) {
      sent++;
      const url = urls[(sent + i) % urls.length]!;
      const res = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: auth, body, dispatcher: agent });
      await res.body.text();
      counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 64 }, (_, i) => lane(i)));
  return counts;
}

const consumer = (limits: object, extra: object = {}) => ({ name: 'alice', keys: [hashKey(key)], limits, ...extra });

describe('rate limits', () => {
  it('5,000 racing requests against rpm 137 over 2 workers: exactly 137 admitted, the rest 429 with headers', async () => {
    const gw = await startGateway({ config: { providers: [{ name: 'mock', type: 'mock' }], consumers: [consumer({ rpm: 137 })] } });
    const counts = await race([gw.url], 5000);
    assert.equal(counts.get(200), 137, JSON.stringify([...counts]));
    assert.equal(counts.get(429), 5000 - 137);
    const refused = await postJson(gw.url, '/v1/chat/completions', JSON.parse(body), auth);
    assert.equal(refused.status, 429);
    assert.equal(JSON.parse(refused.text).error.type, 'rate_limit_error');
    assert.equal(refused.headers['x-ratelimit-limit-requests'], '137');
    assert.equal(refused.headers['x-ratelimit-remaining-requests'], '0');
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    const anth = await postJson(gw.url, '/v1/messages', { model: 'mock', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': key });
    assert.equal(anth.status, 429);
    assert.equal(JSON.parse(anth.text).error.type, 'rate_limit_error', 'Anthropic error shape');
  });

  it('two gateway nodes sharing Redis: exactly N admitted over both', async () => {
    const config = {
      providers: [{ name: 'mock', type: 'mock' }],
      consumers: [consumer({ rpm: 211 })],
      // Fail-closed and a generous timeout: on this 2-core box 5,000 racing requests queue behind
      // Redis, and fail-open would admit the ones that time out (by design).
      redis: { url: 'redis://127.0.0.1:6379', key_prefix: prefix, command_timeout_ms: 5_000 },
      limiter: { on_redis_error: 'closed' },
    };
    const a = await startGateway({ config });
    const b = await startGateway({ config });
    const counts = await race([a.url, b.url], 5000);
    assert.equal(counts.get(200), 211, JSON.stringify([...counts]));
    assert.equal(counts.get(429), 5000 - 211, 'every other request refused by the limit, none by a Redis failure');
  });

  it('Redis down: fail-open admits, fail-closed answers 503; the gateway keeps serving', async () => {
    const dead = await closedPort();
    const base = { providers: [{ name: 'mock', type: 'mock' }], consumers: [consumer({ rpm: 1 })], redis: { url: `redis://127.0.0.1:${dead}`, key_prefix: prefix } };
    const open = await startGateway({ config: { ...base, limiter: { on_redis_error: 'open' } } });
    for (let i = 0; i < 3; i++) assert.equal((await postJson(open.url, '/v1/chat/completions', JSON.parse(body), auth)).status, 200);
    const m = (await raw(open.adminUrl, { method: 'GET', path: '/metrics' })).text;
    assert.match(m, /^sluice_limiter_redis_up 0$/m, 'the fault shows as a metric');
    assert.match(m, /^sluice_limiter_fail_open_total [3-9]/m);
    const closed = await startGateway({ config: { ...base, limiter: { on_redis_error: 'closed' } } });
    assert.equal((await postJson(closed.url, '/v1/chat/completions', JSON.parse(body), auth)).status, 503);
  });
});

describe('budgets', () => {
  for (const mode of ['cut', 'finish'] as const) {
    it(`a token quota that runs out mid-stream: ${mode}`, async () => {
      const gw = await startGateway({
        config: {
          providers: [{ name: 'mock', type: 'mock', mock: { output_tokens: 400 } }],
          consumers: [{ name: 'alice', keys: [hashKey(key)], quotas: [{ period: 'day', tokens: 300 }] }],
          limiter: { on_budget_exhausted: mode, expected_completion_tokens: 10 },
        },
        args: ['--port', '0', '--workers', '1'],
      });
      const r = await postJson(gw.url, '/v1/chat/completions', { model: 'mock', stream: true, messages: [{ role: 'user', content: 'tell me a long story' }] }, auth);
      assert.equal(r.status, 200);
      const events = parseSse(r.text);
      const text = events.map((e) => e.data ?? '').join('');
      if (mode === 'cut') {
        assert.match(text, /budget ran out/);
        assert.ok(!events.some((e) => e.data === '[DONE]'), 'no normal end');
      } else {
        assert.doesNotMatch(text, /budget ran out/);
        assert.ok(events.some((e) => e.data === '[DONE]'));
      }
      // Either way the budget is spent now: the next request is refused before it starts.
      const next = await postJson(gw.url, '/v1/chat/completions', { model: 'mock', messages: [{ role: 'user', content: 'more' }] }, auth);
      assert.equal(next.status, 429);
      assert.match(JSON.parse(next.text).error.message, /quota|budget/i);
      if (mode === 'cut') return;

      // The admin API reads, tops up and resets the budget, in the store the workers use.
      const read = await admin(gw.adminUrl, { path: '/admin/quotas/alice' });
      assert.equal(read.status, 200, read.text);
      const day = (read.json.quotas as { period: string; tokens: { used: number; limit: number; remaining: number } }[])[0]!;
      assert.equal(day.period, 'day');
      assert.equal(day.tokens.limit, 300);
      assert.ok(day.tokens.used >= 300, JSON.stringify(day));
      const topped = await admin(gw.adminUrl, { method: 'POST', path: '/admin/quotas/alice/top-up', body: { tokens: 100_000 } });
      assert.equal(topped.status, 200, topped.text);
      assert.equal((await postJson(gw.url, '/v1/chat/completions', { model: 'mock', messages: [{ role: 'user', content: 'again' }] }, auth)).status, 200);
      const reset = await admin(gw.adminUrl, { method: 'POST', path: '/admin/quotas/alice/reset', body: {} });
      assert.equal(reset.status, 200);
      assert.equal((reset.json.quotas as { tokens: { used: number } }[])[0]!.tokens.used, 0);
      assert.equal((await admin(gw.adminUrl, { path: '/admin/quotas/nobody' })).status, 404);
    });
  }
});
