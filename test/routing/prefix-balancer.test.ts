/**
 * The prefix balancer's decisions on constructed workloads, over real shared memory: a conversation
 * stays on its replica, many conversations spread, a hot prefix spreads once its replica is
 * overloaded, two workers share what they learn, stale or missing /metrics fall back to in-flight
 * counts, fresh ones steer by KV usage and queue; plus the settings and the prompt adapter.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { type BalancerEndpoint, createBalancer, EndpointMask, endpointGroup, endpointSlotIdentity, type PickInput } from '../../src/routing/balancer.js';
import { PrefixBalancer, prefixCapacity, prefixSettings, type PrefixSettings } from '../../src/routing/prefix-balancer.js';
import { requestPromptTokens, RequestPrompt } from '../../src/routing/prefix-prompt.js';
import { blockHashes, chatPromptTokens } from '../../src/routing/prompt-blocks.js';
import { PrefixSchema } from '../../src/config/schema.js';
import type { SharedMemory } from '../../src/shm/index.js';
import { freshSegment, seededRandom } from './helpers.js';

const T0 = 5_000_000;

interface Fleet {
  shm: SharedMemory;
  endpoints: BalancerEndpoint[];
  balancer: PrefixBalancer;
  clock: { now: number };
}

function fleet(shm: SharedMemory, n: number, settings: PrefixSettings = prefixSettings(undefined), seed = 1, clock = { now: T0 }): Fleet {
  const endpoints = endpointGroup(
    Array.from({ length: n }, (_, i) => ({ slot: shm.slots.slotFor(endpointSlotIdentity('vllm', `http://replica-${i}:8000/v1`)) })),
  );
  const balancer = new PrefixBalancer(
    settings,
    {
      index: shm.prefixIndex,
      inFlight: (slot) => shm.endpoints.inFlight(slot),
      metrics: shm.replicaMetrics,
      random: seededRandom(seed),
      now: () => clock.now,
    },
    endpoints,
  );
  return { shm, endpoints, balancer, clock };
}

function input(blocks: Float64Array | undefined, excluded: EndpointMask | null = null): PickInput {
  return { excluded, stickyKey: undefined, blocks };
}

/** A chain of `blocks` 16-token blocks: conversation `user`, up to `turn` turns of 4 blocks each after an 8-block system prompt. */
function conversation(user: number, turns: number, systemPrompt = 0): Float64Array {
  const tokens: number[] = [];
  for (let i = 0; i < 8 * 16; i++) tokens.push((systemPrompt * 131 + i) % 50_000);
  for (let t = 0; t < turns; t++) for (let i = 0; i < 4 * 16; i++) tokens.push((user * 7919 + t * 613 + i * 31) % 50_000 + 50_000);
  return blockHashes(tokens);
}

function pickIndex(f: Fleet, blocks: Float64Array | undefined, excluded: EndpointMask | null = null): number {
  const picked = f.balancer.pick(f.endpoints, input(blocks, excluded));
  assert.ok(picked);
  return picked.index;
}

describe('prefix balancer', () => {
  it('keeps every turn of a conversation on one replica while conversations spread over all', () => {
    const [shm] = freshSegment();
    const f = fleet(shm!, 4);
    const home = new Map<number, number>();
    const perReplica = [0, 0, 0, 0];
    // 40 users, 5 turns each, interleaved; each request is in flight until the next round.
    for (let turn = 1; turn <= 5; turn++) {
      const held: number[] = [];
      for (let user = 0; user < 40; user++) {
        const i = pickIndex(f, conversation(user, turn, 1000 + user));
        if (turn === 1) {
          home.set(user, i);
          perReplica[i]!++;
        } else {
          assert.equal(i, home.get(user), `user ${user} turn ${turn} moved from replica ${home.get(user)} to ${i}`);
        }
        shm!.endpoints.acquire(f.endpoints[i]!.slot);
        held.push(f.endpoints[i]!.slot);
      }
      for (const slot of held) shm!.endpoints.release(slot);
    }
    assert.deepEqual(perReplica, [10, 10, 10, 10], 'new conversations go to the least loaded replica');
    assert.ok(f.balancer.decisions.prefix > 0);
  });

  it('spreads a hot prefix to another replica once its replica is overloaded, then uses both', () => {
    const [shm] = freshSegment();
    const f = fleet(shm!, 4, prefixSettings(PrefixSchema.parse({ balance: { abs_threshold: 4, rel_threshold: 1.5 } })));
    const hot = (q: number) => {
      // One long shared system prompt (32 blocks), a one-block question.
      const tokens: number[] = [];
      for (let i = 0; i < 32 * 16; i++) tokens.push(i % 40_000);
      for (let i = 0; i < 16; i++) tokens.push(60_000 + q * 17 + i);
      return blockHashes(tokens);
    };
    const first = pickIndex(f, hot(0));
    // Requests pile up (never released): the holder takes them until it is 4 above the idle ones.
    const picks: number[] = [first];
    shm!.endpoints.acquire(f.endpoints[first]!.slot);
    for (let q = 1; q < 40; q++) {
      const i = pickIndex(f, hot(q));
      picks.push(i);
      shm!.endpoints.acquire(f.endpoints[i]!.slot);
    }
    assert.deepEqual(picks.slice(0, 5), [first, first, first, first, first], 'the holder takes the first ones');
    assert.ok(f.balancer.decisions.spread > 0, 'the balance guard fired');
    const used = new Set(picks);
    assert.ok(used.size >= 2, `a hot prefix spread: replicas used ${[...used].join(',')}`);
    const loads = f.endpoints.map((e) => shm!.endpoints.inFlight(e.slot));
    assert.ok(Math.max(...loads) - Math.min(...loads) <= 5, `loads stay within the threshold: ${loads.join('/')}`);
    // Every replica the prefix went to now holds it: the next question goes to the least loaded of them.
    const holders = [...used];
    const out = new Int32Array(4);
    shm!.prefixIndex.matchLengths(hot(99), f.endpoints.map((e) => e.slot), 4, out, T0);
    for (const h of holders) assert.ok(out[h]! >= 32, `replica ${h} holds the system prompt`);
  });

  it('two workers share what they learn: a conversation begun in one continues on the same replica in the other', () => {
    const [w0, w1] = freshSegment(1);
    const a = fleet(w0!, 4, undefined, 1);
    const b = fleet(w1!, 4, undefined, 2);
    for (let user = 0; user < 20; user++) {
      const first = pickIndex(a, conversation(user, 1));
      assert.equal(pickIndex(b, conversation(user, 2)), first, `user ${user} in the second worker`);
      assert.equal(pickIndex(a, conversation(user, 3)), first, `user ${user} back in the first worker`);
    }
  });

  it('without a prompt, or with nothing cached, it is least request; it never returns an excluded or drained endpoint', () => {
    const [shm] = freshSegment();
    const f = fleet(shm!, 3);
    shm!.endpoints.acquire(f.endpoints[0]!.slot);
    shm!.endpoints.acquire(f.endpoints[0]!.slot);
    shm!.endpoints.acquire(f.endpoints[1]!.slot);
    for (let i = 0; i < 10; i++) assert.equal(pickIndex(f, undefined), 2);
    assert.equal(f.balancer.lastDecision, 'none');
    assert.equal(pickIndex(f, conversation(1, 1, 9)), 2);
    const mask = new EndpointMask(3);
    mask.add(2);
    assert.equal(pickIndex(f, conversation(1, 2, 9), mask), 1, 'the holder is excluded: the next least loaded');
    mask.add(1);
    mask.add(0);
    assert.equal(f.balancer.pick(f.endpoints, input(conversation(1, 2, 9), mask)), undefined);
    const drained = endpointGroup(f.endpoints.map((e, i) => ({ slot: e.slot, weight: i === 2 ? 0 : 1 })));
    for (let i = 0; i < 10; i++) assert.notEqual(f.balancer.pick(drained, input(conversation(1, 3, 9)))!.index, 2);
  });

  it('fresh /metrics steer by KV usage and the replica queue; stale or missing ones fall back to in-flight counts', () => {
    const [shm] = freshSegment();
    const settings = prefixSettings(PrefixSchema.parse({ balance: { load: 'waiting' }, metrics: { interval_ms: 1000 } }));
    const f = fleet(shm!, 2, settings);
    const [e0, e1] = f.endpoints;
    // Replica 0 reports a full KV cache and a long queue; replica 1 is idle.
    shm!.replicaMetrics.write(e0!.slot, { waiting: 30, running: 10, kvUsage: 0.95 }, T0);
    shm!.replicaMetrics.write(e1!.slot, { waiting: 0, running: 1, kvUsage: 0.1 }, T0);
    for (let u = 0; u < 5; u++) assert.equal(pickIndex(f, conversation(100 + u, 1, 100 + u)), 1, 'the idle replica takes new prompts');
    // The metrics go stale (the scraper failed for 3 intervals): in-flight counts decide, and replica 1 is busier.
    f.clock.now = T0 + 3001;
    shm!.endpoints.acquire(e1!.slot);
    for (let u = 0; u < 5; u++) assert.equal(pickIndex(f, conversation(200 + u, 1, 200 + u)), 0, 'stale metrics are ignored');
    shm!.endpoints.release(e1!.slot);
    // Never scraped at all: the same.
    const [other] = freshSegment();
    const g = fleet(other!, 2, settings);
    other!.endpoints.acquire(g.endpoints[0]!.slot);
    for (let u = 0; u < 5; u++) assert.equal(pickIndex(g, conversation(300 + u, 1, 300 + u)), 1);
  });

  it('the replica capacity comes from config, else /metrics, else the default', () => {
    const configured = prefixSettings(PrefixSchema.parse({ capacity_blocks: 500 }));
    const learned = prefixSettings(PrefixSchema.parse({ block_size: 32 }));
    assert.equal(prefixCapacity(configured, 1_000_000), 500);
    assert.equal(prefixCapacity(learned, 64_000), 2000);
    assert.equal(prefixCapacity(learned, 0), 16384);
    const [shm] = freshSegment();
    const f = fleet(shm!, 2, configured);
    assert.equal(shm!.prefixIndex.capacity(f.endpoints[0]!.slot), 500);
    assert.equal(createBalancer('prefix', { prefix: { settings: configured, endpoints: [], deps: { index: shm!.prefixIndex, inFlight: () => 0, now: () => T0 } } }).name, 'prefix');
  });
});

describe('request prompts', () => {
  it('an Anthropic conversation hashes like the OpenAI request the gateway would send a replica', () => {
    const anthropic = {
      model: 'm',
      max_tokens: 10,
      system: 'You are terse.',
      messages: [
        { role: 'user', content: 'Hello there, how are you today?' },
        { role: 'assistant', content: [{ type: 'text', text: 'Fine.' }] },
        { role: 'user', content: [{ type: 'text', text: 'Tell me more.' }] },
      ],
    };
    const openai = {
      model: 'm',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Hello there, how are you today?' },
        { role: 'assistant', content: 'Fine.' },
        { role: 'user', content: 'Tell me more.' },
      ],
    };
    assert.deepEqual(requestPromptTokens('anthropic-messages', 'chat', anthropic), chatPromptTokens(openai));
    assert.equal(requestPromptTokens('anthropic-messages', 'chat', { messages: 'not a list' }), undefined);
    assert.equal(requestPromptTokens('openai-chat', 'embeddings', openai), undefined);
    assert.deepEqual(requestPromptTokens('openai-chat', 'completions', { prompt: [1, 2, 3] }), [1, 2, 3]);
  });

  it('is computed once per request and hashed per block size and model', () => {
    const body = { model: 'm', messages: [{ role: 'user', content: 'x '.repeat(200) }] };
    const prompt = new RequestPrompt('openai-chat', 'chat', body);
    const a = prompt.blocks(16, 'model-a');
    assert.ok(a && a.length > 5);
    assert.equal(prompt.blocks(16, 'model-a'), a, 'the same array for the same key');
    const b = prompt.blocks(16, 'model-b')!;
    assert.equal(b.length, a.length);
    assert.notEqual(b[0], a[0], 'another model shares no blocks');
    assert.equal(prompt.blocks(32, 'model-a')!.length, Math.floor(a.length / 2));
  });
});
