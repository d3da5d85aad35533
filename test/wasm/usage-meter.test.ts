import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { InProcessMetrics, InProcessSharedData, InProcessSharedQueues } from '../../src/wasm/index.js';
import { chatContext, finishResponse, plugin, recordingDeps, runRequest } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('usage-meter plugin: shared data with CAS, shared queues, ticks, metrics, time', () => {
  it('counts per model in shared data that two instances (workers) share', async () => {
    const sharedData = new InProcessSharedData();
    const sharedQueues = new InProcessSharedQueues();
    const metrics = new InProcessMetrics();
    const a = await plugin('usage-meter', { config: { tick_ms: 5 } }, recordingDeps({ sharedData, sharedQueues, metrics }));
    const b = await plugin('usage-meter', { config: { tick_ms: 5 } }, recordingDeps({ sharedData, sharedQueues, metrics }));
    const counts: string[] = [];
    for (const f of [a, b, a, b]) {
      const ctx = chatContext({ model: 'gpt-4o' });
      await runRequest(f, ctx);
      finishResponse(f, ctx);
      counts.push(ctx.responseHeaders['x-usage-count']!);
    }
    assert.deepEqual(counts, ['1', '2', '3', '4']);
    const ctx = chatContext({ model: 'claude-x', body: { model: 'claude-x', messages: [] } });
    await runRequest(a, ctx);
    finishResponse(a, ctx);
    assert.equal(ctx.responseHeaders['x-usage-count'], '1');
    assert.equal(Buffer.from(sharedData.get('usage-meter', 'requests:gpt-4o')!.value).toString(), '4');
    assert.equal(ctx.responseHeaders['x-usage-requests'], '5', 'proxy_get_metric reads the counter back');

    // Durations went through the queue; queue-ready or a tick drains them into the histogram.
    await sleep(30);
    const byName = new Map(metrics.collect().map((m) => [m.name, m]));
    assert.equal(byName.get('usage_meter_requests_total')?.value, 5n);
    assert.equal(byName.get('usage_meter_in_flight')?.kind, 'gauge');
    assert.equal(byName.get('usage_meter_in_flight')?.value, 0n, 'gauge went up and down again');
    assert.equal(byName.get('usage_meter_duration_us')?.kind, 'histogram');
    assert.equal(byName.get('usage_meter_duration_us')?.count, 5);
    a.runtime.dispose();
    b.runtime.dispose();
  });

  it('CAS: a stale cas is refused, a fresh one accepted', () => {
    const store = new InProcessSharedData();
    assert.equal(store.set('vm', 'k', Buffer.from('1'), 0), 'ok');
    const first = store.get('vm', 'k')!;
    assert.equal(store.set('vm', 'k', Buffer.from('2'), first.cas), 'ok');
    assert.equal(store.set('vm', 'k', Buffer.from('3'), first.cas), 'cas_mismatch');
    assert.equal(store.set('vm', 'missing', Buffer.from('x'), 7), 'cas_mismatch');
    assert.equal(Buffer.from(store.get('vm', 'k')!.value).toString(), '2');
  });

  it('ticks stop when the plugin is retired', async () => {
    const queues = new InProcessSharedQueues();
    const f = await plugin('usage-meter', { config: { tick_ms: 1 } }, recordingDeps({ sharedQueues: queues }));
    f.runtime.dispose();
    const id = queues.resolve('usage-meter', 'durations')!;
    queues.enqueue(id, Buffer.from('5'));
    await sleep(20);
    assert.notEqual(queues.dequeue(id), 'empty', 'no tick or queue callback drained it after dispose');
  });
});

describe('PrometheusMetricSink', () => {
  it('publishes plugin metrics to a prom-client registry under sanitized names', async () => {
    const { Registry } = await import('prom-client');
    const { PrometheusMetricSink } = await import('../../src/wasm/index.js');
    const registry = new Registry();
    const sink = new PrometheusMetricSink(registry);
    const f = await plugin('usage-meter', { name: 'meter-prom', config: { tick_ms: 5 } }, recordingDeps({ metrics: sink }));
    for (let i = 0; i < 3; i++) {
      const ctx = chatContext();
      await runRequest(f, ctx);
      finishResponse(f, ctx);
    }
    await sleep(20);
    const text = await registry.metrics();
    assert.match(text, /^sluice_wasm_usage_meter_requests_total 3$/m);
    assert.match(text, /^sluice_wasm_usage_meter_in_flight 0$/m);
    assert.match(text, /^sluice_wasm_usage_meter_duration_us_count 3$/m);
    f.runtime.dispose();
  });
});
