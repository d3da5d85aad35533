/**
 * A worker stand-in for shared-store.test.ts: opens the plugin segment by name and bumps a shared-data
 * counter with CAS (as usage-meter does) and a shared metric, `n` times each, then enqueues its pid.
 */

import { PluginSegment } from '../../src/wasm/shared/plugin-segment.js';
import { ShmMetrics } from '../../src/wasm/shared/shm-metrics.js';
import { ShmSharedData } from '../../src/wasm/shared/shm-shared-data.js';
import { ShmSharedQueues } from '../../src/wasm/shared/shm-shared-queues.js';

const [name, count] = process.argv.slice(2);
const seg = PluginSegment.open(name!);
const data = new ShmSharedData(seg);
const metrics = new ShmMetrics(seg);
const queues = new ShmSharedQueues(seg);
const n = Number(count);
const counter = metrics.define('counter', 'children_bumps');
if (typeof counter !== 'number') throw new Error(`define: ${counter}`);
let conflicts = 0;
for (let i = 0; i < n; i++) {
  for (;;) {
    const cur = data.get('vm', 'count');
    const next = String((cur ? Number(Buffer.from(cur.value).toString()) : 0) + 1);
    if (data.set('vm', 'count', Buffer.from(next), cur ? cur.cas : 0) === 'ok') break;
    conflicts++;
  }
  metrics.increment(counter, 1n);
}
const q = queues.register('vm', 'done');
if (q === undefined) throw new Error('no queue');
queues.enqueue(q, Buffer.from(String(process.pid)));
process.stdout.write(JSON.stringify({ conflicts }));
