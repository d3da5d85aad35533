import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { cacheFilter, cacheFilters } from '../../src/cache/filter.js';
import { ResponseCache } from '../../src/cache/response-cache.js';
import { RequestContext } from '../../src/pipeline/context.js';
import type { LocalReply } from '../../src/pipeline/filter.js';
import type { ResolvedRoute } from '../../src/routing/model-router.js';
import { responseToEvents } from '../../src/protocol/replay.js';
import { answer, config } from './helpers.js';

/** Just what the filter reads of a resolved route: its name and primary target. */
const route = { model: 'gpt-4o', plan: { name: 'gpt-4o', targets: [{ provider: { name: 'openai' }, model: 'gpt-4o' }] } } as unknown as ResolvedRoute;

function request(question: string, opts: { consumer?: string; stream?: boolean; op?: 'chat' | 'embeddings'; headers?: Record<string, string> } = {}): RequestContext {
  const ctx = new RequestContext('r1', 'POST', '/v1/chat/completions', opts.headers ?? {}, 'openai-chat', opts.op ?? 'chat');
  ctx.body = { model: 'gpt-4o', messages: [{ role: 'user', content: question }], ...(opts.stream ? { stream: true } : {}) };
  ctx.model = 'gpt-4o';
  ctx.stream = opts.stream === true;
  ctx.consumer = opts.consumer;
  ctx.route = route;
  return ctx;
}

/** What the server does after the upstream answered: status, who answered, onDone. */
function answered(ctx: RequestContext, status = 200): void {
  ctx.status = status;
  ctx.provider = 'openai';
  ctx.upstreamModel = 'gpt-4o';
}

describe('cache filter', () => {
  const make = () => new ResponseCache(config({ semantic: { enabled: false } }), { sweepIntervalMs: 0 });

  it('is not in the chain without an enabled cache block', () => {
    const holder = { cache: undefined };
    assert.deepEqual(cacheFilters(undefined, holder, () => undefined), []);
    assert.deepEqual(cacheFilters(config({ enabled: false }), holder, () => undefined), []);
    assert.equal(cacheFilters(config({}), holder, () => undefined).length, 1);
  });

  it('miss, collect, store on onDone, then a hit answered as a canonical LocalReply at zero cost', () => {
    const cache = make();
    const f = cacheFilter({ cache });
    const first = request('What is the capital of France?', { stream: true });
    assert.equal(f.onRequestBody!(first), undefined);
    assert.equal(first.responseHeaders['x-sluice-cache'], 'miss');
    for (const ev of responseToEvents(answer('Paris.'))) f.onResponseEvent!(first, ev);
    answered(first);
    f.onDone!(first);
    assert.equal(cache.stats().entries, 1);

    const second = request('What is the capital of France?');
    const reply = f.onRequestBody!(second) as LocalReply;
    assert.equal(reply.status, 200);
    assert.equal(reply.response?.choices[0]?.text, 'Paris.');
    assert.equal(reply.headers?.['x-sluice-attempts'], '0');
    assert.equal(second.cache, 'hit');
    assert.equal(second.costMicros, 0);
    assert.equal(second.usage?.cachedInputTokens, second.usage?.inputTokens);
    // The hit's own onDone stores nothing again.
    answered(second);
    f.onDone!(second);
    assert.equal(cache.stats().stored, 1);
  });

  it('stores nothing for an error, a client that left, or another consumer’s view', () => {
    const cache = make();
    const f = cacheFilter({ cache });
    const failed = request('q1');
    f.onRequestBody!(failed);
    f.onResponseEvent!(failed, { type: 'response', response: answer('a') });
    answered(failed, 500);
    f.onDone!(failed);
    const gone = request('q2');
    f.onRequestBody!(gone);
    f.onResponseEvent!(gone, { type: 'response', response: answer('a') });
    answered(gone);
    gone.aborted = true;
    f.onDone!(gone);
    assert.equal(cache.stats().entries, 0);

    const alice = request('q3', { consumer: 'alice' });
    f.onRequestBody!(alice);
    f.onResponseEvent!(alice, { type: 'response', response: answer('a') });
    answered(alice);
    f.onDone!(alice);
    const bob = request('q3', { consumer: 'bob' });
    assert.equal(f.onRequestBody!(bob), undefined);
    assert.equal(bob.cache, 'miss');
  });

  it('tenants come from the consumer label, else the configured header', () => {
    const cache = new ResponseCache(config({ namespace: 'tenant', tenant_header: 'x-tenant', semantic: { enabled: false } }), { sweepIntervalMs: 0 });
    const f = cacheFilter({ cache }, { tenantOf: (c) => (c === 'alice' || c === 'bob' ? 'acme' : undefined) });
    const alice = request('q', { consumer: 'alice' });
    f.onRequestBody!(alice);
    f.onResponseEvent!(alice, { type: 'response', response: answer('a') });
    answered(alice);
    f.onDone!(alice);
    assert.ok(f.onRequestBody!(request('q', { consumer: 'bob' })), 'same tenant label');
    assert.equal(f.onRequestBody!(request('q', { consumer: 'carol' })), undefined, 'no label, no header: her own');
    assert.ok(f.onRequestBody!(request('q', { consumer: 'carol', headers: { 'x-tenant': 'acme' } })), 'the header names the tenant');
  });

  it('other operations and undecodable requests bypass', () => {
    const cache = make();
    const f = cacheFilter({ cache });
    const emb = request('q', { op: 'embeddings' });
    f.onRequestBody!(emb);
    assert.equal(emb.responseHeaders['x-sluice-cache'], 'bypass');
    const bad = request('q');
    bad.body = { model: 'gpt-4o', messages: 'not a list' };
    assert.equal(f.onRequestBody!(bad), undefined);
    assert.equal(bad.cache, 'bypass');
    assert.equal(f.onRequestBody!(request('q', { headers: { 'cache-control': 'no-store' } })), undefined);
  });
});
