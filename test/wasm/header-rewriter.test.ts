import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { chatContext, finishResponse, plugin, runRequest } from './helpers.js';

describe('header-rewriter plugin (ABI 0.2.1)', () => {
  const config = {
    request: {
      set: { 'x-team': 'ml', 'user-agent': 'sluice-rewritten' },
      add: { 'x-added': 'yes' },
      remove: ['x-debug'],
      rename: { 'x-old-name': 'x-new-name' },
    },
    response: { set: { 'x-served-by': 'sluice' }, remove: ['x-internal'] },
  };

  it('edits upstream request headers: replace, add, remove and whole-map rename', async () => {
    const f = await plugin('header-rewriter', { config });
    assert.equal(f.runtime.compiled.abi, '0.2.1');
    const ctx = chatContext({ headers: { 'x-debug': '1', 'x-old-name': 'v', 'user-agent': 'curl' } });
    assert.equal(await runRequest(f, ctx), undefined);
    const e = ctx.upstreamHeaderEdits;
    assert.equal(e.set['x-team'], 'ml');
    assert.equal(e.set['x-added'], 'yes');
    assert.equal(e.set['user-agent'], 'sluice-rewritten');
    assert.equal(e.set['x-new-name'], 'v');
    assert.ok(e.remove.includes('x-debug'));
    assert.ok(e.remove.includes('x-old-name'));
    assert.ok(!(':path' in e.set), 'pseudo-headers never become upstream headers');
    finishResponse(f, ctx);
  });

  it('edits the client response headers', async () => {
    const f = await plugin('header-rewriter', { config });
    const ctx = chatContext();
    await runRequest(f, ctx);
    ctx.responseHeaders['x-internal'] = 'secret';
    ctx.responseHeaders['x-request-id'] = ctx.id;
    finishResponse(f, ctx);
    assert.equal(ctx.responseHeaders['x-served-by'], 'sluice');
    assert.equal(ctx.responseHeaders['x-internal'], undefined);
    assert.equal(ctx.responseHeaders['x-request-id'], ctx.id);
    assert.equal(ctx.responseHeaders[':status'], undefined, ':status is not written back as a header');
  });

  it('keeps hundreds of requests in flight apart (more than the context slots of host and SDK)', async () => {
    const f = await plugin('header-rewriter', { config });
    const ctxs = Array.from({ length: 700 }, (_, i) => chatContext({ headers: { 'x-old-name': `v${i}` } }));
    for (const ctx of ctxs) assert.equal(await f.onRequestHeaders!(ctx), undefined);
    // Finish them out of order: every other one first, then the rest backwards.
    const order = [...ctxs.filter((_, i) => i % 2 === 0), ...ctxs.filter((_, i) => i % 2 === 1).reverse()];
    for (const ctx of order) {
      await f.onRequestBody!(ctx);
      finishResponse(f, ctx);
    }
    ctxs.forEach((ctx, i) => {
      assert.equal(ctx.upstreamHeaderEdits.set['x-new-name'], `v${i}`);
      assert.equal(ctx.responseHeaders['x-served-by'], 'sluice');
    });
    assert.equal(f.runtime.current!.streams.size, 0, 'no context left behind');
    assert.equal(f.stats.failures, 0);
    // And the contexts the SDK kept are handed out again without mixing requests up.
    for (let i = 0; i < 3; i++) {
      const ctx = chatContext({ headers: { 'x-old-name': `again${i}` } });
      await runRequest(f, ctx);
      finishResponse(f, ctx);
      assert.equal(ctx.upstreamHeaderEdits.set['x-new-name'], `again${i}`);
    }
  });

  it('rejects a configuration that is not JSON (proxy_on_configure returns false)', async () => {
    await assert.rejects(plugin('header-rewriter', { config: 'not json' }), /rejected its configuration/);
  });

  it('declares no response-event hook unless asked, so answers can pass through', async () => {
    const f = await plugin('header-rewriter', { config });
    assert.equal(f.onResponseEvent, undefined);
    const g = await plugin('header-rewriter', { config, phases: { response_body: true } });
    assert.equal(typeof g.onResponseEvent, 'function');
  });
});
