/**
 * Consumers and keys through the real gateway (2 workers): keys as Bearer or x-api-key in both
 * protocols, 401/403 in the client's protocol, the key never forwarded upstream, runtime keys made
 * and revoked through the admin API effective in every worker within a second, and across two
 * gateway nodes through Redis.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { Redis } from 'ioredis';
import { generateKey, hashKey } from '../../src/governance/keys.js';
import { startFakeOpenAI } from '../helpers/fake-openai.js';
import { admin, cleanupE2E, onFreshConnections, postJson, startGateway, tempDir } from '../helpers/index.js';

const prefix = `sluice-test-${randomBytes(4).toString('hex')}:`;
after(async () => {
  await cleanupE2E();
  const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

const aliceKey = generateKey();
const bobKey = generateKey();
const messages = [{ role: 'user' as const, content: 'who am i' }];

async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return Date.now() - t0;
    if (Date.now() - t0 > ms) assert.fail(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('consumers from config', () => {
  it('requires a known key in both protocols, limits models, and never forwards the key', async () => {
    const up = await startFakeOpenAI('up');
    const logPath = join(tempDir(), 'consumers-access.log');
    const gw = await startGateway({
      config: {
        providers: [{ name: 'up', type: 'openai-compatible', base_url: `${up.url}/v1` }, { name: 'mock', type: 'mock' }],
        models: [{ name: 'fake', targets: [{ provider: 'up', model: 'm' }] }],
        consumers: [
          { name: 'alice', keys: [hashKey(aliceKey)], models: ['mock', 'fake'], labels: { team: 'a' } },
          { name: 'bob', keys: [hashKey(bobKey)] },
        ],
        access_log: { enabled: true, path: logPath },
      },
    });
    const none = await postJson(gw.url, '/v1/chat/completions', { model: 'mock', messages });
    assert.equal(none.status, 401);
    assert.equal(JSON.parse(none.text).error.type, 'authentication_error');
    const anthNone = await postJson(gw.url, '/v1/messages', { model: 'mock', max_tokens: 10, messages });
    assert.equal(anthNone.status, 401);
    assert.equal(JSON.parse(anthNone.text).type, 'error');
    assert.equal(JSON.parse(anthNone.text).error.type, 'authentication_error');
    const wrong = await postJson(gw.url, '/v1/chat/completions', { model: 'mock', messages }, { authorization: `Bearer ${generateKey()}` });
    assert.equal(wrong.status, 401);

    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: aliceKey, maxRetries: 0 });
    const done = await openai.chat.completions.create({ model: 'mock', messages });
    assert.match(done.choices[0]?.message.content ?? '', /who am i/);
    const anthropic = new Anthropic({ baseURL: gw.url, apiKey: aliceKey, maxRetries: 0 });
    const msg = await anthropic.messages.create({ model: 'mock', max_tokens: 50, messages });
    assert.equal(msg.content[0]?.type, 'text');

    await assert.rejects(openai.chat.completions.create({ model: 'mock-large', messages }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.APIError);
      assert.equal(err.status, 403);
      return true;
    });
    const bob = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: bobKey, maxRetries: 0 });
    await bob.chat.completions.create({ model: 'mock-large', messages });

    await openai.chat.completions.create({ model: 'fake', messages });
    assert.equal(up.seen.length, 1);
    assert.equal(up.seen[0]!.key, undefined, "the consumer's key is not sent upstream");

    await new Promise((r) => setTimeout(r, 200));
    const log = readFileSync(logPath, 'utf8');
    assert.match(log, /"consumer":"alice"/);
    assert.match(log, /"consumer":"bob"/);
    assert.ok(!log.includes(aliceKey) && !log.includes(hashKey(aliceKey)), 'no key or hash in the access log');
    assert.ok(!gw.stderr().includes(aliceKey), 'no key in the logs');
  });
});

describe('runtime keys', () => {
  it('a key made through the admin API works in every worker within a second, and stops when revoked', async () => {
    const gw = await startGateway({
      config: { providers: [{ name: 'mock', type: 'mock' }], consumers: [{ name: 'carol' }] },
    });
    const made = await admin(gw.adminUrl, { method: 'POST', path: '/admin/keys', body: { consumer: 'carol' } });
    assert.equal(made.status, 201, made.text);
    const key = made.json.key as string;
    const id = made.json.id as string;
    assert.match(key, /^sk-sluice-/);
    const auth = { authorization: `Bearer ${key}` };
    const works = await within(1_000, async () => (await onFreshConnections(gw.url, 'mock', 24, auth)).every((r) => r.status === 200));
    assert.ok(works < 1_000);
    const listed = await admin(gw.adminUrl, { path: '/admin/keys' });
    assert.deepEqual(
      (listed.json.keys as { id: string; consumer: string }[]).map((k) => [k.id, k.consumer]),
      [[id, 'carol']],
    );
    assert.ok(!listed.text.includes(key) && !listed.text.includes('sha256:'), 'listings show neither the key nor its hash');

    const unknown = await admin(gw.adminUrl, { method: 'POST', path: '/admin/keys', body: { consumer: 'nobody' } });
    assert.equal(unknown.status, 404);

    const revoked = await admin(gw.adminUrl, { method: 'DELETE', path: `/admin/keys/${id}` });
    assert.equal(revoked.status, 200);
    await within(1_000, async () => (await onFreshConnections(gw.url, 'mock', 24, auth)).every((r) => r.status === 401));
  });

  it('with Redis, a key made on one node works on another, and a revocation there reaches the first', async () => {
    const config = {
      providers: [{ name: 'mock', type: 'mock' }],
      consumers: [{ name: 'dave' }],
      redis: { url: 'redis://127.0.0.1:6379', key_prefix: prefix },
    };
    const a = await startGateway({ config });
    const b = await startGateway({ config });
    const made = await admin(a.adminUrl, { method: 'POST', path: '/admin/keys', body: { consumer: 'dave' } });
    assert.equal(made.status, 201, made.text);
    const auth = { authorization: `Bearer ${made.json.key as string}` };
    await within(1_000, async () => (await onFreshConnections(b.url, 'mock', 8, auth)).every((r) => r.status === 200));
    const revoked = await admin(b.adminUrl, { method: 'DELETE', path: `/admin/keys/${made.json.id as string}` });
    assert.equal(revoked.status, 200);
    await within(1_000, async () => (await onFreshConnections(a.url, 'mock', 8, auth)).every((r) => r.status === 401));

    // A node started later loads the keys that exist.
    const again = await admin(a.adminUrl, { method: 'POST', path: '/admin/keys', body: { consumer: 'dave' } });
    const c = await startGateway({ config });
    const late = await postJson(c.url, '/v1/chat/completions', { model: 'mock', messages }, { authorization: `Bearer ${again.json.key as string}` });
    assert.equal(late.status, 200);
  });
});
