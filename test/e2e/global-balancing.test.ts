/**
 * global_least_request across two gateway nodes sharing one Redis: a replica kept busy through one
 * node is avoided by the other, and a node that goes away stops counting once its lease expires.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startFakeOpenAI } from '../helpers/fake-openai.js';
import { cleanupE2E, postJson, startGateway } from '../helpers/index.js';

const prefix = `sluice-test-${randomBytes(4).toString('hex')}:`;
const redisUrl = 'redis://127.0.0.1:6379';

after(async () => {
  await cleanupE2E();
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const chat = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };

describe('global_least_request', () => {
  it("counts another node's requests in flight, and forgets a node that went away", async () => {
    const a = await startFakeOpenAI('a', { kind: 'ok', delayMs: 2_500 });
    const b = await startFakeOpenAI('b', { kind: 'ok', delayMs: 300 });
    const redis = { url: redisUrl, key_prefix: prefix, load_report_interval_ms: 50 };
    // Node 1 knows only replica a (same provider name and URL: the same endpoint for both nodes).
    const node1 = await startGateway({
      config: {
        redis,
        providers: [{ name: 'fleet', type: 'openai-compatible', endpoints: [{ url: `${a.url}/v1` }], balancer: 'global_least_request' }],
        models: [{ name: 'm', targets: [{ provider: 'fleet' }] }],
      },
    });
    const node2 = await startGateway({
      config: {
        redis,
        providers: [
          {
            name: 'fleet',
            type: 'openai-compatible',
            endpoints: [{ url: `${a.url}/v1` }, { url: `${b.url}/v1` }],
            balancer: 'global_least_request',
          },
        ],
        models: [{ name: 'm', targets: [{ provider: 'fleet' }] }],
      },
    });
    const busy = Array.from({ length: 6 }, () => postJson(node1.url, '/v1/chat/completions', chat));
    await sleep(400);
    assert.equal(a.inFlight, 6);
    // Node 2 has nothing in flight itself: only the shared counts say replica a is busy.
    const answers = await Promise.all(Array.from({ length: 4 }, () => postJson(node2.url, '/v1/chat/completions', chat)));
    assert.ok(answers.every((r) => r.status === 200));
    assert.equal(b.seen.length, 4, `node 2 sent ${4 - b.seen.length} of 4 to the replica busy through node 1`);
    await Promise.all(busy);

    // Node 1 stops with requests in flight; once its lease expires, replica a is idle again for node 2.
    const again = Array.from({ length: 6 }, () => postJson(node1.url, '/v1/chat/completions', chat).catch(() => undefined));
    await sleep(300);
    await node1.stop(0);
    void Promise.all(again);
    await sleep(1_500);
    a.behave({ kind: 'ok', delayMs: 10 });
    b.behave({ kind: 'ok', delayMs: 10 });
    const before = a.seen.length;
    await Promise.all(Array.from({ length: 20 }, () => postJson(node2.url, '/v1/chat/completions', chat)));
    assert.ok(a.seen.length - before >= 4, `replica a is used again: ${a.seen.length - before} of 20`);
  });
});
