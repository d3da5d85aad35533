/**
 * HealthChecker against a real local HTTP server whose answer the tests switch: 200, 503, no answer
 * at all (a timeout), then closed (connection refused).
 */

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import { setLogSink } from '../../src/observability/logger.js';
import { HealthChecker, type HealthCheckTarget, redactProbeUrl } from '../../src/routing/health-checker.js';
import { SharedMemory } from '../../src/shm/index.js';

type Mode = 'ok' | 'fail' | 'hang';

/** A health endpoint under the test's control; counts probes and the most ever in flight at once. */
class FakeReplica {
  mode: Mode = 'ok';
  requests = 0;
  inFlight = 0;
  maxInFlight = 0;
  lastAuthorization: string | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly server = http.createServer((req, res) => {
    this.requests++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.lastAuthorization = req.headers.authorization;
    res.on('close', () => this.inFlight--);
    if (this.mode === 'hang') return;
    res.writeHead(this.mode === 'ok' ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(this.mode === 'ok' ? 'ok' : 'overloaded');
  });
  port = 0;

  constructor() {
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async listen(port = 0): Promise<this> {
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  url(path = '/health'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = once(this.server, 'close');
    this.server.close();
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

const replicas: FakeReplica[] = [];
const checkers: HealthChecker[] = [];
after(async () => {
  for (const c of checkers) await c.stop();
  for (const r of replicas) await r.close();
});

async function replica(): Promise<FakeReplica> {
  const r = await new FakeReplica().listen();
  replicas.push(r);
  return r;
}

function checker(shm: SharedMemory, targets: readonly HealthCheckTarget[]): HealthChecker {
  const c = new HealthChecker({ endpoints: shm.endpoints, targets });
  checkers.push(c);
  return c;
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const shmOf = () => SharedMemory.private({ workerSlots: 1, endpointCapacity: 16 });

describe('HealthChecker', () => {
  it('marks an endpoint unhealthy after the threshold, healthy after recovery; timeouts and a closed port fail', async () => {
    const shm = shmOf();
    const r = await replica();
    const lines: string[] = [];
    setLogSink((line) => lines.push(line));
    try {
      const c = checker(shm, [{ slot: 3, url: r.url(), intervalMs: 40, timeoutMs: 150, unhealthyThreshold: 2, healthyThreshold: 2 }]);
      const status = () => c.status()[0]!;
      await waitFor('a few good probes', () => status().probes >= 3);
      assert.equal(shm.endpoints.isUnhealthy(3), false);

      r.mode = 'fail';
      const before = status().probes;
      await waitFor('the first failure', () => status().consecutiveFailures === 1);
      assert.equal(shm.endpoints.isUnhealthy(3), false, 'one failure is below the threshold');
      await waitFor('unhealthy', () => shm.endpoints.isUnhealthy(3));
      assert.equal(status().consecutiveFailures, 2);
      assert.equal(status().lastError, 'status 503');
      assert.ok(status().probes >= before + 2);

      r.mode = 'ok';
      await waitFor('the first success', () => status().consecutiveSuccesses === 1);
      assert.equal(shm.endpoints.isUnhealthy(3), true, 'healthyThreshold 2: one success is not enough');
      await waitFor('healthy again', () => !shm.endpoints.isUnhealthy(3));
      assert.equal(status().healthy, true);

      r.mode = 'hang';
      await waitFor('unhealthy by timeout', () => shm.endpoints.isUnhealthy(3));
      assert.match(status().lastError ?? '', /^timeout/);
      assert.ok((status().lastProbeMs ?? 0) >= 140, `a timed-out probe lasts the timeout (${status().lastProbeMs} ms)`);
      assert.equal(r.maxInFlight, 1, 'probes of one target never overlap, even when they outlast the interval');

      r.mode = 'ok';
      await waitFor('healthy after the hang', () => !shm.endpoints.isUnhealthy(3));

      await r.close();
      await waitFor('unhealthy when the port is closed', () => shm.endpoints.isUnhealthy(3));
      assert.equal(status().lastError, 'ECONNREFUSED');

      // Removing the target clears its mark: nobody else would.
      c.update([]);
      assert.equal(shm.endpoints.isUnhealthy(3), false);
      assert.deepEqual(c.status(), []);
    } finally {
      setLogSink(null);
    }
    const events = lines.map((l) => JSON.parse(l) as { level: string; msg: string; slot: number });
    assert.deepEqual(
      events.map((e) => `${e.level}:${e.msg.includes('unhealthy') ? 'down' : 'up'}`),
      ['warn:down', 'info:up', 'warn:down', 'info:up', 'warn:down'],
      'one log line per transition',
    );
  });

  it('update() keeps the state of unchanged targets, starts new ones, and retires removed ones', async (t) => {
    setLogSink(() => undefined);
    t.after(() => setLogSink(null));
    const shm = shmOf();
    const r = await replica();
    r.mode = 'fail';
    const a: HealthCheckTarget = { slot: 1, url: r.url('/a'), intervalMs: 30, unhealthyThreshold: 1 };
    const b: HealthCheckTarget = { slot: 2, url: r.url('/b'), intervalMs: 30, unhealthyThreshold: 1 };
    const c = checker(shm, [a, b]);
    const of = (slot: number) => c.status().find((s) => s.slot === slot);
    await waitFor('both unhealthy', () => shm.endpoints.isUnhealthy(1) && shm.endpoints.isUnhealthy(2));
    const probesA = of(1)!.probes;

    // a unchanged (new settings only), b's URL changed: b is a new target, a keeps its streak.
    c.update([{ ...a, healthyThreshold: 3 }, { ...b, url: r.url('/b2') }, { slot: 4, url: r.url('/d'), intervalMs: 30 }]);
    assert.equal(shm.endpoints.isUnhealthy(1), true, 'an unchanged target keeps its verdict');
    assert.ok(of(1)!.probes >= probesA, 'and its counts');
    assert.equal(shm.endpoints.isUnhealthy(2), false, 'a changed target starts over, healthy');
    assert.equal(of(2)!.probes, 0);

    r.mode = 'ok';
    await waitFor('a to see a success', () => of(1)!.consecutiveSuccesses >= 1);
    assert.equal(shm.endpoints.isUnhealthy(1), true, 'the new healthyThreshold (3) applies');
    await waitFor('a healthy', () => !shm.endpoints.isUnhealthy(1));
    assert.ok(of(1)!.consecutiveSuccesses >= 3);
    await waitFor('d probed', () => (of(4)?.probes ?? 0) >= 1);

    assert.throws(() => c.update([a, { ...b, slot: 1 }]), /two targets for endpoint slot 1/);
    assert.throws(() => c.update([{ slot: 5, url: 'ftp://x/' }]), RangeError);
    assert.throws(() => c.update([{ slot: 5, url: r.url(), intervalMs: 0 }]), RangeError);
    assert.equal(c.status().length, 3, 'a rejected update changes nothing');

    await c.stop();
    assert.equal(c.status().length, 0);
    const settled = r.requests;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(r.requests, settled, 'no probe after stop()');
  });

  it('expectStatus, Basic auth from URL credentials, and logs without them', async () => {
    const shm = shmOf();
    const r = await replica();
    const lines: string[] = [];
    setLogSink((line) => lines.push(line));
    try {
      const url = `http://probe:s3cr3t@127.0.0.1:${r.port}/health?token=abc`;
      const c = checker(shm, [{ slot: 7, url, intervalMs: 30, unhealthyThreshold: 1, expectStatus: [204] }]);
      await waitFor('unhealthy: 200 is not the expected 204', () => shm.endpoints.isUnhealthy(7));
      assert.equal(r.lastAuthorization, `Basic ${Buffer.from('probe:s3cr3t').toString('base64')}`);
      assert.equal(c.status()[0]!.url, `http://127.0.0.1:${r.port}/health`);
      await c.stop();
      assert.equal(shm.endpoints.isUnhealthy(7), false, 'stop() leaves no mark behind');
    } finally {
      setLogSink(null);
    }
    const text = lines.join('\n');
    assert.ok(lines.length >= 1);
    assert.ok(!text.includes('s3cr3t') && !text.includes('token=abc'), 'credentials and query never reach the logs');
    assert.equal(redactProbeUrl('https://u:p@h:8443/x/y?k=v#f'), 'https://h:8443/x/y');
  });
});
