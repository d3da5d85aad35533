/**
 * GlobalLoadAgent against the real Redis at 127.0.0.1:6379: two agents with two shared-memory
 * segments play two gateway nodes. Every test uses its own key prefix, deleted afterwards.
 */

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';

import { Redis } from 'ioredis';

import { setLogSink } from '../../src/observability/logger.js';
import { endpointSlotIdentity } from '../../src/routing/balancer.js';
import { GlobalLoadAgent, redactRedisUrl } from '../../src/routing/global-load.js';
import type { SharedMemory } from '../../src/shm/index.js';
import { freshSegment } from './helpers.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const RUN = `sluice-test:gl:${process.pid}:${randomBytes(3).toString('hex')}`;
let serial = 0;

/** One client for the tests' own reads and cleanup. */
const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
const clients = new Set<Redis>();
const agents = new Set<GlobalLoadAgent>();
const prefixes = new Set<string>();

after(async () => {
  for (const agent of agents) await agent.stop();
  for (const client of clients) client.disconnect();
  for (const prefix of prefixes) {
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
  }
  const left = await admin.keys(`${RUN}*`);
  await admin.quit();
  assert.deepEqual(left, [], 'every key of this run is deleted');
});

function freshPrefix(): string {
  const prefix = `${RUN}:${++serial}:`;
  prefixes.add(prefix);
  return prefix;
}

function client(): Redis {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, disconnectTimeout: 100 });
  redis.on('error', () => undefined);
  clients.add(redis);
  return redis;
}

function agent(options: ConstructorParameters<typeof GlobalLoadAgent>[0]): GlobalLoadAgent {
  const a = new GlobalLoadAgent(options);
  agents.add(a);
  return a;
}

const GPU1 = endpointSlotIdentity('fleet', 'http://gpu-1:8000');
const GPU2 = endpointSlotIdentity('fleet', 'http://gpu-2:8000');

/** A node: its own segment, with the fleet's two endpoints claimed. */
function node(options: { shiftSlots?: boolean } = {}) {
  const shm = freshSegment()[0]!;
  if (options.shiftSlots) {
    // Occupy the bucket GPU1 would take, so this node's slot numbers differ from the other node's:
    // the agents must match endpoints by identity hash, not by slot.
    const natural = freshSegment()[0]!.slots.slotFor(GPU1);
    shm.slots.slotForHash(BigInt(natural) + BigInt(shm.slots.capacity));
  }
  const slot1 = shm.slots.slotFor(GPU1);
  const slot2 = shm.slots.slotFor(GPU2);
  return { shm, slot1, slot2, slots: () => [slot1, slot2] as const };
}

function hold(shm: SharedMemory, slot: number, n: number): void {
  for (let i = 0; i < n; i++) shm.endpoints.acquire(slot);
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 4000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Captures log lines for the duration of `body`. */
async function withLogs<T>(body: (lines: string[]) => Promise<T>): Promise<T> {
  const lines: string[] = [];
  setLogSink((line) => lines.push(line));
  try {
    return await body(lines);
  } finally {
    setLogSink(null);
  }
}

/** A TCP relay to the real Redis on a port that can be closed and reopened: a Redis outage on demand. */
class RedisRelay {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  constructor(readonly port: number) {}

  static async onClosedPort(): Promise<RedisRelay> {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    return new RedisRelay(port);
  }

  async open(): Promise<void> {
    const server = net.createServer((inbound) => {
      const outbound = net.connect(6379, '127.0.0.1');
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('GlobalLoadAgent', () => {
  it('two nodes see each other\'s in-flight counts, matched by identity not by slot', async () => {
    const prefix = freshPrefix();
    const a = node();
    const b = node({ shiftSlots: true });
    assert.notEqual(a.slot1, b.slot1, 'the test needs different slot numbers on the two nodes');
    hold(a.shm, a.slot1, 3);
    hold(a.shm, a.slot2, 1);
    hold(b.shm, b.slot1, 2);

    const agentA = agent({ redis: client(), keyPrefix: prefix, nodeId: 'node-a', shm: a.shm, slots: a.slots });
    const agentB = agent({ redis: REDIS_URL, keyPrefix: prefix, nodeId: 'node-b', shm: b.shm, slots: b.slots });
    assert.equal(await agentA.tick(), true);
    assert.equal(a.shm.endpoints.remoteInFlight(a.slot1), 0, 'B has not reported yet');
    assert.equal(await agentB.tick(), true);
    assert.equal(await agentA.tick(), true);

    assert.equal(a.shm.endpoints.remoteInFlight(a.slot1), 2);
    assert.equal(a.shm.endpoints.remoteInFlight(a.slot2), 0);
    assert.equal(a.shm.endpoints.globalInFlight(a.slot1), 5);
    assert.equal(b.shm.endpoints.remoteInFlight(b.slot1), 3);
    assert.equal(b.shm.endpoints.remoteInFlight(b.slot2), 1);
    assert.equal(b.shm.endpoints.globalInFlight(b.slot2), 1);
    assert.equal(agentA.status().otherNodes, 1);
    assert.equal(agentA.status().state, 'ok');

    // The lease as stored: only non-zero counts, keyed by identity hash, with a TTL.
    const lease = await admin.hgetall(`${prefix}lr:node:node-a`);
    assert.deepEqual(lease, { [a.shm.slots.hashAt(a.slot1).toString()]: '3', [a.shm.slots.hashAt(a.slot2).toString()]: '1' });
    const ttl = await admin.pttl(`${prefix}lr:node:node-a`);
    assert.ok(ttl > 0 && ttl <= agentA.leaseTtlMs, `lease TTL ${ttl}`);
    assert.deepEqual((await admin.zrange(`${prefix}lr:nodes`, '0', '-1')).sort(), ['node-a', 'node-b']);

    // Counts follow releases on the next tick.
    a.shm.endpoints.release(a.slot1);
    await agentA.tick();
    await agentB.tick();
    assert.equal(b.shm.endpoints.remoteInFlight(b.slot1), 2);

    // stop() deletes the lease: the other node drops its counts at once, not after the TTL.
    await agentB.stop();
    assert.equal(await admin.exists(`${prefix}lr:node:node-b`), 0);
    assert.equal(b.shm.endpoints.remoteInFlight(b.slot1), 0, 'a stopped agent leaves no remote counts behind');
    await agentA.tick();
    assert.equal(a.shm.endpoints.remoteInFlight(a.slot1), 0);
    assert.equal(agentA.status().otherNodes, 0);
    assert.equal(await agentB.tick(), false, 'a stopped agent does nothing');
  });

  it('a node that dies without stop() disappears from the sums after the lease TTL', async () => {
    const prefix = freshPrefix();
    const a = node();
    const b = node();
    hold(b.shm, b.slot2, 4);
    const agentA = agent({ redis: client(), keyPrefix: prefix, nodeId: 'node-a', shm: a.shm, slots: a.slots, reportIntervalMs: 50, leaseTtlMs: 500 });
    const redisB = client();
    const agentB = new GlobalLoadAgent({ redis: redisB, keyPrefix: prefix, nodeId: 'node-b', shm: b.shm, slots: b.slots, reportIntervalMs: 50, leaseTtlMs: 500 });
    agentA.start();
    // B reports once, then "dies": no more ticks, no stop(), its connection gone.
    assert.equal(await agentB.tick(), true);
    const diedAt = performance.now();
    redisB.disconnect();

    await waitFor('A to see B\'s count', () => a.shm.endpoints.remoteInFlight(a.slot2) === 4, 1000);
    await waitFor('B\'s lease to expire', () => a.shm.endpoints.remoteInFlight(a.slot2) === 0, 2000);
    const gone = performance.now() - diedAt;
    assert.ok(gone >= 400, `counts must survive a few missed reports (gone after ${gone.toFixed(0)} ms)`);
    assert.ok(gone < 500 + 300, `gone within TTL + a report interval or so (${gone.toFixed(0)} ms)`);
    await waitFor('the registry to drop B', async () => (await admin.zrange(`${prefix}lr:nodes`, '0', '-1')).join() === 'node-a', 500);
    assert.equal(await admin.exists(`${prefix}lr:node:node-b`), 0);
    assert.equal(agentA.status().otherNodes, 0);
  });

  it('Redis unreachable: no throw, last counts kept for the TTL, then 0; recovers by itself', async () => {
    const prefix = freshPrefix();
    const a = node();
    const b = node();
    hold(b.shm, b.slot1, 7);
    const agentB = agent({ redis: client(), keyPrefix: prefix, nodeId: 'node-b', shm: b.shm, slots: b.slots, leaseTtlMs: 600 });
    const relay = await RedisRelay.onClosedPort();
    const agentA = agent({
      redis: `redis://127.0.0.1:${relay.port}`,
      keyPrefix: prefix,
      nodeId: 'node-a',
      shm: a.shm,
      slots: a.slots,
      leaseTtlMs: 600,
    });
    const tickBoth = async () => {
      await agentB.tick();
      return agentA.tick();
    };

    await withLogs(async (lines) => {
      // Down from the start: fail open at once (nothing good was ever read).
      assert.equal(await tickBoth(), false);
      assert.equal(await tickBoth(), false);
      assert.equal(agentA.status().state, 'failed');
      assert.equal(a.shm.endpoints.remoteInFlight(a.slot1), 0);

      await relay.open();
      await waitFor('A to reconnect', () => tickBoth(), 3000);
      assert.equal(a.shm.endpoints.remoteInFlight(a.slot1), 7);
      assert.equal(agentA.status().state, 'ok');

      // Outage: the last counts stay for the TTL, then drop to 0.
      await relay.close();
      const downAt = performance.now();
      assert.equal(await tickBoth(), false);
      assert.equal(agentA.status().state, 'degraded');
      assert.equal(a.shm.endpoints.remoteInFlight(a.slot1), 7, 'the last good counts are kept within the TTL');
      await waitFor('remote counts to drop', async () => {
        await tickBoth();
        return a.shm.endpoints.remoteInFlight(a.slot1) === 0;
      });
      assert.ok(performance.now() - downAt >= 550, 'not before the TTL');
      assert.equal(agentA.status().state, 'failed');
      // A few more failing ticks log nothing new.
      for (let i = 0; i < 3; i++) await tickBoth();

      await relay.open();
      await waitFor('A to recover', () => tickBoth(), 3000);
      assert.equal(a.shm.endpoints.remoteInFlight(a.slot1), 7);

      const events = lines.map((l) => JSON.parse(l) as { level: string; msg: string; to?: string });
      const transitions = events.filter((e) => e.msg.startsWith('global least-request')).map((e) => `${e.level}:${e.to}`);
      assert.deepEqual(transitions, ['warn:failed', 'info:ok', 'warn:degraded', 'warn:failed', 'info:ok']);
    });
    await agentA.stop();
    await relay.close();
  });

  it('a closed port: tick() resolves false, one warning without the password, stop() still returns', async () => {
    const relay = await RedisRelay.onClosedPort();
    const a = node();
    hold(a.shm, a.slot1, 1);
    await withLogs(async (lines) => {
      const agentA = agent({
        redis: `redis://sluice:hunter2@127.0.0.1:${relay.port}/0`,
        keyPrefix: freshPrefix(),
        nodeId: 'node-a',
        shm: a.shm,
        slots: a.slots,
      });
      for (let i = 0; i < 3; i++) assert.equal(await agentA.tick(), false);
      assert.equal(agentA.status().failures, 3);
      assert.equal(agentA.status().lastGoodAgeMs, null);
      await agentA.stop();
      assert.equal(agentA.status().state, 'stopped');
      const text = lines.join('\n');
      assert.ok(!text.includes('hunter2'), 'the password is never logged');
      assert.equal(lines.filter((l) => l.includes('"level":"warn"')).length, 2, 'one warning for the state change, one for the lease not deleted');
      assert.ok(text.includes(`redis://127.0.0.1:${relay.port}/0`));
    });
  });

  it('redacts credentials from Redis URLs', () => {
    assert.equal(redactRedisUrl('redis://user:pa%40ss@redis.internal:6380/2'), 'redis://redis.internal:6380/2');
    assert.equal(redactRedisUrl('rediss://:secret@h:1'), 'rediss://h:1');
    assert.equal(redactRedisUrl('not a url with secret'), '(unparseable redis url)');
  });

  it('a slot dropped from the list has its remote count zeroed; rejects bad settings', async () => {
    const prefix = freshPrefix();
    const a = node();
    const b = node();
    hold(b.shm, b.slot1, 2);
    hold(b.shm, b.slot2, 5);
    let slotsA: readonly number[] = [a.slot1, a.slot2];
    const agentA = agent({ redis: client(), keyPrefix: prefix, nodeId: 'node-a', shm: a.shm, slots: () => slotsA });
    const agentB = agent({ redis: client(), keyPrefix: prefix, nodeId: 'node-b', shm: b.shm, slots: b.slots });
    await agentB.tick();
    await agentA.tick();
    assert.equal(a.shm.endpoints.remoteInFlight(a.slot2), 5);
    slotsA = [a.slot1];
    await agentA.tick();
    assert.equal(a.shm.endpoints.remoteInFlight(a.slot1), 2);
    assert.equal(a.shm.endpoints.remoteInFlight(a.slot2), 0);
    assert.equal(agentA.status().slots, 1);

    assert.throws(() => new GlobalLoadAgent({ redis: admin, keyPrefix: prefix, nodeId: 'x', shm: a.shm, slots: a.slots, reportIntervalMs: 0 }), RangeError);
    assert.throws(() => new GlobalLoadAgent({ redis: admin, keyPrefix: prefix, nodeId: '', shm: a.shm, slots: a.slots }), RangeError);
    const defaults = new GlobalLoadAgent({ redis: admin, keyPrefix: prefix, nodeId: 'd', shm: a.shm, slots: a.slots });
    assert.equal(defaults.reportIntervalMs, 250);
    assert.equal(defaults.leaseTtlMs, 1000);
    assert.equal(new GlobalLoadAgent({ redis: admin, keyPrefix: prefix, nodeId: 'e', shm: a.shm, slots: a.slots, reportIntervalMs: 500 }).leaseTtlMs, 1500);
  });
});
