/**
 * Gateway metrics on prom-client, named after the OpenTelemetry GenAI semantic conventions where
 * they define one (translated to Prometheus style: dots become underscores, the unit becomes a
 * suffix, `{token}` annotations are dropped) and `sluice_*` where they do not. docs/metrics.md
 * lists every metric, label and bucket.
 *
 * One `GatewayMetrics` per worker process, fed once per finished request with `observe(record)`:
 * the request path builds one plain `RequestRecord` and never touches prom-client itself.
 * `observe` adds numbers to one cell per label combination (~1 µs); the metric families are sums
 * over cells computed when scraped, and handed to a prom-client `Registry` in the shape its own
 * metrics produce, so formatting, JSON snapshots and `AggregatorRegistry` work unchanged.
 *
 * Across processes: each worker has its own registry; the supervisor asks each for
 * `workerSnapshot()` (plain JSON, fit for IPC) and serves their sum through `ClusterMetrics`. When
 * a worker exits, its last snapshot's counters and histograms are kept (its gauges dropped), so the
 * served totals never go down; a drop would read as a counter reset and inflate every `rate()`.
 * What a worker counted after the supervisor's last look at it is lost.
 *
 * Cardinality: `consumer`, `model` and `provider` label values are capped per process (first come,
 * first kept); later values are counted under `other`. Across N workers the union is at most N
 * times the cap, and in practice the same values, since the same traffic reaches every worker.
 */

import { AggregatorRegistry, Gauge, Registry, type Metric } from 'prom-client';

/** What `Registry.getMetricsAsJSON()` gives: plain objects, structured-clone and JSON safe. */
export type MetricsSnapshot = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** How an upstream attempt failed, as the `kind` label says it. */
export type UpstreamErrorKind =
  | 'connect'
  | 'timeout'
  | 'rate_limited'
  | 'overloaded'
  | 'auth'
  | 'server_error'
  | 'client_error'
  | 'protocol'
  | 'other';

/**
 * The kind of a failed attempt from what the attempt loop knows: the upstream's HTTP status (0 if
 * none came) and the gateway error code (`upstream_unreachable`, `upstream_timeout`, …) if any.
 */
export function upstreamErrorKind(status: number, code?: string): UpstreamErrorKind {
  if (code === 'upstream_unreachable') return 'connect';
  if (code === 'upstream_timeout') return 'timeout';
  if (code === 'upstream_protocol_error') return 'protocol';
  if (status === 429) return 'rate_limited';
  // 529 is Anthropic's "overloaded".
  if (status === 503 || status === 529) return 'overloaded';
  if (status === 401 || status === 403) return 'auth';
  if (status >= 500 && status <= 599) return 'server_error';
  if (status >= 400 && status <= 499) return 'client_error';
  return 'other';
}

/** One finished request, as the request path knows it at the end. Durations in milliseconds. */
export interface RequestRecord {
  /** The model the client asked for. */
  readonly model: string;
  /** Config name of the provider of the last attempt; '' when no attempt was made. */
  readonly provider: string;
  /** That provider's type (openai, anthropic, vllm, …): gives `gen_ai_provider_name`. */
  readonly providerType?: string;
  /** chat | completions | embeddings | models. */
  readonly operation: string;
  /** Undefined when the request was not authenticated. */
  readonly consumer?: string;
  /** HTTP status sent to the client; 0 when the client left before one was sent (counted as 499). */
  readonly status: number;
  readonly stream: boolean;
  /**
   * Real usage, when the upstream reported it (or the gateway counted it). `cachedInputTokens`: the
   * part of the input the upstream read from its own prompt cache, when it says.
   */
  readonly usage?: { readonly inputTokens: number; readonly outputTokens: number; readonly cachedInputTokens?: number };
  /** Cost of that usage in micro-USD (governance/prices.ts). */
  readonly costMicros?: number;
  /** False when the usage had no known price; `costMicros` is then meaningless. Default true. */
  readonly priced?: boolean;
  /** Arrival → first byte of the answer sent to the client. */
  readonly ttftMs?: number;
  /** Arrival → last byte sent. */
  readonly durationMs: number;
  /** Upstream attempts made (0 when refused before routing). */
  readonly attempts: number;
  /** True when a fallback target (not one of the route's first choice) served or last tried it. */
  readonly fallback?: boolean;
  /** Each failed upstream attempt, in order. */
  readonly upstreamErrors?: readonly { readonly provider: string; readonly kind: UpstreamErrorKind }[];
  /** The error code answered (GatewayError.code) when the request failed. */
  readonly errorType?: string;
  /** The gateway limit that refused the request (requests, tokens, budget, …), when one did. */
  readonly rateLimited?: string;
  /**
   * What the response cache did, when one looked. A hit's `usage` is the replayed answer's: it
   * counts as tokens served from the cache, not as upstream usage or spend.
   */
  readonly cache?: 'hit' | 'semantic-hit' | 'miss' | 'bypass';
}

export interface GatewayMetricsOptions {
  /** Register into this registry (e.g. one shared with Wasm plugin metrics); default a new one. */
  readonly registry?: Registry;
  /** Reads the worker's in-flight request count at scrape time. */
  readonly inFlight?: () => number;
  /** Distinct label values kept per dimension before `other`. */
  readonly maxConsumers?: number;
  readonly maxModels?: number;
  readonly maxProviders?: number;
}

export const OTHER_LABEL = 'other';
const MAX_LABEL_CHARS = 128;

/** First come, first kept: a bounded set of values for one label, the rest folded into `other`. */
export class LabelCap {
  private readonly kept = new Set<string>();

  constructor(private readonly max: number) {}

  value(raw: string): string {
    if (this.kept.has(raw)) return raw;
    if (this.kept.size >= this.max || raw.length > MAX_LABEL_CHARS) return OTHER_LABEL;
    this.kept.add(raw);
    return raw;
  }

  get size(): number {
    return this.kept.size;
  }
}

/** OTel's `gen_ai.provider.name` values for the provider types that have one. */
const OTEL_PROVIDER_NAMES: Readonly<Record<string, string>> = {
  openai: 'openai',
  'azure-openai': 'azure.ai.openai',
  anthropic: 'anthropic',
  gemini: 'gcp.gemini',
  deepseek: 'deepseek',
  groq: 'groq',
  mistral: 'mistral_ai',
  xai: 'x_ai',
  perplexity: 'perplexity',
};

const OTEL_OPERATION_NAMES: Readonly<Record<string, string>> = {
  chat: 'chat',
  completions: 'text_completion',
  embeddings: 'embeddings',
};

// OTel's advised boundaries, extended where a gateway sees more: answers longer than 82 s (long
// reasoning), first tokens after 10 s, and faster than 10 ms per token (100+ tokens/s is common).
export const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
export const DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 163.84, 327.68];
export const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
export const TPOT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5];

type Labels = Record<string, string>;
type ExportedValue = { labels: Labels; value: number; metricName?: string };

/** Counts per bucket (not cumulative; the last slot is above every bound), sum and count. */
class HistogramData {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && v > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }

  addTo(into: HistogramData): void {
    for (let i = 0; i < this.counts.length; i++) into.counts[i]! += this.counts[i]!;
    into.sum += this.sum;
    into.count += this.count;
  }
}

/**
 * Everything counted for one combination of a request's label values. `observe` touches one cell
 * (one map lookup) and adds numbers to it; the exported metrics are sums over cells, computed at
 * scrape time. That keeps a request's cost to about a microsecond, where updating a dozen
 * prom-client metrics (each hashing and validating its labels) costs over ten.
 */
class Cell {
  requests = 0;
  withUsage = 0;
  inputTokens = 0;
  outputTokens = 0;
  priced = 0;
  /** Integer micro-USD: sums stay exact. */
  costMicros = 0;
  unpriced = 0;
  retries = 0;
  fallbacks = 0;
  /** Part of `inputTokens` the upstream read from its prompt cache. */
  upstreamCachedInput = 0;
  /** Requests by response-cache result, and the tokens of the answers hits served. */
  cacheHit = 0;
  cacheSemanticHit = 0;
  cacheMiss = 0;
  cacheBypass = 0;
  cacheInputTokens = 0;
  cacheOutputTokens = 0;
  readonly duration = new HistogramData(DURATION_BUCKETS);
  tokenInput: HistogramData | undefined;
  tokenOutput: HistogramData | undefined;
  ttft: HistogramData | undefined;
  tpot: HistogramData | undefined;

  constructor(
    readonly status: string,
    readonly model: string,
    readonly provider: string,
    readonly consumer: string,
    readonly operation: string,
    readonly providerName: string,
    readonly errorType: string,
  ) {}
}

/** A metric computed at scrape time, in the shape prom-client's registry formats and aggregates. */
class ScrapedMetric {
  readonly aggregator = 'sum';

  constructor(
    public name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram' | 'gauge',
    private readonly values: () => ExportedValue[],
  ) {}

  async get(): Promise<{ name: string; help: string; type: string; values: ExportedValue[]; aggregator: string }> {
    return { name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: this.aggregator };
  }
}

/** Adds `value` to the series of `labels` (keyed by `key`) in `into`. */
function addTo(into: Map<string, ExportedValue>, key: string, labels: Labels, value: number): void {
  const found = into.get(key);
  if (found) found.value += value;
  else into.set(key, { labels, value });
}

function histogramValues(name: string, bounds: readonly number[], series: Iterable<{ labels: Labels; data: HistogramData }>): ExportedValue[] {
  const out: ExportedValue[] = [];
  for (const { labels, data } of series) {
    let cumulative = 0;
    for (let i = 0; i < bounds.length; i++) {
      cumulative += data.counts[i]!;
      out.push({ labels: { ...labels, le: String(bounds[i]) }, value: cumulative, metricName: `${name}_bucket` });
    }
    out.push({ labels: { ...labels, le: '+Inf' }, value: data.count, metricName: `${name}_bucket` });
    out.push({ labels, value: data.sum, metricName: `${name}_sum` });
    out.push({ labels, value: data.count, metricName: `${name}_count` });
  }
  return out;
}

export class GatewayMetrics {
  readonly registry: Registry;
  private readonly consumers: LabelCap;
  private readonly models: LabelCap;
  private readonly providers: LabelCap;
  private readonly cells = new Map<string, Cell>();
  /** `provider \0 kind` → count. */
  private readonly upstreamErrors = new Map<string, ExportedValue>();
  /** `consumer \0 limit` → count. */
  private readonly rateLimited = new Map<string, ExportedValue>();

  constructor(opts: GatewayMetricsOptions = {}) {
    this.registry = opts.registry ?? new Registry();
    this.consumers = new LabelCap(opts.maxConsumers ?? 100);
    this.models = new LabelCap(opts.maxModels ?? 100);
    this.providers = new LabelCap(opts.maxProviders ?? 64);

    const counter = (name: string, help: string, values: () => ExportedValue[]) =>
      this.registry.registerMetric(new ScrapedMetric(name, help, 'counter', values) as unknown as Metric);
    const histogram = (name: string, help: string, values: () => ExportedValue[]) =>
      this.registry.registerMetric(new ScrapedMetric(name, help, 'histogram', values) as unknown as Metric);

    counter(
      'sluice_requests_total',
      'Requests answered, by HTTP status sent to the client, model asked, provider of the last attempt and consumer.',
      () => this.sum((c) => c.requests, (c) => ({ status: c.status, model: c.model, provider: c.provider, consumer: c.consumer })),
    );
    counter('sluice_tokens_total', 'Tokens used as reported by the upstreams, by consumer, model asked, provider and gen_ai_token_type (input, output).', () => [
      ...this.sum((c) => c.inputTokens, (c) => ({ consumer: c.consumer, model: c.model, provider: c.provider, gen_ai_token_type: 'input' }), (c) => c.withUsage > 0),
      ...this.sum((c) => c.outputTokens, (c) => ({ consumer: c.consumer, model: c.model, provider: c.provider, gen_ai_token_type: 'output' }), (c) => c.withUsage > 0),
    ]);
    counter('sluice_cost_usd_total', 'Cost in USD of the tokens used, from the price table, by consumer, model asked and provider.', () =>
      this.sum((c) => c.costMicros, (c) => ({ consumer: c.consumer, model: c.model, provider: c.provider }), (c) => c.priced > 0).map((v) => ({
        ...v,
        value: v.value / 1e6,
      })),
    );
    counter('sluice_unpriced_requests_total', 'Requests with usage but no known price (their cost is not in sluice_cost_usd_total).', () =>
      this.sum((c) => c.unpriced, (c) => ({ model: c.model, provider: c.provider }), (c) => c.unpriced > 0),
    );
    counter(
      'sluice_upstream_errors_total',
      'Failed upstream attempts, by provider and kind (connect, timeout, rate_limited, overloaded, auth, server_error, client_error, protocol, other).',
      () => [...this.upstreamErrors.values()].map((v) => ({ ...v })),
    );
    counter('sluice_retries_total', 'Upstream attempts after the first (same target, another key or endpoint, or a fallback), by model asked.', () =>
      this.sum((c) => c.retries, (c) => ({ model: c.model }), (c) => c.retries > 0),
    );
    counter('sluice_fallbacks_total', 'Requests served (or last tried) by a fallback target, by model asked.', () =>
      this.sum((c) => c.fallbacks, (c) => ({ model: c.model }), (c) => c.fallbacks > 0),
    );
    counter("sluice_rate_limited_total", "Requests refused by the gateway's own limits, by consumer and limit.", () =>
      [...this.rateLimited.values()].map((v) => ({ ...v })),
    );
    counter(
      'sluice_upstream_cache_read_tokens_total',
      "Part of sluice_tokens_total's input the upstreams read from their own prompt cache (OTel gen_ai.usage.cache_read.input_tokens; OpenAI cached_tokens, Anthropic cache_read_input_tokens), by consumer, model asked and provider.",
      () => this.sum((c) => c.upstreamCachedInput, (c) => ({ consumer: c.consumer, model: c.model, provider: c.provider }), (c) => c.upstreamCachedInput > 0),
    );
    // Every result of a model the cache looked at is exported, zeros included: a hit ratio of a
    // cache that never hits is 0, not an empty query.
    const looked = (c: Cell): boolean => c.cacheHit + c.cacheSemanticHit + c.cacheMiss + c.cacheBypass > 0;
    counter('sluice_cache_requests_total', 'Chat requests the response cache looked at, by model asked and result (hit, semantic-hit, miss, bypass).', () => [
      ...this.sum((c) => c.cacheHit, (c) => ({ model: c.model, result: 'hit' }), looked),
      ...this.sum((c) => c.cacheSemanticHit, (c) => ({ model: c.model, result: 'semantic-hit' }), looked),
      ...this.sum((c) => c.cacheMiss, (c) => ({ model: c.model, result: 'miss' }), looked),
      ...this.sum((c) => c.cacheBypass, (c) => ({ model: c.model, result: 'bypass' }), looked),
    ]);
    const served = (c: Cell): boolean => c.cacheHit + c.cacheSemanticHit > 0;
    counter(
      'sluice_cache_tokens_total',
      'Tokens of answers served from the response cache instead of an upstream (no spend), by consumer, model asked and gen_ai_token_type (input: all cached, output).',
      () => [
        ...this.sum((c) => c.cacheInputTokens, (c) => ({ consumer: c.consumer, model: c.model, gen_ai_token_type: 'input' }), served),
        ...this.sum((c) => c.cacheOutputTokens, (c) => ({ consumer: c.consumer, model: c.model, gen_ai_token_type: 'output' }), served),
      ],
    );
    const inFlight = opts.inFlight;
    new Gauge({
      name: 'sluice_requests_in_flight',
      help: 'Requests being served right now.',
      registers: [this.registry],
      ...(inFlight
        ? {
            collect(this: Gauge) {
              this.set(inFlight());
            },
          }
        : {}),
    });
    histogram('gen_ai_client_token_usage', 'Tokens used per request (OTel gen_ai.client.token.usage), by gen_ai_token_type (input, output).', () =>
      histogramValues('gen_ai_client_token_usage', TOKEN_BUCKETS, [
        ...this.merge(TOKEN_BUCKETS, (c) => c.tokenInput, (c) => ({ ...genAiLabels(c), gen_ai_token_type: 'input' })),
        ...this.merge(TOKEN_BUCKETS, (c) => c.tokenOutput, (c) => ({ ...genAiLabels(c), gen_ai_token_type: 'output' })),
      ]),
    );
    histogram(
      'gen_ai_client_operation_duration_seconds',
      'Time from request arrival to the last byte sent (OTel gen_ai.client.operation.duration); error_type is set when it failed.',
      () =>
        histogramValues(
          'gen_ai_client_operation_duration_seconds',
          DURATION_BUCKETS,
          this.merge(DURATION_BUCKETS, (c) => c.duration, (c) => ({ ...genAiLabels(c), error_type: c.errorType })),
        ),
    );
    histogram(
      'gen_ai_server_time_to_first_token_seconds',
      'Time from request arrival to the first byte of a successful streamed answer (OTel gen_ai.server.time_to_first_token).',
      () => histogramValues('gen_ai_server_time_to_first_token_seconds', TTFT_BUCKETS, this.merge(TTFT_BUCKETS, (c) => c.ttft, genAiLabels)),
    );
    histogram(
      'gen_ai_server_time_per_output_token_seconds',
      'Time per output token after the first, for successful streamed answers (OTel gen_ai.server.time_per_output_token).',
      () => histogramValues('gen_ai_server_time_per_output_token_seconds', TPOT_BUCKETS, this.merge(TPOT_BUCKETS, (c) => c.tpot, genAiLabels)),
    );
  }

  /** Count one finished request. Call exactly once per request, whatever its outcome. */
  observe(r: RequestRecord): void {
    const consumer = this.consumers.value(r.consumer ?? 'anonymous');
    const model = this.models.value(r.model || 'unknown');
    const provider = this.providers.value(r.provider || 'none');
    const failed = r.status === 0 || r.status >= 400;
    const status = r.status === 0 ? '499' : String(r.status);
    const errorType = failed ? (r.errorType ?? status) : '';
    const operation = r.operation;
    const providerType = r.providerType ?? '';
    const key = `${status}\0${model}\0${provider}\0${consumer}\0${operation}\0${providerType}\0${errorType}`;
    let cell = this.cells.get(key);
    if (cell === undefined) {
      const providerName = providerType === '' ? 'none' : (OTEL_PROVIDER_NAMES[providerType] ?? this.providers.value(providerType));
      cell = new Cell(status, model, provider, consumer, OTEL_OPERATION_NAMES[operation] ?? OTHER_LABEL, providerName, errorType);
      this.cells.set(key, cell);
    }

    cell.requests++;
    if (Number.isFinite(r.durationMs) && r.durationMs >= 0) cell.duration.observe(r.durationMs / 1000);
    const usage = r.usage;
    const cache = r.cache;
    let fromCache = false;
    if (cache !== undefined) {
      if (cache === 'hit') cell.cacheHit++;
      else if (cache === 'semantic-hit') cell.cacheSemanticHit++;
      else if (cache === 'miss') cell.cacheMiss++;
      else cell.cacheBypass++;
      fromCache = cache === 'hit' || cache === 'semantic-hit';
    }
    if (usage && fromCache) {
      // Replayed by the gateway: served tokens, not upstream usage, not spend.
      cell.cacheInputTokens += Math.max(0, usage.inputTokens);
      cell.cacheOutputTokens += Math.max(0, usage.outputTokens);
    } else if (usage) {
      const input = Math.max(0, usage.inputTokens);
      const output = Math.max(0, usage.outputTokens);
      cell.withUsage++;
      cell.inputTokens += input;
      cell.outputTokens += output;
      const cachedInput = usage.cachedInputTokens;
      if (cachedInput !== undefined && cachedInput > 0) cell.upstreamCachedInput += Math.min(input, cachedInput);
      (cell.tokenInput ??= new HistogramData(TOKEN_BUCKETS)).observe(input);
      (cell.tokenOutput ??= new HistogramData(TOKEN_BUCKETS)).observe(output);
      if (r.priced === false) {
        cell.unpriced++;
      } else {
        cell.priced++;
        cell.costMicros += Math.max(0, Math.round(r.costMicros ?? 0));
      }
    }
    if (!failed && r.stream && r.ttftMs !== undefined && r.ttftMs >= 0) {
      (cell.ttft ??= new HistogramData(TTFT_BUCKETS)).observe(r.ttftMs / 1000);
      const output = usage?.outputTokens ?? 0;
      if (output > 1 && r.durationMs > r.ttftMs) (cell.tpot ??= new HistogramData(TPOT_BUCKETS)).observe((r.durationMs - r.ttftMs) / 1000 / (output - 1));
    }
    if (r.attempts > 1) cell.retries += r.attempts - 1;
    if (r.fallback) cell.fallbacks++;
    if (r.upstreamErrors) {
      for (const e of r.upstreamErrors) {
        const p = this.providers.value(e.provider || 'none');
        addTo(this.upstreamErrors, `${p}\0${e.kind}`, { provider: p, kind: e.kind }, 1);
      }
    }
    if (r.rateLimited !== undefined) {
      const limit = r.rateLimited.slice(0, 32) || 'unknown';
      addTo(this.rateLimited, `${consumer}\0${limit}`, { consumer, limit }, 1);
    }
  }

  /** A counter family: `count` of the cells `keep` selects, summed by the labels `labels` gives. */
  private sum(count: (c: Cell) => number, labels: (c: Cell) => Labels, keep: (c: Cell) => boolean = () => true): ExportedValue[] {
    const out = new Map<string, ExportedValue>();
    for (const c of this.cells.values()) {
      if (!keep(c)) continue;
      const l = labels(c);
      addTo(out, Object.values(l).join('\0'), l, count(c));
    }
    return [...out.values()];
  }

  /** A histogram family: the cells' histograms merged by the labels `labels` gives. */
  private merge(
    bounds: readonly number[],
    pick: (c: Cell) => HistogramData | undefined,
    labels: (c: Cell) => Labels,
  ): Iterable<{ labels: Labels; data: HistogramData }> {
    const out = new Map<string, { labels: Labels; data: HistogramData }>();
    for (const c of this.cells.values()) {
      const data = pick(c);
      if (!data) continue;
      const l = labels(c);
      const key = Object.values(l).join('\0');
      let series = out.get(key);
      if (!series) {
        series = { labels: l, data: new HistogramData(bounds) };
        out.set(key, series);
      }
      data.addTo(series.data);
    }
    return out.values();
  }

  /** This process's metrics as plain data, for the supervisor to add up. */
  workerSnapshot(): Promise<MetricsSnapshot> {
    return this.registry.getMetricsAsJSON();
  }

  /** This process's metrics as Prometheus text (a single-process gateway serves this). */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

function genAiLabels(c: Cell): Labels {
  return { gen_ai_operation_name: c.operation, gen_ai_provider_name: c.providerName, gen_ai_request_model: c.model, provider: c.provider };
}

/**
 * The sum of several workers' snapshots as Prometheus text: counters and histogram buckets are
 * added, and so are gauges (in-flight requests of all workers).
 */
export function aggregate(snapshots: readonly MetricsSnapshot[]): Promise<string> {
  return AggregatorRegistry.aggregate(snapshots as MetricsSnapshot[]).metrics();
}

/** The Prometheus text content type `aggregate` produces. */
export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/**
 * The supervisor's view: the latest snapshot of each live worker plus what exited workers had
 * counted, served as one set of totals that never decreases.
 */
export class ClusterMetrics {
  private readonly live = new Map<number, MetricsSnapshot>();
  /** Summed counters and histograms of exited workers (see `retire`). */
  private retired: MetricsSnapshot[] = [];

  /** The latest snapshot of the worker with process id `pid`. */
  update(pid: number, snapshot: MetricsSnapshot): void {
    this.live.set(pid, snapshot);
  }

  /**
   * The worker `pid` exited: keep what it counted as of its last snapshot. Only summed counters and
   * histograms are kept: a gauge says nothing once its process is gone, and a node-wide value that
   * every worker reports (aggregated with `max`, like the Wasm plugins' shared metrics) is still
   * reported by the live ones, where a dead worker's stale report must not win.
   */
  retire(pid: number): void {
    const last = this.live.get(pid);
    this.live.delete(pid);
    if (last) this.retired.push(last.filter((m) => (m.type as unknown as string) !== 'gauge' && (m.aggregator ?? 'sum') === 'sum'));
  }

  get workers(): number {
    return this.live.size;
  }

  /** Prometheus text of live and retired workers together, plus any `extra` snapshots (the supervisor's own). */
  async render(extra: readonly MetricsSnapshot[] = []): Promise<string> {
    if (this.retired.length > 1 && !this.folding) {
      this.folding = this.fold().finally(() => (this.folding = undefined));
      await this.folding;
    }
    return aggregate([...this.retired, ...this.live.values(), ...extra]);
  }

  private folding: Promise<void> | undefined;

  /**
   * Sums retired snapshots into one, so restarts do not pile them up. The list is swapped only once
   * the sum exists, so a render meanwhile still sees every retired count, and never one twice.
   */
  private async fold(): Promise<void> {
    const batch = this.retired.slice();
    const folded = await AggregatorRegistry.aggregate(batch).getMetricsAsJSON();
    this.retired = [folded, ...this.retired.filter((s) => !batch.includes(s))];
  }
}

// ---- Metrics kept outside GatewayMetrics, in the same registry (the response cache's: src/cache/cache-metrics.ts) ----

export { HistogramData };

/** One series of a family computed at scrape time: labels and value (histogram parts name themselves). */
export type ScrapedValue = ExportedValue;

/**
 * Registers a family whose series `values` computes at scrape time, summed over workers by the
 * supervisor like GatewayMetrics' own (gauges too).
 */
export function registerScrapedMetric(registry: Registry, name: string, help: string, type: 'counter' | 'gauge' | 'histogram', values: () => ScrapedValue[]): void {
  registry.registerMetric(new ScrapedMetric(name, help, type, values) as unknown as Metric);
}

/** The `_bucket`, `_sum` and `_count` series of histograms kept as `HistogramData`. */
export function scrapedHistogram(name: string, bounds: readonly number[], series: Iterable<{ labels: Labels; data: HistogramData }>): ScrapedValue[] {
  return histogramValues(name, bounds, series);
}
