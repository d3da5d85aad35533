/**
 * The real thing: the shipped USE-lite embedder loaded in a pool thread, the default threshold and
 * verifier, through the ResponseCache as the gateway will use it.
 */

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { ResponseCache } from '../../src/cache/response-cache.js';
import { answer, cacheRequest, chat, config } from './helpers.js';

const target = { provider: 'openai', model: 'gpt-4o' };

describe('semantic cache with USE-lite in a pool thread', () => {
  let cache: ResponseCache;

  before(async () => {
    // A generous budget: CI machines are slow and shared; the budget logic has its own tests.
    cache = await ResponseCache.start(config({ semantic: { lookup_budget_ms: 2_000 } }), { sweepIntervalMs: 0 });
    assert.ok(cache.semanticEnabled, 'USE-lite loaded');
    assert.match(cache.poolStats()!.embedder.id, /^use-lite@/);
    for (const [q, a] of [
      ['How do I reverse a list in Python?', 'Use my_list.reverse() or reversed(my_list).'],
      ['What does HTTP status code 404 mean?', 'Not Found: the server has no resource at that URL.'],
      ['How long do I boil an egg for a soft yolk?', 'About 6 minutes.'],
    ] as const) {
      const t = cache.prepare(cacheRequest(chat(q)));
      assert.equal((await cache.lookup(t)).status, 'miss');
      assert.equal(cache.store(t, answer(a), target), undefined);
    }
    for (let i = 0; i < 50 && cache.stats().entries < 3; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
  });
  after(async () => {
    await cache.stop();
  });

  it('a paraphrase is a semantic hit', async () => {
    const r = await cache.lookup(cache.prepare(cacheRequest(chat('In Python, how do I reverse a list?'))));
    assert.equal(r.status, 'semantic-hit', `got ${r.status} (${r.reason})`);
    assert.ok(r.score! >= 0.78);
    assert.equal(r.reply?.response.choices[0]?.text, 'Use my_list.reverse() or reversed(my_list).');
  });

  it('hard negatives that score higher than the paraphrase are misses, stopped by the verifier', async () => {
    for (const q of ['What does HTTP status code 403 mean?', 'How long do I boil an egg for a hard yolk?']) {
      const r = await cache.lookup(cache.prepare(cacheRequest(chat(q))));
      assert.equal(r.status, 'miss', q);
      assert.match(String(r.reason), /^verifier:/, `${q}: ${r.reason}`);
    }
    // Below the threshold already (cosine ≈ 0.77): a miss either way.
    assert.equal((await cache.lookup(cache.prepare(cacheRequest(chat('How do I reverse a list in Ruby?'))))).status, 'miss');
  });
});
