/**
 * Routing and resilience through the real gateway (2 workers where sharing matters) against
 * programmable upstreams: weighted targets, canary rules, retries with back-off and Retry-After,
 * the retry budget, multi-key pools (401 skipped, 429 cooled down across workers), multi-endpoint
 * balancing, outlier ejection shared by workers, active health checks, timeouts (first byte, idle,
 * total), a reset mid-stream, and the access log.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startFakeOpenAI, type FakeOpenAI } from '../helpers/fake-openai.js';
import { cleanupE2E, parseSse, postJson, startGateway, tempDir } from '../helpers/index.js';

after(cleanupE2E);

const user = [{ role: 'user' as const, content: 'route me' }];
const chat = (model: string, extra: Record<string, unknown> = {}) => ({ model, messages: user, ...extra });

function provider(name: string, upstreams: FakeOpenAI | FakeOpenAI[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  // An array means replicas (`endpoints`), one upstream a plain `base_url`.
  const where = Array.isArray(upstreams) ? { endpoints: upstreams.map((u) => ({ url: `${u.url}/v1` })) } : { base_url: `${upstreams.url}/v1` };
  return { name, type: 'openai-compatible', ...where, ...extra };
}

async function times<T>(n: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await fn(i));
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it holds; fails after `ms`. */
async function until(ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`condition not met within ${ms} ms`);
    await sleep(100);
  }
}

describe('model mapping and rules', () => {
  it('targets share traffic by weight; the headers say which served', async () => {
    const a = await startFakeOpenAI('a');
    const b = await startFakeOpenAI('b');
    const gw = await startGateway({
      config: {
        providers: [provider('pa', a), provider('pb', b)],
        models: [{ name: 'split', targets: [{ provider: 'pa', model: 'm-a', weight: 3 }, { provider: 'pb', model: 'm-b', weight: 1 }] }],
      },
      args: ['--port', '0', '--workers', '1'],
    });
    const answers = await times(40, () => postJson(gw.url, '/v1/chat/completions', chat('split')));
    assert.ok(answers.every((r) => r.status === 200));
    // Smooth weighted round-robin is exact over every 4 picks in one worker.
    assert.equal(a.seen.length, 30);
    assert.equal(b.seen.length, 10);
    assert.equal(a.seen[0]!.model, 'm-a');
    const served = answers.map((r) => r.headers['x-sluice-provider']);
    assert.equal(served.filter((p) => p === 'pa').length, 30);
    assert.equal(answers[0]!.headers['x-sluice-route'], 'split');
  });

  it('a header rule sends canary traffic elsewhere; a sticky percentage keeps each user on one side', async () => {
    const stable = await startFakeOpenAI('stable');
    const canary = await startFakeOpenAI('canary');
    const gw = await startGateway({
      config: {
        providers: [provider('stable', stable), provider('canary', canary)],
        models: [{ name: 'gpt-x', targets: [{ provider: 'stable' }] }],
        rules: [
          { name: 'forced-canary', match: { headers: { 'x-sluice-target': 'canary' } }, targets: [{ provider: 'canary', model: 'gpt-x-next' }] },
          { name: 'ten-percent', match: { models: ['gpt-x'] }, percent: 30, sticky_header: 'x-user-id', targets: [{ provider: 'canary', model: 'gpt-x-next' }] },
        ],
      },
    });
    const forced = await postJson(gw.url, '/v1/chat/completions', chat('gpt-x'), { 'x-sluice-target': 'canary' });
    assert.equal(forced.headers['x-sluice-provider'], 'canary');
    assert.equal(forced.headers['x-sluice-model'], 'gpt-x-next');
    assert.equal(forced.headers['x-sluice-route'], 'forced-canary');

    const sideOf = new Map<string, string>();
    for (let u = 0; u < 120; u++) {
      for (let rep = 0; rep < 2; rep++) {
        const r = await postJson(gw.url, '/v1/chat/completions', chat('gpt-x'), { 'x-user-id': `user-${u}` });
        const side = String(r.headers['x-sluice-provider']);
        const before = sideOf.get(`user-${u}`);
        if (before !== undefined) assert.equal(side, before, `user-${u} changed sides`);
        sideOf.set(`user-${u}`, side);
      }
    }
    const onCanary = [...sideOf.values()].filter((s) => s === 'canary').length;
    assert.ok(onCanary >= 20 && onCanary <= 56, `${onCanary} of 120 users on the canary (30% expected)`);
  });
});

describe('retries', () => {
  it('a 500 is retried with back-off on the same endpoint and the client sees the good answer', async () => {
    const up = await startFakeOpenAI('flaky');
    up.behave((i) => (i === 0 ? { kind: 'status', status: 500 } : { kind: 'ok' }));
    const gw = await startGateway({
      config: { providers: [provider('p', up)], models: [{ name: 'm', targets: [{ provider: 'p' }], retry: { base_delay_ms: 50 } }] },
    });
    const r = await postJson(gw.url, '/v1/chat/completions', chat('m'));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['x-sluice-attempts'], '2');
    assert.equal(up.seen.length, 2);
  });

  it('a 429 with Retry-After waits at least that long, then succeeds', async () => {
    const up = await startFakeOpenAI('limited');
    up.behave((i) => (i === 0 ? { kind: 'status', status: 429, headers: { 'retry-after': '1' } } : { kind: 'ok' }));
    const gw = await startGateway({ config: { providers: [provider('p', up)], models: [{ name: 'm', targets: [{ provider: 'p' }] }] } });
    const r = await postJson(gw.url, '/v1/chat/completions', chat('m'));
    assert.equal(r.status, 200, r.text);
    const gap = up.seen[1]!.atMs - up.seen[0]!.atMs;
    assert.ok(gap >= 950, `retried after ${gap} ms, Retry-After said 1 s`);
  });

  it('the retry budget stops retries when spent; retry.on decides what is retried', async () => {
    const up = await startFakeOpenAI('down', { kind: 'status', status: 503 });
    const gw = await startGateway({
      config: {
        providers: [provider('p', up)],
        models: [
          { name: 'm', targets: [{ provider: 'p' }], retry: { base_delay_ms: 1, max_delay_ms: 1 } },
          { name: 'only-connect', targets: [{ provider: 'p' }], retry: { on: ['connect'] } },
        ],
        retry: { budget: { ratio: 0, min_per_second: 0 } },
      },
      args: ['--port', '0', '--workers', '1'],
    });
    const r = await postJson(gw.url, '/v1/chat/completions', chat('m'));
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-sluice-attempts'], '1', 'no budget, no retry');
    const n = await postJson(gw.url, '/v1/chat/completions', chat('only-connect'));
    assert.equal(n.status, 503);
    assert.equal(n.headers['x-sluice-attempts'], '1');
    assert.equal(up.seen.length, 2);
  });
});

describe('multi-key pools', () => {
  it('a key answered 401 is skipped until reload; the request is retried at once with another key', async () => {
    const up = await startFakeOpenAI('keys');
    up.behave((_i, key) => (key === 'bad' ? { kind: 'status', status: 401 } : { kind: 'ok' }));
    const gw = await startGateway({
      config: { providers: [provider('p', up, { api_key: ['bad', 'good'] })], models: [{ name: 'm', targets: [{ provider: 'p' }] }] },
    });
    const answers = await times(20, () => postJson(gw.url, '/v1/chat/completions', chat('m')));
    assert.ok(answers.every((r) => r.status === 200), JSON.stringify(answers.map((r) => r.status)));
    // At most once per worker: each learns on its own, then never sends the bad key again.
    const bad = up.seen.filter((s) => s.key === 'bad').length;
    assert.ok(bad >= 1 && bad <= 2, `bad key sent ${bad} times`);
  });

  it('a key answered 429 rests for the time the provider named, in every worker', async () => {
    const up = await startFakeOpenAI('limits');
    let limited = false;
    up.behave((_i, key) => {
      if (key === 'a' && !limited) {
        limited = true;
        return { kind: 'status', status: 429, headers: { 'retry-after': '3' } };
      }
      return { kind: 'ok' };
    });
    const gw = await startGateway({
      config: { providers: [provider('p', up, { api_key: ['a', 'b'] })], models: [{ name: 'm', targets: [{ provider: 'p' }] }] },
    });
    await times(20, async () => {
      const r = await postJson(gw.url, '/v1/chat/completions', chat('m'));
      assert.equal(r.status, 200);
    });
    const afterLimit = up.seen.slice(up.seen.findIndex((s) => s.key === 'a') + 1);
    assert.ok(afterLimit.length >= 19);
    assert.deepEqual([...new Set(afterLimit.map((s) => s.key))], ['b'], 'key a rests in both workers');
  });

  it('when every key is refused, the route falls back to the next target', async () => {
    const up = await startFakeOpenAI('refuses', { kind: 'status', status: 401 });
    const other = await startFakeOpenAI('other');
    const gw = await startGateway({
      config: {
        providers: [provider('p', up, { api_key: ['x', 'y'] }), provider('q', other)],
        models: [{ name: 'm', targets: [{ provider: 'p' }], fallbacks: [{ provider: 'q' }] }],
      },
    });
    const r = await postJson(gw.url, '/v1/chat/completions', chat('m'));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['x-sluice-provider'], 'q');
  });
});

describe('multi-endpoint balancing and health', () => {
  it('round_robin spreads evenly; least_request keeps a slow replica from piling up', async () => {
    const fast = await startFakeOpenAI('fast', { kind: 'ok', delayMs: 20 });
    const slow = await startFakeOpenAI('slow', { kind: 'ok', delayMs: 400 });
    const gw = await startGateway({
      config: {
        providers: [
          provider('rr', [fast, slow], { balancer: 'round_robin' }),
          provider('lr', [fast, slow], { balancer: 'least_request' }),
        ],
        models: [
          { name: 'rr', targets: [{ provider: 'rr' }] },
          { name: 'lr', targets: [{ provider: 'lr' }] },
        ],
      },
    });
    await Promise.all(Array.from({ length: 40 }, () => postJson(gw.url, '/v1/chat/completions', chat('rr'))));
    assert.ok(Math.abs(fast.seen.length - slow.seen.length) <= 4, `rr: ${fast.seen.length} vs ${slow.seen.length}`);
    fast.seen.length = 0;
    slow.seen.length = 0;
    // 8 clients in a loop: least request sees the slow replica busy and prefers the fast one.
    await Promise.all(Array.from({ length: 8 }, () => times(8, () => postJson(gw.url, '/v1/chat/completions', chat('lr')))));
    assert.ok(fast.seen.length > slow.seen.length * 2, `lr: fast ${fast.seen.length}, slow ${slow.seen.length}`);
  });

  it('a failing replica is ejected for all workers; clients see no error while another exists', async () => {
    const good = await startFakeOpenAI('good');
    const bad = await startFakeOpenAI('bad', { kind: 'status', status: 500 });
    const gw = await startGateway({
      config: {
        providers: [
          provider('fleet', [good, bad], {
            balancer: 'round_robin',
            outlier: { consecutive_failures: 2, base_ejection_ms: 60_000 },
          }),
        ],
        models: [{ name: 'm', targets: [{ provider: 'fleet' }], retry: { base_delay_ms: 1 } }],
      },
    });
    const answers = await times(10, () => postJson(gw.url, '/v1/chat/completions', chat('m')));
    assert.deepEqual([...new Set(answers.map((r) => r.status))], [200]);
    const badBefore = bad.seen.length;
    // The failure streak is shared: two failures in a row, through whichever worker, eject it.
    assert.ok(badBefore >= 2 && badBefore <= 4, `bad replica got ${badBefore} before ejection`);
    await times(20, () => postJson(gw.url, '/v1/chat/completions', chat('m')));
    assert.equal(bad.seen.length, badBefore, 'an ejected replica gets no traffic from any worker');
    assert.match(gw.stderr(), /endpoint ejected/);
  });

  it('active health checks take a replica out and bring it back', async () => {
    const a = await startFakeOpenAI('a');
    const b = await startFakeOpenAI('b');
    b.healthy = false;
    const gw = await startGateway({
      config: {
        providers: [
          provider('fleet', [a, b], {
            balancer: 'round_robin',
            health_check: { path: '/health', interval_ms: 100, timeout_ms: 500, unhealthy_threshold: 1, healthy_threshold: 1 },
          }),
        ],
        models: [{ name: 'm', targets: [{ provider: 'fleet' }] }],
      },
    });
    // Probes run every 100 ms in the supervisor; on a loaded machine the first may come late.
    await until(5_000, async () => {
      b.seen.length = 0;
      await times(10, () => postJson(gw.url, '/v1/chat/completions', chat('m')));
      return b.seen.length === 0;
    });
    b.healthy = true;
    await until(5_000, async () => {
      b.seen.length = 0;
      await times(10, () => postJson(gw.url, '/v1/chat/completions', chat('m')));
      return b.seen.length >= 3;
    });
    assert.ok(b.healthProbes > 2);
  });
});

describe('timeouts and streams', () => {
  it('idle_ms cuts a stalled stream with an error event; a reset mid-stream is never retried', async () => {
    const stall = await startFakeOpenAI('stall', { kind: 'stall-mid-stream' });
    const reset = await startFakeOpenAI('reset', { kind: 'reset-mid-stream' });
    const backup = await startFakeOpenAI('backup');
    const gw = await startGateway({
      config: {
        providers: [provider('stall', stall, { timeouts: { idle_ms: 300 } }), provider('reset', reset), provider('backup', backup)],
        models: [
          { name: 'stall', targets: [{ provider: 'stall' }], fallbacks: [{ provider: 'backup' }] },
          { name: 'reset', targets: [{ provider: 'reset' }], fallbacks: [{ provider: 'backup' }] },
        ],
      },
    });
    for (const model of ['stall', 'reset']) {
      const r = await postJson(gw.url, '/v1/chat/completions', chat(model, { stream: true }));
      assert.equal(r.status, 200);
      const events = parseSse(r.text);
      assert.ok(events.some((e) => (e.data ?? '').includes(`${model}-0`)), 'the first chunks arrived');
      assert.ok(events.some((e) => (e.data ?? '').includes('"error"')), `${model}: ends with an error event`);
      assert.equal(r.headers['x-sluice-attempts'], '1');
    }
    assert.equal(backup.seen.length, 0, 'no silent retry after the first byte');
  });

  it('total_ms bounds the whole request: 504 before the first byte, an error event after it', async () => {
    const hang = await startFakeOpenAI('hang', { kind: 'hang' });
    const slow = await startFakeOpenAI('slow', { kind: 'ok', chunks: 20, chunkDelayMs: 100 });
    const gw = await startGateway({
      config: {
        providers: [provider('hang', hang), provider('slow', slow)],
        models: [
          { name: 'hang', targets: [{ provider: 'hang' }], timeouts: { total_ms: 500 } },
          { name: 'slow', targets: [{ provider: 'slow' }], timeouts: { total_ms: 600 } },
        ],
      },
    });
    const t0 = Date.now();
    const r = await postJson(gw.url, '/v1/chat/completions', chat('hang'));
    assert.equal(r.status, 504);
    assert.ok(Date.now() - t0 < 3_000);
    const s = await postJson(gw.url, '/v1/chat/completions', chat('slow', { stream: true }));
    const events = parseSse(s.text);
    assert.ok(events.some((e) => (e.data ?? '').includes('slow-0')));
    assert.ok(events.some((e) => (e.data ?? '').includes('total time limit')), 'cut with an error event');
    assert.ok(!events.some((e) => (e.data ?? '').includes('slow-19')));
  });

  it('an OpenAI client streams through a fallback; the access log has one line per request with its attempts', async () => {
    const down = await startFakeOpenAI('down', { kind: 'status', status: 502 });
    const up = await startFakeOpenAI('up');
    const logPath = join(tempDir(), 'access.log');
    const gw = await startGateway({
      config: {
        providers: [provider('down', down), provider('up', up)],
        models: [{ name: 'm', targets: [{ provider: 'down' }], fallbacks: [{ provider: 'up' }] }],
        access_log: { enabled: true, path: logPath },
      },
    });
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'm', messages: user, stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
    assert.equal(text, 'up-0up-1up-2');
    await sleep(200);
    const lines = readFileSync(logPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    assert.equal(line.provider, 'up');
    assert.equal(line.attempts, 2);
    assert.equal(line.status, 200);
    assert.equal(line.model, 'm');
    assert.equal(line.route, 'm');
    assert.equal(typeof line.duration_ms, 'number');
    assert.doesNotMatch(JSON.stringify(line), /route me|authorization/i);
  });
});
