/**
 * The plugin segment (src/wasm/shared/): shared data with CAS, shared queues and metrics over memory
 * that several processes map. Single-process behaviour against the private layout; the cross-process
 * guarantees (CAS decides exactly one winner, one metric for everyone, a queue item dequeued once)
 * with child processes on a real segment.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { AggregatorRegistry, Registry } from 'prom-client';

import { PluginSegment, MAX_PAYLOAD, DATA_MAX_KEYS } from '../../src/wasm/shared/plugin-segment.js';
import { PluginMetricsExporter, ShmMetrics } from '../../src/wasm/shared/shm-metrics.js';
import { ShmSharedData } from '../../src/wasm/shared/shm-shared-data.js';
import { ShmSharedQueues } from '../../src/wasm/shared/shm-shared-queues.js';
import { chatContext, finishResponse, plugin, recordingDeps, runRequest } from './helpers.js';

const run = promisify(execFile);
const CHILD = fileURLToPath(new URL('./shared-store-child.js', import.meta.url));
const text = (b: Uint8Array) => Buffer.from(b).toString();

describe('plugin segment: shared data', () => {
  it('get/set with CAS, per vm id; values of any size up to 1 MiB; replaced values are reused', () => {
    const seg = PluginSegment.private();
    const data = new ShmSharedData(seg);
    assert.equal(data.get('vm', 'k'), undefined);
    assert.equal(data.set('vm', 'k', Buffer.from('1'), 0), 'ok');
    const first = data.get('vm', 'k')!;
    assert.equal(text(first.value), '1');
    assert.notEqual(first.cas, 0);
    assert.equal(data.set('vm', 'k', Buffer.from('2'), first.cas), 'ok');
    assert.equal(data.set('vm', 'k', Buffer.from('3'), first.cas), 'cas_mismatch', 'stale cas');
    assert.equal(data.set('vm', 'missing', Buffer.from('x'), 7), 'cas_mismatch', 'cas on a missing key');
    assert.equal(text(data.get('vm', 'k')!.value), '2');
    assert.equal(data.get('other-vm', 'k'), undefined, 'vm ids are separate key spaces');

    const big = Buffer.alloc(MAX_PAYLOAD, 7);
    assert.equal(data.set('vm', 'big', big, 0), 'ok');
    assert.equal(data.get('vm', 'big')!.value.byteLength, MAX_PAYLOAD);
    assert.equal(data.set('vm', 'too-big', Buffer.alloc(MAX_PAYLOAD + 1), 0), 'full');
    assert.equal(data.set('vm', 'empty', new Uint8Array(0), 0), 'ok');
    assert.equal(data.get('vm', 'empty')!.value.byteLength, 0);

    const used = seg.heapUsed;
    for (let i = 0; i < 1000; i++) assert.equal(data.set('vm', 'k', Buffer.from(`value ${i}`), 0), 'ok');
    assert.ok(seg.heapUsed - used <= 64, 'a replaced value frees its block for the next one');
  });

  it('refuses new keys past the table limit, keeps serving existing ones', () => {
    const data = new ShmSharedData(PluginSegment.private());
    for (let i = 0; i < DATA_MAX_KEYS; i++) assert.equal(data.set('vm', `k${i}`, Buffer.from('v'), 0), 'ok');
    assert.equal(data.set('vm', 'one-more', Buffer.from('v'), 0), 'full');
    assert.equal(data.set('vm', 'k7', Buffer.from('w'), 0), 'ok');
    assert.equal(text(data.get('vm', `k${DATA_MAX_KEYS - 1}`)!.value), 'v');
  });
});

describe('plugin segment: shared queues', () => {
  it('register/resolve by name, FIFO, empty, not found; ready listeners after enqueue', async () => {
    const queues = new ShmSharedQueues(PluginSegment.private());
    const id = queues.register('vm', 'q')!;
    assert.equal(queues.register('vm', 'q'), id, 'same name, same queue');
    assert.equal(queues.resolve('vm', 'q'), id);
    assert.equal(queues.resolve('vm', 'nope'), undefined);
    assert.notEqual(queues.register('vm2', 'q'), id);
    let ready = 0;
    const stop = queues.onReady(id, () => ready++);
    assert.equal(queues.dequeue(id), 'empty');
    assert.equal(queues.enqueue(id, Buffer.from('a')), 'ok');
    assert.equal(queues.enqueue(id, Buffer.from('b')), 'ok');
    assert.equal(ready, 0, 'never inside enqueue');
    await Promise.resolve();
    assert.equal(ready, 2);
    assert.equal(text(queues.dequeue(id) as Uint8Array), 'a');
    assert.equal(text(queues.dequeue(id) as Uint8Array), 'b');
    assert.equal(queues.dequeue(id), 'empty');
    assert.equal(queues.enqueue(999, Buffer.from('x')), 'not_found');
    assert.equal(queues.dequeue(999), 'not_found');
    stop();
  });
});

describe('plugin segment: metrics', () => {
  it('one id per name and kind; counters refuse going down; histograms count, sum and bucket', async () => {
    const seg = PluginSegment.private();
    const metrics = new ShmMetrics(seg);
    const c = metrics.define('counter', 'reqs') as number;
    assert.equal(metrics.define('counter', 'reqs'), c);
    assert.equal(metrics.increment(c, 2n), 'ok');
    assert.equal(metrics.increment(c, -1n), 'bad_argument');
    assert.equal(metrics.get(c), 2n);
    const g = metrics.define('gauge', 'level') as number;
    metrics.increment(g, 5n);
    metrics.increment(g, -7n);
    assert.equal(metrics.get(g), -2n);
    const h = metrics.define('histogram', 'lat.us') as number;
    assert.equal(metrics.increment(h, 1n), 'bad_argument');
    metrics.record(h, 3n);
    metrics.record(h, 700n);
    assert.equal(metrics.define('counter', 'x'.repeat(300)), 'bad_argument');
    assert.equal(metrics.get(12345), undefined);

    const registry = new Registry();
    const exporter = new PluginMetricsExporter(metrics, registry);
    exporter.sync();
    const out = await registry.metrics();
    assert.match(out, /# TYPE sluice_wasm_reqs counter\nsluice_wasm_reqs 2/);
    assert.match(out, /sluice_wasm_level -2/);
    assert.match(out, /sluice_wasm_lat_us_bucket\{le="5"\} 1/);
    assert.match(out, /sluice_wasm_lat_us_bucket\{le="1000"\} 2/);
    assert.match(out, /sluice_wasm_lat_us_sum 703/);
    assert.match(out, /sluice_wasm_lat_us_count 2/);
    metrics.define('counter', 'later');
    assert.match(await registry.metrics(), /sluice_wasm_later 0/, 'metrics defined later appear without a sync');

    // Two workers' registries summed by a cluster aggregation still report the node-wide value once.
    const other = new Registry();
    new PluginMetricsExporter(new ShmMetrics(seg), other).sync();
    const summed = await AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), await other.getMetricsAsJSON()]).metrics();
    assert.match(summed, /sluice_wasm_reqs 2\n/);
    assert.match(summed, /sluice_wasm_lat_us_count 2\n/);
  });

  it('the usage-meter plugin on the segment stores: counts carry across two instances', async () => {
    const seg = PluginSegment.private();
    const deps = () => recordingDeps({ sharedData: new ShmSharedData(seg), sharedQueues: new ShmSharedQueues(seg), metrics: new ShmMetrics(seg) });
    const a = await plugin('usage-meter', { config: { tick_ms: 5 } }, deps());
    const b = await plugin('usage-meter', { config: { tick_ms: 5 } }, deps());
    const counts: string[] = [];
    for (const f of [a, b, a, b]) {
      const ctx = chatContext({ model: 'gpt-4o' });
      await runRequest(f, ctx);
      finishResponse(f, ctx);
      counts.push(ctx.responseHeaders['x-usage-count']!);
    }
    assert.deepEqual(counts, ['1', '2', '3', '4']);
    a.runtime.dispose();
    b.runtime.dispose();
  });
});

describe('plugin segment across processes', () => {
  it('CAS has one winner per round, metrics add up, each queue item is dequeued once', async () => {
    const name = PluginSegment.nameFor(`test${process.pid}`);
    const seg = PluginSegment.create(name);
    try {
      const data = new ShmSharedData(seg);
      // The key exists first: a set with cas 0 writes unconditionally (the ABI's rule), so racing
      // creators could both "win"; plugins that count create the key once.
      data.set('vm', 'count', Buffer.from('0'), 0);
      const n = 2000;
      const children = await Promise.all([1, 2, 3].map(() => run(process.execPath, [CHILD, name, String(n)])));
      assert.equal(text(data.get('vm', 'count')!.value), String(3 * n), 'no update lost');
      const metrics = new ShmMetrics(seg);
      const id = metrics.define('counter', 'children_bumps') as number;
      assert.equal(metrics.get(id), BigInt(3 * n));
      const queues = new ShmSharedQueues(seg);
      const q = queues.resolve('vm', 'done')!;
      const pids = new Set<string>();
      for (let item = queues.dequeue(q); item !== 'empty'; item = queues.dequeue(q)) pids.add(text(item as Uint8Array));
      assert.equal(pids.size, 3);
      const conflicts = children.map((c) => (JSON.parse(c.stdout) as { conflicts: number }).conflicts);
      assert.ok(conflicts.every((x) => x >= 0));
    } finally {
      PluginSegment.unlink(name);
    }
  });

  it('a process sees items another one enqueued through its ready listener (polling)', async () => {
    const name = PluginSegment.nameFor(`testq${process.pid}`);
    const seg = PluginSegment.create(name);
    try {
      const queues = new ShmSharedQueues(seg);
      const q = queues.register('vm', 'done')!;
      let ready = 0;
      const stop = queues.onReady(q, () => ready++);
      await run(process.execPath, [CHILD, name, '1']);
      const deadline = Date.now() + 2_000;
      while (ready === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      stop();
      assert.ok(ready >= 1, 'listener called for an item enqueued by another process');
      assert.notEqual(queues.dequeue(q), 'empty');
    } finally {
      PluginSegment.unlink(name);
    }
  });
});
