/**
 * The response cache through the running gateway: exact and semantic hits, namespaces, policy,
 * replayed streams read by the official SDKs, one cache across worker processes, and a saturated
 * embedding pool degrading to misses. The upstream is the mock behind a recorder, so every test
 * knows whether the upstream was asked; the mock echoes the question, so a hit shows whose answer
 * it served.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hasRedisServer, type PrivateRedis, startRedisServer } from '../helpers/redis-server.js';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { hashKey } from '../../src/governance/keys.js';
import {
  answerContent,
  cleanupE2E,
  type GatewayProcess,
  postJson,
  type RawResponse,
  type Recorder,
  startGateway,
  startMock,
  startRecorder,
  tempDir,
  waitFor,
} from '../helpers/index.js';
import { type Samples, scrapeAdmin } from '../helpers/prometheus.js';

after(cleanupE2E);

const KEYS = { alice: 'sk-alice-cache-test-0001', bob: 'sk-bob-cache-test-0002', carol: 'sk-carol-cache-test-0003' };
type Who = keyof typeof KEYS;

const cacheStatus = (r: RawResponse): string => String(r.headers['x-sluice-cache']);
/** The serving worker: request ids start with a per-process random prefix (src/server/request.ts). */
const workerOf = (r: RawResponse): string => String(r.headers['x-request-id']).slice(0, 12);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/**
 * With two workers the next request may reach the one that did not store the entry; the promise is
 * "a hit through any worker within 100 ms" of the store.
 */
const shared = (): Promise<void> => sleep(100);

/** The admin scrape, read as sums of series (test/helpers/prometheus.ts). */
const scrape = (gw: GatewayProcess): Promise<Samples> => scrapeAdmin(gw.adminUrl);

/** Chat requests sent to each gateway through `chat`: each one is a request the cache looks at. */
const sent = new Map<GatewayProcess, number>();

/**
 * The scrape once it has every request `chat` sent (metrics are recorded as each request ends,
 * just after its answer leaves).
 */
function settled(gw: GatewayProcess): ReturnType<typeof scrape> {
  return waitFor('every request in /metrics', async () => {
    const s = await scrape(gw);
    return s('sluice_cache_requests_total') === (sent.get(gw) ?? 0) ? s : undefined;
  });
}

/** Requests the upstream saw whose last user message is `question`. */
function upstreamAsked(rec: Recorder, question: string): number {
  return rec.requests.filter((r) => {
    if (r.method !== 'POST') return false;
    const body = JSON.parse(r.body.toString('utf8')) as { messages?: { role: string; content: unknown }[] };
    const last = body.messages?.filter((m) => m.role === 'user').pop();
    return last !== undefined && JSON.stringify(last.content).includes(question);
  }).length;
}

function chat(gw: GatewayProcess, question: string, opts: { who?: Who; extra?: Record<string, unknown>; headers?: Record<string, string>; model?: string } = {}): Promise<RawResponse> {
  sent.set(gw, (sent.get(gw) ?? 0) + 1);
  const headers: Record<string, string> = { ...(opts.who !== undefined ? { authorization: `Bearer ${KEYS[opts.who]}` } : {}), ...opts.headers };
  return postJson(gw.url, '/v1/chat/completions', { model: opts.model ?? 'chat', messages: [{ role: 'user', content: question }], ...opts.extra }, headers);
}

describe('response cache: two workers, consumers, exact and semantic layers', () => {
  let gw: GatewayProcess;
  let rec: Recorder;
  const logPath = join(tempDir(), 'cache-access.log');

  before(async () => {
    const mock = await startMock();
    rec = await startRecorder({ forwardTo: mock.url });
    gw = await startGateway({
      config: {
        providers: [{ name: 'up', type: 'openai-compatible', base_url: `${rec.url}/v1`, models: ['*'] }],
        models: [
          { name: 'chat', targets: [{ provider: 'up', model: 'm1' }] },
          // Another name for the same upstream model: shares answers with `chat`.
          { name: 'chat-alias', targets: [{ provider: 'up', model: 'm1' }] },
          { name: 'chat-2', targets: [{ provider: 'up', model: 'm2' }] },
        ],
        consumers: [
          { name: 'alice', keys: [hashKey(KEYS.alice)], labels: { tenant: 'acme' } },
          { name: 'bob', keys: [hashKey(KEYS.bob)], labels: { tenant: 'acme' } },
          { name: 'carol', keys: [hashKey(KEYS.carol)], labels: { tenant: 'other' } },
        ],
        access_log: { enabled: true, path: logPath },
        // Priced, so a miss costs something and a hit visibly nothing.
        prices: [{ model: 'm*', input_per_mtok: 1000, output_per_mtok: 1000 }],
        // A generous budget: this box is shared with other tests; the saturation test uses the default.
        cache: { semantic: { lookup_budget_ms: 2_000 } },
      },
      args: ['--port', '0', '--workers', '2'],
      startTimeoutMs: 30_000,
    });
  });

  it('a repeated request is an exact hit: same answer, no upstream call, usage as cached tokens', async () => {
    const q = 'Name three primary colours.';
    const first = await chat(gw, q, { who: 'alice' });
    assert.equal(first.status, 200, first.text);
    assert.equal(cacheStatus(first), 'miss');
    await shared();
    const hit = await chat(gw, q, { who: 'alice' });
    assert.equal(hit.status, 200, hit.text);
    assert.equal(cacheStatus(hit), 'hit');
    assert.equal(answerContent(hit.text), answerContent(first.text));
    assert.equal(upstreamAsked(rec, q), 1);
    const usage = (JSON.parse(hit.text) as { usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { cached_tokens: number } } }).usage;
    const stored = (JSON.parse(first.text) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
    assert.equal(usage.prompt_tokens, stored.prompt_tokens);
    assert.equal(usage.completion_tokens, stored.completion_tokens);
    assert.equal(usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens, 'every input token of a hit counts as cached');
    assert.equal(hit.headers['x-sluice-attempts'], '0');
    // An alias of the same upstream model shares the answer.
    assert.equal(cacheStatus(await chat(gw, q, { who: 'alice', model: 'chat-alias' })), 'hit');

    const lines = await waitFor('access log lines', () => {
      const text = (() => {
        try {
          return readFileSync(logPath, 'utf8');
        } catch {
          return '';
        }
      })();
      const ls = text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      return ls.length >= 3 ? ls : undefined;
    });
    assert.deepEqual(lines.slice(0, 3).map((l) => l.cache), ['miss', 'hit', 'hit']);
    assert.ok(typeof lines[0]!.cost_usd === 'number' && lines[0]!.cost_usd > 0, 'a miss is bought upstream');
    assert.equal(lines[1]!.cost_usd, undefined, 'a hit costs nothing');
    assert.equal(lines[1]!.input_tokens, lines[0]!.input_tokens, 'and reports the tokens it replays');
  });

  it('an entry stored through one worker is a hit through the other within 100 ms', async () => {
    const q = 'Which planet is closest to the sun?';
    const stored = await chat(gw, q, { who: 'alice' });
    assert.equal(cacheStatus(stored), 'miss');
    await shared();
    // Each request on a fresh connection: SO_REUSEPORT spreads them over both workers.
    const seen = new Set<string>();
    for (let i = 0; i < 40 && !(seen.size > 0 && [...seen].some((w) => w !== workerOf(stored))); i++) {
      const r = await chat(gw, q, { who: 'alice' });
      assert.equal(cacheStatus(r), 'hit', `request ${i} on worker ${workerOf(r)}`);
      seen.add(workerOf(r));
    }
    assert.ok([...seen].some((w) => w !== workerOf(stored)), 'a hit served by the worker that did not store the entry');
    assert.equal(upstreamAsked(rec, q), 1);
  });

  it('keeps consumers apart: B never sees A’s answer, exact or paraphrased', async () => {
    const q = 'How do I convert a string to an integer in Python?';
    const paraphrase = 'How can I convert a string to an integer in Python?';
    assert.equal(cacheStatus(await chat(gw, q, { who: 'alice' })), 'miss');
    // The vector is computed after the answer and shared with the other worker after that.
    await sleep(600);
    const aliceParaphrase = await chat(gw, paraphrase, { who: 'alice' });
    assert.match(cacheStatus(aliceParaphrase), /^semantic-hit;score=0\.\d\d$/);
    assert.ok(answerContent(aliceParaphrase.text)?.includes(q), 'the paraphrase got the cached answer');

    // Bob asks the paraphrase first: nothing of his own could answer it, only Alice's entry.
    const bobParaphrase = await chat(gw, paraphrase, { who: 'bob' });
    assert.equal(cacheStatus(bobParaphrase), 'miss');
    assert.ok(answerContent(bobParaphrase.text)?.includes(paraphrase), 'his own answer');
    assert.notEqual(cacheStatus(await chat(gw, q, { who: 'bob' })), 'hit');
    assert.equal(cacheStatus(await chat(gw, q, { who: 'carol' })), 'miss');
    assert.equal(upstreamAsked(rec, q), 2, 'alice and carol asked upstream; bob got at most his own entry');
  });

  it('any change to a parameter that shapes the answer is a miss; stream and ignored fields are not', async () => {
    const q = 'Describe a sunset in one sentence.';
    const base = { temperature: 0.2, max_tokens: 60 };
    assert.equal(cacheStatus(await chat(gw, q, { who: 'alice', extra: base })), 'miss');
    await shared();
    assert.equal(cacheStatus(await chat(gw, q, { who: 'alice', extra: base })), 'hit');
    const changes: Record<string, unknown>[] = [
      { temperature: 0.3 },
      { max_tokens: 61 },
      { top_p: 0.9 },
      { stop: ['.'] },
      { seed: 7 },
      { presence_penalty: 0.1 },
      { frequency_penalty: 0.1 },
      { response_format: { type: 'json_object' } },
      { logprobs: true },
      { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } }] },
      { chat_template_kwargs: { enable_thinking: false } },
      { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: q }] },
    ];
    for (const change of changes) {
      const r = await chat(gw, q, { who: 'alice', extra: { ...base, ...change } });
      assert.equal(r.status, 200, r.text);
      assert.equal(cacheStatus(r), 'miss', `changed ${JSON.stringify(change)}`);
    }
    assert.equal(cacheStatus(await chat(gw, q, { who: 'alice', model: 'chat-2', extra: base })), 'miss', 'another upstream model');
    assert.equal(cacheStatus(await chat(gw, q, { who: 'alice', extra: { ...base, metadata: { trace: 'x' }, stream: true } })), 'hit');
  });

  it('policy: no-cache skips the lookup and stores, no-store keeps out, sampling and tool traffic bypass', async () => {
    const q = 'Spell the word cat backwards.';
    const nc = await chat(gw, q, { who: 'alice', headers: { 'cache-control': 'no-cache' } });
    assert.equal(cacheStatus(nc), 'bypass');
    await shared();
    assert.equal(cacheStatus(await chat(gw, q, { who: 'alice' })), 'hit', 'no-cache stored its answer');
    assert.equal(cacheStatus(await chat(gw, q, { who: 'alice', headers: { 'cache-control': 'no-cache' } })), 'bypass');
    assert.equal(upstreamAsked(rec, q), 2);

    const q2 = 'Spell the word dog backwards.';
    assert.equal(cacheStatus(await chat(gw, q2, { who: 'alice', headers: { 'cache-control': 'no-store' } })), 'bypass');
    assert.equal(cacheStatus(await chat(gw, q2, { who: 'alice' })), 'miss', 'no-store stored nothing');

    assert.equal(cacheStatus(await chat(gw, q2, { who: 'alice', extra: { temperature: 1.5 } })), 'bypass');
    assert.equal(cacheStatus(await chat(gw, q2, { who: 'alice', extra: { n: 2 } })), 'bypass');
    const toolTurn = {
      messages: [
        { role: 'user', content: q2 },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'spell', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: 'god' },
      ],
    };
    assert.equal(cacheStatus(await chat(gw, q2, { who: 'alice', extra: toolTurn })), 'bypass');
  });

  it('the official SDKs parse replayed streams: OpenAI chunks and Anthropic events', async () => {
    const q = 'List the days of the week.';
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEYS.alice, maxRetries: 0 });
    const first = await openai.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: q }] });
    await shared();
    const text = first.choices[0]!.message.content!;
    const { data: stream, response } = await openai.chat.completions
      .create({ model: 'chat', messages: [{ role: 'user', content: q }], stream: true, stream_options: { include_usage: true } })
      .withResponse();
    assert.equal(response.headers.get('x-sluice-cache'), 'hit');
    let streamed = '';
    let chunks = 0;
    let finish: string | null = null;
    let cached: number | undefined;
    for await (const chunk of stream) {
      chunks++;
      streamed += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) cached = chunk.usage.prompt_tokens_details?.cached_tokens;
    }
    assert.equal(streamed, text);
    assert.ok(chunks > 3, `a real stream (${chunks} chunks)`);
    assert.equal(finish, 'stop');
    assert.equal(cached, first.usage!.prompt_tokens);

    const anthropic = new Anthropic({ baseURL: gw.url, apiKey: KEYS.alice, maxRetries: 0 });
    const aq = 'Name the four seasons.';
    const stored = await anthropic.messages.create({ model: 'chat', max_tokens: 100, messages: [{ role: 'user', content: aq }] });
    await shared();
    const { data: events, response: aresp } = await anthropic.messages
      .create({ model: 'chat', max_tokens: 100, messages: [{ role: 'user', content: aq }], stream: true })
      .withResponse();
    assert.equal(aresp.headers.get('x-sluice-cache'), 'hit');
    const types: string[] = [];
    let atext = '';
    let stop: string | null | undefined;
    let outputTokens = 0;
    for await (const ev of events) {
      types.push(ev.type);
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') atext += ev.delta.text;
      if (ev.type === 'message_delta') {
        stop = ev.delta.stop_reason;
        outputTokens = ev.usage.output_tokens;
      }
    }
    const storedText = stored.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
    assert.equal(atext, storedText);
    assert.equal(stop, 'end_turn');
    assert.equal(outputTokens, stored.usage.output_tokens);
    assert.equal(types[0], 'message_start');
    assert.equal(types[types.length - 1], 'message_stop');
    assert.ok(types.filter((t) => t === 'content_block_delta').length > 1, 'several deltas');
  });

  it('a reload keeps the entries; with namespace: tenant, consumers of one tenant share', async () => {
    const base = JSON.parse(readFileSync(gw.configPath!, 'utf8')) as Record<string, unknown>;
    const push = async (cache: Record<string, unknown>): Promise<void> => {
      const put = await fetch(`${gw.adminUrl}/admin/config`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...base, cache }) });
      assert.equal(put.status, 200, await put.text());
    };
    await push({ ttl_ms: 1_800_000, semantic: { lookup_budget_ms: 2_000 } });
    assert.equal(cacheStatus(await chat(gw, 'Name three primary colours.', { who: 'alice' })), 'hit', 'kept across the reload');

    await push({ namespace: 'tenant', semantic: { lookup_budget_ms: 2_000 } });
    const q = 'What colour is the sky on a clear day?';
    assert.equal(cacheStatus(await chat(gw, q, { who: 'alice' })), 'miss');
    await shared();
    assert.equal(cacheStatus(await chat(gw, q, { who: 'bob' })), 'hit', 'same tenant');
    assert.equal(cacheStatus(await chat(gw, q, { who: 'carol' })), 'miss', 'another tenant');
  });
});

describe('response cache: semantic layer and a saturated pool (one worker, shipped embedder)', () => {
  let gw: GatewayProcess;
  let rec: Recorder;

  before(async () => {
    const mock = await startMock();
    rec = await startRecorder({ forwardTo: mock.url });
    gw = await startGateway({
      config: {
        providers: [{ name: 'up', type: 'openai-compatible', base_url: `${rec.url}/v1`, models: ['*'] }],
        models: [{ name: 'chat', targets: [{ provider: 'up', model: 'm1' }] }],
        cache: { semantic: { lookup_budget_ms: 1_000, max_queue: 2 } },
      },
      args: ['--port', '0', '--workers', '1'],
      startTimeoutMs: 30_000,
    });
  });

  it('a paraphrase hits with the stored answer; a hard negative misses', async () => {
    const q = 'What is the boiling point of water at sea level?';
    assert.equal(cacheStatus(await chat(gw, q)), 'miss');
    const para = await chat(gw, 'what is the boiling point of water at sea level');
    assert.match(cacheStatus(para), /^semantic-hit;score=/);
    assert.ok(answerContent(para.text)?.includes(q));
    const before = await settled(gw);
    for (const negative of ['What is the freezing point of water at sea level?', 'What is the boiling point of water at 2000 meters?', 'What is the boiling point of milk at sea level?']) {
      const r = await chat(gw, negative);
      assert.equal(cacheStatus(r), 'miss', negative);
      assert.ok(answerContent(r.text)?.includes(negative), 'its own answer');
    }
    // Each negative is a semantic miss: turned down by the verifier, or never close enough. A
    // verifier miss rejected at least one candidate.
    const after = await settled(gw);
    const delta = (name: string, labels: Record<string, string> = {}): number => after(name, labels) - before(name, labels);
    assert.equal(delta('sluice_cache_semantic_misses_total', { reason: 'verifier' }) + delta('sluice_cache_semantic_misses_total', { reason: 'no_candidate' }), 3);
    assert.ok(delta('sluice_cache_verifier_rejections_total') >= delta('sluice_cache_semantic_misses_total', { reason: 'verifier' }));
  });

  it('a busy pool is a miss, not a wait: concurrent lookups degrade to misses and all succeed', async () => {
    const q = 'Who wrote the novel Moby-Dick?';
    assert.equal(cacheStatus(await chat(gw, q)), 'miss');
    // Trailing spaces: a new exact key each, the same question to the semantic layer.
    const probe = await chat(gw, `${q} `);
    assert.match(cacheStatus(probe), /^semantic-hit/, 'indexed');
    const before = await settled(gw);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => chat(gw, q + ' '.repeat(i + 2))));
    assert.ok(answers.every((r) => r.status === 200));
    const statuses = answers.map(cacheStatus);
    const misses = statuses.filter((s) => s === 'miss').length;
    assert.ok(misses > 0, `some lookups refused (${statuses.join(', ')})`);
    assert.ok(statuses.every((s) => s === 'miss' || s.startsWith('semantic-hit')));
    // Once the burst (and the stores it caused) is over, the pool serves again.
    await sleep(500);
    assert.match(cacheStatus(await chat(gw, q + ' '.repeat(60))), /^semantic-hit/);
    assert.equal(upstreamAsked(rec, q), 1 + misses);
    // On /metrics every one of those misses is the pool's: refused at once (busy) or over budget.
    const after = await settled(gw);
    const delta = (name: string, labels: Record<string, string> = {}): number => after(name, labels) - before(name, labels);
    assert.equal(delta('sluice_cache_requests_total', { result: 'miss' }), misses);
    assert.equal(delta('sluice_cache_semantic_misses_total', { reason: 'pool_busy' }) + delta('sluice_cache_semantic_misses_total', { reason: 'pool_timeout' }), misses);
    assert.equal(delta('sluice_cache_semantic_misses_total'), misses);
  });
});

describe('response cache across nodes through Redis', { skip: hasRedisServer() ? false : 'redis-server is not installed' }, () => {
  let redis: PrivateRedis | undefined;

  after(async () => {
    await redis?.stop();
  });

  it('a node that starts later has the entries; an entry stored on either is a hit on the other within 100 ms', async () => {
    redis = await startRedisServer();
    const port = redis.port;
    const mock = await startMock();
    const rec = await startRecorder({ forwardTo: mock.url });
    const config = {
      providers: [{ name: 'up', type: 'openai-compatible', base_url: `${rec.url}/v1`, models: ['*'] }],
      models: [{ name: 'chat', targets: [{ provider: 'up', model: 'm1' }] }],
      redis: { url: `redis://127.0.0.1:${port}`, key_prefix: 'sluice-e2e:' },
      cache: { namespace: 'shared', semantic: { enabled: false } },
    };
    const nodeA = await startGateway({ config, args: ['--port', '0', '--workers', '1'] });
    const early = 'What is the tallest mountain on Earth?';
    assert.equal(cacheStatus(await chat(nodeA, early)), 'miss');
    await shared();

    const nodeB = await startGateway({ config, args: ['--port', '0', '--workers', '1'] });
    assert.equal(cacheStatus(await chat(nodeB, early)), 'hit', 'stored before node B started');

    const late = 'What is the longest river in Africa?';
    assert.equal(cacheStatus(await chat(nodeB, late)), 'miss');
    await shared();
    assert.equal(cacheStatus(await chat(nodeA, late)), 'hit', 'stored on node B, a hit on node A');
    assert.equal(upstreamAsked(rec, early) + upstreamAsked(rec, late), 2);
  });
});
