/**
 * Two gateway nodes sharing their prefix index through a real Redis (src/routing/prefix-share.ts):
 * what one node's workers record reaches the other node's index, nothing is echoed back, the stream
 * stays bounded, a node that starts late learns what is still fresh, and a Redis outage only delays
 * sharing. Skipped where no redis-server is installed.
 */

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hasRedisServer, type PrivateRedis, startRedisServer } from '../helpers/redis-server.js';
import { closedPort } from '../helpers/upstreams.js';
import { Redis } from 'ioredis';

import { endpointSlotIdentity } from '../../src/routing/balancer.js';
import { PrefixShareAgent } from '../../src/routing/prefix-share.js';
import { blockHashes } from '../../src/routing/prompt-blocks.js';
import { sharedClockMs, SharedMemory } from '../../src/shm/index.js';

/** One node: its own segment, one provider of two replicas, both shared. */
function node(): { shm: SharedMemory; slots: number[]; shared: Map<bigint, number> } {
  const shm = SharedMemory.private({ workerSlots: 2, endpointCapacity: 64 });
  // Claim an unrelated slot first on one node so slot numbers differ between nodes, as they may.
  const slots = ['http://a:8000/v1', 'http://b:8000/v1'].map((url) => shm.slots.slotFor(endpointSlotIdentity('fleet', url)));
  const shared = new Map<bigint, number>();
  for (const slot of slots) {
    shm.prefixIndex.configure(slot, 10_000, 60_000);
    shared.set(shm.slots.hashAt(slot), slot);
  }
  return { shm, slots, shared };
}

function chain(seed: number, blocks: number): Float64Array {
  return blockHashes(Array.from({ length: blocks * 16 }, (_, i) => (seed * 7919 + i * 13) % 90_000));
}

describe('PrefixShareAgent', { skip: hasRedisServer() ? false : 'redis-server is not installed' }, () => {
  let redis: PrivateRedis;
  let url: string;
  const agents: PrefixShareAgent[] = [];

  before(async () => {
    redis = await startRedisServer();
    url = redis.url;
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await redis.stop();
  });

  function agent(n: ReturnType<typeof node>, nodeId: string, extra: Partial<ConstructorParameters<typeof PrefixShareAgent>[0]> = {}): PrefixShareAgent {
    const a = new PrefixShareAgent({
      redis: url,
      keyPrefix: 'test:',
      nodeId,
      index: n.shm.prefixIndex,
      endpoints: () => n.shared,
      intervalMs: 50,
      maxBatch: 1000,
      maxStreamEntries: 100,
      ttlMs: 60_000,
      commandTimeoutMs: 500,
      ...extra,
    });
    agents.push(a);
    return a;
  }

  it("one node's decisions reach the other's index, once, and are not echoed back", async () => {
    const n1 = node();
    const n2 = node();
    const a1 = agent(n1, 'n1');
    const a2 = agent(n2, 'n2');
    assert.equal(await a1.round(), true);
    assert.equal(await a2.round(), true);
    const conversation = chain(1, 12);
    n1.shm.prefixIndex.record(n1.slots[1]!, conversation, sharedClockMs());
    await a1.round();
    await a2.round();
    const out = new Int32Array(2);
    n2.shm.prefixIndex.matchLengths(conversation, n2.slots, 2, out, sharedClockMs());
    assert.deepEqual([...out], [0, 12], 'node 2 knows replica b holds the conversation');
    assert.equal(a2.status().learned, 12);
    assert.equal(n2.shm.prefixIndex.clock(n2.slots[1]!), 12, "learned blocks count on the replica's eviction clock");
    // Node 2 publishes nothing of what it learned; another round changes nothing anywhere.
    await a2.round();
    await a1.round();
    assert.equal(a2.status().published, 0);
    assert.equal(a1.status().learned, 0);
  });

  it('a node that starts late learns what is still fresh; the stream stays bounded', async () => {
    const n1 = node();
    const a1 = agent(n1, 'early', { keyPrefix: 'late:', maxBatch: 5, maxStreamEntries: 10 });
    await a1.round();
    for (let i = 0; i < 30; i++) {
      n1.shm.prefixIndex.record(n1.slots[0]!, chain(100 + i, 1), sharedClockMs());
      await a1.round();
    }
    const client = new Redis(url);
    try {
      const length = await client.xlen('late:prefix:blocks');
      assert.ok(length <= 30 && length >= 10, `stream length ${length} (trimmed approximately to 10)`);
      assert.ok((await client.pttl('late:prefix:blocks')) > 0, 'the stream expires');
    } finally {
      client.disconnect();
    }
    const n2 = node();
    const a2 = agent(n2, 'late', { keyPrefix: 'late:' });
    await a2.round();
    assert.ok(a2.status().learned >= 1, 'the late node learned from the stream');
    assert.ok(n2.shm.prefixIndex.holds(n2.slots[0]!, chain(129, 1)[0]!, sharedClockMs()), 'including the newest block');
  });

  it('a Redis it cannot reach only delays sharing: what was drained is sent once Redis answers', async () => {
    const n1 = node();
    const port = await closedPort();
    const down = agent(n1, 'lonely', { redis: `redis://127.0.0.1:${port}`, commandTimeoutMs: 200 });
    n1.shm.prefixIndex.record(n1.slots[0]!, chain(7, 3), sharedClockMs());
    assert.equal(await down.round(), false);
    assert.equal(down.status().state, 'failing');
    assert.equal(down.status().published, 0);
  });
});
