/**
 * The plugin host as one gateway worker runs it: one WasmPluginManager for the worker's life, host
 * services shared by every worker of the gateway (shared data, queues and metrics in the plugin
 * segment), HTTP calls to the upstreams the running config names, and the request facts and
 * properties only the gateway knows (the client's raw body, the consumer).
 *
 * A reload is prepare → swap the snapshot → activate: `prepare` loads and starts the new config's
 * plugins while the old ones keep serving (a failure leaves everything as it was), `activate` retires
 * what the new config dropped once the new snapshot is live.
 */

import { Registry } from 'prom-client';
import type { Filter } from '../pipeline/filter.js';
import type { PluginConfig, PluginUpstreams } from './config.js';
import { logPluginMessage } from './factory.js';
import { WasmPluginFilter, type RequestFacts } from './plugin-filter.js';
import { WasmPluginManager, type PreparedPlugins } from './plugin-manager.js';
import type { HostDeps } from './plugin-vm.js';
import { encodeString, type PropertyGetter } from './properties.js';
import type { HttpCaller, HttpCallRequest, HttpCallResponse } from './seams.js';
import { PluginSegment } from './shared/plugin-segment.js';
import { PluginMetricsExporter, ShmMetrics } from './shared/shm-metrics.js';
import { ShmSharedData } from './shared/shm-shared-data.js';
import { ShmSharedQueues } from './shared/shm-shared-queues.js';
import { UpstreamHttpCaller } from './upstream-http-caller.js';

export interface GatewayPluginsOptions {
  /** The supervisor's plugin segment; absent for a gateway without a supervisor (private memory). */
  segment?: string | undefined;
  /** Relative plugin paths are resolved against it (the config file's directory). */
  baseDir?: string | undefined;
  /** Where plugin metrics are published; default: a registry of its own (see also `publishTo`). */
  registry?: Registry | undefined;
}

/** The plugin's view of `plugin_upstreams`, swapped as a whole on reload. */
export class ConfiguredHttpCaller implements HttpCaller {
  private current: HttpCaller = new UpstreamHttpCaller({});
  private key = '{}';

  /** Returns the previous caller, to put back if the reload fails. */
  configure(upstreams: PluginUpstreams): HttpCaller {
    const previous = this.current;
    const key = JSON.stringify(upstreams);
    if (key !== this.key) {
      this.current = new UpstreamHttpCaller(
        Object.fromEntries(Object.entries(upstreams).map(([name, u]) => [name, { url: u.url, maxBodyBytes: u.max_body_bytes }])),
      );
      this.key = key;
    }
    return previous;
  }

  restore(caller: HttpCaller, upstreams: PluginUpstreams): void {
    this.current = caller;
    this.key = JSON.stringify(upstreams);
  }

  has(upstream: string): boolean {
    return this.current.has(upstream);
  }

  call(request: HttpCallRequest): Promise<HttpCallResponse> {
    return this.current.call(request);
  }
}

/** Properties only the gateway can answer; they take precedence over the host's table. */
const GATEWAY_PROPERTIES: Readonly<Record<string, PropertyGetter>> = {
  consumer: (ctx) => (ctx?.consumer ? encodeString(ctx.consumer) : undefined),
  'sluice.consumer': (ctx) => (ctx?.consumer ? encodeString(ctx.consumer) : undefined),
};

const FACTS: RequestFacts = {
  consumer: (ctx) => ctx.consumer,
  rawBody: (ctx) => ctx.rawBody,
};

export class GatewayPlugins {
  readonly registry: Registry;
  private readonly segment: PluginSegment;
  private readonly metrics: ShmMetrics;
  private readonly queues: ShmSharedQueues;
  private readonly exporter: PluginMetricsExporter;
  private readonly caller = new ConfiguredHttpCaller();
  private readonly manager: WasmPluginManager;
  private readonly baseDir: string | undefined;
  private upstreams: PluginUpstreams = {};

  constructor(opts: GatewayPluginsOptions = {}) {
    this.segment = opts.segment ? PluginSegment.open(opts.segment) : PluginSegment.private();
    this.metrics = new ShmMetrics(this.segment);
    this.queues = new ShmSharedQueues(this.segment);
    this.registry = opts.registry ?? new Registry();
    this.exporter = new PluginMetricsExporter(this.metrics, this.registry);
    this.baseDir = opts.baseDir;
    const deps: HostDeps = {
      sharedData: new ShmSharedData(this.segment),
      sharedQueues: this.queues,
      httpCaller: this.caller,
      metrics: this.metrics,
      logger: logPluginMessage,
      properties: GATEWAY_PROPERTIES,
    };
    this.manager = new WasmPluginManager(deps, FACTS);
  }

  /** Loads and starts the config's plugins; throws (leaving the running ones alone) if one cannot start. */
  async prepare(plugins: readonly PluginConfig[], upstreams: PluginUpstreams): Promise<PreparedPlugins> {
    const previous = this.caller.configure(upstreams);
    try {
      return await this.manager.prepare(plugins, { baseDir: this.baseDir });
    } catch (err) {
      this.caller.restore(previous, this.upstreams);
      throw err;
    }
  }

  /** The snapshot built on `prepared` is live: retire what it no longer uses. */
  activate(prepared: ReadonlyMap<string, Filter>, upstreams: PluginUpstreams): void {
    this.upstreams = upstreams;
    this.manager.activate(onlyPlugins(prepared));
    this.exporter.sync();
  }

  /** `prepared` will never be activated (the snapshot could not be built): stop what it started. */
  discard(prepared: PreparedPlugins): void {
    this.manager.discard(prepared);
    // Back to the upstreams of the config that stays.
    this.caller.configure(this.upstreams);
  }

  /**
   * Publishes plugin metrics in another registry too (the worker's GatewayMetrics, which the
   * supervisor sums across workers on /metrics; `aggregator: 'max'` keeps each node-wide value once).
   */
  publishTo(registry: Registry): void {
    new PluginMetricsExporter(this.metrics, registry).sync();
  }

  /** Plugin metrics in Prometheus text format; the same totals whichever worker answers. */
  async metricsText(): Promise<string> {
    this.exporter.sync();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  close(): void {
    this.manager.close();
  }
}

function onlyPlugins(filters: ReadonlyMap<string, Filter>): PreparedPlugins {
  const out = new Map<string, WasmPluginFilter>();
  for (const [name, f] of filters) if (f instanceof WasmPluginFilter) out.set(name, f);
  return out;
}
