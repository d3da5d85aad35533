/**
 * Plugins across config reloads, per worker. `prepare` loads and starts what a new config lists
 * (reusing the running instance of a plugin whose module and settings did not change, so its state
 * and shared counters carry over), and throws if any plugin cannot start, so a bad reload leaves the
 * old config serving. `activate` retires what the new config no longer uses: timers and queue
 * listeners stop at once, requests still on an old instance finish on it.
 */

import { ModuleCache } from './module-loader.js';
import { pagesFor } from './memory-cap.js';
import type { PluginConfig } from './config.js';
import { PluginRuntime } from './plugin-runtime.js';
import { WasmPluginFilter, type RequestFacts } from './plugin-filter.js';
import type { HostDeps } from './plugin-vm.js';

export type PreparedPlugins = ReadonlyMap<string, WasmPluginFilter>;

export interface PrepareOptions {
  /** Relative `path`s are resolved against it (the config file's directory). */
  baseDir?: string;
}

export class WasmPluginManager {
  private readonly cache = new ModuleCache();
  private active: PreparedPlugins = new Map();

  constructor(
    private readonly deps: HostDeps,
    private readonly facts?: RequestFacts,
  ) {}

  async prepare(plugins: readonly PluginConfig[], options: PrepareOptions = {}): Promise<PreparedPlugins> {
    const loaded = await Promise.all(
      plugins.map((p) => this.cache.load(p, pagesFor(p.limits.memory_mb * 1024 * 1024), options.baseDir)),
    );
    const next = new Map<string, WasmPluginFilter>();
    const created: PluginRuntime[] = [];
    try {
      plugins.forEach((p, i) => {
        const compiled = loaded[i]!;
        const current = this.active.get(p.name);
        if (current && current.runtime.compiled === compiled && sameSettings(current.runtime.config, p)) {
          next.set(p.name, current);
          return;
        }
        const runtime = new PluginRuntime(p, compiled, this.deps);
        created.push(runtime);
        runtime.start();
        next.set(p.name, new WasmPluginFilter(runtime, this.facts));
      });
    } catch (err) {
      for (const r of created) r.dispose();
      throw err;
    }
    return next;
  }

  /**
   * Makes `prepared` the live set (call once the snapshot that uses it is swapped in). Plugins it
   * no longer has are retired, not ended: requests on the old snapshot still run through them.
   */
  activate(prepared: PreparedPlugins): void {
    const keep = new Set([...prepared.values()].map((f) => f.runtime));
    for (const f of this.active.values()) if (!keep.has(f.runtime)) f.runtime.retire();
    this.active = prepared;
    this.cache.retain([...keep].map((r) => r.compiled));
  }

  /** Stops what `prepare` started for a set that will never be activated; running plugins stay. */
  discard(prepared: PreparedPlugins): void {
    const live = new Set([...this.active.values()].map((f) => f.runtime));
    for (const f of prepared.values()) if (!live.has(f.runtime)) f.runtime.dispose();
  }

  close(): void {
    for (const f of this.active.values()) f.runtime.dispose();
    this.active = new Map();
  }
}

function sameSettings(a: PluginConfig, b: PluginConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
