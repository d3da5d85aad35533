import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import type { CacheRecord } from '../../src/cache/cache-entry.js';
import { ResponseCache } from '../../src/cache/response-cache.js';
import { responseToEvents } from '../../src/protocol/replay.js';
import { answer, cacheRequest, chat, config } from './helpers.js';

const BOW_WORKER = new URL('./fixtures/bow-embed-worker.js', import.meta.url);
const target = { provider: 'openai', model: 'gpt-4o' };

async function settle(): Promise<void> {
  // Background work (embedding, indexing) of a store.
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 5));
}

describe('ResponseCache: exact layer', () => {
  const make = (over: Record<string, unknown> = {}, opts = {}) => new ResponseCache(config({ semantic: { enabled: false }, ...over }), { sweepIntervalMs: 0, ...opts });

  it('miss, store, then hit with the stored answer under a new id', () => {
    const cache = make();
    const t1 = cache.prepare(cacheRequest(chat('What is the capital of France?')));
    const miss = cache.lookup(t1);
    assert.ok(!(miss instanceof Promise));
    assert.equal(miss.header, 'miss');
    assert.equal(cache.store(t1, answer('Paris.'), target), undefined);
    const hit = cache.lookup(cache.prepare(cacheRequest(chat('What is the capital of France?', { stream: true }))));
    assert.ok(!(hit instanceof Promise));
    assert.equal(hit.header, 'hit');
    assert.equal(hit.reply?.response.choices[0]?.text, 'Paris.');
    assert.notEqual(hit.reply?.response.id, 'chatcmpl-upstream');
    assert.deepEqual(hit.reply?.accounting, { cachedInputTokens: 25, cachedOutputTokens: 12 });
  });

  it('isolates consumers unless shared; a tenant shares among its consumers', () => {
    const own = make();
    const t = own.prepare(cacheRequest(chat('q1'), { consumer: 'alice' }));
    own.store(t, answer('a'), target);
    assert.equal((own.lookup(own.prepare(cacheRequest(chat('q1'), { consumer: 'bob' }))) as { status: string }).status, 'miss');

    const shared = make({ namespace: 'shared' });
    shared.store(shared.prepare(cacheRequest(chat('q1'), { consumer: 'alice' })), answer('a'), target);
    assert.equal((shared.lookup(shared.prepare(cacheRequest(chat('q1'), { consumer: 'bob' }))) as { status: string }).status, 'hit');

    const tenant = make({ namespace: 'tenant' });
    tenant.store(tenant.prepare(cacheRequest(chat('q1'), { consumer: 'alice', tenant: 'acme' })), answer('a'), target);
    assert.equal((tenant.lookup(tenant.prepare(cacheRequest(chat('q1'), { consumer: 'bob', tenant: 'acme' }))) as { status: string }).status, 'hit');
    assert.equal((tenant.lookup(tenant.prepare(cacheRequest(chat('q1'), { consumer: 'carol', tenant: 'other' }))) as { status: string }).status, 'miss');
  });

  it('separates models and providers', () => {
    const cache = make({ namespace: 'shared' });
    cache.store(cache.prepare(cacheRequest(chat('q'))), answer('a'), target);
    const otherModel = cache.prepare(cacheRequest(chat('q'), { target: { provider: 'openai', model: 'gpt-4o-mini' } }));
    const otherProvider = cache.prepare(cacheRequest(chat('q'), { target: { provider: 'azure', model: 'gpt-4o' } }));
    assert.equal((cache.lookup(otherModel) as { status: string }).status, 'miss');
    assert.equal((cache.lookup(otherProvider) as { status: string }).status, 'miss');
  });

  it('honours Cache-Control: no-cache (lookup skipped, answer stored), no-store, max-age', () => {
    const cache = make();
    const nc = cache.prepare(cacheRequest(chat('q'), { headers: { 'cache-control': 'no-cache' } }));
    assert.equal((cache.lookup(nc) as { header: string }).header, 'bypass');
    assert.equal(cache.store(nc, answer('fresh'), target), undefined);
    assert.equal((cache.lookup(cache.prepare(cacheRequest(chat('q')))) as { status: string }).status, 'hit');

    const ns = cache.prepare(cacheRequest(chat('other'), { headers: { 'cache-control': 'no-store' } }));
    assert.equal((cache.lookup(ns) as { header: string }).header, 'bypass');
    assert.equal(cache.store(ns, answer('x'), target), 'bypass');
    assert.equal(cache.stats().entries, 1);

    const young = cache.prepare(cacheRequest(chat('q'), { headers: { 'cache-control': 'max-age=3600' } }));
    assert.equal((cache.lookup(young) as { status: string }).status, 'hit');
    const strict = cache.prepare(cacheRequest(chat('q'), { headers: { 'cache-control': 'max-age=0' } }));
    const r = cache.lookup(strict) as { status: string; reason: string };
    // Stored within this millisecond or the previous: age 0 or 1 ms.
    assert.ok(r.status === 'hit' || r.reason === 'older than max-age');
  });

  it('does not store a fallback target, an unfinished answer, or an oversized one', () => {
    const cache = make({ max_entry_bytes: 2048 });
    const t = cache.prepare(cacheRequest(chat('q')));
    assert.equal(cache.store(t, answer('a'), { provider: 'anthropic', model: 'claude' }), 'answered_by_fallback');
    assert.equal(cache.store(t, answer('a', { choices: [{ index: 0, text: 'a', finishReason: 'error' }] }), target), 'finish_reason');
    assert.equal(cache.store(t, answer('x'.repeat(5000)), target), 'too_large');
    assert.equal(cache.stats().entries, 0);
  });

  it('stores a streamed answer through the collector', () => {
    const cache = make();
    const t = cache.prepare(cacheRequest(chat('q', { stream: true })));
    const collector = cache.collector();
    for (const e of responseToEvents(answer('streamed answer, several words long'))) collector.push(e);
    assert.equal(cache.store(t, collector.result()!, target), undefined);
    const hit = cache.lookup(cache.prepare(cacheRequest(chat('q')))) as { reply: { response: { choices: { text: string }[] } } };
    assert.equal(hit.reply.response.choices[0]!.text, 'streamed answer, several words long');
  });

  it('is shared between workers: an entry stored in one is a hit in another well within 100 ms', () => {
    // Two worker processes, joined as the supervisor would join them: A's records are applied in B.
    const b = make();
    const sent: CacheRecord[] = [];
    const a = make({}, { onStored: (r: CacheRecord) => sent.push(JSON.parse(JSON.stringify(r)) as CacheRecord) });
    const t0 = performance.now();
    a.store(a.prepare(cacheRequest(chat('q'))), answer('from A'), target);
    for (const r of sent) assert.ok(b.applyRecord(r));
    const hit = b.lookup(b.prepare(cacheRequest(chat('q')))) as { status: string; reply: { response: { choices: { text: string }[] } } };
    assert.ok(performance.now() - t0 < 100);
    assert.equal(hit.status, 'hit');
    assert.equal(hit.reply.response.choices[0]!.text, 'from A');

    const fresh = make();
    for (const r of a.records()) fresh.applyRecord(r);
    assert.equal((fresh.lookup(fresh.prepare(cacheRequest(chat('q')))) as { status: string }).status, 'hit', 'a new worker starts from a snapshot');
  });

  it('counts what it did', () => {
    const cache = make();
    const t = cache.prepare(cacheRequest(chat('q')));
    cache.lookup(t);
    cache.store(t, answer('a'), target);
    cache.lookup(t);
    cache.lookup(cache.prepare(cacheRequest(chat('q'), { headers: { 'cache-control': 'no-store' } })));
    const s = cache.stats();
    assert.deepEqual([s.hits, s.misses, s.bypasses, s.stored, s.entries], [1, 1, 1, 1, 1]);
  });
});

describe('ResponseCache: semantic layer (stand-in embedder)', () => {
  let cache: ResponseCache;
  const stored: CacheRecord[] = [];

  before(async () => {
    cache = await ResponseCache.start(
      config({ semantic: { embedder: { type: 'openai', base_url: 'http://unused.invalid/v1', model: 'bow' }, lookup_budget_ms: 500 } }),
      { pool: { embedWorker: BOW_WORKER }, sweepIntervalMs: 0, onStored: (r) => stored.push(r) },
    );
    assert.ok(cache.semanticEnabled);
  });
  after(async () => {
    await cache.stop();
  });

  it('serves a reordered question, refuses the same words in another order, keeps contexts apart', async () => {
    const t = cache.prepare(cacheRequest(chat('How do I convert a string to an integer in Python?')));
    assert.equal((await cache.lookup(t)).status, 'miss');
    assert.ok(t.vector, 'the lookup embedded the question; store reuses it');
    cache.store(t, answer('int("42")'), target);
    await settle();

    const para = await cache.lookup(cache.prepare(cacheRequest(chat('In Python, how do I convert a string to an integer?'))));
    assert.equal(para.status, 'semantic-hit');
    assert.match(para.header, /^semantic-hit;score=(0|1)\.\d\d$/);
    assert.equal(para.reply?.response.choices[0]?.text, 'int("42")');

    // Same bag of words, so the stand-in embedder scores it 1.0: only the verifier stands between.
    const reversed = await cache.lookup(cache.prepare(cacheRequest(chat('How do I convert an integer to a string in Python?'))));
    assert.equal(reversed.status, 'miss');
    assert.equal(reversed.reason, 'verifier:order');

    const otherSystem = chat('In Python, how do I convert a string to an integer?');
    otherSystem.messages[0] = { role: 'system', content: [{ type: 'text', text: 'Answer in French.' }] };
    assert.equal((await cache.lookup(cache.prepare(cacheRequest(otherSystem)))).reason, 'no_candidate');
    assert.equal((await cache.lookup(cache.prepare(cacheRequest(chat('In Python, how do I convert a string to an integer?'), { consumer: 'bob' })))).reason, 'no_candidate');

    assert.equal(stored.length, 1);
    assert.ok(stored[0]!.vector, 'the record carries the vector, so other workers need not embed it');
  });

  it('an entry from another worker is indexed from its record, without embedding it again', async () => {
    const other = await ResponseCache.start(config({ semantic: { embedder: { type: 'openai', base_url: 'http://unused.invalid/v1', model: 'bow' }, lookup_budget_ms: 500 } }), {
      pool: { embedWorker: BOW_WORKER },
      sweepIntervalMs: 0,
    });
    try {
      const before = other.poolStats()!.embed.completed;
      assert.ok(other.applyRecord(stored[0]));
      await settle();
      assert.equal(other.poolStats()!.embed.completed, before, 'no embedding for an applied record');
      const hit = await other.lookup(other.prepare(cacheRequest(chat('In Python, how do I convert a string to an integer?'))));
      assert.equal(hit.status, 'semantic-hit');
    } finally {
      await other.stop();
    }
  });

  it('a store with no vector yet embeds in the background, then indexes', async () => {
    const t = cache.prepare(cacheRequest(chat('What is the boiling point of water at sea level?'), { headers: { 'cache-control': 'no-cache' } }));
    assert.equal((await cache.lookup(t)).status, 'bypass');
    assert.equal(t.vector, undefined);
    cache.store(t, answer('100 °C'), target);
    await settle();
    const hit = await cache.lookup(cache.prepare(cacheRequest(chat('At sea level, what is the boiling point of water?'))));
    assert.equal(hit.status, 'semantic-hit');
  });
});

describe('ResponseCache: a slow pool makes misses, not waits', () => {
  it('pool_timeout within the budget, pool_busy at once when saturated', async () => {
    const cache = await ResponseCache.start(
      config({ semantic: { embedder: { type: 'openai', base_url: 'http://unused.invalid/v1', model: 'bow:delay=600' }, lookup_budget_ms: 50, max_queue: 0 } }),
      { pool: { embedWorker: BOW_WORKER }, sweepIntervalMs: 0 },
    );
    try {
      const t0 = performance.now();
      const [a, b] = await Promise.all([
        cache.lookup(cache.prepare(cacheRequest(chat('first question')))),
        cache.lookup(cache.prepare(cacheRequest(chat('second question')))),
      ]);
      const took = performance.now() - t0;
      assert.equal(a.reason, 'pool_timeout');
      assert.equal(b.reason, 'pool_busy');
      assert.ok(took < 300, `both answered in ${took.toFixed(0)} ms (budget 50, embedding 600)`);
      assert.equal(a.header, 'miss');
    } finally {
      await cache.stop();
    }
  });

  it('a lookup embedded too late gives its vector to the store; stores yield while lookups are refused', async () => {
    const cache = await ResponseCache.start(
      config({ semantic: { embedder: { type: 'openai', base_url: 'http://unused.invalid/v1', model: 'bow:delay=150' }, lookup_budget_ms: 30, max_queue: 0 } }),
      { pool: { embedWorker: BOW_WORKER }, sweepIntervalMs: 0 },
    );
    try {
      const t = cache.prepare(cacheRequest(chat('How do I reverse a list in Python?')));
      assert.equal((await cache.lookup(t)).reason, 'pool_timeout');
      cache.store(t, answer('reversed()'), target);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(cache.poolStats()!.embed.completed, 1, 'the late embedding was used, not a second one');

      // A lookup refused for a busy embedder: the stores that follow do not take the embedder.
      const slow = cache.prepare(cacheRequest(chat('first question here')));
      const running = cache.lookup(slow);
      const refused = cache.prepare(cacheRequest(chat('second question here')));
      assert.equal((await cache.lookup(refused)).reason, 'pool_busy');
      cache.store(refused, answer('two'), target);
      await running;
      assert.equal(cache.stats().notIndexed.embedder_busy, 1);
      assert.equal((cache.lookup(cache.prepare(cacheRequest(chat('second question here')))) as { status: string }).status, 'hit', 'still an exact hit');
    } finally {
      await cache.stop();
    }
  });

  it('an embedder that cannot load leaves the cache exact only', async () => {
    let why: Error | undefined;
    const cache = await ResponseCache.start(config({ semantic: { embedder: { type: 'transformers', model_path: '/nope' } } }), {
      sweepIntervalMs: 0,
      onSemanticUnavailable: (e) => (why = e),
    });
    assert.equal(cache.semanticEnabled, false);
    assert.match(String(why?.message), /transformers/);
    const t = cache.prepare(cacheRequest(chat('q')));
    cache.store(t, answer('a'), target);
    assert.equal((cache.lookup(cache.prepare(cacheRequest(chat('q')))) as { status: string }).status, 'hit');
    await cache.stop();
  });
});

describe('ResponseCache.reload', () => {
  const bow = (model = 'bow') => ({ type: 'openai', base_url: 'http://unused.invalid/v1', model });

  it('keeps entries and the running pool when only policy settings change', async () => {
    const first = await ResponseCache.start(config({ semantic: { embedder: bow(), lookup_budget_ms: 500 } }), { pool: { embedWorker: BOW_WORKER }, sweepIntervalMs: 0 });
    const t = first.prepare(cacheRequest(chat('How do I reverse a list in Python?')));
    await first.lookup(t);
    first.store(t, answer('reversed()'), target);
    await settle();
    const pool = first.poolStats()!;
    const second = await ResponseCache.reload(first, config({ ttl_ms: 60_000, semantic: { embedder: bow(), lookup_budget_ms: 500, threshold: 0.9 } }), {
      pool: { embedWorker: BOW_WORKER },
      sweepIntervalMs: 0,
    });
    try {
      assert.equal(second.poolStats()!.index.instance, pool.index.instance, 'same index thread');
      assert.equal(second.stats().entries, 1);
      assert.equal((await second.lookup(second.prepare(cacheRequest(chat('How do I reverse a list in Python?'))))).status, 'hit');
      assert.equal((await second.lookup(second.prepare(cacheRequest(chat('In Python, how do I reverse a list?'))))).status, 'semantic-hit');
    } finally {
      await second.stop();
    }
  });

  it('starts a new pool for another embedder; old entries serve exact hits only', async () => {
    const first = await ResponseCache.start(config({ semantic: { embedder: bow(), lookup_budget_ms: 500 } }), { pool: { embedWorker: BOW_WORKER }, sweepIntervalMs: 0 });
    const t = first.prepare(cacheRequest(chat('How do I reverse a list in Python?')));
    await first.lookup(t);
    first.store(t, answer('reversed()'), target);
    await settle();
    const second = await ResponseCache.reload(first, config({ semantic: { embedder: bow('bow:delay=1'), lookup_budget_ms: 500 } }), {
      pool: { embedWorker: BOW_WORKER },
      sweepIntervalMs: 0,
    });
    try {
      assert.equal(second.poolStats()!.embedder.id, 'bow-test:bow:delay=1');
      assert.equal((await second.lookup(second.prepare(cacheRequest(chat('How do I reverse a list in Python?'))))).status, 'hit');
      const para = await second.lookup(second.prepare(cacheRequest(chat('In Python, how do I reverse a list?'))));
      assert.equal(para.reason, 'no_candidate', "the old vector is another embedder's: not indexed");
    } finally {
      await second.stop();
    }
  });
});
