/**
 * /metrics on the admin port: one view summed over the workers, checked after a known sequence of
 * requests (successes, a stream, a 404, a 401, a fallback after an upstream 500).
 */

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { generateKey, hashKey } from '../../src/governance/keys.js';
import { cleanupE2E, onFreshConnections, postJson, raw, startGateway } from '../helpers/index.js';

after(cleanupE2E);

/** The value of one sample line, matched by metric name and every given label. */
function sample(text: string, name: string, labels: Record<string, string>): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
    found = true;
  }
  assert.ok(found, `no sample ${name}${JSON.stringify(labels)}`);
  return total;
}

describe('metrics', () => {
  it('counts requests, tokens, errors and fallbacks over both workers', async () => {
    const key = generateKey();
    const gw = await startGateway({
      config: {
        providers: [
          { name: 'mock', type: 'mock' },
          { name: 'broken', type: 'mock', mock: { error_status: 500, error_every: 1 } },
        ],
        models: [{ name: 'flaky', targets: [{ provider: 'broken', model: 'mock' }], fallbacks: [{ provider: 'mock', model: 'mock' }] }],
        consumers: [{ name: 'alice', keys: [hashKey(key)] }],
      },
    });
    const auth = { authorization: `Bearer ${key}` };
    // Fresh connections spread over both workers.
    const ok = await onFreshConnections(gw.url, 'mock', 10, auth);
    assert.ok(ok.every((r) => r.status === 200));
    const inputTokens = ok.reduce((n, r) => n + (JSON.parse(r.text).usage.prompt_tokens as number), 0);
    const outputTokens = ok.reduce((n, r) => n + (JSON.parse(r.text).usage.completion_tokens as number), 0);
    const missing = await postJson(gw.url, '/v1/chat/completions', { model: 'nope', messages: [{ role: 'user', content: 'x' }] }, auth);
    assert.equal(missing.status, 404);
    const anonymous = await postJson(gw.url, '/v1/chat/completions', { model: 'mock', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(anonymous.status, 401);
    const fellBack = await postJson(gw.url, '/v1/chat/completions', { model: 'flaky', messages: [{ role: 'user', content: 'x' }] }, auth);
    assert.equal(fellBack.status, 200);

    const scraped = await raw(gw.adminUrl, { method: 'GET', path: '/metrics' });
    assert.equal(scraped.status, 200);
    assert.match(String(scraped.headers['content-type']), /text\/plain/);
    const m = scraped.text;
    assert.equal(sample(m, 'sluice_requests_total', { status: '200', model: 'mock', consumer: 'alice' }), 10);
    assert.equal(sample(m, 'sluice_requests_total', { status: '404', model: 'nope' }), 1);
    assert.equal(sample(m, 'sluice_requests_total', { status: '401' }), 1);
    assert.equal(sample(m, 'sluice_tokens_total', { model: 'mock', consumer: 'alice', gen_ai_token_type: 'input' }), inputTokens);
    assert.equal(sample(m, 'sluice_tokens_total', { model: 'mock', consumer: 'alice', gen_ai_token_type: 'output' }), outputTokens);
    assert.equal(sample(m, 'sluice_fallbacks_total', { model: 'flaky' }), 1);
    assert.equal(sample(m, 'sluice_upstream_errors_total', { provider: 'broken', kind: 'server_error' }), 1);
    assert.equal(sample(m, 'gen_ai_client_operation_duration_seconds_count', { gen_ai_request_model: 'mock' }), 10);
    assert.ok(sample(m, 'gen_ai_client_token_usage_count', { gen_ai_request_model: 'mock' }) >= 20);
    // Both workers answered, and the view is one sum: a second scrape does not double anything.
    const again = await raw(gw.adminUrl, { method: 'GET', path: '/metrics' });
    assert.equal(sample(again.text, 'sluice_requests_total', { status: '200', model: 'mock', consumer: 'alice' }), 10);
  });
});
