/** Canary rules: matching, percentages, stickiness, and the weighted order of a route's targets. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProviderSchema, RuleSchema } from '../../src/config/schema.js';
import { createProvider } from '../../src/providers/registry.js';
import { DEFAULT_ROUTE_RETRY } from '../../src/routing/model-router.js';
import { RoutePlan } from '../../src/routing/route-plan.js';
import { RuleSet } from '../../src/routing/rules.js';
import { seededRandom } from './helpers.js';

const providers = new Map(
  ['stable', 'canary'].map((name) => [name, createProvider(ProviderSchema.parse({ name, type: 'mock' }), { env: {} })]),
);

function rules(list: unknown[], random = seededRandom(1)): RuleSet {
  return new RuleSet(list.map((r) => RuleSchema.parse(r)), providers, DEFAULT_ROUTE_RETRY, random);
}

describe('RuleSet', () => {
  it('matches on model patterns and exact header values; first match wins', () => {
    const set = rules([
      { name: 'by-header', match: { headers: { 'x-sluice-target': 'canary' } }, targets: [{ provider: 'canary' }] },
      { name: 'by-model', match: { models: ['gpt-4o*'] }, targets: [{ provider: 'stable' }] },
    ]);
    assert.equal(set.resolve({ model: 'x', headers: { 'x-sluice-target': 'canary' }, consumer: undefined })?.plan.name, 'by-header');
    assert.equal(set.resolve({ model: 'x', headers: { 'x-sluice-target': 'stable' }, consumer: undefined }), undefined);
    assert.equal(set.resolve({ model: 'gpt-4o-mini', headers: {}, consumer: undefined })?.plan.name, 'by-model');
    assert.equal(set.resolve({ model: 'gpt-4o-mini', headers: {}, consumer: undefined })?.model, 'gpt-4o-mini');
  });

  it('a sticky percentage keeps each user on one side, takes about its share, and only grows', () => {
    const ten = rules([{ name: 'c', percent: 10, sticky_header: 'x-user', targets: [{ provider: 'canary' }] }]);
    const thirty = rules([{ name: 'c', percent: 30, sticky_header: 'x-user', targets: [{ provider: 'canary' }] }]);
    let inTen = 0;
    for (let u = 0; u < 5000; u++) {
      const headers = { 'x-user': `u${u}` };
      const a = ten.resolve({ model: 'm', headers, consumer: undefined }) !== undefined;
      assert.equal(ten.resolve({ model: 'm', headers, consumer: undefined }) !== undefined, a, 'same answer every time');
      if (a) {
        inTen++;
        assert.ok(thirty.resolve({ model: 'm', headers, consumer: undefined }), 'raising the percentage never moves a user out');
      }
    }
    assert.ok(inTen > 400 && inTen < 600, `${inTen} of 5000 at 10%`);
  });

  it('matches on the consumer set by authentication', () => {
    const set = rules([{ name: 'beta-users', match: { consumers: ['alice'] }, targets: [{ provider: 'canary' }] }]);
    assert.equal(set.resolve({ model: 'm', headers: {}, consumer: 'alice' })?.plan.name, 'beta-users');
    assert.equal(set.resolve({ model: 'm', headers: {}, consumer: 'bob' }), undefined);
    assert.equal(set.resolve({ model: 'm', headers: {}, consumer: undefined }), undefined);
  });

  it('without the sticky header the draw is per request', () => {
    const set = rules([{ name: 'half', percent: 50, targets: [{ provider: 'canary' }] }], seededRandom(7));
    let taken = 0;
    for (let i = 0; i < 1000; i++) if (set.resolve({ model: 'm', headers: {}, consumer: undefined })) taken++;
    assert.ok(taken > 430 && taken < 570, `${taken} of 1000`);
  });
});

describe('RoutePlan.order', () => {
  it('interleaves weighted targets exactly and lists the others, weight-0 ones, then fallbacks', () => {
    const [stable, canary] = [providers.get('stable')!, providers.get('canary')!];
    const plan = new RoutePlan(
      'r',
      [
        { provider: stable, model: 'a', weight: 3 },
        { provider: canary, model: 'b', weight: 1 },
        { provider: canary, model: 'z', weight: 0 },
      ],
      [{ provider: stable, model: 'f' }],
      DEFAULT_ROUTE_RETRY,
      undefined,
    );
    const firsts = Array.from({ length: 8 }, () => plan.order());
    assert.deepEqual(
      firsts.map((o) => o[0]!.model),
      ['a', 'a', 'b', 'a', 'a', 'a', 'b', 'a'],
    );
    assert.deepEqual(
      firsts[2]!.map((t) => t.model),
      ['b', 'a', 'z', 'f'],
    );
  });
});
