/**
 * The configuration schema: the single source for validation, the TypeScript types and the JSON
 * Schema that `sluice schema` prints. Keys are snake_case as users write them in YAML. Every object is
 * strict, so a misspelt key is an error that names its path rather than a setting silently ignored.
 */

import { z } from 'zod';
import { PricesConfigSchema } from '../governance/prices-config.js';
import { ConsumerLimitFields, LimiterSettingsSchema, ModelLimitFields } from '../governance/limiter/config.js';
import { CacheSchema } from '../cache/config.js';
import { PluginsSchema, PluginUpstreamsSchema, WasmFilterRefSchema } from '../wasm/config.js';

const port = z.number().int().min(0).max(65535);
const positiveMs = z.number().int().min(1).max(24 * 3600 * 1000);
const nonNegativeMs = z.number().int().min(0).max(24 * 3600 * 1000);
const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be a valid HTTP header name')
  .transform((s) => s.toLowerCase());
const headerValue = z.string().regex(/^[^\r\n\0]*$/, 'must not contain line breaks');
/** Model names or patterns: exact (`gpt-4o`), prefix (`gpt-4o*`), glob (`claude-*-sonnet-*`), or `*`. */
const modelPattern = z.string().min(1).max(256);

export const TimeoutsSchema = z
  .object({
    connect_ms: positiveMs.default(10_000).describe('TCP/TLS connect timeout.'),
    first_byte_ms: positiveMs.default(300_000).describe('Time from request sent to response headers.'),
    idle_ms: positiveMs.default(300_000).describe('Longest silence between two chunks of a response body.'),
    total_ms: positiveMs
      .optional()
      .describe('Longest time for a whole request, all attempts and the full stream included; default: no limit.'),
  })
  .strict();

/** A model route's timeouts: each one set replaces the provider's for requests on that route. */
export const RouteTimeoutsSchema = z
  .object({
    first_byte_ms: positiveMs.optional().describe("Time from request sent to response headers; replaces the provider's."),
    idle_ms: positiveMs.optional().describe("Longest silence between two chunks; replaces the provider's."),
    total_ms: positiveMs.optional().describe("Longest time for the whole request (all attempts, the whole stream); replaces the provider's."),
  })
  .strict();

const RETRY_CONDITION = z.union([
  z.enum(['connect', 'timeout', '5xx']),
  z.number().int().min(400).max(599),
]);

export const RetryBudgetSchema = z
  .object({
    ratio: z.number().min(0).max(10).default(0.2).describe('Retries allowed per client request in the window (0.2 = one in five).'),
    min_per_second: z.number().min(0).max(100_000).default(1).describe('Retries allowed per second per worker whatever the traffic.'),
    window_ms: z.number().int().min(10).max(3_600_000).default(10_000).describe('The sliding window the ratio is measured over.'),
  })
  .strict();

export const RetrySchema = z
  .object({
    max_retries: z.number().int().min(0).max(10).default(2).describe('Attempts after the first on one target (another endpoint or key first, then the same again).'),
    base_delay_ms: nonNegativeMs.default(500).describe('Back-off before retry n is uniform in [0, min(max_delay_ms, base_delay_ms × 2^(n−1))).'),
    max_delay_ms: nonNegativeMs.default(8_000).describe('Longest back-off.'),
    max_retry_after_ms: nonNegativeMs
      .default(20_000)
      .describe('An upstream asking to wait longer than this (Retry-After, rate-limit reset) is not waited for: fall back or answer.'),
    on: z
      .array(RETRY_CONDITION)
      .min(1)
      .default(['connect', 'timeout', 429, '5xx'])
      .describe('Failures that are retried and that move a request to the next target: connect, timeout, 5xx, or status codes.'),
    budget: RetryBudgetSchema.default(RetryBudgetSchema.parse({})).describe('Caps retries to a fraction of live traffic.'),
  })
  .strict();

/** A route's own retry settings; the budget is the provider's, set once at the top level. */
const RouteRetrySchema = RetrySchema.omit({ budget: true });

export const EndpointSchema = z
  .object({
    url: z.string().url().describe('Base URL of one replica, as `base_url` would be written.'),
    weight: z.number().int().min(0).max(1000).default(1).describe('Share of traffic (weighted, least_request); 0 drains the endpoint.'),
  })
  .strict();

export const OutlierSchema = z
  .object({
    consecutive_failures: z.number().int().min(0).max(1000).default(5).describe('Failures in a row (connect, timeout, 5xx) that eject an endpoint; 0 disables ejection.'),
    base_ejection_ms: positiveMs.default(30_000).describe('First ejection length; doubles with each ejection in a row.'),
    max_ejection_ms: positiveMs.default(300_000).describe('Longest ejection.'),
    max_ejected_percent: z.number().min(0).max(100).default(50).describe('At most this share of the endpoints is ejected at once (always at least one).'),
  })
  .strict();

export const KeyPoolSchema = z
  .object({
    default_cooldown_ms: nonNegativeMs.default(10_000).describe('Rest for a key that got a 429 without saying for how long.'),
    max_cooldown_ms: nonNegativeMs.default(300_000).describe('Longest rest, whatever the provider says.'),
    proactive_cooldown: z
      .boolean()
      .default(true)
      .describe('Rest a key as soon as a successful answer shows a limit at 0 remaining, before it draws a 429.'),
  })
  .strict();

export const HealthCheckSchema = z
  .object({
    path: z.string().regex(/^\//, 'must start with /').default('/health').describe('Path probed with GET on each endpoint (joined to its origin).'),
    interval_ms: z.number().int().min(100).max(3_600_000).default(5_000).describe('Time between two probes of one endpoint.'),
    timeout_ms: positiveMs.default(2_000).describe('A probe slower than this fails.'),
    unhealthy_threshold: z.number().int().min(1).max(100).default(2).describe('Failed probes in a row that take an endpoint out.'),
    healthy_threshold: z.number().int().min(1).max(100).default(1).describe('Passed probes in a row that bring it back.'),
  })
  .strict();

export const BalancerSchema = z
  .enum(['round_robin', 'weighted', 'least_request', 'global_least_request', 'prefix'])
  .describe('How a provider with several endpoints picks one: see docs/routing.md.');

const PrefixBalanceSchema = z
  .object({
    load: z
      .enum(['in_flight', 'waiting'])
      .default('in_flight')
      .describe("What counts as a replica's load: requests the gateway has in flight to it, or its own waiting queue from /metrics (in_flight while metrics are stale)."),
    abs_threshold: z.number().min(0).max(1_000_000).default(8).describe('A replica this much busier than the least loaded one …'),
    rel_threshold: z.number().min(1).max(1000).default(1.5).describe('… and this many times as busy is skipped, whatever it has cached.'),
  })
  .strict();

const PrefixWeightsSchema = z
  .object({
    prefix: z.number().min(0).max(1000).default(1).describe('Weight of the share of the prompt a replica has cached.'),
    queue: z.number().min(0).max(1000).default(0.25).describe('Weight of the replica being busier than the least loaded one (its excess load / abs_threshold).'),
    kv_usage: z.number().min(0).max(1000).default(0.25).describe('Weight of the share of its KV cache in use (from /metrics).'),
  })
  .strict();

const PrefixMetricsSchema = z
  .object({
    enabled: z.boolean().default(true).describe("Scrape each replica's Prometheus metrics (vLLM or SGLang names) for waiting, running and KV usage."),
    path: z.string().regex(/^\//, 'must start with /').default('/metrics').describe('Joined to each endpoint\'s origin.'),
    interval_ms: z.number().int().min(100).max(600_000).default(1000).describe('Time between two scrapes of one replica (by the supervisor, off the request path).'),
    timeout_ms: positiveMs.default(1000).describe('A scrape slower than this fails.'),
  })
  .strict();

const PrefixShareSchema = z
  .object({
    enabled: z.boolean().default(false).describe('Share the prefix index with other gateway nodes through `redis`.'),
    interval_ms: z.number().int().min(50).max(60_000).default(500).describe('How often each node publishes what it learned and reads what the others did.'),
    max_batch: z.number().int().min(1).max(100_000).default(8192).describe('Most blocks one node publishes per interval; the rest waits for the next.'),
    max_stream_entries: z.number().int().min(10).max(1_000_000).default(2000).describe('Bound of the Redis stream (batches, trimmed approximately).'),
  })
  .strict();

export const PrefixSchema = z
  .object({
    block_size: z.number().int().min(1).max(1024).default(16).describe("Tokens per KV block as the replicas cache them (vLLM --block-size, SGLang's page size)."),
    capacity_blocks: z
      .number()
      .int()
      .min(1)
      .max(1 << 29)
      .optional()
      .describe("KV blocks one replica holds (vLLM's num_gpu_blocks at block_size): the index evicts beyond it. Default: what /metrics reports, else 16384."),
    ttl_ms: positiveMs.default(600_000).describe('A cached prefix no request touched for this long is forgotten.'),
    balance: PrefixBalanceSchema.default(PrefixBalanceSchema.parse({})),
    weights: PrefixWeightsSchema.default(PrefixWeightsSchema.parse({})),
    metrics: PrefixMetricsSchema.default(PrefixMetricsSchema.parse({})),
    share: PrefixShareSchema.default(PrefixShareSchema.parse({})),
  })
  .strict();

export const MockSettingsSchema = z
  .object({
    ttft_ms: nonNegativeMs.default(0).describe('Delay before the first token.'),
    tokens_per_second: z.number().min(0).default(0).describe('Pacing of streamed tokens; 0 = as fast as possible.'),
    output_tokens: z.number().int().min(0).optional().describe('Fixed answer length in tokens; default: echo the prompt.'),
    chunk_tokens: z.number().int().min(1).default(1).describe('Tokens per streamed chunk.'),
    error_status: z.number().int().min(400).max(599).optional().describe('Status injected on every `error_every`-th request.'),
    error_every: z.number().int().min(0).default(0).describe('Inject `error_status` on every Nth request; 0 = never.'),
    protocol: z.enum(['openai', 'anthropic']).default('openai').describe('Wire format the mock speaks for chat.'),
  })
  .strict();

export const ProviderSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'must be lower-case letters, digits, ".", "_" or "-"')
      .describe('Unique name; also usable as a model prefix: `NAME/model`.'),
    type: z
      .string()
      .min(1)
      .describe('Provider family or catalogue entry: openai, azure-openai, anthropic, gemini, mock, or an OpenAI-compatible vendor (deepseek, groq, vllm, ollama, …; see docs/providers.md).'),
    base_url: z.string().url().optional().describe('Override the default base URL of the type.'),
    endpoints: z
      .array(EndpointSchema)
      .min(1)
      .max(256)
      .optional()
      .describe('Several replicas of one server (vLLM, SGLang, …): replaces base_url; the balancer spreads requests over them.'),
    balancer: BalancerSchema.default('least_request'),
    outlier: OutlierSchema.default(OutlierSchema.parse({})).describe('Passive health: eject endpoints that keep failing.'),
    health_check: HealthCheckSchema.optional().describe('Active health: probe every endpoint; off unless set.'),
    prefix: PrefixSchema.optional().describe('Settings of `balancer: prefix` (prefix-cache-aware routing to vLLM/SGLang replicas).'),
    key_pool: KeyPoolSchema.default(KeyPoolSchema.parse({})).describe('How several api_key values share the load and rest after 401/403/429.'),
    api_key: z
      .union([z.string(), z.array(z.string()).min(1)])
      .optional()
      .describe('API key, or several; `${ENV}` interpolation keeps them out of the file.'),
    api_version: z.string().optional().describe('azure-openai: the api-version query parameter.'),
    deployments: z
      .record(z.string(), z.string())
      .optional()
      .describe('azure-openai: model name → deployment name (default: the model name).'),
    models: z.array(modelPattern).optional().describe('Models this provider serves (names or patterns). Defaults per type.'),
    headers: z.record(headerName, headerValue).optional().describe('Extra headers sent with every upstream request.'),
    timeouts: TimeoutsSchema.optional(),
    max_connections: z.number().int().min(1).max(65_536).default(256).describe('Upstream connections per origin.'),
    mock: MockSettingsSchema.optional().describe('type mock: behaviour of the built-in fake model.'),
  })
  .strict();

export const TargetSchema = z
  .object({
    provider: z.string().min(1).describe('Name of a configured provider.'),
    model: z.string().min(1).optional().describe("The provider's model name (default: the name the client asked for)."),
    weight: z.number().int().min(0).max(1000).default(1).describe('Share of the route\'s traffic among its targets; 0 = only as a fallback.'),
  })
  .strict();

const FallbackSchema = TargetSchema.omit({ weight: true });

export const ModelRouteSchema = z
  .object({
    name: modelPattern.describe('Client-facing model name or pattern.'),
    targets: z
      .array(TargetSchema)
      .min(1)
      .describe('Where requests for this model go, sharing traffic by weight; when one fails, the others are tried.'),
    fallbacks: z.array(FallbackSchema).optional().describe('Tried in order after every target failed (retryable failures only).'),
    retry: RouteRetrySchema.optional().describe('Replaces the top-level `retry` for this route (the budget stays per provider).'),
    timeouts: RouteTimeoutsSchema.optional(),
    ...ModelLimitFields,
  })
  .strict();

/** How limits and budgets are counted, and what happens when a budget runs out mid-answer. */
export const LimiterSchema = LimiterSettingsSchema.extend({
  on_budget_exhausted: z
    .enum(['finish', 'cut'])
    .default('finish')
    .describe('A token or money quota that runs out while an answer streams: finish the answer (and charge it), or cut it with an error event.'),
});

const RuleMatchSchema = z
  .object({
    models: z.array(modelPattern).min(1).optional().describe('Client-facing model names or patterns the rule applies to.'),
    headers: z
      .record(headerName, headerValue)
      .optional()
      .describe('Request headers that must be present with exactly these values.'),
    consumers: z.array(z.string().min(1)).min(1).optional().describe('Consumers (by name, see `consumers`) the rule applies to.'),
  })
  .strict();

export const RuleSchema = z
  .object({
    name: z.string().min(1).max(64).describe('Shown in the access log and as `x-sluice-route`.'),
    match: RuleMatchSchema.optional().describe('Which requests the rule may take; default: all.'),
    percent: z.number().min(0).max(100).default(100).describe('Share of matching requests the rule takes.'),
    sticky_header: headerName
      .optional()
      .describe('Pick the share by a hash of this header (e.g. a user id), so one user always lands on the same side; default: per request at random.'),
    targets: z.array(TargetSchema).min(1).describe('Where the requests the rule takes go.'),
    fallbacks: z.array(FallbackSchema).optional(),
    retry: RouteRetrySchema.optional(),
    timeouts: RouteTimeoutsSchema.optional(),
  })
  .strict();

export const RedisSchema = z
  .object({
    url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').describe('Redis shared by the gateway nodes.'),
    key_prefix: z.string().max(64).default('sluice:').describe('Prefix of every key Sluice writes.'),
    command_timeout_ms: positiveMs.default(200).describe('A Redis command slower than this counts as Redis down.'),
    load_report_interval_ms: z
      .number()
      .int()
      .min(20)
      .max(60_000)
      .default(250)
      .describe('global_least_request: how often each node publishes its in-flight counts and reads the others\'.'),
  })
  .strict();

const KEY_HASH = /^sha256:[0-9a-f]{64}$/;

export const ConsumerSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'must be letters, digits, ".", "_", "@" or "-"')
      .describe('Who is calling: shown in logs and metrics, used by limits and budgets.'),
    keys: z
      .array(z.string().regex(KEY_HASH, 'must be a key hash printed by `sluice hash-key` (sha256:…), never the key itself'))
      .default([])
      .describe('Hashes of the API keys this consumer presents (Authorization: Bearer or x-api-key).'),
    models: z.array(modelPattern).min(1).optional().describe('Client-facing models (names or patterns) this consumer may use; default all.'),
    labels: z.record(z.string().min(1).max(64), z.string().max(256)).optional().describe('Free-form labels (team, tier) for logs.'),
    ...ConsumerLimitFields,
  })
  .strict();

export const AuthSchema = z
  .object({
    required: z
      .boolean()
      .default(false)
      .describe('Require a consumer key even when no consumer lists a key in config (keys made through the admin API only). Configured consumers always require one.'),
  })
  .strict();

export const AccessLogSchema = z
  .object({
    enabled: z.boolean().default(false).describe('One JSON line per request.'),
    path: z.string().min(1).default('stdout').describe('`stdout`, or a file every worker appends to (one write per line).'),
    include_prompts: z
      .boolean()
      .default(false)
      .describe('Also log what the client sent (system prompt, messages, prompt or input; cut at 64 KiB). Off by default: prompts hold personal data.'),
  })
  .strict();

const MatchSchema = z
  .object({
    models: z.array(modelPattern).min(1).optional().describe('Apply only to these client-facing models (names or patterns).'),
    protocols: z
      .array(z.enum(['openai', 'anthropic']))
      .min(1)
      .optional()
      .describe('Apply only to requests arriving in these protocols.'),
  })
  .strict();

const HeaderEditsSchema = z
  .object({
    set: z.record(headerName, headerValue).optional(),
    remove: z.array(headerName).optional(),
  })
  .strict();

export const FilterSchema = z.discriminatedUnion('type', [
  z
    .object({ type: z.literal('model') })
    .strict()
    .describe('Model resolution: maps the client model to a route. Placed first unless listed.'),
  z
    .object({
      type: z.literal('headers'),
      match: MatchSchema.optional(),
      request: HeaderEditsSchema.optional().describe('Edits to the headers sent upstream.'),
      response: HeaderEditsSchema.optional().describe('Edits to the headers sent to the client.'),
    })
    .strict()
    .describe('Header add/set/remove.'),
  z
    .object({
      type: z.literal('body'),
      match: MatchSchema.optional(),
      defaults: z.record(z.string(), z.unknown()).optional().describe('Top-level fields set when the client did not send them.'),
      overrides: z.record(z.string(), z.unknown()).optional().describe('Top-level fields always set, replacing the client value.'),
      remove: z.array(z.string()).optional().describe('Top-level fields removed.'),
    })
    .strict()
    .describe('Request-body defaults and overrides, applied to the body as the client sent it.'),
  WasmFilterRefSchema.describe('Places a Wasm plugin (an entry of `plugins`) at this point of the chain.'),
]);

export const ServerSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1').describe('Address to listen on (0.0.0.0 for all interfaces).'),
    port: port.default(8080),
    max_body_bytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024 * 1024)
      .default(32 * 1024 * 1024)
      .describe('Largest request body accepted; larger → 413.'),
    workers: z
      .number()
      .int()
      .min(1)
      .max(256)
      .optional()
      .describe('Worker processes sharing the port (SO_REUSEPORT); default: one per CPU. `--workers` overrides.'),
    drain_grace_ms: nonNegativeMs
      .default(30_000)
      .describe('On SIGTERM/SIGINT, how long in-flight requests and streams may take to finish before they are cut.'),
    sse_keepalive_ms: nonNegativeMs
      .default(15_000)
      .describe('Send an SSE comment after this much silence on a stream, so proxies keep it open; 0 = never.'),
  })
  .strict();

export const AdminSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1').describe('Admin API address. A non-loopback address requires a token.'),
    port: port.default(8081).describe('Admin API port; 0 picks a free one.'),
    token: z
      .string()
      .min(16, 'must be at least 16 characters')
      .optional()
      .describe('Bearer token for the admin API (default: $SLUICE_ADMIN_TOKEN). Without one, only loopback callers are served.'),
    watch: z.boolean().default(true).describe('Reload when the config file changes.'),
  })
  .strict();

export const LogSchema = z
  .object({
    level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  })
  .strict();

export const ConfigSchema = z
  .object({
    server: ServerSchema.default(ServerSchema.parse({})),
    log: LogSchema.default(LogSchema.parse({})),
    admin: AdminSchema.default(AdminSchema.parse({})),
    providers: z.array(ProviderSchema).default([]),
    models: z.array(ModelRouteSchema).default([]),
    rules: z.array(RuleSchema).default([]).describe('Canary and header rules, tried in order before the model routes.'),
    retry: RetrySchema.default(RetrySchema.parse({})).describe('Retry policy of every route that sets none, and the retry budget of every provider.'),
    redis: RedisSchema.optional().describe('Cluster state shared by several gateway nodes.'),
    cache: CacheSchema.optional().describe('The response cache (exact and semantic); no block, no cache. See docs/cache.md.'),
    consumers: z.array(ConsumerSchema).default([]).describe('API consumers and their keys; with any configured, every request needs a key.'),
    auth: AuthSchema.default(AuthSchema.parse({})),
    access_log: AccessLogSchema.default(AccessLogSchema.parse({})),
    prices: PricesConfigSchema,
    limiter: LimiterSchema.default(LimiterSchema.parse({})),
    filters: z.array(FilterSchema).default([]),
    plugins: PluginsSchema,
    plugin_upstreams: PluginUpstreamsSchema,
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const names = new Set<string>();
    cfg.providers.forEach((p, i) => {
      if (names.has(p.name)) {
        ctx.addIssue({ code: 'custom', path: ['providers', i, 'name'], message: `duplicate provider name "${p.name}"` });
      }
      names.add(p.name);
    });
    const checkTargets = (targets: readonly { provider: string }[] | undefined, path: (string | number)[]): void =>
      targets?.forEach((t, j) => {
        if (!names.has(t.provider)) {
          ctx.addIssue({
            code: 'custom',
            path: [...path, j, 'provider'],
            message: `unknown provider "${t.provider}" (configured: ${[...names].join(', ') || 'none'})`,
          });
        }
      });
    cfg.models.forEach((m, i) => {
      checkTargets(m.targets, ['models', i, 'targets']);
      checkTargets(m.fallbacks, ['models', i, 'fallbacks']);
    });
    cfg.rules.forEach((r, i) => {
      checkTargets(r.targets, ['rules', i, 'targets']);
      checkTargets(r.fallbacks, ['rules', i, 'fallbacks']);
    });
    if (cfg.limiter.backend === 'redis' && cfg.redis === undefined) {
      ctx.addIssue({ code: 'custom', path: ['limiter', 'backend'], message: 'backend redis needs `redis` to be configured' });
    }
    const consumerNames = new Set<string>();
    const keyOwners = new Map<string, string>();
    cfg.consumers.forEach((c, i) => {
      if (consumerNames.has(c.name)) ctx.addIssue({ code: 'custom', path: ['consumers', i, 'name'], message: `duplicate consumer "${c.name}"` });
      consumerNames.add(c.name);
      c.keys.forEach((k, j) => {
        const owner = keyOwners.get(k);
        if (owner !== undefined && owner !== c.name) {
          ctx.addIssue({ code: 'custom', path: ['consumers', i, 'keys', j], message: `this key hash also belongs to consumer "${owner}"` });
        }
        keyOwners.set(k, c.name);
      });
    });
    cfg.providers.forEach((p, i) => {
      if (p.endpoints !== undefined && p.base_url !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['providers', i, 'endpoints'], message: 'set either base_url or endpoints, not both' });
      }
      if (p.balancer === 'global_least_request' && cfg.redis === undefined) {
        ctx.addIssue({ code: 'custom', path: ['providers', i, 'balancer'], message: 'global_least_request needs `redis` to be configured' });
      }
      if (p.health_check !== undefined && p.endpoints === undefined && p.base_url === undefined) {
        ctx.addIssue({ code: 'custom', path: ['providers', i, 'health_check'], message: 'health checks need base_url or endpoints' });
      }
      if (p.prefix !== undefined && p.balancer !== 'prefix') {
        ctx.addIssue({ code: 'custom', path: ['providers', i, 'prefix'], message: 'prefix settings need `balancer: prefix`' });
      }
      if (p.prefix?.share.enabled === true && cfg.redis === undefined) {
        ctx.addIssue({ code: 'custom', path: ['providers', i, 'prefix', 'share'], message: 'sharing the prefix index needs `redis` to be configured' });
      }
    });
    if (cfg.filters.filter((f) => f.type === 'model').length > 1) {
      ctx.addIssue({ code: 'custom', path: ['filters'], message: 'the model filter may be listed at most once' });
    }
    const pluginNames = new Set(cfg.plugins.map((p) => p.name));
    const placed = new Set<string>();
    cfg.filters.forEach((f, i) => {
      if (f.type !== 'wasm') return;
      if (!pluginNames.has(f.plugin)) {
        ctx.addIssue({
          code: 'custom',
          path: ['filters', i, 'plugin'],
          message: `unknown plugin "${f.plugin}" (configured: ${[...pluginNames].join(', ') || 'none'})`,
        });
      }
      if (placed.has(f.plugin)) ctx.addIssue({ code: 'custom', path: ['filters', i, 'plugin'], message: `plugin "${f.plugin}" is placed twice` });
      placed.add(f.plugin);
    });
  });

export type Config = z.output<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
export type ProviderConfig = z.output<typeof ProviderSchema>;
export type ModelRouteConfig = z.output<typeof ModelRouteSchema>;
export type FilterConfig = z.output<typeof FilterSchema>;
export type MockSettings = z.output<typeof MockSettingsSchema>;
export type TimeoutsConfig = z.output<typeof TimeoutsSchema>;
export type RouteTimeoutsConfig = z.output<typeof RouteTimeoutsSchema>;
export type RetryConfig = z.output<typeof RetrySchema>;
export type RouteRetryConfig = z.output<typeof RouteRetrySchema>;
export type TargetConfig = z.output<typeof TargetSchema>;
export type RuleConfig = z.output<typeof RuleSchema>;
export type RedisConfig = z.output<typeof RedisSchema>;
export type AccessLogConfig = z.output<typeof AccessLogSchema>;
export type ConsumerConfig = z.output<typeof ConsumerSchema>;
export type LimiterConfig = z.output<typeof LimiterSchema>;
export type HealthCheckConfig = z.output<typeof HealthCheckSchema>;
export type PrefixConfig = z.output<typeof PrefixSchema>;
export type AdminConfig = z.output<typeof AdminSchema>;

/** The JSON Schema (draft 2020-12) of the configuration file, as users write it. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}
