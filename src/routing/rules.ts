/**
 * Canary and grayscale rules: tried in config order before the model routes; the first rule that
 * matches the request (model, headers, consumer) and whose share takes it decides the route.
 *
 * A share is sticky when the rule names a header (a user or session id): the request lands in the
 * rule when a hash of the rule's name and the header's value falls below `percent`, so one user
 * stays on one side for as long as the percentage does not change, and raising the percentage only
 * moves users into the rule, never out of it. Without the header the draw is per request.
 */

import type { RouteRetryConfig, RuleConfig } from '../config/schema.js';
import type { Provider } from '../providers/provider.js';
import { compilePattern, matchesAny, type ModelPattern } from './pattern.js';
import type { ResolvedRoute } from './model-router.js';
import { RoutePlan } from './route-plan.js';

/** What a rule may look at. */
export interface RuleInput {
  readonly model: string;
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  /** Set by authentication; undefined for anonymous requests. */
  readonly consumer: string | undefined;
}

interface CompiledRule {
  readonly models: readonly ModelPattern[] | undefined;
  readonly headers: readonly (readonly [string, string])[];
  readonly consumers: ReadonlySet<string> | undefined;
  /** In ten-thousandths: 10% → 1000. */
  readonly share: number;
  readonly stickyHeader: string | undefined;
  readonly seed: number;
  readonly plan: RoutePlan;
}

const SCALE = 10_000;

export class RuleSet {
  private readonly rules: readonly CompiledRule[];

  constructor(
    rules: readonly RuleConfig[],
    providers: ReadonlyMap<string, Provider>,
    defaultRetry: RouteRetryConfig,
    private readonly random: () => number = Math.random,
  ) {
    this.rules = rules.map((r) => {
      const provider = (name: string): Provider => {
        const p = providers.get(name);
        if (!p) throw new Error(`rule ${r.name}: unknown provider ${name}`);
        return p;
      };
      return {
        models: r.match?.models?.map(compilePattern),
        headers: Object.entries(r.match?.headers ?? {}),
        consumers: r.match?.consumers === undefined ? undefined : new Set(r.match.consumers),
        share: Math.round(r.percent * (SCALE / 100)),
        stickyHeader: r.sticky_header,
        seed: fnv1a(r.name, FNV_OFFSET),
        plan: new RoutePlan(
          r.name,
          r.targets.map((t) => ({ provider: provider(t.provider), model: t.model, weight: t.weight })),
          (r.fallbacks ?? []).map((t) => ({ provider: provider(t.provider), model: t.model })),
          r.retry ?? defaultRetry,
          r.timeouts,
        ),
      };
    });
  }

  get size(): number {
    return this.rules.length;
  }

  /** The route of the first rule that takes the request, or undefined (use the model routes). */
  resolve(input: RuleInput): ResolvedRoute | undefined {
    for (const rule of this.rules) {
      if (rule.models !== undefined && !matchesAny(rule.models, input.model)) continue;
      if (!headersMatch(rule.headers, input.headers)) continue;
      if (rule.consumers !== undefined && (input.consumer === undefined || !rule.consumers.has(input.consumer))) continue;
      if (rule.share < SCALE && this.draw(rule, input) >= rule.share) continue;
      return { plan: rule.plan, model: input.model };
    }
    return undefined;
  }

  /** A number in [0, SCALE): from the sticky header when present, else at random. */
  private draw(rule: CompiledRule, input: RuleInput): number {
    const value = rule.stickyHeader === undefined ? undefined : input.headers[rule.stickyHeader];
    if (value === undefined || value === '') return Math.floor(this.random() * SCALE);
    return fnv1a(value, rule.seed) % SCALE;
  }
}

function headersMatch(wanted: readonly (readonly [string, string])[], headers: Readonly<Record<string, string>>): boolean {
  for (const [name, value] of wanted) if (headers[name] !== value) return false;
  return true;
}

const FNV_OFFSET = 0x811c9dc5;

/**
 * 32-bit FNV-1a over UTF-16 code units, seeded per rule so two rules at 10% do not take the same
 * users. Stable across processes, nodes and restarts, unlike a random draw.
 */
export function fnv1a(text: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // FNV's low bits mix poorly on short inputs; one avalanche round spreads them before the modulo.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}
