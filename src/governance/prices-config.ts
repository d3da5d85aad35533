/**
 * The `prices:` section of the config: rows that replace or extend the built-in price table
 * (src/governance/prices-data.ts). Prices are USD per million tokens, the unit vendors publish.
 *
 *   prices:
 *     - model: gpt-4o                    # exact served-model name, or a pattern (`*`, `?`)
 *       input_per_mtok: 2.5
 *       output_per_mtok: 10
 *       cached_input_per_mtok: 1.25
 *     - model: gpt-4o
 *       provider: azure-eu               # a provider's name or type; default: every provider
 *       input_per_mtok: 2.75
 *       output_per_mtok: 11
 *       effective_from: 2026-01-01       # UTC day; default: always
 *     - model: "llama-*"
 *       provider: vllm                   # self-hosted models cost 0 unless a row like this says otherwise
 *       input_per_mtok: 0.05
 *       output_per_mtok: 0.05
 */

import { z } from 'zod';

const perMTok = z.number().min(0).max(1_000_000);

/** `YYYY-MM-DD` that is a real calendar day. */
const utcDay = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date written YYYY-MM-DD')
  .refine((s) => {
    const t = Date.parse(`${s}T00:00:00Z`);
    return Number.isFinite(t) && new Date(t).toISOString().slice(0, 10) === s;
  }, 'not a calendar date');

export const PriceOverrideSchema = z
  .object({
    model: z
      .string()
      .min(1)
      .max(256)
      .describe('Served model name (as sent upstream), or a pattern where `*` matches any run of characters and `?` one character; case-insensitive.'),
    provider: z
      .string()
      .min(1)
      .max(64)
      .optional()
      .describe('Limit the row to one provider, by its config name or its type; default: every provider.'),
    input_per_mtok: perMTok.describe('USD per million uncached input tokens.'),
    output_per_mtok: perMTok.describe('USD per million output tokens (reasoning included).'),
    cached_input_per_mtok: perMTok.optional().describe('USD per million input tokens read from the prompt cache; default: input_per_mtok.'),
    cache_write_per_mtok: perMTok.optional().describe('USD per million input tokens written to the prompt cache (Anthropic); default: input_per_mtok.'),
    effective_from: utcDay
      .optional()
      .describe('First UTC day this price applies; rows with the same model and provider form a price history. Default: always.'),
  })
  .strict();

export const PricesConfigSchema = z
  .array(PriceOverrideSchema)
  .max(10_000)
  .default([])
  .describe('Prices that replace or extend the built-in table (docs/costs.md).');

export type PriceOverride = z.infer<typeof PriceOverrideSchema>;
