import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { CachePool, EmbedderStartError } from '../../src/cache/cache-pool.js';
import { createEmbedder, EmbedderUnavailableError } from '../../src/cache/embedder.js';
import { OpenAIEmbedder } from '../../src/cache/embedders/openai.js';
import { DEFAULT_INDEX_SPEC } from '../../src/cache/semantic-index.js';

const BOW_WORKER = new URL('./fixtures/bow-embed-worker.js', import.meta.url);
const index = { ...DEFAULT_INDEX_SPEC, maxNamespaces: 10 };

function bowPool(delayMs: number, threads = 1, maxQueue = 1): Promise<CachePool> {
  return CachePool.start({
    embedder: { type: 'openai', base_url: 'http://unused.invalid/v1', model: `bow:delay=${delayMs}`, timeout_ms: 1000 },
    threads,
    maxQueue,
    index,
    verifier: undefined,
    embedWorker: BOW_WORKER,
  });
}

describe('CachePool: a busy or slow pool is a miss, never a wait', () => {
  let pool: CachePool;
  before(async () => {
    pool = await bowPool(400);
  });
  after(async () => {
    await pool.stop();
  });

  it('over budget: the call resolves at its budget, the work finishes in the background', async () => {
    const t0 = performance.now();
    const r = await pool.embed(['slow question'], 40);
    const took = performance.now() - t0;
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, 'timeout');
    assert.ok(took < 250, `resolved after ${took.toFixed(0)} ms, budget 40, task 400`);
    await new Promise((r) => setTimeout(r, 400));
  });

  it('saturated: refused at once, without queueing', async () => {
    const first = pool.embed(['one'], 1000);
    const second = pool.embed(['two'], 1000);
    const t0 = performance.now();
    const third = await pool.embed(['three'], 1000);
    const fourth = await pool.embed(['four'], 60);
    const took = performance.now() - t0;
    assert.equal(!third.ok && third.reason, 'busy', 'the queue (1) is full');
    assert.equal(!fourth.ok && fourth.reason, 'busy');
    assert.ok(took < 50, `refusals took ${took.toFixed(1)} ms (each task takes 400)`);
    assert.equal((await first).ok, true);
    assert.equal((await second).ok, true, 'admitted work still completes');
    assert.ok(pool.stats().embed.refusedBusy >= 2);
  });

  it('a queue that cannot be served within the budget refuses too', async () => {
    const busy = pool.embed(['occupies the thread'], 1000);
    const r = await pool.embed(['would wait 400 ms'], 300);
    assert.equal(!r.ok && r.reason, 'busy');
    await busy;
  });
});

describe('CachePool: index thread', () => {
  it('adds, searches and removes off the request thread, refusing foreign vectors', async () => {
    const pool = await bowPool(0, 1, 4);
    try {
      const embedded = await pool.embed(['How do I reverse a list in Python?'], 1000);
      if (!embedded.ok) assert.fail(`embed failed: ${embedded.reason}`);
      const v = embedded.value[0]!;
      const added = await pool.add([{ namespace: 'ns', item: { entryKey: 'k', contextKey: 'c', text: 'q', vector: v, expiresAtMs: Date.now() + 60_000 } }], 1000);
      assert.deepEqual(added.ok && added.value, [0]);
      const wrongSize = await pool.add([{ namespace: 'ns', item: { entryKey: 'k2', contextKey: 'c', text: 'q', vector: new Float32Array(10).fill(1), expiresAtMs: Date.now() + 60_000 } }], 1000);
      assert.match(String(wrongSize.ok && wrongSize.value[0]), /dimensions/);
      const found = await pool.search('ns', { vector: v, contextKey: 'c', text: 'q', k: 4, minScore: 0.9 }, 1000);
      assert.equal(found.ok && found.value.hit?.entryKey, 'k');
      pool.remove('ns', 'k');
      await new Promise((r) => setImmediate(r));
      const stats = await pool.indexStats();
      assert.equal(stats.ok && stats.value.entries, 0);
    } finally {
      await pool.stop();
    }
  });
});

describe('embedders', () => {
  it('a missing @huggingface/transformers is a clear error, and the pool does not start', async () => {
    const e = await createEmbedder({ type: 'transformers', model_path: '/models/all-MiniLM-L6-v2', pooling: 'mean', normalize: true });
    assert.equal(e.id, 'transformers:all-MiniLM-L6-v2:mean');
    await assert.rejects(e.init(), (err: Error) => err instanceof EmbedderUnavailableError && /npm install @huggingface\/transformers/.test(err.message));
    await assert.rejects(
      CachePool.start({ embedder: { type: 'transformers', model_path: '/nope', pooling: 'mean', normalize: true }, threads: 1, maxQueue: 1, index, verifier: undefined }),
      (err: Error) => err instanceof EmbedderStartError && /@huggingface\/transformers/.test(err.message),
    );
  });

  describe('OpenAI-compatible endpoint', () => {
    let server: Server;
    let base: string;
    const seen: { auth: string | undefined; body: { input: string[]; model: string; dimensions?: number } }[] = [];
    let mode: 'ok' | 'short' | 'error' = 'ok';

    before(async () => {
      server = createServer((req: IncomingMessage, res) => {
        let raw = '';
        req.on('data', (c: Buffer) => (raw += c.toString()));
        req.on('end', () => {
          const body = JSON.parse(raw) as { input: string[]; model: string };
          seen.push({ auth: req.headers.authorization, body });
          if (mode === 'error') {
            res.writeHead(429, { 'content-type': 'application/json' }).end('{"error":{"message":"slow down"}}');
            return;
          }
          const n = mode === 'short' ? body.input.length - 1 : body.input.length;
          const data = Array.from({ length: n }, (_, i) => ({ index: i, embedding: [1, i, 0.5] }));
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data }));
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    });
    after(() => new Promise<void>((r) => server.close(() => r())));

    it('learns the dimension, sends the key, checks every answer', async () => {
      const e = new OpenAIEmbedder({ type: 'openai', base_url: base, model: 'bge-small', api_key: 'sk-test', timeout_ms: 1000 });
      await e.init();
      assert.equal(e.dimensions, 3);
      assert.equal(e.id, 'openai:bge-small');
      const out = await e.embed(['a', 'b']);
      assert.deepEqual([...out[1]!], [1, 1, 0.5]);
      assert.equal(seen.at(-1)?.auth, 'Bearer sk-test');
      mode = 'short';
      await assert.rejects(e.embed(['a', 'b']), /1 vectors for 2 texts/);
      mode = 'error';
      await assert.rejects(e.embed(['a']), /answered 429/);
      mode = 'ok';
      await e.close();
    });

    it('refuses an answer of another dimension than configured', async () => {
      const e = new OpenAIEmbedder({ type: 'openai', base_url: base, model: 'bge-small', dimensions: 4, timeout_ms: 1000 });
      assert.equal(e.id, 'openai:bge-small:4');
      await e.init();
      await assert.rejects(e.embed(['a']), /3 dimensions, expected 4/);
      assert.equal(seen.at(-1)?.body.dimensions, 4);
      await e.close();
    });
  });
});
