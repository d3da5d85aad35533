/**
 * The `plugins` section: one entry per Wasm plugin. Snake_case keys, strict objects, every option
 * described (the JSON Schema that `sluice schema` prints carries the descriptions). The gateway's
 * config splices `PluginsSchema` in as `plugins:` and may list `WasmFilterRefSchema` entries among
 * its `filters` to place a plugin in the chain.
 */

import { z } from 'zod';

const pluginName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" and "-", at most 64 characters');

export const PluginScopeSchema = z
  .object({
    models: z
      .array(z.string().min(1).max(256))
      .optional()
      .describe('Client model names or patterns (`gpt-4o`, `claude-*`); the plugin runs only for these.'),
    routes: z.array(z.string().min(1)).optional().describe('Route names (as configured under `models`); the plugin runs only for these.'),
    consumers: z
      .array(z.string().min(1))
      .optional()
      .describe('Consumer names; the plugin runs only for requests authenticated as one of these.'),
  })
  .strict()
  .describe('Which requests the plugin sees; absent (or empty) means every request. Lists are ANDed between kinds, ORed within one.');

export const PluginLimitsSchema = z
  .object({
    memory_mb: z
      .number()
      .int()
      .min(1)
      .max(4096)
      .default(64)
      .describe("Most linear memory one instance may grow to; past it the guest's allocation fails (usually a trap)."),
    call_ms: z
      .number()
      .min(0.1)
      .max(60_000)
      // Wall-clock time: a worker preempted by the OS, held by a CPU quota (100 ms periods) or
      // paused by a garbage collection during the callback counts too. At 50 ms, a loaded 2-core box
      // failed healthy requests; 500 ms leaves room for those and still catches a runaway plugin.
      .default(500)
      .describe(
        'Longest time (wall clock) one callback may run. V8 cannot interrupt Wasm, so this is checked when the callback returns: an overrun applies the fail policy and replaces the instance.',
      ),
    pause_ms: z
      .number()
      .int()
      .min(1)
      .max(600_000)
      .default(30_000)
      .describe('Longest a request may stay paused by the plugin (waiting for an HTTP call) before the fail policy applies.'),
    restarts_per_minute: z
      .number()
      .int()
      .min(0)
      .max(10_000)
      .default(10)
      .describe('New instances allowed per minute after traps; beyond it the plugin is skipped (fail open) or answers 503 (fail closed) until the minute is over.'),
  })
  .strict();

export const PluginPhasesSchema = z
  .object({
    request_headers: z.boolean().default(true).describe('Call proxy_on_request_headers.'),
    request_body: z.boolean().default(true).describe('Call proxy_on_request_body with the JSON body (serialized once per request).'),
    response_headers: z.boolean().default(true).describe('Call proxy_on_response_headers.'),
    response_body: z
      .boolean()
      .default(false)
      .describe(
        'Call proxy_on_response_body per stream event (canonical JSON). Off by default: it makes the gateway decode answers it could pass through.',
      ),
  })
  .strict();

export const PluginSchema = z
  .object({
    name: pluginName.describe('Unique name; the `plugin_name` property, the log field and the metric label.'),
    path: z.string().min(1).optional().describe('A .wasm file; relative paths are resolved against the config file.'),
    url: z
      .string()
      .url()
      .optional()
      .describe('Where to download the .wasm from (http, https or file URL); set `sha256` with it.'),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits')
      .transform((s) => s.toLowerCase())
      .optional()
      .describe('Expected SHA-256 of the module; loading fails on a mismatch. Required for `url`.'),
    config: z
      .unknown()
      .optional()
      .describe('Handed to the plugin verbatim in proxy_on_configure: a string as it is, any other value as JSON.'),
    vm_config: z.unknown().optional().describe('Handed to proxy_on_vm_start, encoded like `config`.'),
    root_id: z.string().optional().describe('The `plugin_root_id` property (some SDKs pick a root context by it); default: the name.'),
    vm_id: z
      .string()
      .optional()
      .describe('Plugins with the same vm_id share shared data and queue names; default: the name.'),
    scope: PluginScopeSchema.optional(),
    fail: z
      .enum(['open', 'closed'])
      .default('closed')
      .describe('When the plugin traps or breaks a limit: `open` skips it for that request, `closed` answers 500 (503 while it is disabled).'),
    log_level: z
      .enum(['trace', 'debug', 'info', 'warn', 'error', 'critical'])
      .default('info')
      .describe('proxy_get_log_level answers this; proxy_log below it is dropped.'),
    phases: PluginPhasesSchema.default(PluginPhasesSchema.parse({})).describe('Which stream callbacks the host calls.'),
    limits: PluginLimitsSchema.default(PluginLimitsSchema.parse({})),
  })
  .strict()
  .superRefine((p, ctx) => {
    if ((p.path === undefined) === (p.url === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['path'], message: 'set exactly one of path and url' });
    }
    if (p.url !== undefined && !/^file:/i.test(p.url) && p.sha256 === undefined) {
      ctx.addIssue({ code: 'custom', path: ['sha256'], message: 'a plugin downloaded from a URL needs its sha256' });
    }
  });

export const PluginsSchema = z
  .array(PluginSchema)
  .default([])
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((p, i) => {
      if (seen.has(p.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate plugin name "${p.name}"` });
      seen.add(p.name);
    });
  })
  .describe('WebAssembly plugins (proxy-wasm ABI 0.1.0, 0.2.0, 0.2.1).');

/** An entry of `filters` that places a plugin in the chain; unplaced plugins run after the listed filters. */
export const WasmFilterRefSchema = z
  .object({
    type: z.literal('wasm'),
    plugin: pluginName.describe('The `name` of an entry of `plugins`.'),
  })
  .strict();

export type PluginConfig = z.output<typeof PluginSchema>;
export type PluginConfigInput = z.input<typeof PluginSchema>;
export type WasmFilterRef = z.output<typeof WasmFilterRefSchema>;

const LEVELS = { trace: 0, debug: 1, info: 2, warn: 3, error: 4, critical: 5 } as const;

export function proxyLogLevel(level: PluginConfig['log_level']): number {
  return LEVELS[level];
}

/** A config value as the plugin receives it. */
export function encodePluginValue(value: unknown): Uint8Array {
  if (value === undefined || value === null) return new Uint8Array(0);
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return Buffer.from(JSON.stringify(value), 'utf8');
}

export const PluginUpstreamSchema = z
  .object({
    url: z
      .string()
      .url()
      .refine((u) => /^https?:/i.test(u), 'must be an http or https URL')
      .describe('Base URL; the plugin\'s `:path` is appended to it.'),
    max_body_bytes: z
      .number()
      .int()
      .min(1)
      .max(64 * 1024 * 1024)
      .default(4 * 1024 * 1024)
      .describe('Largest answer read from it; a larger one fails the call.'),
  })
  .strict();

/**
 * The upstreams plugins may reach with proxy_http_call, by name. A plugin names one (`upstream: authz`
 * in its config, the cluster name in Envoy terms) and never an address, so it reaches only what the
 * operator listed here. Either a URL or `{ url, max_body_bytes }`.
 */
export const PluginUpstreamsSchema = z
  .record(
    pluginName,
    z.union([z.string().transform((url) => ({ url })).pipe(PluginUpstreamSchema), PluginUpstreamSchema]),
  )
  .default({})
  .describe('Upstreams Wasm plugins may call with proxy_http_call, by name: `authz: http://127.0.0.1:9000`.');

export type PluginUpstreams = z.output<typeof PluginUpstreamsSchema>;
