/**
 * The supervisor: validates config once, forks N workers that share one port (uWS sets SO_REUSEPORT),
 * restarts a crashed worker with back-off, fans out new config snapshots, and drains on SIGTERM. It
 * serves no model traffic; it serves the admin API, so that stays up while a worker restarts.
 */

import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { watch, type FSWatcher } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { clock } from '../clock.js';
import type { Config, ConfigInput } from '../config/schema.js';
import { describeError, log } from '../observability/logger.js';
import { closeProviders, createProviders } from '../runtime/snapshot.js';
import { assertPortFree } from '../server/gateway.js';
import { removeStaleSegments, segmentName } from '../shm/segment.js';
import { SharedMemory } from '../shm/shared-memory.js';
import { NodeAgents } from './node-agents.js';
import { ClusterMetrics } from '../observability/metrics.js';
import { QuotaAdmin } from '../governance/quota-admin.js';
import { RuntimeKeyStore } from '../governance/key-store.js';
import type { FromWorker, ToWorker } from './messages.js';
import { ConfigError } from '../config/load.js';
import { checkPlugins } from '../wasm/plugin-check.js';
import { PluginSegment } from '../wasm/shared/plugin-segment.js';

const WORKER_ENTRY = fileURLToPath(new URL('./worker-main.js', import.meta.url));

/** Restart back-off: 100 ms doubling to 30 s; a worker that lived 30 s starts the count afresh. */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 30_000;
const STABLE_AFTER_MS = 30_000;
const CONFIG_ACK_TIMEOUT_MS = 15_000;

export interface WorkerInfo {
  index: number;
  pid: number | undefined;
  uptimeMs: number;
  restarts: number;
  inFlight: number | null;
  state: 'starting' | 'ready' | 'restarting' | 'draining';
}

/** Where config comes from: reloading asks it again (a file re-read, env re-interpolated). */
export type ConfigLoader = () => Config;

export interface SupervisorOptions {
  config: Config;
  workers: number;
  host: string;
  port: number;
  /** Re-reads the config source, for SIGHUP, the file watcher and POST /admin/reload. */
  reloadSource: ConfigLoader | undefined;
  /** The file to watch, if any. */
  watchFile: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  /** Relative plugin paths are resolved against it (the config file's directory); default: cwd. */
  baseDir?: string;
}

interface Slot {
  index: number;
  child: ChildProcess | undefined;
  state: WorkerInfo['state'];
  startedMs: number;
  restarts: number;
  /** Consecutive quick crashes, for the back-off. */
  crashes: number;
  timer: NodeJS.Timeout | undefined;
}

export class Supervisor {
  private config: Config;
  private generation = 1;
  private port: number;
  private readonly slots: Slot[];
  private draining = false;
  private watcher: FSWatcher | undefined;
  private reloadChain: Promise<unknown> = Promise.resolve();
  private statsSeq = 0;
  private readonly exitWaiters = new Set<() => void>();
  private readonly agents: NodeAgents;
  private readonly clusterMetrics = new ClusterMetrics();
  /** Budgets for the admin API, counted in the same store as the workers'. */
  readonly quotas: QuotaAdmin;
  /** Consumer keys made through the admin API (persisted in Redis when configured). */
  readonly keyStore: RuntimeKeyStore;

  private constructor(
    private readonly opts: SupervisorOptions,
    private readonly shm: SharedMemory,
    private readonly pluginShm: PluginSegment,
  ) {
    this.agents = new NodeAgents(shm);
    this.quotas = new QuotaAdmin(shm, () => this.config);
    this.keyStore = new RuntimeKeyStore((keys) => this.broadcast({ type: 'keys', keys: [...keys] }));
    this.config = opts.config;
    this.port = opts.port;
    this.slots = Array.from({ length: opts.workers }, (_, index) => ({
      index,
      child: undefined,
      state: 'starting' as const,
      startedMs: 0,
      restarts: 0,
      crashes: 0,
      timer: undefined,
    }));
  }

  /** Start every worker; resolves once all serve. Rejects (and stops them) if the first cannot. */
  static async start(opts: SupervisorOptions): Promise<Supervisor> {
    // uSockets sets SO_REUSEPORT only on a non-zero port: for port 0, pick one here for all workers.
    const port = opts.port === 0 ? await freePort(opts.host) : opts.port;
    await assertPortFree(opts.host, port);
    // Segments of gateways whose supervisor was killed are removed; then this one's is made before
    // any worker exists, so no worker can open a half-written segment.
    for (const name of removeStaleSegments()) log.info('removed a stale shared-memory segment', { name });
    // Sized by the config at start: one worker row per worker (a concurrency check sums the rows),
    // and the limiter's key table.
    const shm = SharedMemory.create(segmentName(port), {
      workerSlots: Math.max(1, opts.workers),
      limitKeyCapacity: opts.config.limiter.key_capacity,
    });
    shm.configGeneration = 1n;
    // The name must not outlive this process, however it ends (a crash included: the next start
    // would also clean it, but only then).
    process.once('exit', () => shm.unlink());
    // Wasm plugins' shared data, queues and metrics, seen by every worker (src/wasm/shared/).
    const pluginShm = PluginSegment.create(PluginSegment.nameFor(port));
    process.once('exit', () => PluginSegment.unlink(pluginShm.name));
    const sup = new Supervisor({ ...opts, port }, shm, pluginShm);
    try {
      await sup.checkPlugins(opts.config, 'config');
    } catch (err) {
      shm.unlink();
      PluginSegment.unlink(pluginShm.name);
      throw err;
    }
    await sup.keyStore.configure(opts.config.redis);
    try {
      await Promise.all(sup.slots.map((s) => sup.spawn(s)));
    } catch (err) {
      await sup.drain(0);
      throw err;
    }
    sup.updateAgents(sup.config);
    sup.watchConfig();
    return sup;
  }

  get boundPort(): number {
    return this.port;
  }

  get currentConfig(): Config {
    return this.config;
  }

  get currentGeneration(): number {
    return this.generation;
  }

  // ── workers ────────────────────────────────────────────────────────────────────────────────

  private spawn(slot: Slot): Promise<number> {
    return new Promise((resolve, reject) => {
      const child = fork(WORKER_ENTRY, [], {
        env: { ...process.env, SLUICE_WORKER_INDEX: String(slot.index) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        serialization: 'advanced',
      });
      slot.child = child;
      slot.state = 'starting';
      // Fork failures and IPC errors arrive here; unhandled, an 'error' event would end the supervisor.
      child.on('error', (err) => log.warn('worker process error', { worker: slot.index, worker_pid: child.pid, reason: err.message }));
      slot.startedMs = clock.monotonicMs();
      let settled = false;
      child.on('message', (msg: FromWorker) => {
        if (msg.type === 'cache-record' || msg.type === 'cache-dump') {
          this.forwardCache(slot, msg);
          return;
        }
        if (msg.type === 'ready' && !settled) {
          settled = true;
          slot.state = 'ready';
          resolve(msg.port);
          this.sendCacheSnapshot(slot);
        } else if (msg.type === 'fatal' && !settled) {
          settled = true;
          reject(new Error(msg.message));
        }
      });
      child.on('exit', (code, signal) => {
        if (!settled) {
          settled = true;
          reject(new Error(`worker ${slot.index} exited during start (${signal ?? `code ${code}`})`));
        }
        this.onExit(slot, child, code, signal);
      });
      this.post(child, {
        type: 'start',
        index: slot.index,
        config: this.config as ConfigInput,
        generation: this.generation,
        host: this.opts.host,
        port: this.port,
        shm: this.shm.name,
        keys: this.keyStore.list(),
        pluginShm: this.pluginShm.name,
        baseDir: this.opts.baseDir ?? process.cwd(),
      });
      if (child.pid !== undefined) this.shm.workers.register(slot.index, child.pid);
    });
  }

  private onExit(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return;
    slot.child = undefined;
    if (child.pid !== undefined) this.clusterMetrics.retire(child.pid);
    // Whatever the worker held (SIGKILL gives it no chance to release) leaves the shared counts.
    const held = this.shm.reclaimWorker(slot.index);
    for (const w of this.exitWaiters) w();
    if (this.draining) return;
    const lived = clock.monotonicMs() - slot.startedMs;
    slot.crashes = lived >= STABLE_AFTER_MS ? 1 : slot.crashes + 1;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (slot.crashes - 1));
    slot.state = 'restarting';
    log.error('worker exited; restarting', {
      worker: slot.index,
      // Not `pid`: every log line's `pid` is the process that wrote it (here the supervisor).
      worker_pid: child.pid,
      code,
      signal,
      in_flight_reclaimed: held,
      uptime_ms: Math.round(lived),
      restart_in_ms: delay,
    });
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (this.draining) return;
      slot.restarts++;
      this.spawn(slot).catch((err) => log.error('worker restart failed', { worker: slot.index, reason: (err as Error).message }));
    }, delay);
  }

  private post(child: ChildProcess, msg: ToWorker): void {
    if (!child.connected) return;
    // A worker can die between the check and the write (kill -9): the write then fails with EPIPE.
    // Without a callback Node emits that as an 'error' event on the child, which nothing handles and
    // which would take the supervisor down with it. The 'exit' handler deals with the dead worker.
    child.send(msg, (err) => {
      if (err) log.debug('message to a worker not delivered', { worker_pid: child.pid, type: msg.type, reason: err.message });
    });
  }

  async workers(): Promise<WorkerInfo[]> {
    const id = ++this.statsSeq;
    const now = clock.monotonicMs();
    return Promise.all(
      this.slots.map(async (slot) => {
        const child = slot.child;
        let inFlight: number | null = null;
        if (child && slot.state === 'ready') {
          inFlight = await this.ask(child, { type: 'stats', id }, (m) => (m.type === 'stats' && m.id === id ? m.inFlight : undefined), 1_000).catch(
            () => null,
          );
        }
        return {
          index: slot.index,
          pid: child?.pid,
          uptimeMs: child ? Math.round(now - slot.startedMs) : 0,
          restarts: slot.restarts,
          inFlight,
          state: slot.state,
        };
      }),
    );
  }

  /**
   * Prometheus text for the whole node: every ready worker's metrics summed, plus what exited
   * workers had counted (so totals never go down).
   */
  async metricsText(): Promise<string> {
    const id = ++this.statsSeq;
    await Promise.all(
      this.slots.map(async (slot) => {
        const child = slot.child;
        if (!child || slot.state !== 'ready' || child.pid === undefined) return;
        const pid = child.pid;
        const snapshot = await this.ask(child, { type: 'metrics', id }, (m) => (m.type === 'metrics' && m.id === id ? m.snapshot : undefined), 2_000).catch(
          () => undefined,
        );
        if (snapshot) this.clusterMetrics.update(pid, snapshot);
      }),
    );
    return this.clusterMetrics.render();
  }

  /** Send a message and wait for the first reply `pick` accepts. */
  private ask<T>(child: ChildProcess, msg: ToWorker, pick: (m: FromWorker) => T | undefined, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: FromWorker): void => {
        const v = pick(m);
        if (v === undefined) return;
        cleanup();
        resolve(v);
      };
      const onExit = (): void => {
        cleanup();
        reject(new Error('worker exited'));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error('worker did not answer'));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.on('exit', onExit);
      this.post(child, msg);
    });
  }

  // ── config ─────────────────────────────────────────────────────────────────────────────────

  /**
   * Validate once (schema already done by the caller; providers built here), then every worker
   * swaps its snapshot. Reloads run one at a time. An invalid config throws; the running one stays.
   */
  apply(config: Config, reason: string): Promise<number> {
    const run = this.reloadChain.then(() => this.applyNow(config, reason));
    this.reloadChain = run.catch(() => undefined);
    return run;
  }

  private async applyNow(next: Config, reason: string): Promise<number> {
    const started = clock.monotonicMs();
    // The admin API's own settings (token, address) are read at start only: letting a config push
    // change or drop the token that authorised it would make auth a runtime accident. The running
    // values are kept, so GET /admin/config shows what is enforced.
    let config = next;
    if (JSON.stringify(next.admin) !== JSON.stringify(this.config.admin)) {
      log.warn('admin settings change on restart only; keeping the running ones', { reason });
      config = Object.freeze({ ...next, admin: this.config.admin });
    }
    // Plugins are loaded and started once here, off the main thread, so a broken one is refused
    // before any worker sees it.
    await this.checkPlugins(config, reason);
    // Building the providers is the part of validation the schema cannot do (types, keys, URLs).
    this.updateAgents(config);
    void this.keyStore.configure(config.redis);
    const generation = this.generation + 1;
    this.generation = generation;
    this.config = config;
    // A worker still starting was forked with the previous config: it gets this one too (it applies
    // it once started), or it would serve the old routes until the next reload.
    const results = await Promise.allSettled(
      this.slots
        .filter((s) => s.child && (s.state === 'ready' || s.state === 'starting'))
        .map((s) =>
          this.ask(
            s.child as ChildProcess,
            { type: 'config', config: config as ConfigInput, generation },
            (m) =>
              m.type === 'config-applied' && m.generation === generation
                ? true
                : m.type === 'config-failed' && m.generation === generation
                  ? m.message
                  : undefined,
            CONFIG_ACK_TIMEOUT_MS,
          ),
        ),
    );
    const failures = results.filter((r) => r.status === 'rejected' || r.value !== true);
    this.shm.configGeneration = BigInt(generation);
    log.info('config applied', {
      generation,
      reason,
      workers: results.length,
      failed: failures.length,
      ms: Math.round(clock.monotonicMs() - started),
    });
    return generation;
  }

  /**
   * Builds the config's providers (which throws a ConfigError on what the schema cannot check) and
   * points health checks and the global load agent at their endpoints.
   */
  private updateAgents(config: Config): void {
    const providers = createProviders(config.providers, { env: this.opts.env });
    try {
      this.agents.update(config, providers);
    } finally {
      void closeProviders(providers.values());
    }
  }

  /** Throws a ConfigError naming each plugin that cannot be loaded, compiled or configured. */
  private async checkPlugins(config: Config, source: string): Promise<void> {
    const issues = await checkPlugins(config.plugins, { baseDir: this.opts.baseDir, upstreams: config.plugin_upstreams });
    if (issues.length > 0) throw new ConfigError(source, issues.map((i) => ({ path: `plugins[${i.index}]`, message: i.message })));
  }

  /**
   * One response cache for all workers: an entry one stores goes to every other (one still starting
   * queues it), and a worker that starts after its siblings gets their entries (see docs/cache.md).
   */
  private forwardCache(from: Slot, msg: Extract<FromWorker, { type: 'cache-record' | 'cache-dump' }>): void {
    if (msg.type === 'cache-dump') {
      const to = this.slots[msg.to]?.child;
      if (to) this.post(to, { type: 'cache-records', records: msg.records });
      return;
    }
    for (const slot of this.slots) {
      if (slot !== from && slot.child && (slot.state === 'ready' || slot.state === 'starting')) this.post(slot.child, msg);
    }
  }

  private sendCacheSnapshot(slot: Slot): void {
    if (this.config.cache === undefined || !this.config.cache.enabled) return;
    const sibling = this.slots.find((s) => s !== slot && s.child && s.state === 'ready');
    if (sibling?.child) this.post(sibling.child, { type: 'cache-dump', to: slot.index });
  }

  /** To every worker that is up or starting (a starting one queues it until its gateway runs). */
  private broadcast(msg: ToWorker): void {
    for (const slot of this.slots) {
      if (slot.child && (slot.state === 'ready' || slot.state === 'starting')) this.post(slot.child, msg);
    }
  }

  /** Re-read the config source (file + environment) and apply it. */
  async reloadFromSource(reason: string): Promise<number> {
    const load = this.opts.reloadSource;
    if (!load) throw new Error('no config file to reload: the gateway was started without --config');
    return this.apply(load(), reason);
  }

  private watchConfig(): void {
    const file = this.opts.watchFile;
    if (!file || !this.config.admin.watch) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      // Editors replace files (rename) as often as they write them: watching the file itself
      // catches both on Linux; the debounce folds the burst of events one save makes.
      this.watcher = watch(file, () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          this.reloadFromSource('file changed').catch((err) =>
            log.error('config file changed but is invalid; keeping the running config', { reason: (err as Error).message }),
          );
          this.rewatch();
        }, 300);
      });
    } catch (err) {
      log.warn('cannot watch the config file', describeError(err));
    }
  }

  /** After a rename-on-save the old inode is gone; watch the new file. */
  private rewatch(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (!this.draining) this.watchConfig();
  }

  // ── shutdown ───────────────────────────────────────────────────────────────────────────────

  /** Drain: workers stop accepting, finish in-flight work up to the grace period, then exit. */
  async drain(graceMs: number): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.watcher?.close();
    for (const slot of this.slots) {
      clearTimeout(slot.timer);
      if (slot.child) {
        slot.state = 'draining';
        this.post(slot.child, { type: 'drain', graceMs });
      }
    }
    const deadline = clock.monotonicMs() + graceMs + 5_000;
    while (this.slots.some((s) => s.child) && clock.monotonicMs() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.max(10, deadline - clock.monotonicMs()));
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.exitWaiters.add(done);
      });
      this.exitWaiters.clear();
    }
    for (const slot of this.slots) slot.child?.kill('SIGKILL');
    await Promise.all([this.agents.stop(), this.keyStore.stop(), this.quotas.close()]);
    this.shm.unlink();
    PluginSegment.unlink(this.pluginShm.name);
  }
}

/** A port the OS considers free right now on `host`. */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen({ host, port: 0, exclusive: true }, () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}
