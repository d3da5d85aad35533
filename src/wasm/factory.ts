/** Building a single plugin filter (tests, tools) and the default, in-process host services. */

import { log } from '../observability/logger.js';
import { PluginSchema, type PluginConfig, type PluginConfigInput } from './config.js';
import { InProcessMetrics, InProcessSharedData, InProcessSharedQueues } from './in-process-stores.js';
import { pagesFor } from './memory-cap.js';
import { ModuleCache } from './module-loader.js';
import { WasmPluginFilter, type RequestFacts } from './plugin-filter.js';
import { PluginRuntime } from './plugin-runtime.js';
import type { HostDeps } from './plugin-vm.js';
import { noHttpCaller } from './seams.js';

const LEVEL_NAMES = ['trace', 'debug', 'info', 'warn', 'error', 'critical'] as const;

/** proxy_log → the gateway's structured log; trace/debug fold into debug, critical into error. */
export function logPluginMessage(plugin: string, level: number, message: string): void {
  const fields = { plugin, plugin_level: LEVEL_NAMES[level] ?? String(level) };
  if (level <= 1) log.debug(message, fields);
  else if (level === 2) log.info(message, fields);
  else if (level === 3) log.warn(message, fields);
  else log.error(message, fields);
}

export function defaultHostDeps(overrides: Partial<HostDeps> = {}): HostDeps {
  return {
    sharedData: new InProcessSharedData(),
    sharedQueues: new InProcessSharedQueues(),
    httpCaller: noHttpCaller,
    metrics: new InProcessMetrics(),
    logger: logPluginMessage,
    ...overrides,
  };
}

const sharedCache = new ModuleCache();

export interface CreateFilterOptions {
  baseDir?: string;
  facts?: RequestFacts;
  cache?: ModuleCache;
}

/** Loads, compiles (cached) and starts one plugin; the first instance is created before returning. */
export async function createWasmPluginFilter(
  config: PluginConfigInput | PluginConfig,
  deps: HostDeps = defaultHostDeps(),
  options: CreateFilterOptions = {},
): Promise<WasmPluginFilter> {
  const parsed = PluginSchema.parse(config);
  const cache = options.cache ?? sharedCache;
  const compiled = await cache.load(parsed, pagesFor(parsed.limits.memory_mb * 1024 * 1024), options.baseDir);
  const runtime = new PluginRuntime(parsed, compiled, deps);
  runtime.start();
  return new WasmPluginFilter(runtime, options.facts);
}
