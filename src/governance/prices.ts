/**
 * Prices and the cost of one request.
 *
 * A `PriceTable` is built once per config snapshot from the built-in table (prices-data.ts) and the
 * config's `prices:` rows (prices-config.ts), and answers "what did this usage cost" from real usage
 * at the end of a request. Costs are integers in micro-USD: a price per million tokens in USD is
 * exactly micro-USD per token, so a cost is tokens × price, summed and rounded once per request
 * (never more than half a micro-dollar off), and adding costs up never drifts.
 *
 * Which price applies, first match wins:
 *   1. Config rows, the most specific first: exact model name before pattern, a row limited to the
 *      provider before one for every provider, then in config order. Rows with the same model and
 *      provider are one price history: the latest `effective_from` not after the request applies;
 *      a history that has not started yet at that date is skipped.
 *   2. Self-hosted provider types (vllm, ollama, sglang, … and mock) cost 0.
 *   3. The built-in row for the provider type and the model, tried under the name as served, then
 *      without its snapshot suffix (`gpt-4o-2024-08-06` → `gpt-4o`, `claude-3-5-sonnet-20241022` →
 *      `claude-3-5-sonnet`, `mistral-large-2411` → `mistral-large`, `gemini-1.5-pro-002` → …),
 *      so a snapshot priced differently from its family can have its own row.
 *   Otherwise the request is unpriced: cost 0, `priced: false`, which metrics count apart so a
 *   missing price is visible rather than a silent zero.
 */

import type { Usage } from '../protocol/canonical.js';
import { OPENAI_COMPATIBLE_ALIASES, OPENAI_COMPATIBLE_VENDORS } from '../providers/openai-compatible.js';
import { compilePattern, type ModelPattern } from '../routing/pattern.js';
import type { PriceOverride } from './prices-config.js';
import { BUILT_IN_PRICES, type PricePoint, type PriceTableData } from './prices-data.js';

/** The token counts a cost needs; the canonical `Usage` fits. */
export type BillableUsage = Pick<Usage, 'inputTokens' | 'outputTokens' | 'cachedInputTokens' | 'cacheCreationInputTokens'>;

export type PriceSource = 'config' | 'built-in' | 'self-hosted' | 'none';

export interface Cost {
  /** Integer millionths of a USD. */
  micros: number;
  /** False when no price was found: `micros` is then 0 and means "unknown", not "free". */
  priced: boolean;
  source: PriceSource;
}

/** USD per million tokens, resolved for one request (long-context tier already applied). */
export interface ResolvedPrice {
  input: number;
  output: number;
  cachedInput: number;
  cacheWrite: number;
  source: PriceSource;
}

function dayMs(day: string): number {
  return Date.parse(`${day}T00:00:00Z`);
}

interface DatedPoint {
  readonly fromMs: number;
  readonly point: PricePoint;
}

/** A price history sorted by date, oldest first. */
type History = readonly DatedPoint[];

interface ConfigRule {
  readonly pattern: ModelPattern;
  readonly provider: string | undefined;
  readonly history: History;
  /** Lower is tried first. */
  readonly rank: number;
}

const SELF_HOSTED = new Set<string>([
  'mock',
  ...Object.entries(OPENAI_COMPATIBLE_VENDORS)
    .filter(([, v]) => v.selfHosted)
    .map(([name]) => name),
]);

/**
 * Snapshot suffixes, tried in this order, each removal giving the next name to try. Anchored at the
 * end and requiring the dash, so a model's own numbers (`gpt-4`, `llama-3.1-8b`) stay.
 */
const SNAPSHOT_SUFFIXES: readonly RegExp[] = [
  /@\d{8}$/, // Vertex: claude-3-5-sonnet@20240620
  /-\d{4}-\d{2}-\d{2}$/, // OpenAI: gpt-4o-2024-08-06
  /-\d{8}$/, // Anthropic: claude-3-5-sonnet-20241022
  /-latest$/, // claude-3-5-sonnet-latest, mistral-large-latest
  /-\d{2}-\d{2}$/, // Gemini previews: gemini-2.5-pro-preview-06-05
  /-\d{4}$/, // gpt-4-0613, mistral-large-2411
  /-\d{3}$/, // gemini-1.5-pro-002
];

/** The names a served model is looked up under, most specific first. */
export function priceLookupNames(model: string): string[] {
  let name = model.trim().toLowerCase();
  if (name.startsWith('models/')) name = name.slice('models/'.length);
  const names = [name];
  for (let changed = true; changed; ) {
    changed = false;
    for (const suffix of SNAPSHOT_SUFFIXES) {
      const shorter = name.replace(suffix, '');
      if (shorter !== name && shorter !== '') {
        name = shorter;
        names.push(name);
        changed = true;
        break;
      }
    }
  }
  return names;
}

function pointAt(history: History, atMs: number): PricePoint | undefined {
  let found: PricePoint | undefined;
  for (const p of history) {
    if (p.fromMs > atMs) break;
    found = p.point;
  }
  return found;
}

function resolve(point: PricePoint, inputTokens: number, source: PriceSource): ResolvedPrice {
  const tier = point.longContext && inputTokens > point.longContext.aboveInputTokens ? point.longContext : point;
  return {
    input: tier.input,
    output: tier.output,
    cachedInput: tier.cachedInput ?? tier.input,
    cacheWrite: tier.cacheWrite ?? tier.input,
    source,
  };
}

function nonNegative(n: number | undefined): number {
  return n !== undefined && Number.isFinite(n) && n > 0 ? n : 0;
}

/** Micro-USD for `usage` at `price`: the canonical input count includes cached and cache-write tokens. */
export function microsFor(usage: BillableUsage, price: ResolvedPrice): number {
  const input = nonNegative(usage.inputTokens);
  const cached = Math.min(input, nonNegative(usage.cachedInputTokens));
  const written = Math.min(input - cached, nonNegative(usage.cacheCreationInputTokens));
  const plain = input - cached - written;
  const micros =
    plain * price.input + cached * price.cachedInput + written * price.cacheWrite + nonNegative(usage.outputTokens) * price.output;
  return Math.round(micros);
}

/** The price histories that may apply to one (provider, model): config rules first, then built-in. */
interface Candidates {
  readonly config: readonly ConfigRule[];
  readonly builtIn: History | undefined;
}

/** Most lookups repeat a handful of (provider, model) pairs: their candidate histories are kept. */
const LOOKUP_CACHE_MAX = 4096;

export class PriceTable {
  readonly version: string;
  private readonly rules: readonly ConfigRule[];
  /** `type \0 name` → history. */
  private readonly builtIn = new Map<string, History>();
  /** provider name → provider type → model → candidates: nested, so a lookup builds no key string. */
  private readonly cache = new Map<string, Map<string, Map<string, Candidates>>>();
  private cached = 0;

  constructor(overrides: readonly PriceOverride[] = [], data: PriceTableData = BUILT_IN_PRICES) {
    this.version = overrides.length > 0 ? `${data.version}+config` : data.version;
    this.rules = compileOverrides(overrides);
    for (const row of data.models) {
      const history = row.prices.map((point) => ({ fromMs: dayMs(point.effectiveFrom), point })).sort((a, b) => a.fromMs - b.fromMs);
      for (const type of row.providers) {
        for (const name of [row.model, ...(row.aliases ?? [])]) this.builtIn.set(`${type}\0${name.toLowerCase()}`, history);
      }
    }
  }

  /**
   * The price of `model` served by a provider of `providerType` (named `providerName` in config) on
   * the day of `at` (a Date or epoch ms), for a request of `inputTokens` prompt tokens (which picks a
   * long-context tier).
   */
  lookup(model: string, providerType: string, at: Date | number, inputTokens = 0, providerName?: string): ResolvedPrice | undefined {
    const type = OPENAI_COMPATIBLE_ALIASES[providerType] ?? providerType;
    const atMs = typeof at === 'number' ? at : at.getTime();
    const candidates = this.candidates(model, type, providerName ?? '');
    for (const rule of candidates.config) {
      const point = pointAt(rule.history, atMs);
      if (point) return resolve(point, inputTokens, 'config');
    }
    if (SELF_HOSTED.has(type)) return { input: 0, output: 0, cachedInput: 0, cacheWrite: 0, source: 'self-hosted' };
    if (candidates.builtIn) {
      // The first point of a built-in row also covers earlier days (its date is only the launch).
      const point = pointAt(candidates.builtIn, atMs) ?? candidates.builtIn[0]!.point;
      return resolve(point, inputTokens, 'built-in');
    }
    return undefined;
  }

  /** What `usage` cost when served as `model` by a provider of `providerType` at `at`. */
  costOf(usage: BillableUsage, model: string, providerType: string, at: Date | number, providerName?: string): Cost {
    const price = this.lookup(model, providerType, at, nonNegative(usage.inputTokens), providerName);
    if (!price) return { micros: 0, priced: false, source: 'none' };
    return { micros: microsFor(usage, price), priced: true, source: price.source };
  }

  private candidates(model: string, type: string, providerName: string): Candidates {
    let byType = this.cache.get(providerName);
    if (byType === undefined) this.cache.set(providerName, (byType = new Map()));
    let byModel = byType.get(type);
    if (byModel === undefined) byType.set(type, (byModel = new Map()));
    const hit = byModel.get(model);
    if (hit) return hit;
    const lower = model.trim().toLowerCase();
    const config = this.rules.filter(
      (r) => (r.provider === undefined || r.provider === type || r.provider === providerName) && r.pattern.matches(lower),
    );
    let builtIn: History | undefined;
    for (const name of priceLookupNames(model)) {
      builtIn = this.builtIn.get(`${type}\0${name}`);
      if (builtIn) break;
    }
    const found = { config, builtIn };
    if (this.cached >= LOOKUP_CACHE_MAX) {
      this.cache.clear();
      this.cached = 0;
    }
    // Re-fetched: clear() may just have dropped the maps found above.
    let types = this.cache.get(providerName);
    if (types === undefined) this.cache.set(providerName, (types = new Map()));
    let models = types.get(type);
    if (models === undefined) types.set(type, (models = new Map()));
    models.set(model, found);
    this.cached++;
    return found;
  }
}

/** Config rows grouped into histories (same model and provider) and ordered by specificity. */
function compileOverrides(overrides: readonly PriceOverride[]): ConfigRule[] {
  const groups = new Map<string, { model: string; provider: string | undefined; order: number; points: DatedPoint[] }>();
  overrides.forEach((o, order) => {
    const model = o.model.trim().toLowerCase();
    const key = `${o.provider ?? ''}\0${model}`;
    let group = groups.get(key);
    if (!group) {
      group = { model, provider: o.provider, order, points: [] };
      groups.set(key, group);
    }
    const point: PricePoint = {
      effectiveFrom: o.effective_from ?? '1970-01-01',
      input: o.input_per_mtok,
      output: o.output_per_mtok,
      ...(o.cached_input_per_mtok !== undefined ? { cachedInput: o.cached_input_per_mtok } : {}),
      ...(o.cache_write_per_mtok !== undefined ? { cacheWrite: o.cache_write_per_mtok } : {}),
    };
    // A row without a date is the price since forever: earlier than any dated row of its history.
    group.points.push({ fromMs: o.effective_from ? dayMs(o.effective_from) : -Infinity, point });
  });
  const rules: ConfigRule[] = [];
  for (const g of groups.values()) {
    const pattern = compilePattern(g.model);
    // Stable sort: two rows for the same day keep config order, and the later one wins in pointAt.
    const history = g.points.sort((a, b) => a.fromMs - b.fromMs);
    const rank = (pattern.exact ? 0 : 2) + (g.provider === undefined ? 1 : 0);
    rules.push({ pattern, provider: g.provider, history, rank: rank * 1_000_000 + g.order });
  }
  return rules.sort((a, b) => a.rank - b.rank);
}

/** The built-in table without config rows (tests, tools; the gateway builds one per snapshot). */
let defaultTable: PriceTable | undefined;

export function builtInPriceTable(): PriceTable {
  defaultTable ??= new PriceTable();
  return defaultTable;
}

/** Cost of `usage` by the built-in table alone. */
export function costOf(usage: BillableUsage, model: string, providerType: string, at: Date): Cost {
  return builtInPriceTable().costOf(usage, model, providerType, at);
}

/** USD, for display: micro-USD are what to add up. */
export function microsToUsd(micros: number): number {
  return micros / 1e6;
}
