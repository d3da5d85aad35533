/**
 * A MetricSink that also publishes plugin metrics to a prom-client registry, for the gateway's
 * /metrics. Values are kept by the in-process sink (proxy_get_metric must answer synchronously, and
 * prom-client reads are async); prom-client mirrors them. Names get a prefix and lose characters
 * Prometheus does not allow: `my.plugin/requests` → `sluice_wasm_my_plugin_requests`.
 */

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { MetricKind } from './abi-constants.js';
import { InProcessMetrics } from './in-process-stores.js';

type PromMetric = Counter | Gauge | Histogram;

export function prometheusName(prefix: string, name: string): string {
  const cleaned = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return `${prefix}${/^[0-9]/.test(cleaned) ? '_' : ''}${cleaned}`;
}

export class PrometheusMetricSink extends InProcessMetrics {
  private readonly byId: (PromMetric | undefined)[] = [];
  private readonly byPromName = new Map<string, PromMetric>();

  constructor(
    private readonly registry: Registry,
    private readonly prefix = 'sluice_wasm_',
  ) {
    super();
  }

  override define(kind: MetricKind, name: string): number {
    const id = super.define(kind, name);
    if (this.byId[id] !== undefined) return id;
    const promName = prometheusName(this.prefix, name);
    let metric = this.byPromName.get(promName);
    if (metric === undefined) {
      const config = { name: promName, help: `Wasm plugin metric ${name}`, registers: [this.registry] };
      metric = kind === 'counter' ? new Counter(config) : kind === 'gauge' ? new Gauge(config) : new Histogram(config);
      this.byPromName.set(promName, metric);
    }
    this.byId[id] = metric;
    return id;
  }

  override increment(id: number, delta: bigint): 'ok' | 'not_found' | 'bad_argument' {
    const r = super.increment(id, delta);
    const m = this.byId[id];
    if (r === 'ok' && m !== undefined && !(m instanceof Histogram)) m.inc(Number(delta));
    return r;
  }

  override record(id: number, value: bigint): 'ok' | 'not_found' {
    const before = this.get(id);
    const r = super.record(id, value);
    const m = this.byId[id];
    if (r !== 'ok' || m === undefined) return r;
    if (m instanceof Histogram) m.observe(Number(value));
    else if (m instanceof Gauge) m.set(Number(value));
    // A Prometheus counter only goes up: setting it lower is kept in-process but not published.
    else if (before !== undefined && value > before) m.inc(Number(value - before));
    return r;
  }
}
