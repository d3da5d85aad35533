/**
 * One gateway worker: the uWS app, its routes, the current config snapshot, and the streams in
 * flight. A reload swaps the snapshot reference; requests keep the one they started with.
 */

import { createServer } from 'node:net';
import uWS from '@trufflesuite/uws-js-unofficial';
import type { HttpResponse, TemplatedApp, us_listen_socket } from '@trufflesuite/uws-js-unofficial';
import { clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { describeError, log } from '../observability/logger.js';
import type { WireProtocol } from '../protocol/codec.js';
import { inboundCodec } from '../protocol/index.js';
import type { Provider } from '../providers/provider.js';
import { discoverModels } from '../runtime/discovery.js';
import { SharedMemory } from '../shm/shared-memory.js';
import { AccessLog } from '../observability/access-log.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { accountCost, requestRecord } from '../governance/accounting.js';
import { LimiterHolder, registerLimiterMetrics } from '../governance/limiter-holder.js';
import type { RequestContext } from '../pipeline/context.js';
import { buildSnapshot, closeProviders, createProviders, type Snapshot, type SnapshotDeps, type WorkerState } from '../runtime/snapshot.js';
import { KeyRing, type RuntimeKey } from '../governance/consumers.js';
import type { CacheRecord } from '../cache/cache-entry.js';
import { WorkerCache } from '../cache/worker-cache.js';
import { registerCacheMetrics } from '../cache/cache-metrics.js';
import { GatewayPlugins } from '../wasm/gateway-plugins.js';
import { handleModelRequest, type ProxyHost } from './proxy.js';
import type { ResponseRelay } from './relay.js';

export interface GatewayOptions extends SnapshotDeps {
  config: Config;
  /** Override config.server.host / port (CLI flags). */
  host?: string;
  port?: number;
  /** Config generation of the first snapshot (the supervisor numbers them); default 1. */
  generation?: number;
  /** Check that no other process serves the port first (off in workers: their siblings share it). */
  probePort?: boolean;
  /** The shared-memory segment (worker processes); absent in a lone in-process gateway. */
  shm?: SharedMemory;
  /** Keys made through the admin API, known when the worker starts. */
  runtimeKeys?: readonly RuntimeKey[];
  /** How long to wait for self-hosted servers' `/v1/models` at start and reload. */
  discoveryTimeoutMs?: number;
  /** How often to ask self-hosted servers again (they may start after the gateway). */
  rediscoverIntervalMs?: number;
  /** Hands each response-cache entry stored here to the sibling workers (the supervisor forwards it). */
  shareCacheRecord?: (record: CacheRecord) => void;
  /** The supervisor's plugin segment (shared data, queues, metrics of Wasm plugins across workers). */
  pluginSegment?: string;
  /** Directory relative plugin paths are resolved against (the config file's); default: cwd. */
  baseDir?: string;
}

/** The gateway's own OpenAI API as seen from this host (a cache judge without `base_url` calls it). */
function selfBaseUrl(opts: GatewayOptions): string {
  const host = opts.host ?? opts.config.server.host;
  const local = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${local}:${opts.port ?? opts.config.server.port}/v1`;
}

/** uWS silently falls back to a slow JavaScript shim when its native binary fails to load. */
export function assertNativeUws(): void {
  if (typeof uWS.SSLApp !== 'function') {
    throw new Error(
      'the native uWebSockets.js binary did not load (unsupported platform or Node.js version); refusing to run on the slow fallback',
    );
  }
}

/** Fails with EADDRINUSE when another process serves the port, even one that set SO_REUSEPORT. */
export function assertPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(`port ${port} on ${host} is already in use (another sluice or another server); stop it or pick another --port`)
          : new Error(`cannot listen on ${host}:${port} (${err.code ?? err.message})`),
      );
    });
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

export class Gateway implements ProxyHost {
  private current: Snapshot;
  private readonly app: TemplatedApp;
  private listenSocket: us_listen_socket | undefined;
  private readonly relays = new Set<ResponseRelay>();
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private rediscoverTimer: NodeJS.Timeout | undefined;
  private boundPort = 0;
  private accessLog: AccessLog | null;
  /** This worker's share of the gateway's metrics; the supervisor sums all workers' on scrape. */
  readonly metrics = new GatewayMetrics({ inFlight: () => this.relays.size });

  private constructor(
    snapshot: Snapshot,
    private readonly opts: GatewayOptions,
    private readonly state: WorkerState,
    private readonly plugins: GatewayPlugins,
  ) {
    this.current = snapshot;
    this.accessLog = AccessLog.open(snapshot.config.access_log);
    if (state.limiters) registerLimiterMetrics(this.metrics.registry, state.limiters);
    if (state.cache) registerCacheMetrics(this.metrics.registry, state.cache);
    plugins.publishTo(this.metrics.registry);
    this.app = uWS.App();
    this.routes();
  }

  static async start(opts: GatewayOptions): Promise<Gateway> {
    assertNativeUws();
    // Without a supervisor's segment (an embedded gateway) the same counters live in this process.
    const shm = opts.shm ?? SharedMemory.private();
    const state: WorkerState = {
      shm,
      keys: new KeyRing(),
      limiters: new LimiterHolder(shm),
      cache: new WorkerCache({ share: opts.shareCacheRecord, selfBaseUrl: selfBaseUrl(opts) }),
    };
    if (opts.runtimeKeys) state.keys.replace(opts.runtimeKeys);
    const plugins = new GatewayPlugins({ segment: opts.pluginSegment, baseDir: opts.baseDir });
    const snapshot = await Gateway.prepare(opts.config, opts.generation ?? 1, opts, undefined, state, plugins);
    plugins.activate(snapshot.plugins, snapshot.config.plugin_upstreams);
    const gw = new Gateway(snapshot, opts, state, plugins);
    await gw.listen(opts.host ?? opts.config.server.host, opts.port ?? opts.config.server.port);
    gw.startTimers();
    return gw;
  }

  get snapshot(): Snapshot {
    return this.current;
  }

  get port(): number {
    return this.boundPort;
  }

  get inFlight(): number {
    return this.relays.size;
  }

  relayStarted(relay: ResponseRelay): void {
    this.relays.add(relay);
  }

  relayFinished(relay: ResponseRelay): void {
    this.relays.delete(relay);
  }

  /** Keys made or revoked through the admin API, as the supervisor sends them (the whole set). */
  setRuntimeKeys(keys: readonly RuntimeKey[]): void {
    this.state.keys.replace(keys);
  }

  /** A response-cache entry stored by a sibling worker (or a batch of them when this one started). */
  applyCacheRecord(record: unknown): void {
    this.state.cache?.apply(record);
  }

  /** Every live response-cache entry, for a sibling that just started. */
  cacheRecords(): CacheRecord[] {
    return this.state.cache?.records() ?? [];
  }

  requestEnded(ctx: RequestContext): void {
    accountCost(ctx, this.current.prices);
    this.metrics.observe(requestRecord(ctx));
    this.accessLog?.write(ctx);
  }

  /** Validate-and-swap: on any error the running snapshot stays. */
  async reload(config: Config, generation?: number): Promise<Snapshot> {
    const previous = this.current;
    const next = await Gateway.prepare(config, generation ?? previous.generation + 1, this.opts, previous, this.state, this.plugins);
    this.current = next;
    this.plugins.activate(next.plugins, next.config.plugin_upstreams);
    this.retireProviders(previous, next);
    if (JSON.stringify(previous.config.access_log) !== JSON.stringify(next.config.access_log)) {
      const old = this.accessLog;
      this.accessLog = AccessLog.open(next.config.access_log);
      void old?.close();
    }
    log.info('config reloaded', { generation: next.generation });
    return next;
  }

  /** Stop accepting, let exchanges in flight finish up to `graceMs`, then close everything. */
  async close(graceMs = 0): Promise<void> {
    if (this.listenSocket) {
      uWS.us_listen_socket_close(this.listenSocket);
      this.listenSocket = undefined;
    }
    const deadline = clock.monotonicMs() + graceMs;
    while (this.relays.size > 0 && clock.monotonicMs() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const relay of this.relays) relay.clientGone();
    clearInterval(this.keepAliveTimer);
    clearInterval(this.rediscoverTimer);
    // uWS 20.30 has close() (drops idle keep-alive connections) but its typings do not declare it.
    (this.app as TemplatedApp & { close?: () => void }).close?.();
    await closeProviders(this.current.providers.values());
    await this.accessLog?.close();
    await this.state.cache?.stop();
    await this.state.limiters?.close();
    this.plugins.close();
  }

  // ── building snapshots ─────────────────────────────────────────────────────────────────────

  /**
   * Providers whose config did not change keep their instance (and its warm connections); the
   * others are created anew.
   */
  private static async prepare(
    config: Config,
    generation: number,
    opts: GatewayOptions,
    previous: Snapshot | undefined,
    state: WorkerState,
    plugins: GatewayPlugins,
  ): Promise<Snapshot> {
    const reuse = new Map<string, Provider>();
    if (previous) {
      const before = new Map(previous.config.providers.map((p) => [p.name, JSON.stringify(p)]));
      for (const pc of config.providers) {
        const old = previous.providers.get(pc.name);
        if (old && before.get(pc.name) === JSON.stringify(pc)) reuse.set(pc.name, old);
      }
    }
    const fresh = createProviders(
      config.providers.filter((pc) => !reuse.has(pc.name)),
      opts,
    );
    const providers = new Map<string, Provider>();
    for (const pc of config.providers) providers.set(pc.name, (reuse.get(pc.name) ?? fresh.get(pc.name)) as Provider);
    const discovered = await Gateway.discover(providers, opts.discoveryTimeoutMs ?? 5_000);
    // Before the snapshot that uses it; the previous cache serves until the new one is ready.
    await state.cache?.configure(config.cache, config.redis);
    let prepared;
    try {
      // Plugins load and start before anything changes: one that cannot fails the reload.
      prepared = await plugins.prepare(config.plugins, config.plugin_upstreams);
    } catch (err) {
      await closeProviders(fresh.values());
      throw err;
    }
    try {
      return buildSnapshot(config, generation, providers, discovered, state, prepared);
    } catch (err) {
      plugins.discard(prepared);
      await closeProviders(fresh.values());
      throw err;
    }
  }

  private static async discover(
    providers: ReadonlyMap<string, Provider>,
    timeoutMs: number,
  ): Promise<Map<string, readonly string[]>> {
    const asking = [...providers.values()].filter((p) => p.discoverModels);
    const results = await Promise.all(asking.map((p) => discoverModels(p, timeoutMs)));
    // Filled in provider order, not in the order the answers came: when two servers list the same
    // model, the router gives it to the first one in the config, every time.
    const discovered = new Map<string, readonly string[]>();
    asking.forEach((p, i) => {
      const r = results[i]!;
      if ('models' in r) {
        discovered.set(p.name, r.models);
        log.info('models discovered', { provider: p.name, models: r.models.slice(0, 20), count: r.models.length });
      } else {
        log.warn('model discovery failed; will retry', { provider: p.name, reason: r.error });
      }
    });
    return discovered;
  }

  private retireProviders(previous: Snapshot, next: Snapshot): void {
    const kept = new Set(next.providers.values());
    const retired = new Set([...previous.providers.values()].filter((p) => !kept.has(p)));
    if (retired.size === 0) return;
    // Requests still on the old snapshot keep using these; close them once none does.
    const closeWhenIdle = (): void => {
      for (const relay of this.relays) {
        if (retired.has(relay.provider)) {
          setTimeout(closeWhenIdle, 1_000).unref();
          return;
        }
      }
      void closeProviders(retired);
    };
    setTimeout(closeWhenIdle, 1_000).unref();
  }

  /** Ask self-hosted servers again; swap the router when what they serve changed. */
  private async rediscover(): Promise<void> {
    const snap = this.current;
    const discovered = await Gateway.discover(snap.providers, this.opts.discoveryTimeoutMs ?? 5_000);
    if (this.current !== snap) return;
    const same =
      discovered.size === snap.discovered.size &&
      [...discovered].every(([k, v]) => JSON.stringify(v) === JSON.stringify(snap.discovered.get(k)));
    if (same) return;
    this.current = buildSnapshot(snap.config, snap.generation, snap.providers, discovered, this.state, snap.plugins);
  }

  // ── serving ────────────────────────────────────────────────────────────────────────────────

  private startTimers(): void {
    const idle = this.current.config.server.sse_keepalive_ms;
    if (idle > 0) {
      this.keepAliveTimer = setInterval(() => {
        const now = clock.monotonicMs();
        const ms = this.current.config.server.sse_keepalive_ms || idle;
        for (const relay of this.relays) relay.keepAlive(now, ms);
      }, Math.max(100, Math.min(1_000, Math.floor(idle / 2))));
      this.keepAliveTimer.unref();
    }
    if ([...this.current.providers.values()].some((p) => p.discoverModels)) {
      this.rediscoverTimer = setInterval(() => {
        this.rediscover().catch((err) => log.warn('model rediscovery failed', describeError(err)));
      }, this.opts.rediscoverIntervalMs ?? 30_000);
      this.rediscoverTimer.unref();
    }
  }

  private listen(host: string, port: number): Promise<void> {
    return (this.opts.probePort === false ? Promise.resolve() : assertPortFree(host, port)).then(
      () =>
        new Promise((resolve, reject) => {
          this.app.listen(host, port, (socket) => {
            if (!socket) {
              reject(new Error(`cannot listen on ${host}:${port}`));
              return;
            }
            this.listenSocket = socket;
            this.boundPort = uWS.us_socket_local_port(socket);
            resolve();
          });
        }),
    );
  }

  private routes(): void {
    const model = (protocol: WireProtocol, op: 'chat' | 'completions' | 'embeddings') => (res: HttpResponse, req: uWS.HttpRequest) =>
      handleModelRequest(res, req, protocol, op, this);

    this.app
      .post('/v1/chat/completions', model('openai-chat', 'chat'))
      .post('/v1/messages', model('anthropic-messages', 'chat'))
      .post('/v1/completions', model('openai-chat', 'completions'))
      .post('/v1/embeddings', model('openai-chat', 'embeddings'))
      .get('/v1/models', (res, req) => this.listModels(res, req.getHeader('anthropic-version') !== ''))
      .get('/healthz', (res) => {
        res.cork(() => {
          res.writeHeader('content-type', 'application/json').end('{"status":"ok"}');
        });
      })
      .any('/*', (res, req) => {
        const url = req.getUrl();
        const method = req.getCaseSensitiveMethod();
        const known = ['/v1/chat/completions', '/v1/messages', '/v1/completions', '/v1/embeddings', '/v1/models', '/healthz'];
        const error = known.includes(url)
          ? new GatewayError('method_not_allowed', `${method} is not allowed on ${url}`)
          : new GatewayError('not_found', `no route for ${method} ${url.slice(0, 200)}`);
        const protocol: WireProtocol = url.startsWith('/v1/messages') ? 'anthropic-messages' : 'openai-chat';
        const body = JSON.stringify(inboundCodec(protocol).encodeError(error));
        res.cork(() => {
          res.writeStatus(`${error.status} ${error.status === 405 ? 'Method Not Allowed' : 'Not Found'}`);
          res.writeHeader('content-type', 'application/json').end(body);
        });
      });
  }

  private listModels(res: HttpResponse, anthropic: boolean): void {
    const models = this.current.router.listModels();
    const body = anthropic
      ? {
          data: models.map((m) => ({ type: 'model', id: m.id, display_name: m.id, created_at: '1970-01-01T00:00:00Z' })),
          has_more: false,
          first_id: models[0]?.id ?? null,
          last_id: models[models.length - 1]?.id ?? null,
        }
      : { object: 'list', data: models.map((m) => ({ id: m.id, object: 'model', created: 0, owned_by: m.ownedBy })) };
    const text = JSON.stringify(body);
    res.cork(() => {
      res.writeHeader('content-type', 'application/json').end(text);
    });
  }
}
