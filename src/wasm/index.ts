/** The Wasm plugin host's public surface, for the config, the filter registry and the server. */

export { PluginSchema, PluginsSchema, WasmFilterRefSchema, type PluginConfig, type PluginConfigInput, type WasmFilterRef } from './config.js';
export type { SharedDataStore, SharedQueueStore, HttpCaller, HttpCallRequest, HttpCallResponse, MetricSink, SharedValue } from './seams.js';
export { noHttpCaller } from './seams.js';
export { InProcessSharedData, InProcessSharedQueues, InProcessMetrics, type MetricSnapshot } from './in-process-stores.js';
export { PrometheusMetricSink, prometheusName } from './prometheus-metric-sink.js';
export { UpstreamHttpCaller, type UpstreamTarget } from './upstream-http-caller.js';
export { WasmPluginManager, type PreparedPlugins } from './plugin-manager.js';
export { WasmPluginFilter, type RequestFacts } from './plugin-filter.js';
export { PluginRuntime, type PluginStats } from './plugin-runtime.js';
export { PluginLoadError, ModuleCache } from './module-loader.js';
export { createWasmPluginFilter, defaultHostDeps, logPluginMessage } from './factory.js';
export type { HostDeps, PluginLogger } from './plugin-vm.js';
export type { PropertyGetter } from './properties.js';
export { encodeString, encodeInt, encodeBool } from './properties.js';
