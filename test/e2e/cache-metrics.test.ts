/**
 * The response cache as the admin `/metrics` scrape shows it, through a real two-worker gateway and
 * the shipped embedder: every request the cache saw is counted once by result, a hit's tokens are
 * cache tokens (not upstream usage, not spend), the upstream's own prompt-cache reads are counted
 * as such, and every miss is explained by a reason. Each count is checked against what the clients
 * were actually answered (the `x-sluice-cache` header of every response), so the test does not
 * depend on which worker served what or on how fast an entry reached the other worker.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hashKey } from '../../src/governance/keys.js';
import { cleanupE2E, type GatewayProcess, postJson, type RawResponse, type Recorder, startGateway, startRecorder, waitFor } from '../helpers/index.js';
import { type Samples, scrapeAdmin } from '../helpers/prometheus.js';

after(cleanupE2E);

const KEY = 'sk-alice-cache-metrics-0001';
/** What the upstream reports for every answer: 40 prompt tokens, 32 of them from its own prompt cache. */
const UPSTREAM_USAGE = { prompt_tokens: 40, completion_tokens: 8, total_tokens: 48, prompt_tokens_details: { cached_tokens: 32 } };
/** Per million tokens: input 1000, cached input 100, output 2000 → one upstream answer costs (8·1000 + 32·100 + 8·2000) / 1e6 USD. */
const PRICE = { model: 'm*', input_per_mtok: 1000, cached_input_per_mtok: 100, output_per_mtok: 2000 };
const COST_PER_ANSWER = (8 * 1000 + 32 * 100 + 8 * 2000) / 1e6;

/** An OpenAI-compatible upstream that answers with the question and `UPSTREAM_USAGE`. */
function respond(req: { method: string; url: string; body: Buffer }, res: import('node:http').ServerResponse): void {
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ id: 'm1', object: 'model' }] }));
    return;
  }
  const body = JSON.parse(req.body.toString('utf8')) as { model: string; messages: { role: string; content: string }[] };
  const question = body.messages.filter((m) => m.role === 'user').pop()?.content ?? '';
  const answer = {
    id: `chatcmpl-${Math.random().toString(36).slice(2)}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    choices: [{ index: 0, message: { role: 'assistant', content: `The answer to: ${question}` }, finish_reason: 'stop' }],
    usage: UPSTREAM_USAGE,
  };
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
}

/** The admin scrape, read as sums of series (test/helpers/prometheus.ts). */
const scrape = (gw: GatewayProcess): Promise<Samples> => scrapeAdmin(gw.adminUrl);

describe('response cache metrics on the admin scrape (two workers, shipped embedder)', () => {
  let gw: GatewayProcess;
  let rec: Recorder;
  /** Every answer's cache result, as the client saw it. */
  const results: string[] = [];
  /** The usage of every answer that came from the cache. */
  const hitUsage: { prompt_tokens: number; completion_tokens: number }[] = [];
  /** Questions (exact texts) answered upstream, so stored: one entry each. */
  const stored = new Set<string>();

  const ask = async (question: string, headers: Record<string, string> = {}): Promise<string> => {
    const r: RawResponse = await postJson(gw.url, '/v1/chat/completions', { model: 'chat', messages: [{ role: 'user', content: question }] }, { authorization: `Bearer ${KEY}`, ...headers });
    assert.equal(r.status, 200, r.text);
    const result = String(r.headers['x-sluice-cache']).split(';')[0]!;
    results.push(result);
    if (result === 'miss' || result === 'bypass') stored.add(question);
    if (result === 'hit' || result === 'semantic-hit') hitUsage.push((JSON.parse(r.text) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage);
    return result;
  };
  /**
   * Asks until the answer is `wanted` (an entry reaches the other worker, and its index, within
   * milliseconds). `vary`: each try adds a trailing space (a new exact key, the same question to the
   * semantic layer), so a try that missed and was stored cannot make the next one an exact hit.
   */
  const askUntil = async (wanted: string, question: string, vary = false): Promise<void> => {
    for (let i = 0; i < 20; i++) {
      if ((await ask(vary ? question + ' '.repeat(i) : question)) === wanted) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`no ${wanted} for "${question}" in 20 tries: ${results.join(', ')}`);
  };
  const tally = (result: string): number => results.filter((r) => r === result).length;

  before(async () => {
    rec = await startRecorder({ respond });
    gw = await startGateway({
      config: {
        providers: [{ name: 'up', type: 'openai-compatible', base_url: `${rec.url}/v1`, models: ['*'] }],
        models: [{ name: 'chat', targets: [{ provider: 'up', model: 'm1' }] }],
        consumers: [{ name: 'alice', keys: [hashKey(KEY)] }],
        prices: [PRICE],
        // A generous budget: the box is shared; a lookup that runs over is a miss, and is counted as one.
        cache: { semantic: { lookup_budget_ms: 2_000 } },
      },
      args: ['--port', '0', '--workers', '2'],
      startTimeoutMs: 30_000,
    });
  });

  it('a miss, an exact hit, a semantic hit and a bypass: counted once each, hits as cache tokens at no cost, every miss explained', async () => {
    const question = 'How do I reverse a list in Python?';
    assert.equal(await ask(question), 'miss');
    await askUntil('hit', question);
    await askUntil('semantic-hit', 'How can I reverse a list in Python?', true);
    assert.equal(await ask(question, { 'cache-control': 'no-cache' }), 'bypass');

    const upstreamAnswers = tally('miss') + tally('bypass');
    assert.equal(rec.requests.filter((r) => r.method === 'POST').length, upstreamAnswers, 'only misses and bypasses reach the upstream');
    // Metrics are recorded as each request ends, just after its answer leaves.
    let m = await waitFor('every request in the scrape', async () => {
      const s = await scrape(gw);
      return s('sluice_cache_requests_total') === results.length ? s : undefined;
    });
    for (const result of ['hit', 'semantic-hit', 'miss', 'bypass']) {
      assert.equal(m('sluice_cache_requests_total', { model: 'chat', result }), tally(result), result);
    }
    assert.equal(tally('bypass'), 1);

    // A hit's tokens are the cache's: all its input cached, none of it upstream usage or spend.
    assert.equal(m('sluice_cache_tokens_total', { consumer: 'alice', model: 'chat', gen_ai_token_type: 'input' }), hitUsage.reduce((n, u) => n + u.prompt_tokens, 0));
    assert.equal(m('sluice_cache_tokens_total', { consumer: 'alice', model: 'chat', gen_ai_token_type: 'output' }), hitUsage.reduce((n, u) => n + u.completion_tokens, 0));
    assert.equal(m('sluice_cache_tokens_total', { gen_ai_token_type: 'input' }), (tally('hit') + tally('semantic-hit')) * UPSTREAM_USAGE.prompt_tokens);
    assert.equal(m('sluice_tokens_total', { consumer: 'alice', model: 'chat', gen_ai_token_type: 'input' }), upstreamAnswers * UPSTREAM_USAGE.prompt_tokens);
    assert.equal(m('sluice_tokens_total', { consumer: 'alice', model: 'chat', gen_ai_token_type: 'output' }), upstreamAnswers * UPSTREAM_USAGE.completion_tokens);
    assert.equal(m('gen_ai_client_token_usage_count', { gen_ai_token_type: 'input' }), upstreamAnswers, 'a hit is no upstream call in the token histogram');
    // The upstream's own prompt cache: part of its input, counted as such.
    assert.equal(m('sluice_upstream_cache_read_tokens_total', { consumer: 'alice', model: 'chat', provider: 'up' }), upstreamAnswers * UPSTREAM_USAGE.prompt_tokens_details.cached_tokens);
    const cost = m('sluice_cost_usd_total', { consumer: 'alice', model: 'chat' });
    assert.ok(Math.abs(cost - upstreamAnswers * COST_PER_ANSWER) < 1e-9, `cost ${cost}: the upstream answers' only (${upstreamAnswers} × ${COST_PER_ANSWER})`);

    // Every miss went through the semantic layer and has a reason.
    let explained = 0;
    for (const reason of ['pool_busy', 'pool_timeout', 'pool_error', 'pool_stopped', 'no_candidate', 'verifier', 'judge', 'evicted']) explained += m('sluice_cache_semantic_misses_total', { reason });
    assert.equal(explained, tally('miss'));
    assert.equal(m('sluice_cache_semantic_misses_total'), tally('miss'));
    // Each upstream answer stored once, by the worker that received it; none refused.
    assert.equal(m('sluice_cache_stored_total'), upstreamAnswers);
    assert.equal(m('sluice_cache_not_stored_total'), 0);
    assert.equal(m('sluice_cache_semantic_state', { state: 'running' }), 2, 'both workers run the semantic layer');

    // Every semantic lookup (misses and semantic hits; exact hits and bypasses do not embed) embedded
    // its question once, and the bypass's store embedded its own (no lookup had).
    m = await waitFor('every embedding in the histogram', async () => {
      const s = await scrape(gw);
      return s('sluice_cache_embedding_duration_seconds_count', { purpose: 'lookup' }) >= tally('miss') + tally('semantic-hit') &&
        s('sluice_cache_embedding_duration_seconds_count', { purpose: 'store' }) >= 1
        ? s
        : undefined;
    });
    assert.equal(m('sluice_cache_embedding_duration_seconds_count', { purpose: 'lookup' }), tally('miss') + tally('semantic-hit'));
    assert.equal(m('sluice_cache_embedding_duration_seconds_bucket', { purpose: 'lookup', le: '+Inf' }), tally('miss') + tally('semantic-hit'));
    assert.equal(m('sluice_cache_embedding_duration_seconds_count', { purpose: 'store' }), tally('bypass'));

    // Each worker holds a full copy: the summed gauge is twice the distinct entries (the bypass replaced the first).
    m = await waitFor('both workers to hold every entry', async () => {
      const s = await scrape(gw);
      return s('sluice_cache_entries') === 2 * stored.size ? s : undefined;
    });
    assert.ok(m('sluice_cache_bytes') > 0);
    assert.equal(m('sluice_cache_evictions_total'), 0);
  });
});
