/**
 * Plugin metrics in the plugin segment: a metric defined under one name is one set of numbers for the
 * whole gateway, whichever worker defines, increments or reads it (Envoy's metrics are process-wide
 * the same way). Counters and gauges are single atomic adds or stores; only defining a metric takes
 * the segment lock. Histograms keep a count, a sum and fixed buckets (HISTOGRAM_BOUNDS).
 *
 * `PluginMetricsExporter` publishes them to a prom-client registry. Since every process sees every
 * metric, any one worker's registry reports the gateway's totals; a cross-worker aggregation must not
 * add them up again, so each metric carries prom-client's `aggregator: 'max'`: every worker reports
 * the same numbers read a moment apart, and counters and buckets only grow, so the largest is the
 * latest (also when an aggregation keeps the last report of a worker that has exited).
 */

import type { Registry } from 'prom-client';
import type { MetricKind } from '../abi-constants.js';
import type { MetricSink } from '../seams.js';
import { HISTOGRAM_BOUNDS, METRIC_NAME_BYTES, METRIC_OFFSET, METRIC_SLOT_BYTES, METRIC_SLOTS, type PluginSegment } from './plugin-segment.js';

const KIND_CODES: Record<MetricKind, number> = { counter: 1, gauge: 2, histogram: 3 };
const KIND_NAMES: readonly (MetricKind | undefined)[] = [undefined, 'counter', 'gauge', 'histogram'];

/** i64 fields after the name. */
const V_VALUE = 0;
const V_COUNT = 1;
const V_SUM = 2;
const V_BUCKETS = 3;

function slotByte(i: number): number {
  return METRIC_OFFSET + i * METRIC_SLOT_BYTES;
}

function valueIndex(i: number): number {
  return (slotByte(i) + 8 + METRIC_NAME_BYTES) >>> 3;
}

export interface SharedMetric {
  id: number;
  kind: MetricKind;
  name: string;
}

export class ShmMetrics implements MetricSink {
  private readonly ids = new Map<string, number>();
  /** Kind per id known to this process; 0 = not looked up yet. */
  private readonly kinds = new Uint8Array(METRIC_SLOTS + 1);

  /** Called after a metric is defined in this process (exporters register it). */
  private readonly defineListeners: (() => void)[] = [];

  constructor(private readonly seg: PluginSegment) {}

  define(kind: MetricKind, name: string): number | 'bad_argument' | 'full' {
    const key = `${kind}\0${name}`;
    const known = this.ids.get(key);
    if (known !== undefined) return known;
    const nameBytes = Buffer.from(name, 'utf8');
    if (nameBytes.byteLength === 0 || nameBytes.byteLength > METRIC_NAME_BYTES) return 'bad_argument';
    const code = KIND_CODES[kind];
    const seg = this.seg;
    const id = seg.locked(() => {
      for (let i = 0; i < METRIC_SLOTS; i++) {
        const at = slotByte(i) >>> 2;
        const k = seg.i32[at]!;
        if (k === 0) {
          seg.i32[at + 1] = nameBytes.byteLength;
          seg.u8.set(nameBytes, slotByte(i) + 8);
          // The kind last: a reader outside the lock treats kind 0 as "no metric here".
          Atomics.store(seg.i32, at, code);
          return i + 1;
        }
        if (k === code && sameName(seg, i, nameBytes)) return i + 1;
      }
      return 0;
    });
    if (id === 0) return 'full';
    this.ids.set(key, id);
    this.kinds[id] = code;
    for (const l of this.defineListeners) l();
    return id;
  }

  increment(id: number, delta: bigint): 'ok' | 'not_found' | 'bad_argument' {
    const kind = this.kindOf(id);
    if (kind === 0) return 'not_found';
    if (kind === KIND_CODES.histogram) return 'bad_argument';
    if (kind === KIND_CODES.counter && delta < 0n) return 'bad_argument';
    Atomics.add(this.seg.i64, valueIndex(id - 1) + V_VALUE, BigInt.asIntN(64, delta));
    return 'ok';
  }

  record(id: number, value: bigint): 'ok' | 'not_found' {
    const kind = this.kindOf(id);
    if (kind === 0) return 'not_found';
    const v = BigInt.asIntN(64, value);
    const at = valueIndex(id - 1);
    const i64 = this.seg.i64;
    Atomics.store(i64, at + V_VALUE, v);
    if (kind === KIND_CODES.histogram) {
      Atomics.add(i64, at + V_COUNT, 1n);
      Atomics.add(i64, at + V_SUM, v);
      const n = Number(value);
      let b = 0;
      while (b < HISTOGRAM_BOUNDS.length && n > HISTOGRAM_BOUNDS[b]!) b++;
      if (b < HISTOGRAM_BOUNDS.length) Atomics.add(i64, at + V_BUCKETS + b, 1n);
    }
    return 'ok';
  }

  get(id: number): bigint | undefined {
    if (this.kindOf(id) === 0) return undefined;
    return Atomics.load(this.seg.i64, valueIndex(id - 1) + V_VALUE);
  }

  onDefine(listener: () => void): void {
    this.defineListeners.push(listener);
  }

  /** Every metric any worker defined, in definition order. */
  list(from = 0): SharedMetric[] {
    const out: SharedMetric[] = [];
    for (let i = from; i < METRIC_SLOTS; i++) {
      const kind = KIND_NAMES[Atomics.load(this.seg.i32, slotByte(i) >>> 2)];
      // Slots fill in order and are never freed: the first empty one ends the list.
      if (kind === undefined) break;
      out.push({ id: i + 1, kind, name: readName(this.seg, i) });
    }
    return out;
  }

  /** Counter/gauge value, or the histogram's count, sum and per-bucket (not cumulative) counts. */
  read(id: number): { value: bigint; count: bigint; sum: bigint; buckets: bigint[] } {
    const at = valueIndex(id - 1);
    const i64 = this.seg.i64;
    const buckets: bigint[] = [];
    for (let b = 0; b < HISTOGRAM_BOUNDS.length; b++) buckets.push(Atomics.load(i64, at + V_BUCKETS + b));
    return { value: Atomics.load(i64, at + V_VALUE), count: Atomics.load(i64, at + V_COUNT), sum: Atomics.load(i64, at + V_SUM), buckets };
  }

  private kindOf(id: number): number {
    if (!(id >= 1 && id <= METRIC_SLOTS)) return 0;
    let k = this.kinds[id]!;
    if (k === 0) {
      // Defined by another worker (a plugin may use an id it got elsewhere only by accident, but the
      // ABI allows asking): read the slot.
      k = Atomics.load(this.seg.i32, slotByte(id - 1) >>> 2);
      this.kinds[id] = k;
    }
    return k;
  }
}

function sameName(seg: PluginSegment, i: number, name: Uint8Array): boolean {
  const at = slotByte(i);
  if (seg.i32[(at >>> 2) + 1] !== name.byteLength) return false;
  for (let j = 0; j < name.byteLength; j++) if (seg.u8[at + 8 + j] !== name[j]) return false;
  return true;
}

function readName(seg: PluginSegment, i: number): string {
  const at = slotByte(i);
  const len = Math.min(METRIC_NAME_BYTES, Math.max(0, seg.i32[(at >>> 2) + 1]!));
  return Buffer.from(seg.u8.subarray(at + 8, at + 8 + len)).toString('utf8');
}

/** `my.plugin/requests` → `sluice_wasm_my_plugin_requests`. */
function promName(prefix: string, name: string): string {
  const cleaned = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return `${prefix}${/^[0-9]/.test(cleaned) ? '_' : ''}${cleaned}`;
}

interface PromValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** What prom-client's Registry asks of a metric: a name and `get()`. */
interface RegistryMetric {
  name: string;
  get(): Promise<{ name: string; help: string; type: string; values: PromValue[]; aggregator: string }>;
}

export class PluginMetricsExporter {
  private known = 0;
  private readonly names = new Set<string>();

  constructor(
    private readonly metrics: ShmMetrics,
    private readonly registry: Registry,
    private readonly prefix = 'sluice_wasm_',
  ) {
    metrics.onDefine(() => this.sync());
  }

  /**
   * Registers metrics defined since the last call, in any worker. Runs on every definition in this
   * process (every worker runs the same plugins, so that covers them); call it before rendering to
   * catch a metric only another worker defined so far.
   */
  sync(): void {
    for (const m of this.metrics.list(this.known)) {
      this.known = m.id;
      const name = promName(this.prefix, m.name);
      // Two plugin metrics that clean up to one Prometheus name: the first one is published.
      if (this.names.has(name)) continue;
      this.names.add(name);
      this.registry.registerMetric(this.describe(m, name) as unknown as Parameters<Registry['registerMetric']>[0]);
    }
  }

  private describe(m: SharedMetric, name: string): RegistryMetric {
    const metrics = this.metrics;
    const help = `Wasm plugin metric ${m.name}`;
    return {
      name,
      async get() {
        const r = metrics.read(m.id);
        if (m.kind !== 'histogram') {
          return { name, help, type: m.kind, aggregator: 'max', values: [{ value: Number(r.value), labels: {} }] };
        }
        const values: PromValue[] = [];
        let cumulative = 0n;
        HISTOGRAM_BOUNDS.forEach((le, b) => {
          cumulative += r.buckets[b]!;
          values.push({ metricName: `${name}_bucket`, labels: { le }, value: Number(cumulative) });
        });
        values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: Number(r.count) });
        values.push({ metricName: `${name}_sum`, labels: {}, value: Number(r.sum) });
        values.push({ metricName: `${name}_count`, labels: {}, value: Number(r.count) });
        return { name, help, type: 'histogram', aggregator: 'max', values };
      },
    };
  }
}
