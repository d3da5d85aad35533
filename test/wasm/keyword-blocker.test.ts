import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { GatewayError } from '../../src/errors.js';
import { InProcessMetrics } from '../../src/wasm/index.js';
import { chatContext, finishResponse, plugin, recordingDeps, runRequest } from './helpers.js';

describe('keyword-blocker plugin: proxy_send_local_response, body buffer, metrics, logging', () => {
  const config = { keywords: ['Forbidden Topic', 'secret-plan'], status: 403, message: 'not here' };

  it('answers 403 itself with the JSON body and headers the plugin chose', async () => {
    const metrics = new InProcessMetrics();
    const deps = recordingDeps({ metrics });
    const f = await plugin('keyword-blocker', { config }, deps);
    const ctx = chatContext({ body: { model: 'gpt-4o', messages: [{ role: 'user', content: 'tell me the FORBIDDEN topic' }] } });
    const reply = await runRequest(f, ctx);
    assert.ok(reply);
    assert.equal(reply.status, 403);
    assert.deepEqual(reply.body, { error: { message: 'not here', type: 'invalid_request_error', code: 'content_blocked' } });
    assert.equal(reply.headers?.['x-blocked-by'], 'keyword-blocker');
    f.onDone?.(ctx);
    const blocked = metrics.collect().find((m) => m.name === 'keyword_blocker_blocked_total');
    assert.equal(blocked?.kind, 'counter');
    assert.equal(blocked?.value, 1n);
    assert.ok(deps.lines.some((l) => l.level === 3 && l.message.includes('blocked a request')));
  });

  it('lets other requests through untouched', async () => {
    const f = await plugin('keyword-blocker', { config });
    const ctx = chatContext();
    assert.equal(await runRequest(f, ctx), undefined);
    assert.equal(ctx.bodyChanged, false);
    finishResponse(f, ctx);
  });

  it('turns a non-JSON local body into an error in the client protocol', async () => {
    const f = await plugin('external-auth', { config: { upstream: 'missing' } });
    const ctx = chatContext({ protocol: 'anthropic-messages' });
    const reply = await runRequest(f, ctx);
    assert.ok(reply?.error instanceof GatewayError);
    assert.equal(reply.status, 403);
    assert.equal(reply.error.code, 'forbidden');
    assert.match(reply.error.message, /auth service not configured/);
    assert.equal(reply.headers?.['x-auth-denied'], 'auth service not configured');
  });
});
