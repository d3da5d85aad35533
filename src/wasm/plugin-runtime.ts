/**
 * A plugin's life in one worker: the compiled module, the current instance, and its replacement after
 * a trap. Replacements are rate-limited (the spec's crash-loop advice): past
 * `limits.restarts_per_minute` the plugin is unavailable until the window has room again, and
 * requests follow the fail policy meanwhile.
 */

import { clock } from '../clock.js';
import { encodePluginValue, proxyLogLevel, type PluginConfig } from './config.js';
import type { CompiledPlugin } from './module-loader.js';
import { PluginVm, type HostDeps } from './plugin-vm.js';

const WINDOW_MS = 60_000;

export interface PluginStats {
  /** Instances created, the first one included. */
  instances: number;
  /** Traps and limit overruns. */
  failures: number;
  /** Callbacks that ran longer than limits.call_ms. */
  overruns: number;
  /** Requests that met the plugin while it was unavailable. */
  unavailable: number;
}

export class PluginRuntime {
  readonly stats: PluginStats = { instances: 0, failures: 0, overruns: 0, unavailable: 0 };
  private vm: PluginVm | undefined = undefined;
  private readonly restarts: number[] = [];
  private unavailableUntil = 0;
  /** Dropped by a reload: serves only the requests that started before (see retire()). */
  private retired = false;
  private readonly vmConfig: Uint8Array;
  private readonly pluginConfig: Uint8Array;
  lastError: Error | undefined = undefined;

  constructor(
    readonly config: PluginConfig,
    readonly compiled: CompiledPlugin,
    readonly deps: HostDeps,
  ) {
    this.vmConfig = encodePluginValue(config.vm_config);
    this.pluginConfig = encodePluginValue(config.config);
  }

  /** Creates the first instance now, so a plugin that cannot start fails the (re)load, not a request. */
  start(): void {
    this.vm = this.instantiate();
  }

  /** A usable instance, replacing a broken one if the restart budget allows; undefined otherwise. */
  acquire(): PluginVm | undefined {
    const vm = this.vm;
    if (vm !== undefined && vm.usable) return vm;
    if (vm !== undefined) {
      vm.dispose();
      this.vm = undefined;
    }
    // A retired plugin starts no new instance (it would start ticks nobody stops): the few requests
    // still reaching it follow the fail policy.
    if (this.retired) return undefined;
    const now = clock.monotonicMs();
    if (now < this.unavailableUntil) return undefined;
    while (this.restarts.length > 0 && now - this.restarts[0]! >= WINDOW_MS) this.restarts.shift();
    if (this.restarts.length >= this.config.limits.restarts_per_minute) {
      this.unavailableUntil = this.restarts[0]! + WINDOW_MS;
      this.deps.logger(this.config.name, 4, 'too many restarts: plugin unavailable for the rest of the minute');
      return undefined;
    }
    this.restarts.push(now);
    try {
      this.vm = this.instantiate();
      return this.vm;
    } catch (err) {
      this.lastError = err as Error;
      this.deps.logger(this.config.name, 4, `could not start a new instance: ${(err as Error).message}`);
      return undefined;
    }
  }

  private instantiate(): PluginVm {
    const c = this.config;
    const vm = new PluginVm({
      name: c.name,
      rootId: c.root_id ?? c.name,
      vmId: c.vm_id ?? c.name,
      module: this.compiled.module,
      abi: this.compiled.abi,
      importedMemoryMaxPages: this.compiled.importedMemoryMaxPages,
      vmConfig: this.vmConfig,
      pluginConfig: this.pluginConfig,
      logLevel: proxyLogLevel(c.log_level),
      deps: this.deps,
    });
    this.stats.instances++;
    try {
      vm.configure();
    } catch (err) {
      vm.dispose();
      throw err;
    }
    return vm;
  }

  /** The instance in use, if any (tests, admin). */
  get current(): PluginVm | undefined {
    return this.vm;
  }

  /** The config no longer has this plugin: background work stops, requests in flight finish. */
  retire(): void {
    this.retired = true;
    this.vm?.retire();
  }

  dispose(): void {
    this.vm?.dispose();
  }
}
