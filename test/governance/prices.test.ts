import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { PricesConfigSchema } from '../../src/governance/prices-config.js';
import { BUILT_IN_PRICES } from '../../src/governance/prices-data.js';
import { builtInPriceTable, costOf, microsFor, priceLookupNames, PriceTable } from '../../src/governance/prices.js';

const day = (d: string): Date => new Date(`${d}T12:00:00Z`);
const NOW = day('2025-11-25');

describe('built-in table', () => {
  it('is well formed: positive prices, real dates in order, no name claimed twice per provider', () => {
    const seen = new Set<string>();
    for (const row of BUILT_IN_PRICES.models) {
      assert.ok(row.prices.length > 0, row.model);
      assert.equal(row.model, row.model.toLowerCase());
      let last = -Infinity;
      for (const p of row.prices) {
        const t = Date.parse(`${p.effectiveFrom}T00:00:00Z`);
        assert.ok(Number.isFinite(t), `${row.model} ${p.effectiveFrom}`);
        assert.ok(t > last, `${row.model}: dates must increase`);
        last = t;
        for (const v of [p.input, p.output, p.cachedInput ?? 0, p.cacheWrite ?? 0]) assert.ok(v >= 0 && v < 1000, row.model);
        if (p.cachedInput !== undefined) assert.ok(p.cachedInput <= p.input, `${row.model}: cache reads cost less`);
      }
      for (const type of row.providers) {
        for (const name of [row.model, ...(row.aliases ?? [])]) {
          const key = `${type}/${name}`;
          assert.ok(!seen.has(key), `duplicate ${key}`);
          seen.add(key);
        }
      }
    }
  });

  it('covers the major vendors', () => {
    const table = builtInPriceTable();
    for (const [type, model] of [
      ['openai', 'gpt-4o'],
      ['openai', 'gpt-4o-mini'],
      ['openai', 'gpt-4.1'],
      ['openai', 'o3'],
      ['openai', 'gpt-5'],
      ['azure-openai', 'gpt-4o'],
      ['anthropic', 'claude-sonnet-4-5-20250929'],
      ['anthropic', 'claude-3-5-haiku-20241022'],
      ['gemini', 'gemini-2.5-pro'],
      ['gemini', 'gemini-2.0-flash-001'],
      ['deepseek', 'deepseek-chat'],
      ['mistral', 'mistral-large-latest'],
      ['groq', 'llama-3.3-70b-versatile'],
      ['xai', 'grok-4'],
    ] as const) {
      assert.ok(table.lookup(model, type, NOW), `${type} ${model}`);
    }
  });
});

describe('lookup names', () => {
  it('strips snapshot suffixes one at a time', () => {
    assert.deepEqual(priceLookupNames('gpt-4o-2024-08-06'), ['gpt-4o-2024-08-06', 'gpt-4o']);
    assert.deepEqual(priceLookupNames('claude-3-5-sonnet-20241022'), ['claude-3-5-sonnet-20241022', 'claude-3-5-sonnet']);
    assert.deepEqual(priceLookupNames('claude-3-5-sonnet@20240620'), ['claude-3-5-sonnet@20240620', 'claude-3-5-sonnet']);
    assert.deepEqual(priceLookupNames('Mistral-Large-2411'), ['mistral-large-2411', 'mistral-large']);
    assert.deepEqual(priceLookupNames('models/gemini-1.5-pro-002'), ['gemini-1.5-pro-002', 'gemini-1.5-pro']);
    assert.deepEqual(priceLookupNames('gemini-2.5-pro-preview-06-05'), ['gemini-2.5-pro-preview-06-05', 'gemini-2.5-pro-preview']);
    assert.deepEqual(priceLookupNames('claude-3-7-sonnet-latest'), ['claude-3-7-sonnet-latest', 'claude-3-7-sonnet']);
  });

  it("keeps a model's own numbers", () => {
    assert.deepEqual(priceLookupNames('gpt-4'), ['gpt-4']);
    assert.deepEqual(priceLookupNames('llama-3.1-8b-instant'), ['llama-3.1-8b-instant']);
    assert.deepEqual(priceLookupNames('o3'), ['o3']);
  });
});

describe('costOf', () => {
  it('prices a dated snapshot as its family', () => {
    const usage = { inputTokens: 1_000_000, outputTokens: 1_000_000 };
    assert.deepEqual(costOf(usage, 'gpt-4o-2024-08-06', 'openai', NOW), { micros: 12_500_000, priced: true, source: 'built-in' });
    assert.deepEqual(costOf(usage, 'gpt-4o', 'openai', NOW), { micros: 12_500_000, priced: true, source: 'built-in' });
  });

  it('prefers a row of the exact snapshot over its family', () => {
    const usage = { inputTokens: 1_000_000, outputTokens: 0 };
    assert.equal(costOf(usage, 'gpt-4o-2024-05-13', 'openai', NOW).micros, 5_000_000);
    assert.equal(costOf(usage, 'gpt-4o-2024-11-20', 'openai', NOW).micros, 2_500_000);
  });

  it('follows effective dates, and the first price covers earlier days', () => {
    const usage = { inputTokens: 1_000_000, outputTokens: 1_000_000 };
    assert.equal(costOf(usage, 'o3', 'openai', day('2025-05-01')).micros, 50_000_000);
    assert.equal(costOf(usage, 'o3', 'openai', day('2025-06-09')).micros, 50_000_000);
    assert.equal(costOf(usage, 'o3', 'openai', new Date('2025-06-10T00:00:00Z')).micros, 10_000_000);
    assert.equal(costOf(usage, 'o3', 'openai', day('2024-01-01')).micros, 50_000_000);
    assert.equal(costOf(usage, 'gpt-4o', 'openai', day('2024-06-01')).micros, 20_000_000);
    assert.equal(costOf(usage, 'deepseek-chat', 'deepseek', day('2025-09-10')).micros, 2_240_000);
    assert.equal(costOf(usage, 'deepseek-chat', 'deepseek', day('2025-10-01')).micros, 700_000);
  });

  it('bills cached reads and cache writes apart from plain input', () => {
    // 10k input of which 6k read from cache and 2k written; 1k output. Claude Sonnet 4.5: 3 / 0.30 / 3.75 / 15.
    const usage = { inputTokens: 10_000, cachedInputTokens: 6_000, cacheCreationInputTokens: 2_000, outputTokens: 1_000 };
    const c = costOf(usage, 'claude-sonnet-4-5-20250929', 'anthropic', NOW);
    assert.equal(c.micros, 2_000 * 3 + 6_000 * 0.3 + 2_000 * 3.75 + 1_000 * 15);
    // gpt-4o-mini: cached 0.075, no write price (OpenAI reports none): 4000 × 0.15 + 6000 × 0.075 + 100 × 0.6 = 1110.
    assert.equal(costOf({ inputTokens: 10_000, cachedInputTokens: 6_000, outputTokens: 100 }, 'gpt-4o-mini', 'openai', NOW).micros, 600 + 450 + 60);
  });

  it('switches to long-context prices above the threshold', () => {
    const small = costOf({ inputTokens: 200_000, outputTokens: 1_000 }, 'gemini-2.5-pro', 'gemini', NOW);
    const large = costOf({ inputTokens: 200_001, outputTokens: 1_000 }, 'gemini-2.5-pro', 'gemini', NOW);
    assert.equal(small.micros, 200_000 * 1.25 + 1_000 * 10);
    assert.equal(large.micros, Math.round(200_001 * 2.5 + 1_000 * 15));
  });

  it('rounds once per request to whole micro-dollars', () => {
    // 3 tokens × 0.075 = 0.225 µ$ → 0; 7 × 0.075 = 0.525 → 1.
    assert.equal(costOf({ inputTokens: 3, outputTokens: 0 }, 'gemini-2.0-flash-lite', 'gemini', NOW).micros, 0);
    assert.equal(costOf({ inputTokens: 7, outputTokens: 0 }, 'gemini-2.0-flash-lite', 'gemini', NOW).micros, 1);
    // 1 input × 0.15 + 1 output × 0.6 = 0.75 → 1, not 0 + 1 rounded apart.
    assert.equal(costOf({ inputTokens: 1, outputTokens: 1 }, 'gpt-4o-mini', 'openai', NOW).micros, 1);
    const c = costOf({ inputTokens: 12_345, outputTokens: 678 }, 'gpt-4o-mini', 'openai', NOW);
    assert.ok(Number.isInteger(c.micros));
    assert.equal(c.micros, Math.round(12_345 * 0.15 + 678 * 0.6));
  });

  it('never goes negative on odd usage', () => {
    const c = costOf({ inputTokens: 10, cachedInputTokens: 50, outputTokens: -5 }, 'gpt-4o', 'openai', NOW);
    assert.equal(c.micros, Math.round(10 * 1.25));
  });

  it('self-hosted models cost 0; unknown ones are unpriced', () => {
    for (const type of ['vllm', 'ollama', 'sglang', 'llamacpp', 'lmstudio', 'localai', 'openai-compatible', 'mock']) {
      assert.deepEqual(costOf({ inputTokens: 1000, outputTokens: 1000 }, 'llama-3.1-8b', type, NOW), {
        micros: 0,
        priced: true,
        source: 'self-hosted',
      });
    }
    assert.deepEqual(costOf({ inputTokens: 1000, outputTokens: 1000 }, 'some-new-model', 'openai', NOW), { micros: 0, priced: false, source: 'none' });
    // A row belongs to its host: Groq's Llama price is not Together's.
    assert.equal(costOf({ inputTokens: 1000, outputTokens: 1000 }, 'llama-3.3-70b-versatile', 'together', NOW).priced, false);
    assert.equal(costOf({ inputTokens: 1000, outputTokens: 1000 }, 'gpt-4o', 'openrouter', NOW).priced, false);
  });
});

describe('config overrides', () => {
  const parse = (rows: unknown) => PricesConfigSchema.parse(rows);

  it('validates rows', () => {
    assert.throws(() => parse([{ model: 'x', input_per_mtok: -1, output_per_mtok: 1 }]));
    assert.throws(() => parse([{ model: 'x', input_per_mtok: 1, output_per_mtok: 1, effective_from: '2025-02-30' }]));
    assert.throws(() => parse([{ model: 'x', input_per_mtok: 1, output_per_mtok: 1, extra: 1 }]));
    assert.deepEqual(parse(undefined), []);
  });

  it('replace built-in prices, by exact name or pattern, for any or one provider', () => {
    const table = new PriceTable(
      parse([
        { model: 'gpt-4o', input_per_mtok: 2, output_per_mtok: 8 },
        { model: 'gpt-4o', provider: 'azure-eu', input_per_mtok: 3, output_per_mtok: 12 },
        { model: 'claude-*', input_per_mtok: 1, output_per_mtok: 1 },
        { model: 'llama-*', provider: 'vllm', input_per_mtok: 0.05, output_per_mtok: 0.05 },
      ]),
    );
    const usage = { inputTokens: 1_000_000, outputTokens: 1_000_000 };
    assert.deepEqual(table.costOf(usage, 'gpt-4o', 'openai', NOW), { micros: 10_000_000, priced: true, source: 'config' });
    assert.equal(table.costOf(usage, 'gpt-4o', 'azure-openai', NOW, 'azure-eu').micros, 15_000_000);
    assert.equal(table.costOf(usage, 'gpt-4o', 'azure-openai', NOW, 'azure-us').micros, 10_000_000);
    assert.equal(table.costOf(usage, 'claude-3-haiku-20240307', 'anthropic', NOW).micros, 2_000_000);
    assert.equal(table.costOf(usage, 'llama-3.1-70b', 'vllm', NOW).micros, 100_000);
    assert.equal(table.costOf(usage, 'qwen3-8b', 'vllm', NOW).source, 'self-hosted');
    // Untouched rows keep the built-in price.
    assert.equal(table.costOf(usage, 'gpt-4o-mini', 'openai', NOW).source, 'built-in');
    assert.match(table.version, /\+config$/);
  });

  it('an exact row wins over a pattern, a provider-limited row over a general one', () => {
    const table = new PriceTable(
      parse([
        { model: '*', input_per_mtok: 9, output_per_mtok: 9 },
        { model: 'gpt-*', provider: 'openai', input_per_mtok: 7, output_per_mtok: 7 },
        { model: 'gpt-4o', input_per_mtok: 5, output_per_mtok: 5 },
        { model: 'gpt-4o', provider: 'openai', input_per_mtok: 3, output_per_mtok: 3 },
      ]),
    );
    const usage = { inputTokens: 1_000_000, outputTokens: 0 };
    assert.equal(table.costOf(usage, 'gpt-4o', 'openai', NOW).micros, 3_000_000);
    assert.equal(table.costOf(usage, 'gpt-4o', 'azure-openai', NOW).micros, 5_000_000);
    assert.equal(table.costOf(usage, 'gpt-4.1', 'openai', NOW).micros, 7_000_000);
    assert.equal(table.costOf(usage, 'anything', 'groq', NOW).micros, 9_000_000);
  });

  it('rows of one model form a price history; a history not started yet falls through', () => {
    const table = new PriceTable(
      parse([
        { model: 'gpt-4o', input_per_mtok: 2, output_per_mtok: 8, effective_from: '2026-01-01' },
        { model: 'gpt-4o', input_per_mtok: 1, output_per_mtok: 4, effective_from: '2026-03-01' },
        { model: 'my-model', provider: 'together', input_per_mtok: 1, output_per_mtok: 2, effective_from: '2026-01-01' },
      ]),
    );
    const usage = { inputTokens: 1_000_000, outputTokens: 0 };
    assert.equal(table.costOf(usage, 'gpt-4o', 'openai', day('2025-12-31')).source, 'built-in');
    assert.equal(table.costOf(usage, 'gpt-4o', 'openai', day('2026-02-01')).micros, 2_000_000);
    assert.equal(table.costOf(usage, 'gpt-4o', 'openai', day('2026-03-01')).micros, 1_000_000);
    assert.equal(table.costOf(usage, 'my-model', 'together', day('2025-12-31')).priced, false);
    assert.equal(table.costOf(usage, 'my-model', 'together', day('2026-01-02')).micros, 1_000_000);
  });

  it('cached and cache-write prices default to the input price', () => {
    const table = new PriceTable(parse([{ model: 'm', input_per_mtok: 2, output_per_mtok: 4 }]));
    const c = table.costOf({ inputTokens: 100, cachedInputTokens: 50, cacheCreationInputTokens: 25, outputTokens: 10 }, 'm', 'x', NOW);
    assert.equal(c.micros, 100 * 2 + 10 * 4);
  });
});

describe('microsFor', () => {
  it('is exact for whole-cent prices', () => {
    assert.equal(microsFor({ inputTokens: 1234, outputTokens: 567 }, { input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75, source: 'config' }), 1234 * 3 + 567 * 15);
  });
});
