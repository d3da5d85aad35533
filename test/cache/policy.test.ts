import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { CachePolicy, parseCacheControl } from '../../src/cache/policy.js';
import type { ChatRequest } from '../../src/protocol/canonical.js';
import { chat, config } from './helpers.js';

const policy = new CachePolicy(config());
const decide = (request: ChatRequest, headers: Record<string, string> = {}, p = policy) =>
  p.decide({ request, clientModel: request.model, route: 'main', headers });

describe('Cache-Control on requests', () => {
  it('parses no-cache, no-store and max-age', () => {
    assert.deepEqual(parseCacheControl('no-cache'), { noCache: true, noStore: false, maxAgeSeconds: undefined });
    assert.deepEqual(parseCacheControl('No-Store, max-age=60'), { noCache: false, noStore: true, maxAgeSeconds: 60 });
    assert.equal(parseCacheControl('max-age=abc').maxAgeSeconds, 0);
    assert.deepEqual(parseCacheControl(undefined), { noCache: false, noStore: false, maxAgeSeconds: undefined });
  });

  it('no-cache skips the lookup and still stores; no-store keeps the cache out', () => {
    const nc = decide(chat('q'), { 'cache-control': 'no-cache' });
    assert.equal(nc.lookup, false);
    assert.equal(nc.store, true);
    const ns = decide(chat('q'), { 'cache-control': 'no-store' });
    assert.equal(ns.lookup || ns.store, false);
    assert.equal(decide(chat('q'), { 'cache-control': 'max-age=30' }).maxAgeMs, 30_000);
  });
});

describe('CachePolicy', () => {
  it('caches a plain request, both layers', () => {
    assert.deepEqual(decide(chat('q')), { lookup: true, store: true, semantic: true, reason: undefined, maxAgeMs: undefined });
  });

  it('stays out above the temperature bound, for n > 1 and with tool traffic', () => {
    assert.equal(decide(chat('q', { temperature: 1 })).lookup, true);
    assert.equal(decide(chat('q', { temperature: 1.2 })).reason, 'temperature > 1');
    assert.equal(decide(chat('q', { n: 3 })).reason, 'n > 1');
    const tools = chat('q');
    tools.messages.push({ role: 'assistant', content: [], toolCalls: [{ id: 'c', name: 'f', arguments: '{}' }] }, { role: 'tool', toolCallId: 'c', content: [{ type: 'text', text: '1' }] });
    assert.equal(decide(tools).lookup, false);
    const lenient = new CachePolicy(config({ skip: { tool_results: false, multiple_choices: false, max_temperature: 2 } }));
    assert.equal(decide(tools, {}, lenient).lookup, true);
    assert.equal(decide(chat('q', { n: 3, temperature: 1.5 }), {}, lenient).lookup, true);
  });

  it('keeps the semantic layer away from requests with tools unless allowed', () => {
    const withTools = chat('q', { tools: [{ name: 'f', parameters: {} }] });
    assert.equal(decide(withTools).semantic, false);
    assert.equal(decide(withTools).lookup, true, 'the exact layer still applies');
    assert.equal(decide(withTools, {}, new CachePolicy(config({ semantic: { with_tools: true } }))).semantic, true);
  });

  it('matches models and routes', () => {
    const p = new CachePolicy(config({ match: { models: ['gpt-4o*'], routes: ['main'] } }));
    assert.equal(decide(chat('q'), {}, p).lookup, true);
    assert.equal(decide(chat('q', { model: 'claude-x' }), {}, p).reason, 'model not cached');
    assert.equal(p.decide({ request: chat('q'), clientModel: 'gpt-4o', route: 'other', headers: {} }).reason, 'route not cached');
    assert.equal(decide(chat('q'), {}, new CachePolicy(config({ enabled: false }))).reason, 'disabled');
  });

  it('stores only answers that ended as configured', () => {
    assert.ok(policy.storable(['stop']));
    assert.ok(policy.storable(['stop', 'length']));
    assert.equal(policy.storable(['error']), false);
    assert.equal(policy.storable(['stop', null]), false);
    assert.equal(policy.storable([]), false);
  });
});
