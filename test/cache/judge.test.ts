import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { HttpJudge } from '../../src/cache/judge.js';
import { ResponseCache } from '../../src/cache/response-cache.js';
import { answer, cacheRequest, chat, config } from './helpers.js';

const BOW_WORKER = new URL('./fixtures/bow-embed-worker.js', import.meta.url);

describe('HttpJudge', () => {
  let server: Server;
  let base: string;
  let reply: { status: number; content: string; delayMs: number } = { status: 200, content: 'YES', delayMs: 0 };
  const requests: { headers: Record<string, unknown>; body: { model: string; messages: { content: string }[] } }[] = [];

  before(async () => {
    server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        requests.push({ headers: req.headers, body: JSON.parse(raw) });
        setTimeout(() => {
          res.writeHead(reply.status, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: reply.content } }] }));
        }, reply.delayMs);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('accepts only a clear yes, in time; the call bypasses the cache', async () => {
    const judge = new HttpJudge({ model: 'small', timeout_ms: 200 }, base);
    reply = { status: 200, content: 'YES', delayMs: 0 };
    assert.equal(await judge.same('a', 'b'), true);
    assert.equal(requests.at(-1)?.headers['cache-control'], 'no-store');
    assert.equal(requests.at(-1)?.body.model, 'small');
    assert.match(requests.at(-1)!.body.messages[1]!.content, /Question 1: a\nQuestion 2: b/);
    for (const r of [
      { status: 200, content: 'NO', delayMs: 0 },
      { status: 200, content: 'Maybe, yes', delayMs: 0 },
      { status: 500, content: 'YES', delayMs: 0 },
      { status: 200, content: 'YES', delayMs: 1000 },
    ]) {
      reply = r;
      const t0 = performance.now();
      assert.equal(await judge.same('a', 'b'), false, JSON.stringify(r));
      assert.ok(performance.now() - t0 < 700, 'no answer in time is a no');
    }
    await judge.close();
  });

  it('a semantic candidate the judge turns down is a miss', async () => {
    const cache = await ResponseCache.start(
      config({ semantic: { embedder: { type: 'openai', base_url: 'http://unused.invalid/v1', model: 'bow' }, lookup_budget_ms: 1000, judge: { model: 'small', base_url: base, timeout_ms: 300 } } }),
      { pool: { embedWorker: BOW_WORKER }, sweepIntervalMs: 0 },
    );
    try {
      const t = cache.prepare(cacheRequest(chat('How do I reverse a list in Python?')));
      await cache.lookup(t);
      cache.store(t, answer('reversed()'), { provider: 'openai', model: 'gpt-4o' });
      for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 5));
      const para = () => cache.lookup(cache.prepare(cacheRequest(chat('In Python, how do I reverse a list?'))));
      reply = { status: 200, content: 'NO', delayMs: 0 };
      assert.equal((await para()).reason, 'judge');
      reply = { status: 200, content: 'YES', delayMs: 0 };
      assert.equal((await para()).status, 'semantic-hit');
    } finally {
      await cache.stop();
    }
  });
});
