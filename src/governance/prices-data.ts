/**
 * The built-in price table: list prices in USD per million tokens, per provider family and model.
 *
 * READ BEFORE RELYING ON IT. These are the vendors' public list prices for pay-as-you-go API use,
 * compiled from memory of their pricing pages up to late 2025 (`asOf`), not fetched or verified
 * against the live pages. Rows marked `uncertain` are ones whose numbers or dates are less sure
 * (recent launches, frequently re-priced vendors); check every row you bill on and override it in
 * config (`prices:`, see docs/costs.md) when it differs. Not modelled: batch and flex discounts,
 * regional or provisioned-throughput prices, negotiated discounts, audio/image output tokens,
 * per-hour cache storage, search/tool-call fees, off-peak discounts. Numbers are kept to the
 * precision the vendors publish (cents, or the exact fraction they quote); none is extrapolated.
 *
 * Meaning of the fields:
 * - `input`: uncached input tokens; `output`: output tokens, reasoning included.
 * - `cachedInput`: input tokens read from the provider's prompt cache (default: `input`).
 * - `cacheWrite`: input tokens written to the cache (Anthropic's 5-minute write; default: `input`).
 * - `longContext`: above `aboveInputTokens` prompt tokens the whole request is billed at these
 *   prices (Gemini Pro, Claude Sonnet 4.x with the 1M context).
 * - `effectiveFrom` (UTC date): a price applies from that day until the next point. The first point
 *   of a row also covers earlier dates: its date is the approximate launch, for the record only.
 * - `providers`: the provider types (config `type`) whose bills these are. The same open-weights
 *   model costs different amounts on different hosts, so a row never applies to another host.
 *
 * Bump `version` whenever a number changes, so costs in logs can say which table priced them.
 */

export interface LongContextPrice {
  readonly aboveInputTokens: number;
  readonly input: number;
  readonly output: number;
  readonly cachedInput?: number;
  readonly cacheWrite?: number;
}

export interface PricePoint {
  /** YYYY-MM-DD, UTC. */
  readonly effectiveFrom: string;
  readonly input: number;
  readonly output: number;
  readonly cachedInput?: number;
  readonly cacheWrite?: number;
  readonly longContext?: LongContextPrice;
}

export interface ModelPriceRow {
  readonly providers: readonly string[];
  /** The model's name as the provider's API spells it, lower case. */
  readonly model: string;
  /** Other names billed the same (exact, lower case); dated snapshots need no alias (see prices.ts). */
  readonly aliases?: readonly string[];
  readonly prices: readonly PricePoint[];
  readonly uncertain?: true;
}

export interface PriceTableData {
  readonly version: string;
  /** The date the list prices were believed current. */
  readonly asOf: string;
  readonly currency: 'USD';
  readonly models: readonly ModelPriceRow[];
}

const OPENAI = ['openai', 'azure-openai'] as const;
const ANTHROPIC = ['anthropic'] as const;
const GEMINI = ['gemini'] as const;
const DEEPSEEK = ['deepseek'] as const;
const MISTRAL = ['mistral'] as const;
const GROQ = ['groq'] as const;
const XAI = ['xai'] as const;

/** Anthropic bills cache reads at 0.1× and 5-minute cache writes at 1.25× the input price. */
function claude(effectiveFrom: string, input: number, output: number, longContext?: { input: number; output: number }): PricePoint {
  const point: PricePoint = {
    effectiveFrom,
    input,
    output,
    cachedInput: round6(input * 0.1),
    cacheWrite: round6(input * 1.25),
  };
  if (!longContext) return point;
  return {
    ...point,
    longContext: {
      aboveInputTokens: 200_000,
      input: longContext.input,
      output: longContext.output,
      cachedInput: round6(longContext.input * 0.1),
      cacheWrite: round6(longContext.input * 1.25),
    },
  };
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

export const BUILT_IN_PRICES: PriceTableData = {
  version: '2025.11-1',
  asOf: '2025-11-24',
  currency: 'USD',
  models: [
    // ── OpenAI (also what Azure OpenAI lists for global standard deployments) ───────────────
    { providers: OPENAI, model: 'gpt-5.1', prices: [{ effectiveFrom: '2025-11-13', input: 1.25, cachedInput: 0.125, output: 10 }], uncertain: true },
    { providers: OPENAI, model: 'gpt-5', aliases: ['gpt-5-chat'], prices: [{ effectiveFrom: '2025-08-07', input: 1.25, cachedInput: 0.125, output: 10 }] },
    { providers: OPENAI, model: 'gpt-5-mini', prices: [{ effectiveFrom: '2025-08-07', input: 0.25, cachedInput: 0.025, output: 2 }] },
    { providers: OPENAI, model: 'gpt-5-nano', prices: [{ effectiveFrom: '2025-08-07', input: 0.05, cachedInput: 0.005, output: 0.4 }] },
    { providers: OPENAI, model: 'gpt-5-pro', prices: [{ effectiveFrom: '2025-10-06', input: 15, output: 120 }], uncertain: true },
    { providers: OPENAI, model: 'gpt-4.1', prices: [{ effectiveFrom: '2025-04-14', input: 2, cachedInput: 0.5, output: 8 }] },
    { providers: OPENAI, model: 'gpt-4.1-mini', prices: [{ effectiveFrom: '2025-04-14', input: 0.4, cachedInput: 0.1, output: 1.6 }] },
    { providers: OPENAI, model: 'gpt-4.1-nano', prices: [{ effectiveFrom: '2025-04-14', input: 0.1, cachedInput: 0.025, output: 0.4 }] },
    {
      providers: OPENAI,
      model: 'gpt-4o',
      // The undated name moved from the 2024-05-13 snapshot to the cheaper 2024-08-06 one in early
      // October 2024 (prompt caching arrived the same week); the day is approximate.
      prices: [
        { effectiveFrom: '2024-05-13', input: 5, output: 15 },
        { effectiveFrom: '2024-10-02', input: 2.5, cachedInput: 1.25, output: 10 },
      ],
    },
    { providers: OPENAI, model: 'gpt-4o-2024-05-13', prices: [{ effectiveFrom: '2024-05-13', input: 5, output: 15 }] },
    { providers: OPENAI, model: 'chatgpt-4o-latest', prices: [{ effectiveFrom: '2024-08-13', input: 5, output: 15 }] },
    { providers: OPENAI, model: 'gpt-4o-mini', prices: [{ effectiveFrom: '2024-07-18', input: 0.15, cachedInput: 0.075, output: 0.6 }] },
    { providers: OPENAI, model: 'gpt-4.5-preview', prices: [{ effectiveFrom: '2025-02-27', input: 75, cachedInput: 37.5, output: 150 }] },
    { providers: OPENAI, model: 'o1', aliases: ['o1-preview'], prices: [{ effectiveFrom: '2024-09-12', input: 15, cachedInput: 7.5, output: 60 }] },
    {
      providers: OPENAI,
      model: 'o1-mini',
      // Cut to o3-mini's price when o3-mini launched.
      prices: [
        { effectiveFrom: '2024-09-12', input: 3, output: 12 },
        { effectiveFrom: '2025-01-31', input: 1.1, cachedInput: 0.55, output: 4.4 },
      ],
    },
    { providers: OPENAI, model: 'o1-pro', prices: [{ effectiveFrom: '2025-03-19', input: 150, output: 600 }] },
    {
      providers: OPENAI,
      model: 'o3',
      prices: [
        { effectiveFrom: '2025-04-16', input: 10, cachedInput: 2.5, output: 40 },
        { effectiveFrom: '2025-06-10', input: 2, cachedInput: 0.5, output: 8 },
      ],
    },
    { providers: OPENAI, model: 'o3-pro', prices: [{ effectiveFrom: '2025-06-10', input: 20, output: 80 }] },
    { providers: OPENAI, model: 'o3-mini', prices: [{ effectiveFrom: '2025-01-31', input: 1.1, cachedInput: 0.55, output: 4.4 }] },
    { providers: OPENAI, model: 'o4-mini', prices: [{ effectiveFrom: '2025-04-16', input: 1.1, cachedInput: 0.275, output: 4.4 }] },
    {
      providers: OPENAI,
      model: 'gpt-4-turbo',
      aliases: ['gpt-4-turbo-preview', 'gpt-4-1106-preview', 'gpt-4-0125-preview', 'gpt-4-vision-preview'],
      prices: [{ effectiveFrom: '2023-11-06', input: 10, output: 30 }],
    },
    { providers: OPENAI, model: 'gpt-4', prices: [{ effectiveFrom: '2023-03-14', input: 30, output: 60 }] },
    { providers: OPENAI, model: 'gpt-4-32k', prices: [{ effectiveFrom: '2023-03-14', input: 60, output: 120 }] },
    { providers: OPENAI, model: 'gpt-3.5-turbo', prices: [{ effectiveFrom: '2024-01-25', input: 0.5, output: 1.5 }] },
    { providers: OPENAI, model: 'gpt-3.5-turbo-1106', prices: [{ effectiveFrom: '2023-11-06', input: 1, output: 2 }] },
    { providers: OPENAI, model: 'text-embedding-3-small', prices: [{ effectiveFrom: '2024-01-25', input: 0.02, output: 0 }] },
    { providers: OPENAI, model: 'text-embedding-3-large', prices: [{ effectiveFrom: '2024-01-25', input: 0.13, output: 0 }] },
    { providers: OPENAI, model: 'text-embedding-ada-002', prices: [{ effectiveFrom: '2022-12-15', input: 0.1, output: 0 }] },

    // ── Anthropic ───────────────────────────────────────────────────────────────────────────
    { providers: ANTHROPIC, model: 'claude-opus-4-5', prices: [claude('2025-11-24', 5, 25)], uncertain: true },
    { providers: ANTHROPIC, model: 'claude-opus-4-1', prices: [claude('2025-08-05', 15, 75)] },
    { providers: ANTHROPIC, model: 'claude-opus-4', aliases: ['claude-opus-4-0'], prices: [claude('2025-05-22', 15, 75)] },
    { providers: ANTHROPIC, model: 'claude-sonnet-4-5', prices: [claude('2025-09-29', 3, 15, { input: 6, output: 22.5 })] },
    { providers: ANTHROPIC, model: 'claude-sonnet-4', aliases: ['claude-sonnet-4-0'], prices: [claude('2025-05-22', 3, 15, { input: 6, output: 22.5 })] },
    { providers: ANTHROPIC, model: 'claude-3-7-sonnet', prices: [claude('2025-02-24', 3, 15)] },
    { providers: ANTHROPIC, model: 'claude-3-5-sonnet', prices: [claude('2024-06-20', 3, 15)] },
    { providers: ANTHROPIC, model: 'claude-haiku-4-5', prices: [claude('2025-10-15', 1, 5)] },
    { providers: ANTHROPIC, model: 'claude-3-5-haiku', prices: [claude('2024-11-04', 0.8, 4)], uncertain: true },
    { providers: ANTHROPIC, model: 'claude-3-opus', prices: [claude('2024-03-04', 15, 75)] },
    { providers: ANTHROPIC, model: 'claude-3-sonnet', prices: [claude('2024-03-04', 3, 15)] },
    { providers: ANTHROPIC, model: 'claude-3-haiku', prices: [claude('2024-03-13', 0.25, 1.25)] },

    // ── Google Gemini API (AI Studio keys; Vertex AI bills separately) ─────────────────────────
    {
      providers: GEMINI,
      model: 'gemini-3-pro-preview',
      prices: [
        {
          effectiveFrom: '2025-11-18',
          input: 2,
          cachedInput: 0.2,
          output: 12,
          longContext: { aboveInputTokens: 200_000, input: 4, cachedInput: 0.4, output: 18 },
        },
      ],
      uncertain: true,
    },
    {
      providers: GEMINI,
      model: 'gemini-2.5-pro',
      aliases: ['gemini-2.5-pro-preview'],
      // Cached-input prices changed during 2025; the ones here are the later (lower) ones.
      prices: [
        {
          effectiveFrom: '2025-03-25',
          input: 1.25,
          cachedInput: 0.125,
          output: 10,
          longContext: { aboveInputTokens: 200_000, input: 2.5, cachedInput: 0.25, output: 15 },
        },
      ],
      uncertain: true,
    },
    // Text/image/video input price; audio input costs more and is not told apart here.
    { providers: GEMINI, model: 'gemini-2.5-flash', prices: [{ effectiveFrom: '2025-06-17', input: 0.3, cachedInput: 0.03, output: 2.5 }], uncertain: true },
    { providers: GEMINI, model: 'gemini-2.5-flash-lite', prices: [{ effectiveFrom: '2025-07-22', input: 0.1, cachedInput: 0.01, output: 0.4 }], uncertain: true },
    { providers: GEMINI, model: 'gemini-2.0-flash', prices: [{ effectiveFrom: '2025-02-05', input: 0.1, cachedInput: 0.025, output: 0.4 }] },
    { providers: GEMINI, model: 'gemini-2.0-flash-lite', prices: [{ effectiveFrom: '2025-02-25', input: 0.075, output: 0.3 }] },
    {
      providers: GEMINI,
      model: 'gemini-1.5-pro',
      prices: [
        { effectiveFrom: '2024-05-14', input: 3.5, output: 10.5, longContext: { aboveInputTokens: 128_000, input: 7, output: 21 } },
        { effectiveFrom: '2024-10-01', input: 1.25, output: 5, longContext: { aboveInputTokens: 128_000, input: 2.5, output: 10 } },
      ],
      uncertain: true,
    },
    {
      providers: GEMINI,
      model: 'gemini-1.5-flash',
      prices: [{ effectiveFrom: '2024-08-12', input: 0.075, output: 0.3, longContext: { aboveInputTokens: 128_000, input: 0.15, output: 0.6 } }],
    },
    {
      providers: GEMINI,
      model: 'gemini-1.5-flash-8b',
      prices: [{ effectiveFrom: '2024-10-03', input: 0.0375, output: 0.15, longContext: { aboveInputTokens: 128_000, input: 0.075, output: 0.3 } }],
    },

    // ── DeepSeek (cache-hit price as cachedInput; off-peak discounts not modelled) ───────────────
    {
      providers: DEEPSEEK,
      model: 'deepseek-chat',
      prices: [
        { effectiveFrom: '2025-02-09', input: 0.27, cachedInput: 0.07, output: 1.1 },
        { effectiveFrom: '2025-09-05', input: 0.56, cachedInput: 0.07, output: 1.68 },
        { effectiveFrom: '2025-09-29', input: 0.28, cachedInput: 0.028, output: 0.42 },
      ],
      uncertain: true,
    },
    {
      providers: DEEPSEEK,
      model: 'deepseek-reasoner',
      prices: [
        { effectiveFrom: '2025-01-20', input: 0.55, cachedInput: 0.14, output: 2.19 },
        { effectiveFrom: '2025-09-05', input: 0.56, cachedInput: 0.07, output: 1.68 },
        { effectiveFrom: '2025-09-29', input: 0.28, cachedInput: 0.028, output: 0.42 },
      ],
      uncertain: true,
    },

    // ── Mistral (La Plateforme) ─────────────────────────────────────────────────────────────
    { providers: MISTRAL, model: 'mistral-large', prices: [{ effectiveFrom: '2024-11-18', input: 2, output: 6 }] },
    { providers: MISTRAL, model: 'mistral-medium', prices: [{ effectiveFrom: '2025-05-07', input: 0.4, output: 2 }], uncertain: true },
    { providers: MISTRAL, model: 'mistral-small', prices: [{ effectiveFrom: '2025-03-17', input: 0.1, output: 0.3 }], uncertain: true },
    { providers: MISTRAL, model: 'codestral', prices: [{ effectiveFrom: '2025-01-13', input: 0.3, output: 0.9 }] },
    { providers: MISTRAL, model: 'pixtral-large', prices: [{ effectiveFrom: '2024-11-18', input: 2, output: 6 }] },
    { providers: MISTRAL, model: 'pixtral-12b', prices: [{ effectiveFrom: '2024-09-17', input: 0.15, output: 0.15 }] },
    { providers: MISTRAL, model: 'open-mistral-nemo', aliases: ['mistral-nemo'], prices: [{ effectiveFrom: '2024-07-18', input: 0.15, output: 0.15 }] },
    { providers: MISTRAL, model: 'ministral-8b', prices: [{ effectiveFrom: '2024-10-16', input: 0.1, output: 0.1 }] },
    { providers: MISTRAL, model: 'ministral-3b', prices: [{ effectiveFrom: '2024-10-16', input: 0.04, output: 0.04 }] },
    { providers: MISTRAL, model: 'magistral-medium', prices: [{ effectiveFrom: '2025-06-10', input: 2, output: 5 }], uncertain: true },
    { providers: MISTRAL, model: 'magistral-small', prices: [{ effectiveFrom: '2025-06-10', input: 0.5, output: 1.5 }], uncertain: true },
    { providers: MISTRAL, model: 'devstral-small', prices: [{ effectiveFrom: '2025-05-21', input: 0.1, output: 0.3 }], uncertain: true },
    { providers: MISTRAL, model: 'devstral-medium', prices: [{ effectiveFrom: '2025-07-10', input: 0.4, output: 2 }], uncertain: true },
    { providers: MISTRAL, model: 'mistral-embed', prices: [{ effectiveFrom: '2023-12-11', input: 0.1, output: 0 }] },

    // ── Groq (open-weights models at Groq's prices) ────────────────────────────────────────────
    { providers: GROQ, model: 'llama-3.3-70b-versatile', prices: [{ effectiveFrom: '2024-12-06', input: 0.59, output: 0.79 }] },
    { providers: GROQ, model: 'llama-3.1-8b-instant', prices: [{ effectiveFrom: '2024-07-23', input: 0.05, output: 0.08 }] },
    { providers: GROQ, model: 'meta-llama/llama-4-scout-17b-16e-instruct', prices: [{ effectiveFrom: '2025-04-05', input: 0.11, output: 0.34 }] },
    { providers: GROQ, model: 'meta-llama/llama-4-maverick-17b-128e-instruct', prices: [{ effectiveFrom: '2025-04-05', input: 0.2, output: 0.6 }] },
    { providers: GROQ, model: 'openai/gpt-oss-120b', prices: [{ effectiveFrom: '2025-08-05', input: 0.15, output: 0.75 }], uncertain: true },
    { providers: GROQ, model: 'openai/gpt-oss-20b', prices: [{ effectiveFrom: '2025-08-05', input: 0.1, output: 0.5 }], uncertain: true },
    { providers: GROQ, model: 'qwen/qwen3-32b', prices: [{ effectiveFrom: '2025-05-01', input: 0.29, output: 0.59 }], uncertain: true },
    { providers: GROQ, model: 'moonshotai/kimi-k2-instruct', prices: [{ effectiveFrom: '2025-07-14', input: 1, output: 3 }], uncertain: true },

    // ── xAI ─────────────────────────────────────────────────────────────────────────────────
    { providers: XAI, model: 'grok-4', prices: [{ effectiveFrom: '2025-07-09', input: 3, cachedInput: 0.75, output: 15 }], uncertain: true },
    {
      providers: XAI,
      model: 'grok-4-fast',
      aliases: ['grok-4-fast-reasoning', 'grok-4-fast-non-reasoning'],
      prices: [{ effectiveFrom: '2025-09-19', input: 0.2, cachedInput: 0.05, output: 0.5 }],
      uncertain: true,
    },
    { providers: XAI, model: 'grok-3', prices: [{ effectiveFrom: '2025-04-09', input: 3, cachedInput: 0.75, output: 15 }], uncertain: true },
    { providers: XAI, model: 'grok-3-mini', prices: [{ effectiveFrom: '2025-04-09', input: 0.3, cachedInput: 0.075, output: 0.5 }], uncertain: true },
  ],
};
