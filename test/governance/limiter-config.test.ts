import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { z } from 'zod';

import {
  ConsumerLimitFields,
  consumerKey,
  consumerModelKey,
  consumerModelRule,
  consumerQuotas,
  consumerRule,
  goDuration,
  LimiterSettingsSchema,
  ModelLimitFields,
  modelKey,
  modelRule,
  QuotasSchema,
  RateLimitSchema,
  resetDuration,
  retryAfterSeconds,
} from '../../src/governance/limiter/index.js';

describe('limiter config', () => {
  const Consumer = z.object({ name: z.string(), ...ConsumerLimitFields }).strict();
  const Model = z.object({ ...ModelLimitFields }).strict();

  it('accepts limits, per-model limits and quotas as users write them', () => {
    const alice = Consumer.parse({
      name: 'alice',
      limits: { rpm: 60, tpm: 100_000, concurrent: 4 },
      model_limits: { 'gpt-4o': { rpm: 10 } },
      quotas: [{ period: 'day', tokens: 1_000_000 }, { period: 'month', mode: 'rolling', cost: 50.25 }],
    });
    assert.deepEqual(consumerRule('alice', alice.limits!), { key: 'c:alice', label: 'consumer alice', rpm: 60, tpm: 100_000, concurrent: 4 });
    assert.deepEqual(consumerModelRule('alice', 'gpt-4o', alice.model_limits!['gpt-4o']!), {
      key: 'c:alice|m:gpt-4o',
      label: 'consumer alice on gpt-4o',
      rpm: 10,
    });
    assert.deepEqual(consumerQuotas('alice', alice.quotas!), [
      { key: 'c:alice', label: 'consumer alice', period: 'day', mode: 'calendar', tokens: 1_000_000 },
      { key: 'c:alice', label: 'consumer alice', period: 'month', mode: 'rolling', costMicros: 50_250_000 },
    ]);
    const model = Model.parse({ limits: { tpm: 2_000_000 }, expected_completion_tokens: 512 });
    assert.deepEqual(modelRule('gpt-4o', model.limits!), { key: 'm:gpt-4o', label: 'model gpt-4o', tpm: 2_000_000 });
    assert.deepEqual(LimiterSettingsSchema.parse({}), {
      backend: 'auto',
      on_redis_error: 'open',
      lease_ttl_ms: 10_000,
      settle_delay_ms: 10,
      key_capacity: 4096,
      expected_completion_tokens: 1024,
    });
  });

  it('rejects empty limits, unknown keys, out-of-range numbers and duplicate quotas', () => {
    assert.throws(() => RateLimitSchema.parse({}), /at least one of rpm, tpm, concurrent/);
    assert.throws(() => RateLimitSchema.parse({ rpm: 10, rps: 1 }));
    assert.throws(() => RateLimitSchema.parse({ rpm: 1.5 }));
    assert.throws(() => RateLimitSchema.parse({ tpm: 2e9 }));
    assert.throws(() => QuotasSchema.parse([{ period: 'day' }]), /set tokens, cost or both/);
    assert.throws(() => QuotasSchema.parse([{ period: 'week', tokens: 1 }]));
    assert.throws(
      () => QuotasSchema.parse([{ period: 'day', tokens: 1 }, { period: 'day', mode: 'calendar', cost: 1 }]),
      /two calendar day quotas/,
    );
    assert.throws(() => LimiterSettingsSchema.parse({ on_redis_error: 'maybe' }));
  });

  it('gives every schema field a description (for `sluice schema` and the docs)', () => {
    const json = JSON.stringify(z.toJSONSchema(z.object({ ...ConsumerLimitFields, ...ModelLimitFields, limiter: LimiterSettingsSchema })));
    for (const field of ['rpm', 'tpm', 'concurrent', 'period', 'mode', 'tokens', 'cost', 'on_redis_error', 'lease_ttl_ms', 'settle_delay_ms', 'key_capacity']) {
      assert.match(json, new RegExp(`"${field}":\\{[^}]*"description"`), field);
    }
  });

  it('escapes the separators in key names so that no name forges another key', () => {
    assert.equal(consumerKey('alice'), 'c:alice');
    assert.equal(modelKey('gpt-4o'), 'm:gpt-4o');
    assert.equal(consumerModelKey('alice', 'gpt-4o'), 'c:alice|m:gpt-4o');
    assert.notEqual(consumerKey('a|m:b'), consumerModelKey('a', 'b'));
    assert.equal(consumerKey('a|m:b%'), 'c:a%7Cm%3Ab%25');
  });
});

describe('rate-limit headers', () => {
  it('prints durations as Go does, rounded up to the millisecond', () => {
    const cases: [number, string][] = [
      [0, '0s'],
      [-5, '0s'],
      [0.2, '1ms'],
      [250, '250ms'],
      [999.1, '1s'],
      [1000, '1s'],
      [1500, '1.5s'],
      [59_750, '59.75s'],
      [60_000, '1m0s'],
      [360_000, '6m0s'],
      [61_001, '1m1.001s'],
      [3_723_000, '1h2m3s'],
      [86_400_000, '24h0m0s'],
    ];
    for (const [ms, text] of cases) assert.equal(goDuration(ms), text, String(ms));
  });

  it('prints resets in whole seconds above one second', () => {
    assert.equal(resetDuration(250), '250ms');
    assert.equal(resetDuration(1000), '1s');
    assert.equal(resetDuration(1001), '2s');
    assert.equal(resetDuration(59_500), '1m0s');
    assert.equal(resetDuration(59_500), '1m0s', 'cached');
    assert.equal(resetDuration(7_200_000), '2h0m0s');
  });

  it('rounds Retry-After up to whole seconds, at least 1', () => {
    assert.equal(retryAfterSeconds(0), '1');
    assert.equal(retryAfterSeconds(1000), '1');
    assert.equal(retryAfterSeconds(1001), '2');
    assert.equal(retryAfterSeconds(49_500), '50');
  });
});
