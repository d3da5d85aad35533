/**
 * In-process implementations of the host's seams: correct within one worker process, the default in
 * tests and in single-process mode.
 */

import type { MetricKind } from './abi-constants.js';
import type { MetricSink, SharedDataStore, SharedQueueStore, SharedValue } from './seams.js';

export class InProcessSharedData implements SharedDataStore {
  private readonly data = new Map<string, SharedValue>();
  private nextCas = 1;

  get(vmId: string, key: string): SharedValue | undefined {
    return this.data.get(`${vmId}\0${key}`);
  }

  set(vmId: string, key: string, value: Uint8Array, cas: number): 'ok' | 'cas_mismatch' {
    const k = `${vmId}\0${key}`;
    const current = this.data.get(k);
    if (cas !== 0 && current?.cas !== cas) return 'cas_mismatch';
    this.data.set(k, { value: value.slice(), cas: this.bump() });
    return 'ok';
  }

  /** Wraps within u32 but skips 0, which means "no cas" in the ABI. */
  private bump(): number {
    const cas = this.nextCas;
    this.nextCas = this.nextCas >= 0xffffffff ? 1 : this.nextCas + 1;
    return cas;
  }
}

export class InProcessSharedQueues implements SharedQueueStore {
  private readonly byName = new Map<string, number>();
  private readonly queues = new Map<number, Uint8Array[]>();
  private readonly listeners = new Map<number, Set<() => void>>();
  private nextId = 1;

  register(vmId: string, name: string): number {
    const key = `${vmId}\0${name}`;
    let id = this.byName.get(key);
    if (id === undefined) {
      id = this.nextId++;
      this.byName.set(key, id);
      this.queues.set(id, []);
    }
    return id;
  }

  resolve(vmId: string, name: string): number | undefined {
    return this.byName.get(`${vmId}\0${name}`);
  }

  enqueue(queueId: number, value: Uint8Array): 'ok' | 'not_found' {
    const q = this.queues.get(queueId);
    if (q === undefined) return 'not_found';
    q.push(value.slice());
    const ls = this.listeners.get(queueId);
    if (ls !== undefined && ls.size > 0) {
      queueMicrotask(() => {
        for (const l of ls) l();
      });
    }
    return 'ok';
  }

  dequeue(queueId: number): Uint8Array | 'empty' | 'not_found' {
    const q = this.queues.get(queueId);
    if (q === undefined) return 'not_found';
    return q.shift() ?? 'empty';
  }

  onReady(queueId: number, listener: () => void): () => void {
    let ls = this.listeners.get(queueId);
    if (ls === undefined) this.listeners.set(queueId, (ls = new Set()));
    ls.add(listener);
    return () => ls.delete(listener);
  }
}

export interface MetricSnapshot {
  name: string;
  kind: MetricKind;
  /** Counter and gauge: the value; histogram: the last recorded value. */
  value: bigint;
  /** Histogram only: how many values were recorded and their sum (an exporter adds buckets). */
  count: number;
  sum: bigint;
}

/**
 * Keeps values in memory; `collect()` is what an exporter (prom-client collect callback) reads.
 * Defining the same name twice returns the same id, as Envoy does, so a re-instantiated plugin keeps
 * counting where it left off.
 */
export class InProcessMetrics implements MetricSink {
  private readonly byName = new Map<string, number>();
  private readonly metrics: MetricSnapshot[] = [];

  define(kind: MetricKind, name: string): number {
    const key = `${kind}\0${name}`;
    const existing = this.byName.get(key);
    if (existing !== undefined) return existing;
    const id = this.metrics.length + 1;
    this.metrics.push({ name, kind, value: 0n, count: 0, sum: 0n });
    this.byName.set(key, id);
    return id;
  }

  increment(id: number, delta: bigint): 'ok' | 'not_found' | 'bad_argument' {
    const m = this.metrics[id - 1];
    if (m === undefined) return 'not_found';
    if (m.kind === 'histogram') return 'bad_argument';
    if (m.kind === 'counter' && delta < 0n) return 'bad_argument';
    m.value += delta;
    return 'ok';
  }

  record(id: number, value: bigint): 'ok' | 'not_found' {
    const m = this.metrics[id - 1];
    if (m === undefined) return 'not_found';
    m.value = value;
    if (m.kind === 'histogram') {
      m.count++;
      m.sum += value;
    }
    return 'ok';
  }

  get(id: number): bigint | undefined {
    return this.metrics[id - 1]?.value;
  }

  collect(): readonly MetricSnapshot[] {
    return this.metrics;
  }
}
