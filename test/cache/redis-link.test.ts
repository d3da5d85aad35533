/**
 * Two gateway nodes sharing a cache through a real Redis. Skipped where no redis-server is
 * installed (the link is optional; the rest of the cache does not need Redis).
 */

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hasRedisServer, type PrivateRedis, startRedisServer } from '../helpers/redis-server.js';

import { RedisCacheLink } from '../../src/cache/redis-link.js';
import { ResponseCache } from '../../src/cache/response-cache.js';
import { answer, cacheRequest, chat, config } from './helpers.js';

describe('RedisCacheLink', { skip: hasRedisServer() ? false : 'redis-server is not installed' }, () => {
  let redis: PrivateRedis;
  let url: string;

  before(async () => {
    redis = await startRedisServer();
    url = redis.url;
  });
  after(() => redis.stop());

  it('an answer stored on one node is a hit on another within 100 ms', async () => {
    const nodeB = new ResponseCache(config({ semantic: { enabled: false } }), { sweepIntervalMs: 0 });
    const linkB = await RedisCacheLink.connect({ url, nodeId: 'b' }, (r) => nodeB.applyRecord(r));
    const linkA = await RedisCacheLink.connect({ url, nodeId: 'a' }, () => assert.fail('a node does not receive its own records'));
    const nodeA = new ResponseCache(config({ semantic: { enabled: false } }), { sweepIntervalMs: 0, onStored: (r) => linkA.publish(r) });
    try {
      const t0 = performance.now();
      const ticket = nodeA.prepare(cacheRequest(chat('What is the capital of France?')));
      nodeA.store(ticket, answer('Paris.'), { provider: 'openai', model: 'gpt-4o' });
      let status = 'miss';
      while (performance.now() - t0 < 1000 && status !== 'hit') {
        await new Promise((r) => setTimeout(r, 2));
        status = (nodeB.lookup(nodeB.prepare(cacheRequest(chat('What is the capital of France?')))) as { status: string }).status;
      }
      const took = performance.now() - t0;
      assert.equal(status, 'hit');
      assert.ok(took < 100, `visible on node B after ${took.toFixed(1)} ms`);

      // A node that missed the announcement can still fetch the record by its exact key.
      const fetched = await linkB.get(ticket.key);
      assert.equal((fetched as { key: string }).key, ticket.key);
      assert.equal(await linkB.get('no-such-key'), undefined);
    } finally {
      await linkA.close();
      await linkB.close();
    }
  });
});
