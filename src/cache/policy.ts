/**
 * Which requests the cache looks up and which answers it stores, decided once per request from the
 * config, the canonical request and its headers. A request the cache stays out of gets
 * `x-sluice-cache: bypass`.
 */

import type { ChatRequest, FinishReason } from '../protocol/canonical.js';
import { compilePattern, matchesAny, type ModelPattern } from '../routing/pattern.js';
import type { CacheConfig } from './config.js';

export interface CacheControl {
  /** `no-cache`: do not answer from the cache, but store the fresh answer. */
  noCache: boolean;
  /** `no-store`: keep the cache out entirely. */
  noStore: boolean;
  /** `max-age=N`: only answers at most N seconds old may be served. */
  maxAgeSeconds: number | undefined;
}

/** Parses a request's `Cache-Control` (RFC 9111 request directives the cache honours). */
export function parseCacheControl(value: string | undefined): CacheControl {
  const cc: CacheControl = { noCache: false, noStore: false, maxAgeSeconds: undefined };
  if (!value) return cc;
  for (const raw of value.split(',')) {
    const [name, arg] = raw.trim().toLowerCase().split('=', 2).map((s) => s.trim());
    if (name === 'no-cache') cc.noCache = true;
    else if (name === 'no-store') cc.noStore = true;
    else if (name === 'max-age' && arg !== undefined) {
      const n = Number(arg.replace(/^"|"$/g, ''));
      // An invalid max-age is treated as 0 (RFC 9111 §4.2.1: "stale"), the safe reading.
      cc.maxAgeSeconds = Number.isInteger(n) && n >= 0 ? n : 0;
    }
  }
  return cc;
}

export interface CacheDecision {
  /** Look the request up. */
  lookup: boolean;
  /** Store its answer. */
  store: boolean;
  /** The semantic layer may be used (lookup and store). */
  semantic: boolean;
  /** Why the cache stays out, when it does: for logs and metrics. */
  reason: string | undefined;
  /** Oldest answer that may be served, in ms (from `max-age`). */
  maxAgeMs: number | undefined;
}

export interface PolicyInput {
  request: ChatRequest;
  /** The model name the client asked for. */
  clientModel: string;
  /** The route's name. */
  route: string;
  /** Request headers, lower-case names. */
  headers: Readonly<Record<string, string | undefined>>;
}

const BYPASS = (reason: string): CacheDecision => ({ lookup: false, store: false, semantic: false, reason, maxAgeMs: undefined });

export class CachePolicy {
  private readonly models: ModelPattern[];
  private readonly routes: ReadonlySet<string> | undefined;

  constructor(private readonly config: CacheConfig) {
    this.models = config.match.models.map(compilePattern);
    this.routes = config.match.routes ? new Set(config.match.routes) : undefined;
  }

  decide(input: PolicyInput): CacheDecision {
    const c = this.config;
    const req = input.request;
    if (!c.enabled) return BYPASS('disabled');
    if (!matchesAny(this.models, input.clientModel)) return BYPASS('model not cached');
    if (this.routes && !this.routes.has(input.route)) return BYPASS('route not cached');
    const cc = parseCacheControl(input.headers['cache-control']);
    if (cc.noStore) return BYPASS('cache-control: no-store');
    if (c.skip.multiple_choices && (req.n ?? 1) > 1) return BYPASS('n > 1');
    if (req.temperature !== undefined && req.temperature > c.skip.max_temperature) return BYPASS(`temperature > ${c.skip.max_temperature}`);
    if (c.skip.tool_results && hasToolTraffic(req)) return BYPASS('tool calls in the conversation');
    const semantic = c.semantic.enabled && (c.semantic.with_tools || req.tools === undefined || req.tools.length === 0);
    return {
      lookup: !cc.noCache,
      store: true,
      semantic,
      reason: cc.noCache ? 'cache-control: no-cache' : undefined,
      maxAgeMs: cc.maxAgeSeconds === undefined ? undefined : cc.maxAgeSeconds * 1000,
    };
  }

  /** Whether an answer that ended this way may be stored. */
  storable(reasons: readonly (FinishReason | null)[]): boolean {
    if (reasons.length === 0) return false;
    const allowed: readonly string[] = this.config.store_finish_reasons;
    return reasons.every((r) => r !== null && allowed.includes(r));
  }
}

function hasToolTraffic(req: ChatRequest): boolean {
  for (const m of req.messages) {
    if (m.role === 'tool') return true;
    if (m.role === 'assistant' && m.toolCalls !== undefined && m.toolCalls.length > 0) return true;
  }
  return false;
}
