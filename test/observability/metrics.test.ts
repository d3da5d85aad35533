import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Registry } from 'prom-client';

import {
  aggregate,
  ClusterMetrics,
  GatewayMetrics,
  LabelCap,
  upstreamErrorKind,
  type MetricsSnapshot,
  type RequestRecord,
} from '../../src/observability/metrics.js';
import { parsePrometheus, seriesSum, seriesValue } from '../helpers/prometheus.js';

const parse = parsePrometheus;
const value = seriesValue;
const total = seriesSum;

const base: RequestRecord = {
  model: 'gpt-4o',
  provider: 'openai',
  providerType: 'openai',
  operation: 'chat',
  consumer: 'alice',
  status: 200,
  stream: true,
  durationMs: 1000,
  attempts: 1,
};

/** A known sequence: six requests covering success, fallback, refusal, self-hosted, unpriced, abort. */
const SEQUENCE: RequestRecord[] = [
  { ...base, usage: { inputTokens: 100, outputTokens: 50 }, costMicros: 1250, ttftMs: 200, durationMs: 1200 },
  {
    ...base,
    consumer: 'bob',
    provider: 'claude',
    providerType: 'anthropic',
    stream: false,
    usage: { inputTokens: 1000, outputTokens: 10 },
    costMicros: 2600,
    durationMs: 500,
    attempts: 3,
    fallback: true,
    upstreamErrors: [
      { provider: 'openai', kind: 'timeout' },
      { provider: 'openai', kind: 'server_error' },
    ],
  },
  { ...base, consumer: 'carol', provider: '', providerType: undefined, status: 429, attempts: 0, rateLimited: 'tokens', errorType: 'rate_limited', durationMs: 1 },
  { ...base, model: 'llama-3', provider: 'local', providerType: 'vllm', usage: { inputTokens: 10, outputTokens: 5 }, costMicros: 0, ttftMs: 50, durationMs: 150 },
  { ...base, model: 'mistral-x', provider: 'mistral', providerType: 'mistral', stream: false, usage: { inputTokens: 10, outputTokens: 10 }, priced: false },
  { ...base, status: 0, durationMs: 300 },
];

function run(records: RequestRecord[], inFlight = 3): GatewayMetrics {
  const m = new GatewayMetrics({ inFlight: () => inFlight, maxConsumers: 2, maxModels: 2 });
  for (const r of records) m.observe(r);
  return m;
}

describe('GatewayMetrics.observe', () => {
  it('counts requests by status, model, provider and consumer, capping labels into "other"', async () => {
    const s = parse(await run(SEQUENCE).metrics());
    const req = (status: string, model: string, provider: string, consumer: string) => value(s, 'sluice_requests_total', { status, model, provider, consumer });
    assert.equal(req('200', 'gpt-4o', 'openai', 'alice'), 1);
    assert.equal(req('200', 'gpt-4o', 'claude', 'bob'), 1);
    // A third consumer is over the cap of 2; a refused request has no provider.
    assert.equal(req('429', 'gpt-4o', 'none', 'other'), 1);
    assert.equal(req('200', 'llama-3', 'local', 'alice'), 1);
    // A third model is over the cap of 2.
    assert.equal(req('200', 'other', 'mistral', 'alice'), 1);
    // The client left before a status was sent.
    assert.equal(req('499', 'gpt-4o', 'openai', 'alice'), 1);
    assert.equal(total(s, 'sluice_requests_total'), 6);
  });

  it('adds up tokens and cost per consumer, and counts unpriced usage apart', async () => {
    const s = parse(await run(SEQUENCE).metrics());
    const tok = (consumer: string, model: string, provider: string, type: string) =>
      value(s, 'sluice_tokens_total', { consumer, model, provider, gen_ai_token_type: type });
    assert.equal(tok('alice', 'gpt-4o', 'openai', 'input'), 100);
    assert.equal(tok('alice', 'gpt-4o', 'openai', 'output'), 50);
    assert.equal(tok('bob', 'gpt-4o', 'claude', 'input'), 1000);
    assert.equal(tok('bob', 'gpt-4o', 'claude', 'output'), 10);
    assert.equal(tok('alice', 'llama-3', 'local', 'input'), 10);
    assert.equal(total(s, 'sluice_tokens_total', { gen_ai_token_type: 'input' }), 1120);
    assert.equal(total(s, 'sluice_tokens_total', { gen_ai_token_type: 'output' }), 75);

    assert.equal(value(s, 'sluice_cost_usd_total', { consumer: 'alice', model: 'gpt-4o', provider: 'openai' }), 0.00125);
    assert.equal(value(s, 'sluice_cost_usd_total', { consumer: 'bob', model: 'gpt-4o', provider: 'claude' }), 0.0026);
    assert.equal(value(s, 'sluice_cost_usd_total', { consumer: 'alice', model: 'llama-3', provider: 'local' }), 0);
    assert.equal(value(s, 'sluice_cost_usd_total', { consumer: 'alice', model: 'other', provider: 'mistral' }), undefined);
    assert.equal(value(s, 'sluice_unpriced_requests_total', { model: 'other', provider: 'mistral' }), 1);
  });

  it('counts retries, fallbacks, upstream errors by kind, refusals by limit, and reads in-flight', async () => {
    const s = parse(await run(SEQUENCE).metrics());
    assert.equal(value(s, 'sluice_retries_total', { model: 'gpt-4o' }), 2);
    assert.equal(total(s, 'sluice_retries_total'), 2);
    assert.equal(value(s, 'sluice_fallbacks_total', { model: 'gpt-4o' }), 1);
    assert.equal(value(s, 'sluice_upstream_errors_total', { provider: 'openai', kind: 'timeout' }), 1);
    assert.equal(value(s, 'sluice_upstream_errors_total', { provider: 'openai', kind: 'server_error' }), 1);
    assert.equal(total(s, 'sluice_upstream_errors_total'), 2);
    assert.equal(value(s, 'sluice_rate_limited_total', { consumer: 'other', limit: 'tokens' }), 1);
    assert.equal(value(s, 'sluice_requests_in_flight'), 3);
  });

  it('fills the GenAI histograms with OTel names, units in seconds and token types', async () => {
    const s = parse(await run(SEQUENCE).metrics());
    const gpt = { gen_ai_operation_name: 'chat', gen_ai_provider_name: 'openai', gen_ai_request_model: 'gpt-4o', provider: 'openai' };

    // Token usage: one observation per type per request with usage.
    assert.equal(value(s, 'gen_ai_client_token_usage_count', { ...gpt, gen_ai_token_type: 'input' }), 1);
    assert.equal(value(s, 'gen_ai_client_token_usage_sum', { ...gpt, gen_ai_token_type: 'input' }), 100);
    assert.equal(value(s, 'gen_ai_client_token_usage_bucket', { ...gpt, gen_ai_token_type: 'input', le: 64 }), 0);
    assert.equal(value(s, 'gen_ai_client_token_usage_bucket', { ...gpt, gen_ai_token_type: 'input', le: 256 }), 1);
    assert.equal(total(s, 'gen_ai_client_token_usage_count'), 8);
    assert.equal(
      value(s, 'gen_ai_client_token_usage_sum', {
        gen_ai_operation_name: 'chat',
        gen_ai_provider_name: 'anthropic',
        gen_ai_request_model: 'gpt-4o',
        provider: 'claude',
        gen_ai_token_type: 'input',
      }),
      1000,
    );
    assert.equal(total(s, 'gen_ai_client_token_usage_count', { gen_ai_provider_name: 'mistral_ai' }), 2);

    // Duration: every request, error_type only on failures.
    assert.equal(total(s, 'gen_ai_client_operation_duration_seconds_count'), 6);
    assert.equal(value(s, 'gen_ai_client_operation_duration_seconds_count', { ...gpt, error_type: '' }), 1);
    assert.equal(value(s, 'gen_ai_client_operation_duration_seconds_sum', { ...gpt, error_type: '' }), 1.2);
    assert.equal(value(s, 'gen_ai_client_operation_duration_seconds_bucket', { ...gpt, error_type: '', le: 0.64 }), 0);
    assert.equal(value(s, 'gen_ai_client_operation_duration_seconds_bucket', { ...gpt, error_type: '', le: 1.28 }), 1);
    assert.equal(value(s, 'gen_ai_client_operation_duration_seconds_count', { ...gpt, error_type: '499' }), 1);
    assert.equal(total(s, 'gen_ai_client_operation_duration_seconds_count', { error_type: 'rate_limited', gen_ai_provider_name: 'none' }), 1);

    // Time to first token and per output token: successful streams only (requests 1 and 4).
    assert.equal(total(s, 'gen_ai_server_time_to_first_token_seconds_count'), 2);
    assert.equal(value(s, 'gen_ai_server_time_to_first_token_seconds_sum', gpt), 0.2);
    assert.equal(value(s, 'gen_ai_server_time_to_first_token_seconds_bucket', { ...gpt, le: 0.1 }), 0);
    assert.equal(value(s, 'gen_ai_server_time_to_first_token_seconds_bucket', { ...gpt, le: 0.25 }), 1);
    // (1200 − 200) ms over 49 tokens after the first = 20.4 ms.
    assert.equal(total(s, 'gen_ai_server_time_per_output_token_seconds_count'), 2);
    assert.equal(value(s, 'gen_ai_server_time_per_output_token_seconds_bucket', { ...gpt, le: 0.01 }), 0);
    assert.equal(value(s, 'gen_ai_server_time_per_output_token_seconds_bucket', { ...gpt, le: 0.025 }), 1);
    const vllm = { gen_ai_operation_name: 'chat', gen_ai_provider_name: 'vllm', gen_ai_request_model: 'llama-3', provider: 'local' };
    // (150 − 50) ms over 4 tokens = 25 ms, on the boundary: buckets are "less than or equal".
    assert.equal(value(s, 'gen_ai_server_time_per_output_token_seconds_bucket', { ...vllm, le: 0.025 }), 1);
  });

  it('counts cache results, and a hit\'s tokens as served from the cache: not upstream tokens, not spend', async () => {
    const m = run([
      { ...base, cache: 'miss', usage: { inputTokens: 40, outputTokens: 20 }, costMicros: 900 },
      { ...base, cache: 'hit', usage: { inputTokens: 40, outputTokens: 20 }, costMicros: 0, attempts: 0 },
      { ...base, cache: 'semantic-hit', usage: { inputTokens: 30, outputTokens: 10 }, costMicros: 0, attempts: 0 },
      { ...base, cache: 'bypass', usage: { inputTokens: 5, outputTokens: 5 }, costMicros: 100 },
      { ...base, model: 'llama-3', usage: { inputTokens: 1, outputTokens: 1 }, costMicros: 0 },
    ]);
    const s = parse(await m.metrics());
    for (const result of ['hit', 'semantic-hit', 'miss', 'bypass']) {
      assert.equal(value(s, 'sluice_cache_requests_total', { model: 'gpt-4o', result }), 1, result);
    }
    assert.equal(total(s, 'sluice_cache_requests_total'), 4, 'a request the cache did not look at is not counted');
    assert.equal(value(s, 'sluice_cache_tokens_total', { consumer: 'alice', model: 'gpt-4o', gen_ai_token_type: 'input' }), 70);
    assert.equal(value(s, 'sluice_cache_tokens_total', { consumer: 'alice', model: 'gpt-4o', gen_ai_token_type: 'output' }), 30);
    assert.equal(value(s, 'sluice_tokens_total', { consumer: 'alice', model: 'gpt-4o', provider: 'openai', gen_ai_token_type: 'input' }), 45, 'miss + bypass only');
    assert.equal(value(s, 'sluice_cost_usd_total', { consumer: 'alice', model: 'gpt-4o', provider: 'openai' }), 0.001);
    assert.equal(value(s, 'sluice_requests_total', { status: '200', model: 'gpt-4o', provider: 'openai', consumer: 'alice' }), 4);
  });

  it("counts the upstream's prompt-cache reads as part of its input; exports every cache result of a model, zeros included", async () => {
    const m = run([
      { ...base, cache: 'miss', usage: { inputTokens: 1000, outputTokens: 10, cachedInputTokens: 768 }, costMicros: 500 },
      { ...base, cache: 'miss', usage: { inputTokens: 100, outputTokens: 10, cachedInputTokens: 0 }, costMicros: 200 },
      // A hit's usage marks every input token cached: that is the gateway's cache, not the upstream's.
      { ...base, cache: 'hit', usage: { inputTokens: 1000, outputTokens: 10, cachedInputTokens: 1000 }, costMicros: 0, attempts: 0 },
      { ...base, model: 'llama-3', usage: { inputTokens: 50, outputTokens: 5, cachedInputTokens: 80 }, costMicros: 0 },
    ]);
    const s = parse(await m.metrics());
    assert.equal(value(s, 'sluice_upstream_cache_read_tokens_total', { consumer: 'alice', model: 'gpt-4o', provider: 'openai' }), 768);
    assert.equal(value(s, 'sluice_upstream_cache_read_tokens_total', { consumer: 'alice', model: 'llama-3', provider: 'openai' }), 50, 'never more than the input');
    assert.equal(value(s, 'sluice_tokens_total', { consumer: 'alice', model: 'gpt-4o', provider: 'openai', gen_ai_token_type: 'input' }), 1100);
    assert.equal(value(s, 'sluice_cache_tokens_total', { consumer: 'alice', model: 'gpt-4o', gen_ai_token_type: 'input' }), 1000);
    assert.equal(value(s, 'sluice_cache_requests_total', { model: 'gpt-4o', result: 'semantic-hit' }), 0);
    assert.equal(value(s, 'sluice_cache_requests_total', { model: 'gpt-4o', result: 'bypass' }), 0);
    assert.equal(value(s, 'sluice_cache_requests_total', { model: 'llama-3', result: 'miss' }), undefined, 'no cache, no series');
  });

  it('caps long and numerous label values', () => {
    const cap = new LabelCap(2);
    assert.equal(cap.value('a'), 'a');
    assert.equal(cap.value('x'.repeat(129)), 'other');
    assert.equal(cap.value('b'), 'b');
    assert.equal(cap.value('c'), 'other');
    assert.equal(cap.value('a'), 'a');
    assert.equal(cap.size, 2);
  });

  it('keeps the series count bounded under many distinct models and consumers', async () => {
    const m = new GatewayMetrics({ maxConsumers: 5, maxModels: 5 });
    for (let i = 0; i < 500; i++) m.observe({ ...base, model: `model-${i}`, consumer: `c-${i}`, usage: { inputTokens: 1, outputTokens: 1 } });
    const s = parse(await m.metrics());
    assert.equal(total(s, 'sluice_requests_total'), 500);
    assert.equal(value(s, 'sluice_requests_total', { status: 200, model: 'other', provider: 'openai', consumer: 'other' }), 495);
    const series = [...s.keys()].filter((k) => k.startsWith('sluice_requests_total{')).length;
    assert.equal(series, 6);
  });
});

describe('registry', () => {
  it('shares a registry with ordinary prom-client metrics (Wasm plugin metrics)', async () => {
    const registry = new Registry();
    const plugin = new Counter({ name: 'sluice_wasm_hits', help: 'plugin counter', registers: [registry] });
    const m = new GatewayMetrics({ registry });
    plugin.inc(5);
    m.observe(base);
    const s = parse(await aggregate([await m.workerSnapshot(), await m.workerSnapshot()]));
    assert.equal(value(s, 'sluice_wasm_hits'), 10);
    assert.equal(total(s, 'sluice_requests_total'), 2);
    assert.equal(m.contentType, Registry.PROMETHEUS_CONTENT_TYPE);
  });

  it('exports only series that were observed', async () => {
    const s = parse(await new GatewayMetrics().metrics());
    assert.deepEqual([...s.keys()], ['sluice_requests_in_flight{}']);
  });
});

describe('upstreamErrorKind', () => {
  it('maps what the attempt loop knows to a kind', () => {
    assert.equal(upstreamErrorKind(0, 'upstream_unreachable'), 'connect');
    assert.equal(upstreamErrorKind(0, 'upstream_timeout'), 'timeout');
    assert.equal(upstreamErrorKind(200, 'upstream_protocol_error'), 'protocol');
    assert.equal(upstreamErrorKind(429), 'rate_limited');
    assert.equal(upstreamErrorKind(503), 'overloaded');
    assert.equal(upstreamErrorKind(529), 'overloaded');
    assert.equal(upstreamErrorKind(401), 'auth');
    assert.equal(upstreamErrorKind(500), 'server_error');
    assert.equal(upstreamErrorKind(400), 'client_error');
    assert.equal(upstreamErrorKind(0), 'other');
  });
});

describe('aggregation across workers', () => {
  /** What crosses the IPC channel: the supervisor sees a deep copy, never the worker's objects. */
  const overIpc = async (m: GatewayMetrics): Promise<MetricsSnapshot> => structuredClone(await m.workerSnapshot());
  const overJson = async (m: GatewayMetrics): Promise<MetricsSnapshot> => JSON.parse(JSON.stringify(await m.workerSnapshot())) as MetricsSnapshot;

  it('two worker snapshots aggregate to their sum', async () => {
    const a = run(SEQUENCE.slice(0, 3), 3);
    const b = run(SEQUENCE, 4);
    const sa = parse(await a.metrics());
    const sb = parse(await b.metrics());
    const sum = parse(await aggregate([await overIpc(a), await overJson(b)]));
    // Every series of either worker appears in the sum with the added value (gauges added too).
    const keys = new Set([...sa.keys(), ...sb.keys()]);
    assert.ok(keys.size > 50);
    for (const key of keys) {
      const expected = (sa.get(key) ?? 0) + (sb.get(key) ?? 0);
      const got = sum.get(key);
      assert.ok(got !== undefined, `missing ${key}`);
      assert.ok(Math.abs(got - expected) < 1e-9, `${key}: ${got} ≠ ${expected}`);
    }
    assert.equal(sum.size, keys.size);
    assert.equal(value(sum, 'sluice_requests_in_flight'), 7);
    assert.equal(total(sum, 'sluice_requests_total'), 9);
    assert.equal(value(sum, 'sluice_retries_total', { model: 'gpt-4o' }), 4);
    assert.equal(total(sum, 'gen_ai_client_operation_duration_seconds_count'), 9);
  });

  it('the aggregate keeps HELP and TYPE lines', async () => {
    const text = await aggregate([await run(SEQUENCE).workerSnapshot(), await run(SEQUENCE).workerSnapshot()]);
    assert.match(text, /^# TYPE sluice_requests_total counter$/m);
    assert.match(text, /^# TYPE gen_ai_client_token_usage histogram$/m);
    assert.match(text, /^# TYPE sluice_requests_in_flight gauge$/m);
    assert.match(text, /^# HELP gen_ai_server_time_to_first_token_seconds /m);
  });
});

describe('ClusterMetrics', () => {
  it('serves the sum of live workers and never loses what an exited worker counted', async () => {
    const cluster = new ClusterMetrics();
    const w1 = run(SEQUENCE, 2);
    const w2 = run(SEQUENCE.slice(0, 2), 5);
    cluster.update(101, await w1.workerSnapshot());
    cluster.update(102, await w2.workerSnapshot());
    let s = parse(await cluster.render());
    assert.equal(total(s, 'sluice_requests_total'), 8);
    assert.equal(value(s, 'sluice_requests_in_flight'), 7);

    // Worker 101 dies; its replacement starts from zero.
    cluster.retire(101);
    const w3 = run(SEQUENCE.slice(0, 1), 1);
    cluster.update(103, await w3.workerSnapshot());
    s = parse(await cluster.render());
    assert.equal(total(s, 'sluice_requests_total'), 9, 'the dead worker still counts');
    assert.equal(value(s, 'sluice_requests_in_flight'), 6, "but not its in-flight requests");
    assert.equal(cluster.workers, 2);

    // More restarts: retired snapshots are folded into one, totals unchanged.
    cluster.retire(102);
    cluster.retire(103);
    s = parse(await cluster.render());
    assert.equal(total(s, 'sluice_requests_total'), 9);
    assert.equal(total(s, 'gen_ai_client_token_usage_count'), 8 + 4 + 2);
    assert.equal(value(s, 'sluice_requests_in_flight'), undefined);
    const again = parse(await cluster.render());
    assert.deepEqual(again, s);
    assert.equal(cluster.workers, 0);
  });

  it("forgets an exited worker's node-wide (max-aggregated) values: the live workers report them", async () => {
    const cluster = new ClusterMetrics();
    const worker = (shared: number) => {
      const registry = new Registry();
      new Counter({ name: 'sluice_wasm_shared', help: 'node-wide', aggregator: 'max', registers: [registry] }).inc(shared);
      const m = new GatewayMetrics({ registry });
      m.observe(base);
      return m;
    };
    cluster.update(1, await worker(10).workerSnapshot());
    cluster.update(2, await worker(12).workerSnapshot());
    assert.equal(value(parse(await cluster.render()), 'sluice_wasm_shared'), 12);
    cluster.retire(2);
    cluster.update(3, await worker(11).workerSnapshot());
    const s = parse(await cluster.render());
    assert.equal(value(s, 'sluice_wasm_shared'), 11);
    assert.equal(total(s, 'sluice_requests_total'), 3);
  });

  it('counts a worker once however often it reports', async () => {
    const cluster = new ClusterMetrics();
    const w = new GatewayMetrics();
    w.observe(base);
    cluster.update(7, await w.workerSnapshot());
    w.observe(base);
    cluster.update(7, await w.workerSnapshot());
    assert.equal(total(parse(await cluster.render()), 'sluice_requests_total'), 2);
  });

  it('renders concurrently with a fold without dropping or doubling counts', async () => {
    const cluster = new ClusterMetrics();
    for (let pid = 1; pid <= 4; pid++) {
      const w = new GatewayMetrics();
      w.observe(base);
      cluster.update(pid, await w.workerSnapshot());
      cluster.retire(pid);
    }
    const [a, b] = await Promise.all([cluster.render(), cluster.render()]);
    assert.equal(total(parse(a), 'sluice_requests_total'), 4);
    assert.equal(total(parse(b), 'sluice_requests_total'), 4);
    assert.equal(total(parse(await cluster.render()), 'sluice_requests_total'), 4);
  });
});
