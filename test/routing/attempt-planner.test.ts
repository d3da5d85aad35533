/**
 * The attempt order, decision by decision, over real provider groups on shared memory: untried
 * endpoints first, then the next candidate, back-off only on the last; key faults retried with
 * another key; timeouts never repeated on the same endpoint; budget and max_retries respected;
 * ejected and unhealthy endpoints skipped, and "panic" when nothing else is left.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProviderSchema, RetrySchema, type ProviderConfig } from '../../src/config/schema.js';
import { GatewayError } from '../../src/errors.js';
import { createProvider } from '../../src/providers/registry.js';
import type { Provider } from '../../src/providers/provider.js';
import { AttemptPlanner, type SendStep, type Step } from '../../src/routing/attempt-planner.js';
import { routeRetry, type ResolvedRoute } from '../../src/routing/model-router.js';
import { ProviderGroup } from '../../src/routing/provider-group.js';
import { RoutePlan } from '../../src/routing/route-plan.js';
import { SharedMemory } from '../../src/shm/shared-memory.js';

const shm = SharedMemory.private({ workerSlots: 2, endpointCapacity: 64 });
const budget = { ratio: 1, min_per_second: 100, window_ms: 10_000 };

function group(name: string, input: Record<string, unknown>): { provider: Provider; group: ProviderGroup } {
  const config: ProviderConfig = ProviderSchema.parse({ name, type: 'openai-compatible', ...input });
  const provider = createProvider(config, { env: {} });
  return { provider, group: new ProviderGroup(provider, config, budget, shm) };
}

function planner(
  targets: Provider[],
  fallbacks: Provider[],
  groups: ProviderGroup[],
  retry: Record<string, unknown> = {},
): AttemptPlanner {
  const plan = new RoutePlan(
    'r',
    targets.map((p) => ({ provider: p, model: undefined, weight: 1 })),
    fallbacks.map((p) => ({ provider: p, model: undefined })),
    routeRetry(RetrySchema.parse({ base_delay_ms: 100, max_delay_ms: 100, ...retry })),
    undefined,
  );
  const route: ResolvedRoute = { plan, model: 'm' };
  return new AttemptPlanner(route, new Map(groups.map((g) => [g.provider.name, g])), undefined);
}

function send(step: Step): SendStep {
  if (step.kind !== 'send') assert.fail(`expected a send, got ${step.kind === 'fail' ? `fail: ${step.error.message}` : `wait ${step.ms} ms`}`);
  return step;
}

const err500 = new GatewayError('upstream_error', 'boom', { status: 500 });
const timeout = new GatewayError('upstream_timeout', 'slow');

describe('AttemptPlanner', () => {
  it('tries untried endpoints first, then the fallback, with no back-off', () => {
    const a = group('pa', { endpoints: [{ url: 'http://a1:1' }, { url: 'http://a2:1' }], balancer: 'round_robin' });
    const b = group('pb', { base_url: 'http://b:1' });
    const p = planner([a.provider], [b.provider], [a.group, b.group]);
    const first = send(p.next());
    assert.equal(first.group, a.group);
    assert.equal(p.failed(first, err500, 'status', 500, {}), true);
    const second = send(p.next());
    assert.equal(second.group, a.group);
    assert.notEqual(second.endpoint, first.endpoint, 'the other replica');
    assert.equal(p.failed(second, err500, 'status', 500, {}), true);
    const third = send(p.next());
    assert.equal(third.group, b.group, 'then the fallback, not the same replicas again');
  });

  it('backs off on the last candidate, up to max_retries; a timeout is not repeated there', () => {
    const a = group('pc', { base_url: 'http://c:1' });
    const p = planner([a.provider], [], [a.group], { max_retries: 2 });
    let step = send(p.next());
    assert.equal(p.failed(step, err500, 'status', 500, {}), true);
    const wait = p.next();
    assert.equal(wait.kind, 'wait');
    step = send(p.next());
    assert.equal(p.failed(step, err500, 'status', 500, { 'retry-after': '0' }), true);
    assert.equal(p.next().kind, 'wait');
    step = send(p.next());
    assert.equal(p.failed(step, err500, 'status', 500, {}), false, 'max_retries reached');

    const t = planner([a.provider], [], [a.group]);
    const s = send(t.next());
    assert.equal(t.failed(s, timeout, 'timeout', 0, undefined), false);
  });

  it('a failure outside retry.on is the answer; a Retry-After beyond max_retry_after_ms too', () => {
    const a = group('pd', { base_url: 'http://d:1' });
    const p = planner([a.provider], [], [a.group], { on: ['connect'] });
    assert.equal(p.failed(send(p.next()), err500, 'status', 500, {}), false);
    const q = planner([a.provider], [], [a.group], { max_retry_after_ms: 1000 });
    const s = send(q.next());
    assert.equal(q.failed(s, new GatewayError('rate_limited', 'slow down'), 'status', 429, { 'retry-after': '30' }), false);
  });

  it('a key refused with 401 is retried at once with another key, and skipped afterwards', () => {
    const a = group('pe', { base_url: 'http://e:1', api_key: ['k1', 'k2'] });
    const p = planner([a.provider], [], [a.group]);
    const first = send(p.next());
    a.group.record(first.endpoint, first.key, 'status', 401, {});
    assert.equal(p.failed(first, new GatewayError('unauthorized', 'no'), 'status', 401, {}), true);
    const second = send(p.next());
    assert.notEqual(second.key, first.key);
    for (let i = 0; i < 5; i++) assert.equal(send(planner([a.provider], [], [a.group]).next()).key, second.key);
  });

  it('skips ejected and unhealthy endpoints, and picks one anyway when nothing else is left', () => {
    const a = group('pf', { endpoints: [{ url: 'http://f1:1' }, { url: 'http://f2:1' }], balancer: 'round_robin' });
    const [e0, e1] = a.group.endpoints;
    shm.endpoints.setUnhealthy(e0!.slot, true);
    for (let i = 0; i < 4; i++) assert.equal(send(planner([a.provider], [], [a.group]).next()).endpoint, 1);
    shm.endpoints.setEjectedUntil(e1!.slot, Number.MAX_SAFE_INTEGER);
    const panic = send(planner([a.provider], [], [a.group]).next());
    assert.ok(panic.endpoint === 0 || panic.endpoint === 1, 'panic: one is tried rather than refusing');
    const b = group('pg', { base_url: 'http://g:1' });
    assert.equal(send(planner([a.provider], [b.provider], [a.group, b.group]).next()).group, b.group, 'with a fallback, it goes there');
    shm.endpoints.setUnhealthy(e0!.slot, false);
    shm.endpoints.setEjectedUntil(e1!.slot, 0);
  });

  it('a spent budget stops retries on the same provider but not the move to a fallback', () => {
    const config: ProviderConfig = ProviderSchema.parse({ name: 'ph', type: 'openai-compatible', base_url: 'http://h:1' });
    const provider = createProvider(config, { env: {} });
    const stingy = new ProviderGroup(provider, config, { ratio: 0, min_per_second: 0, window_ms: 10_000 }, shm);
    const b = group('pi', { base_url: 'http://i:1' });
    const p = planner([provider], [], [stingy]);
    assert.equal(p.failed(send(p.next()), err500, 'status', 500, {}), false);
    const q = planner([provider], [b.provider], [stingy, b.group]);
    assert.equal(q.failed(send(q.next()), err500, 'status', 500, {}), true);
    assert.equal(send(q.next()).group, b.group);
  });
});
