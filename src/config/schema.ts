/**
 * The configuration schema: the single source for validation, the TypeScript types and the JSON
 * Schema that `sluice schema` prints. Keys are snake_case as users write them in YAML. Every object is
 * strict, so a misspelt key is an error that names its path rather than a setting silently ignored.
 */

import { z } from 'zod';

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
  })
  .strict();

export const ModelRouteSchema = z
  .object({
    name: modelPattern.describe('Client-facing model name or pattern.'),
    targets: z.array(TargetSchema).min(1).describe('Where requests for this model go; the first target serves.'),
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
    filters: z.array(FilterSchema).default([]),
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
    cfg.models.forEach((m, i) =>
      m.targets.forEach((t, j) => {
        if (!names.has(t.provider)) {
          ctx.addIssue({
            code: 'custom',
            path: ['models', i, 'targets', j, 'provider'],
            message: `unknown provider "${t.provider}" (configured: ${[...names].join(', ') || 'none'})`,
          });
        }
      }),
    );
    if (cfg.filters.filter((f) => f.type === 'model').length > 1) {
      ctx.addIssue({ code: 'custom', path: ['filters'], message: 'the model filter may be listed at most once' });
    }
  });

export type Config = z.output<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
export type ProviderConfig = z.output<typeof ProviderSchema>;
export type ModelRouteConfig = z.output<typeof ModelRouteSchema>;
export type FilterConfig = z.output<typeof FilterSchema>;
export type MockSettings = z.output<typeof MockSettingsSchema>;
export type TimeoutsConfig = z.output<typeof TimeoutsSchema>;
export type AdminConfig = z.output<typeof AdminSchema>;

/** The JSON Schema (draft 2020-12) of the configuration file, as users write it. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}
