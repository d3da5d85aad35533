/**
 * Two gateway nodes sharing a cache through a real Redis. Skipped where no redis-server is
 * installed (the link is optional; the rest of the cache does not need Redis).
 */

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';

import { RedisCacheLink } from '../../src/cache/redis-link.js';
import { ResponseCache } from '../../src/cache/response-cache.js';
import { answer, cacheRequest, chat, config } from './helpers.js';

function hasRedis(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

describe('RedisCacheLink', { skip: hasRedis() ? false : 'redis-server is not installed' }, () => {
  let redis: ChildProcess;
  let url: string;

  before(async () => {
    const port = await freePort();
    url = `redis://127.0.0.1:${port}`;
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      redis.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('Ready to accept connections')) resolve();
      });
      redis.on('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
    });
  });
  after(() => {
    redis.kill('SIGTERM');
  });

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
