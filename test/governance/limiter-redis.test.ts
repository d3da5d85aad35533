import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, createServer, connect, type Server, type Socket } from 'node:net';

import { Redis } from 'ioredis';

import {
  type Admission,
  type Admitted,
  CALENDAR_MONTH,
  type LimitRule,
  type QuotaRule,
  RedisLimiter,
  type RedisLimiterOptions,
  type Refused,
} from '../../src/governance/limiter/index.js';
import { MONTH_CHECK_LUA } from '../../src/governance/limiter/redis-scripts.js';
import { setLogSink } from '../../src/observability/logger.js';
import { freshPrefix, ManualClock, REDIS_URL } from './limiter-helpers.js';

function admitted(admission: Admission): Admitted {
  assert.ok(admission.ok, `expected an admission, got: ${admission.ok ? '' : admission.reason}`);
  return admission;
}

function refused(admission: Admission): Refused {
  assert.ok(!admission.ok, 'expected a refusal');
  return admission;
}

const limiters = new Set<RedisLimiter>();
const clients = new Set<Redis>();

after(async () => {
  for (const limiter of limiters) await limiter.close();
  for (const client of clients) client.disconnect();
});

function makeLimiter(options: Partial<RedisLimiterOptions> & { keyPrefix: string }): RedisLimiter {
  const limiter = new RedisLimiter({ redis: REDIS_URL, onRedisError: 'open', ...options });
  limiters.add(limiter);
  return limiter;
}

async function readyLimiter(options: Partial<RedisLimiterOptions> & { keyPrefix: string }): Promise<RedisLimiter> {
  const limiter = makeLimiter(options);
  assert.equal(await limiter.ready(5000), true, 'Redis at ' + REDIS_URL + ' answers');
  return limiter;
}

/** Log lines written while `fn` runs (and until the returned stop is called). */
function captureLogs(): { lines: Record<string, unknown>[]; stop: () => void } {
  const lines: Record<string, unknown>[] = [];
  setLogSink((line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  return { lines, stop: () => setLogSink(null) };
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A TCP proxy to Redis that can be down (not listening) or stalled (holding what clients send). */
class FlakyProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private stalled = false;
  private readonly held: (() => void)[] = [];
  port = 0;

  async up(port = 0): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(6379, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      client.on('data', (chunk) => {
        if (this.stalled) this.held.push(() => upstream.write(chunk));
        else upstream.write(chunk);
      });
      upstream.on('data', (chunk) => client.write(chunk));
      for (const socket of [client, upstream]) {
        socket.on('error', () => undefined);
        socket.on('close', () => {
          client.destroy();
          upstream.destroy();
        });
      }
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  async down(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise((resolve) => server.close(resolve));
  }

  stall(): void {
    this.stalled = true;
  }

  resume(): void {
    this.stalled = false;
    for (const write of this.held.splice(0)) write();
  }
}

describe('RedisLimiter', () => {
  before(async () => {
    const probe = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    probe.on('error', () => undefined);
    await probe.connect();
    probe.disconnect();
  });

  it('5,000 racing admissions through 2 limiter instances against rpm 1000 admit exactly 1000', async () => {
    const keyPrefix = freshPrefix();
    // 5,000 scripts queue up in one Redis: give the last of them time, so none is decided by policy.
    const nodes = [await readyLimiter({ keyPrefix, commandTimeoutMs: 10_000 }), await readyLimiter({ keyPrefix, commandTimeoutMs: 10_000 })];
    const rule: LimitRule = { key: 'c:race', rpm: 1000, tpm: 100_000_000, concurrent: 5000 };
    // Each node keeps 32 admissions in flight, sending the next when one returns, so the two
    // connections' scripts interleave in Redis for the whole run.
    const admissions: Admission[] = [];
    const nodeOf: number[] = [];
    let sent = 0;
    await Promise.all(
      [0, 1].flatMap((n) =>
        Array.from({ length: 32 }, async () => {
          while (sent < 5000) {
            sent++;
            const admission = await nodes[n]!.admit([rule], [], 9, 0);
            admissions.push(admission);
            nodeOf.push(n);
          }
        }),
      ),
    );
    assert.equal(admissions.length, 5000);
    const perNode = [0, 1].map((n) => admissions.filter((a, i) => a.ok && nodeOf[i] === n).length);
    assert.equal(perNode[0]! + perNode[1]!, 1000, `per node: ${perNode.join(', ')}`);
    assert.ok(perNode[0]! > 0 && perNode[1]! > 0, 'both nodes admitted some');
    assert.ok(admissions.every((a) => !a.ok || !a.ticket.unlimited), 'every decision came from Redis');
    const usage = await nodes[0]!.limitUsage(rule);
    assert.equal(usage.requests.used, 1000);
    assert.equal(usage.tokens.used, 9000);
    assert.equal(usage.concurrent.used, 1000);
    await Promise.all(admissions.map((a, i) => (a.ok ? nodes[nodeOf[i]!]!.settle(a.ticket, 9, 0) : undefined)));
    assert.equal((await nodes[1]!.limitUsage(rule)).concurrent.used, 0);
    for (const node of nodes) assert.equal(node.status().state, 'ok');
  });

  it('is all-or-nothing across rules and quotas, and reconciles at settle (reserve 1000, use 100 → 900 back)', async () => {
    const clock = new ManualClock(Date.UTC(2025, 4, 20, 10, 0, 0, 250));
    const limiter = await readyLimiter({ keyPrefix: freshPrefix(), clockMs: clock.now });
    const wide: LimitRule = { key: 'm:gpt', rpm: 100, tpm: 100_000, concurrent: 10 };
    const narrow: LimitRule = { key: 'c:ann', rpm: 1 };
    const quota: QuotaRule = { key: 'c:ann', period: 'day', mode: 'calendar', tokens: 50_000, costMicros: 1_000_000 };
    admitted(await limiter.admit([narrow], [], 0, 0));
    const no = refused(await limiter.admit([wide, narrow], [quota], 1000, 0));
    assert.equal(no.code, 'rate_limited');
    assert.equal(no.retryAfterMs, 59_750);
    assert.equal(no.headers['retry-after'], '60');
    assert.deepEqual(await limiter.limitUsage(wide), {
      key: 'm:gpt',
      requests: { used: 0, limit: 100, remaining: 100 },
      tokens: { used: 0, limit: 100_000, remaining: 100_000 },
      concurrent: { used: 0, limit: 10, remaining: 10 },
    });

    const ok = admitted(await limiter.admit([wide], [quota], 1000, 20_000));
    assert.equal(ok.headers['x-ratelimit-remaining-tokens'], '99000');
    assert.equal(ok.headers['x-ratelimit-reset-requests'], '1m0s', '59.75 s, in whole seconds rounded up');
    assert.equal(ok.ticket.tokenHeadroom, 49_000);
    assert.equal(ok.ticket.costHeadroomMicros, 980_000);
    clock.advance(2000);
    await limiter.settle(ok.ticket, 100, 7_000);
    await limiter.settle(ok.ticket, 0, 0); // exactly once
    const usage = await limiter.limitUsage(wide);
    assert.equal(usage.tokens.used, 100, '900 given back');
    assert.equal(usage.requests.used, 1);
    assert.equal(usage.concurrent.used, 0);
    const quotaUsage = await limiter.quotaUsage(quota);
    assert.equal(quotaUsage.tokens.used, 100);
    assert.equal(quotaUsage.costMicros.used, 7_000);

    const over = admitted(await limiter.admit([wide], [], 100, 0));
    await limiter.settle(over.ticket, 400, 0);
    assert.equal((await limiter.limitUsage(wide)).tokens.used, 500, '100 reserved + 300 beyond it');
  });

  it('quotas: calendar day resets at 00:00 UTC, rolling day keeps 24 hours; admin top-up and reset', async () => {
    const clock = new ManualClock(Date.UTC(2025, 2, 10, 22, 30));
    const limiter = await readyLimiter({ keyPrefix: freshPrefix(), clockMs: clock.now });
    const calendar: QuotaRule = { key: 'c:bo', period: 'day', mode: 'calendar', tokens: 1000 };
    const rolling: QuotaRule = { key: 'c:bo', period: 'day', mode: 'rolling', tokens: 1000 };
    admitted(await limiter.admit([], [calendar, rolling], 800, 0));
    const calendarNo = refused(await limiter.admit([], [calendar], 300, 0));
    assert.equal(calendarNo.code, 'quota_exceeded');
    assert.equal(calendarNo.retryAfterMs, 90 * 60_000);
    assert.equal(refused(await limiter.admit([], [rolling], 300, 0)).retryAfterMs, 23.5 * 3_600_000);

    clock.ms = Date.UTC(2025, 2, 11, 0, 0);
    assert.equal((await limiter.quotaUsage(calendar)).tokens.used, 0);
    const rollingUsage = await limiter.quotaUsage(rolling);
    assert.equal(rollingUsage.tokens.used, 800);
    assert.equal(rollingUsage.nextChangeMs, Date.UTC(2025, 2, 11, 22));
    await limiter.topUp(rolling, { tokens: 500 });
    assert.equal((await limiter.quotaUsage(rolling)).tokens.used, 300);
    admitted(await limiter.admit([], [rolling], 700, 0));
    await limiter.resetQuota(rolling);
    assert.equal((await limiter.quotaUsage(rolling)).tokens.used, 0);

    const month: QuotaRule = { key: 'c:bo', period: 'month', mode: 'calendar', costMicros: 1000 };
    clock.ms = Date.UTC(2024, 1, 29, 23, 59);
    admitted(await limiter.admit([], [month], 0, 1000));
    assert.equal(refused(await limiter.admit([], [month], 0, 1)).retryAfterMs, 60_000, 'until March 1st');
    clock.ms = Date.UTC(2024, 2, 1);
    admitted(await limiter.admit([], [month], 0, 1000));
  });

  it('computes calendar months in Lua exactly as windows.ts does', async () => {
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    clients.add(redis);
    const samples = [0, Date.UTC(1999, 11, 31, 23, 59, 59, 999), Date.UTC(2000, 1, 29), Date.UTC(2024, 1, 29, 12), Date.UTC(2100, 2, 1)];
    for (let i = 0; i < 200; i++) samples.push(Math.floor((i * 4_102_444_800_000) / 200) + i * 7_919_000);
    for (const ms of samples) {
      const [epoch, start] = (await redis.eval(MONTH_CHECK_LUA, 0, String(ms))) as [number, number];
      assert.equal(epoch, CALENDAR_MONTH.epochOf(ms), new Date(ms).toISOString());
      assert.equal(start, CALENDAR_MONTH.startOf(epoch), new Date(ms).toISOString());
    }
  });

  it('concurrency places of a node that stops answering expire with its lease', async () => {
    const keyPrefix = freshPrefix();
    const deadClient = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
    deadClient.on('error', () => undefined);
    clients.add(deadClient);
    await once(deadClient, 'ready');
    const doomed = makeLimiter({ redis: deadClient, keyPrefix, leaseTtlMs: 1000 });
    const survivor = await readyLimiter({ keyPrefix, leaseTtlMs: 1000 });
    const rule: LimitRule = { key: 'c:cy', concurrent: 2 };
    admitted(await doomed.admit([rule], [], 0, 0));
    admitted(await doomed.admit([rule], [], 0, 0));
    assert.equal(refused(await survivor.admit([rule], [], 0, 0)).code, 'concurrency_limited');
    // The node "dies": its connection is gone and its lease is no longer renewed.
    deadClient.disconnect();
    const started = Date.now();
    await until('the dead node\'s places to expire', async () => ((await survivor.admit([rule], [], 0, 0)).ok ? true : undefined), 5000);
    assert.ok(Date.now() - started <= 2000, `expired after ${Date.now() - started} ms (lease 1 s)`);
  });

  it('waits for the first connection instead of deciding the first requests by policy', async () => {
    const limiter = makeLimiter({ keyPrefix: freshPrefix(), onRedisError: 'closed', commandTimeoutMs: 2000 });
    const first = admitted(await limiter.admit([{ key: 'c:early', rpm: 5 }], [], 0, 0));
    assert.equal(first.ticket.unlimited, false);
    assert.equal(limiter.status().state, 'ok');
  });

  it('settlements ride along with the next admission: one script call per request, the release seen by that admission', async () => {
    const client = new Redis(REDIS_URL, { enableOfflineQueue: true, maxRetriesPerRequest: 1 });
    clients.add(client);
    const scriptCalls = { count: 0 };
    const send = client.sendCommand.bind(client);
    client.sendCommand = ((command: { name: string }, ...rest: unknown[]) => {
      if (command.name === 'evalsha' || command.name === 'eval') scriptCalls.count++;
      return (send as (...a: unknown[]) => unknown)(command, ...rest);
    }) as typeof client.sendCommand;
    // A long lease: no tick (a script call of its own) during the test.
    const limiter = await readyLimiter({ keyPrefix: freshPrefix(), redis: client, leaseTtlMs: 600_000, settleDelayMs: 50 });
    const rule: LimitRule = { key: 'c:serial', rpm: 1000, tpm: 1_000_000, concurrent: 1 };
    scriptCalls.count = 0;
    let last: Promise<void> = Promise.resolve();
    for (let i = 0; i < 40; i++) {
      // concurrent: 1 and the previous settle never awaited: admitted only because the previous
      // request's place, carried by this admission, is given back before it is checked.
      const a = admitted(await limiter.admit([rule], [], 100, 0));
      last = limiter.settle(a.ticket, 40, 0);
    }
    assert.equal(scriptCalls.count, 40, 'one script call per admission, settlements included');
    await last; // the last one leaves alone, after settleDelayMs
    assert.equal(scriptCalls.count, 41);
    const usage = await limiter.limitUsage(rule);
    assert.equal(usage.requests.used, 40);
    assert.equal(usage.tokens.used, 40 * 40, 'every reservation of 100 reconciled to the 40 used');
    assert.equal(usage.concurrent.used, 0);
  });

  it('settleDelayMs 0 sends settlements within the event-loop turn', async () => {
    const limiter = await readyLimiter({ keyPrefix: freshPrefix(), settleDelayMs: 0 });
    const rule: LimitRule = { key: 'c:prompt', concurrent: 1 };
    const a = admitted(await limiter.admit([rule], [], 0, 0));
    const started = Date.now();
    await limiter.settle(a.ticket, 0, 0);
    assert.ok(Date.now() - started < 1000);
    assert.equal((await limiter.limitUsage(rule)).concurrent.used, 0);
    assert.throws(() => new RedisLimiter({ redis: REDIS_URL, keyPrefix: 'x:', onRedisError: 'open', settleDelayMs: -1 }), /settleDelayMs/);
  });

  it('close gives this node\'s places back at once', async () => {
    const keyPrefix = freshPrefix();
    const leaving = await readyLimiter({ keyPrefix });
    const staying = await readyLimiter({ keyPrefix });
    const rule: LimitRule = { key: 'c:di', concurrent: 1 };
    admitted(await leaving.admit([rule], [], 0, 0));
    refused(await staying.admit([rule], [], 0, 0));
    await leaving.close();
    admitted(await staying.admit([rule], [], 0, 0));
  });
});

describe('RedisLimiter when Redis fails', () => {
  /** A port nothing listens on (until a proxy is started on it). */
  async function closedPort(): Promise<number> {
    const proxy = new FlakyProxy();
    await proxy.up();
    const { port } = proxy;
    await proxy.down();
    return port;
  }

  it('fail-open admits and fail-closed refuses while Redis is down, with one log line and counters', async () => {
    const port = await closedPort();
    const logs = captureLogs();
    try {
      const rule: LimitRule = { key: 'c:ed', rpm: 1 };
      const open = makeLimiter({ redis: `redis://:secret@127.0.0.1:${port}`, keyPrefix: freshPrefix(), onRedisError: 'open' });
      const closed = makeLimiter({ redis: `redis://127.0.0.1:${port}`, keyPrefix: freshPrefix(), onRedisError: 'closed' });
      for (let i = 0; i < 3; i++) {
        const yes = admitted(await open.admit([rule], [], 10, 0));
        assert.equal(yes.ticket.unlimited, true);
        await open.settle(yes.ticket, 10, 0);
        const no = refused(await closed.admit([rule], [], 10, 0));
        assert.equal(no.code, 'limiter_unavailable');
        assert.equal(no.headers['retry-after'], '1');
      }
      assert.equal(open.status().state, 'degraded');
      assert.equal(open.status().failOpen, 3);
      assert.equal(closed.status().failClosed, 3);
      const warnings = logs.lines.filter((line) => line.level === 'warn' && String(line.msg).startsWith('limiter: Redis unavailable'));
      assert.equal(warnings.length, 2, 'one line per limiter, not per request');
      assert.ok(warnings.some((line) => /fail-open/.test(String(line.msg))) && warnings.some((line) => /fail-closed/.test(String(line.msg))));
      assert.ok(!JSON.stringify(logs.lines).includes('secret'), 'no password in logs');
    } finally {
      logs.stop();
    }
  });

  it('recovers by itself when Redis comes back, and treats a slow Redis as down', async () => {
    const port = await closedPort();
    const proxy = new FlakyProxy();
    const logs = captureLogs();
    try {
      const keyPrefix = freshPrefix();
      const limiter = makeLimiter({
        redis: `redis://127.0.0.1:${port}`,
        keyPrefix,
        onRedisError: 'closed',
        commandTimeoutMs: 150,
        leaseTtlMs: 1500,
        probeIntervalMs: 100,
      });
      const rule: LimitRule = { key: 'c:flo', rpm: 1000 };
      assert.equal(refused(await limiter.admit([rule], [], 0, 0)).code, 'limiter_unavailable');

      await proxy.up(port);
      await until('admissions through Redis again', async () => ((await limiter.admit([rule], [], 0, 0)).ok ? true : undefined));
      assert.equal(limiter.status().state, 'ok');
      assert.ok(logs.lines.some((line) => line.level === 'info' && /Redis answers again/.test(String(line.msg))));

      proxy.stall();
      const began = Date.now();
      assert.equal(refused(await limiter.admit([rule], [], 0, 0)).code, 'limiter_unavailable');
      assert.ok(Date.now() - began < 400, 'a slow Redis costs one command timeout');
      const quick = Date.now();
      refused(await limiter.admit([rule], [], 0, 0));
      assert.ok(Date.now() - quick < 50, 'then admissions stop waiting on it');
      assert.equal(limiter.status().state, 'degraded');
      proxy.resume();
      await until('recovery after the stall', async () => ((await limiter.admit([rule], [], 0, 0)).ok ? true : undefined));
      const transitions = logs.lines.filter((line) => typeof line.to === 'string').map((line) => `${String(line.from)}→${String(line.to)}`);
      assert.deepEqual(transitions, ['connecting→degraded', 'degraded→ok', 'ok→degraded', 'degraded→ok']);
      assert.ok(limiter.status().redisErrors >= 1);
    } finally {
      logs.stop();
      await proxy.down();
    }
  });
});
