/**
 * Wasm plugins through the running gateway (2 workers): the example plugins as configured in
 * `plugins`, what the upstream receives and what the client gets in both protocols, HTTP calls to a
 * named upstream, the 0.1.0 ABI, traps under both fail policies, shared data across the workers,
 * node-wide metrics, and hot reload (add, change, remove) with a stream in flight.
 */

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  admin,
  chatBody,
  cleanupE2E,
  onFreshConnections,
  postJson,
  startGateway,
  startMock,
  startRecorder,
  startStream,
  summarizeStream,
  tempDir,
  type GatewayProcess,
  type RecordedRequest,
  type Recorder,
} from '../helpers/index.js';
import { pluginPath, ROOT } from '../wasm/helpers.js';
import { generateKey, hashKey } from '../../src/governance/keys.js';

let gw: GatewayProcess;
let rec: Recorder;
let arec: Recorder;
let authz: Recorder;

const hi = [{ role: 'user', content: 'hello there' }];
const anthropicHeaders = { 'anthropic-version': '2023-06-01' };

type PluginEntry = Record<string, unknown> & { name: string };

/** The C plugin is built only where clang targets wasm32-wasi (see plugins/build.mjs). */
const cPluginBuilt = existsSync(join(ROOT, 'plugins', 'dist', 'model-allowlist.wasm'));

/** The example plugins, each scoped to its own models so the tests do not see each other's. */
function examplePlugins(): PluginEntry[] {
  return [
    {
      name: 'rewriter',
      path: pluginPath('header-rewriter'),
      config: { request: { set: { 'x-team': 'ml' }, remove: ['x-debug'] }, response: { set: { 'x-served-by': 'sluice' } } },
    },
    { name: 'blocker', path: pluginPath('keyword-blocker'), config: { keywords: ['secret-plan'], status: 403, message: 'not here' } },
    { name: 'prompt', path: pluginPath('system-prompt'), config: { prompt: 'Answer in French.' }, scope: { models: ['sp-*', 'claude-sp'] } },
    {
      name: 'auth',
      path: pluginPath('external-auth'),
      config: { upstream: 'authz', path: '/check', timeout_ms: 2000 },
      scope: { models: ['auth-*', 'claude-auth'] },
    },
    { name: 'legacy', path: pluginPath('legacy-tagger'), config: 'tagged by hand', scope: { models: ['legacy'] } },
    { name: 'probe-open', path: pluginPath('abi-probe'), fail: 'open', scope: { models: ['trap-open'] } },
    { name: 'probe-closed', path: pluginPath('abi-probe'), fail: 'closed', scope: { models: ['trap-closed', 'claude-trap'] } },
    { name: 'meter', path: pluginPath('usage-meter'), config: { tick_ms: 50 }, scope: { models: ['meter'] } },
    { name: 'order', path: pluginPath('header-rewriter'), config: { request: { set: { 'x-order': 'plugin' } } }, scope: { models: ['order'] } },
    ...(cPluginBuilt
      ? [{ name: 'allowlist', path: pluginPath('model-allowlist'), config: 'allow-ok,allow-also', scope: { models: ['allow-*'] } }]
      : []),
  ];
}

function gatewayConfig(plugins: PluginEntry[], filters: object[] = defaultFilters): object {
  return {
    log: { level: 'warn' },
    providers: [
      { name: 'rec', type: 'openai', base_url: `${rec.url}/v1`, api_key: 'k-rec' },
      { name: 'arec', type: 'anthropic', base_url: arec.url, api_key: 'k-arec' },
      { name: 'mk', type: 'mock', mock: { tokens_per_second: 25, output_tokens: 40 } },
    ],
    models: [
      { name: 'claude-*', targets: [{ provider: 'arec', model: 'mock' }] },
      { name: 'slow', targets: [{ provider: 'mk', model: 'mock' }] },
      { name: '*', targets: [{ provider: 'rec', model: 'mock' }] },
    ],
    plugin_upstreams: { authz: authz.url },
    plugins,
    filters,
  };
}

/** `order` is placed after a headers filter that sets the same header: the plugin's value wins. */
const defaultFilters = [
  { type: 'headers', match: { models: ['order'] }, request: { set: { 'x-order': 'filter' } } },
  { type: 'wasm', plugin: 'order' },
];

before(async () => {
  const mock = await startMock();
  rec = await startRecorder({ forwardTo: mock.url });
  arec = await startRecorder({ forwardTo: mock.url });
  authz = await startRecorder({
    respond: (req, res) => {
      if (req.headers.authorization === 'Bearer good') {
        res.writeHead(200, { 'x-consumer': 'alice' }).end('ok');
      } else if (req.headers.authorization === 'Bearer slow') {
        setTimeout(() => res.writeHead(200, { 'x-consumer': 'slowpoke' }).end('ok'), 800);
      } else {
        res.writeHead(401).end('bad key');
      }
    },
  });
  gw = await startGateway({ config: gatewayConfig(examplePlugins()), args: ['--port', '0', '--workers', '2'], startTimeoutMs: 20_000 });
});

after(async () => {
  await cleanupE2E();
  assert.equal(gw.hasExited(), true);
});

/** The one request `recorder` received while `fn` ran. */
async function upstreamOf(recorder: Recorder, fn: () => Promise<unknown>): Promise<RecordedRequest & { json: Record<string, unknown> }> {
  const before = recorder.requests.length;
  await fn();
  const sent = recorder.requests.slice(before).filter((r) => r.method === 'POST');
  assert.equal(sent.length, 1, 'one upstream request');
  return Object.assign(sent[0]!, { json: JSON.parse(sent[0]!.body.toString()) as Record<string, unknown> });
}

function json(text: string): Record<string, unknown> {
  return JSON.parse(text) as Record<string, unknown>;
}

describe('header rewriter', () => {
  it('edits the headers sent upstream and the headers the client gets, streamed or not', async () => {
    let res: Awaited<ReturnType<typeof postJson>> | undefined;
    const up = await upstreamOf(rec, async () => {
      res = await postJson(gw.url, '/v1/chat/completions', { model: 'plain', messages: hi }, { 'x-debug': 'secret' });
    });
    assert.equal(res!.status, 200);
    assert.equal(up.headers['x-team'], 'ml');
    assert.equal(up.headers['x-debug'], undefined, 'removed before it reached the upstream');
    assert.equal(up.headers['authorization'], 'Bearer k-rec');
    assert.equal(res!.headers['x-served-by'], 'sluice');
    const streamed = await postJson(gw.url, '/v1/chat/completions', { model: 'plain', stream: true, messages: hi });
    assert.equal(streamed.headers['x-served-by'], 'sluice');
    assert.equal(summarizeStream(streamed.text).done, true);
  });

  it('a plugin placed with `- type: wasm` runs at that point of the chain', async () => {
    const up = await upstreamOf(rec, () => postJson(gw.url, '/v1/chat/completions', { model: 'order', messages: hi }));
    assert.equal(up.headers['x-order'], 'plugin', 'placed after the headers filter, so its value wins');
  });
});

describe('keyword blocker', () => {
  it('answers with its own response in both protocols, without calling the upstream', async () => {
    const before = rec.requests.length + arec.requests.length;
    const openai = await postJson(gw.url, '/v1/chat/completions', { model: 'plain', messages: [{ role: 'user', content: 'the SECRET-PLAN is' }] });
    assert.equal(openai.status, 403);
    assert.equal(openai.headers['x-blocked-by'], 'keyword-blocker');
    assert.deepEqual(json(openai.text), { error: { message: 'not here', type: 'invalid_request_error', code: 'content_blocked' } });
    const anthropic = await postJson(
      gw.url,
      '/v1/messages',
      { model: 'claude-x', max_tokens: 20, messages: [{ role: 'user', content: 'about the secret-plan' }] },
      anthropicHeaders,
    );
    assert.equal(anthropic.status, 403);
    assert.deepEqual(json(anthropic.text), json(openai.text), 'a JSON body from the plugin is sent as it is, whatever the protocol');
    assert.equal(rec.requests.length + arec.requests.length, before);
    const fine = await postJson(gw.url, '/v1/chat/completions', { model: 'plain', messages: [{ role: 'user', content: 'a public plan' }] });
    assert.equal(fine.status, 200);
  });
});

describe('system prompt (body transform)', () => {
  it('the upstream receives the rewritten body: a system message (OpenAI), `system` (Anthropic)', async () => {
    const up = await upstreamOf(rec, () => postJson(gw.url, '/v1/chat/completions', { model: 'sp-1', messages: hi }));
    const messages = up.json.messages as { role: string; content: string }[];
    assert.deepEqual(messages[0], { role: 'system', content: 'Answer in French.' });
    assert.deepEqual(messages[1], hi[0]);
    assert.equal(up.json.model, 'mock');

    const aup = await upstreamOf(arec, async () => {
      const res = await postJson(gw.url, '/v1/messages', { model: 'claude-sp', max_tokens: 20, messages: hi }, anthropicHeaders);
      assert.equal(res.status, 200);
    });
    assert.match(JSON.stringify(aup.json.system), /Answer in French\./);
  });
});

describe('external auth (proxy_http_call to a named upstream)', () => {
  it('asks the auth upstream; allowed requests continue with what it returned', async () => {
    const calls = authz.requests.length;
    const up = await upstreamOf(rec, async () => {
      const res = await postJson(gw.url, '/v1/chat/completions', { model: 'auth-a', messages: hi }, { authorization: 'Bearer good' });
      assert.equal(res.status, 200);
    });
    assert.equal(authz.requests.length, calls + 1);
    assert.equal(authz.requests[calls]!.url, '/check');
    assert.equal(authz.requests[calls]!.headers.authorization, 'Bearer good');
    assert.equal(up.headers['x-consumer'], 'alice');
  });

  it('denied requests get the plugin\'s answer as an error in the client\'s protocol', async () => {
    const before = rec.requests.length + arec.requests.length;
    const openai = await postJson(gw.url, '/v1/chat/completions', { model: 'auth-a', messages: hi }, { authorization: 'Bearer bad' });
    assert.equal(openai.status, 403);
    assert.equal(openai.headers['x-auth-denied'], 'bad key');
    const oe = json(openai.text).error as Record<string, unknown>;
    assert.equal(oe.message, 'access denied: bad key');
    const anthropic = await postJson(gw.url, '/v1/messages', { model: 'claude-auth', max_tokens: 20, messages: hi }, { ...anthropicHeaders, authorization: 'Bearer bad' });
    assert.equal(anthropic.status, 403);
    const ab = json(anthropic.text);
    assert.equal(ab.type, 'error');
    assert.equal((ab.error as Record<string, unknown>).message, 'access denied: bad key');
    assert.equal(rec.requests.length + arec.requests.length, before, 'the model was never called');
  });
});

describe('ABI 0.1.0', () => {
  it('the hand-written legacy plugin tags the upstream request and the response', async () => {
    let res: Awaited<ReturnType<typeof postJson>> | undefined;
    const up = await upstreamOf(rec, async () => {
      res = await postJson(gw.url, '/v1/chat/completions', { model: 'legacy', messages: hi });
    });
    assert.equal(up.headers['x-legacy-abi'], '0.1.0');
    assert.equal(up.headers['x-legacy-config'], 'tagged by hand');
    assert.equal(res!.headers['x-legacy-abi'], '0.1.0');
  });
});

describe('C plugin (wasi-libc)', () => {
  it('lets listed models through and answers 403 for others', { skip: cPluginBuilt ? false : 'not built: no clang with a wasm32-wasi target' }, async () => {
    const ok = await postJson(gw.url, '/v1/chat/completions', { model: 'allow-ok', messages: hi });
    assert.equal(ok.status, 200);
    const denied = await postJson(gw.url, '/v1/chat/completions', { model: 'allow-not', messages: hi });
    assert.equal(denied.status, 403);
    assert.deepEqual(json(denied.text), { error: { message: 'model not allowed', type: 'permission_error' } });
  });
});

describe('a trapping plugin', () => {
  it('fail open: the request goes on without the plugin; fail closed: 500 in the client\'s protocol; then a new instance serves', async () => {
    const open = await postJson(gw.url, '/v1/chat/completions', { model: 'trap-open', messages: hi }, { 'x-probe': 'trap' });
    assert.equal(open.status, 200);
    const closed = await postJson(gw.url, '/v1/chat/completions', { model: 'trap-closed', messages: hi }, { 'x-probe': 'trap' });
    assert.equal(closed.status, 500);
    assert.match((json(closed.text).error as Record<string, string>).message, /plugin probe-closed failed/);
    const anthropic = await postJson(gw.url, '/v1/messages', { model: 'claude-trap', max_tokens: 20, messages: hi }, { ...anthropicHeaders, 'x-probe': 'trap' });
    assert.equal(anthropic.status, 500);
    assert.equal(json(anthropic.text).type, 'error');
    // Every worker that trapped builds a new instance for the next request.
    const after = await onFreshConnections(gw.url, 'trap-closed', 8);
    assert.deepEqual(after.map((r) => r.status), Array(8).fill(200));
  });
});

describe('shared data and metrics across workers', () => {
  it('usage-meter counts with CAS in shared data: every worker sees one sequence', async () => {
    const first = await postJson(gw.url, '/v1/chat/completions', { model: 'meter', messages: hi });
    assert.equal(first.headers['x-usage-count'], '1');
    // 24 connections land on both workers (see onFreshConnections); each count is handed out once.
    const answers = await onFreshConnections(gw.url, 'meter', 24);
    const counts = answers.map((r) => Number(r.headers['x-usage-count'])).sort((a, b) => a - b);
    assert.deepEqual(counts, Array.from({ length: 24 }, (_, i) => i + 2));
  });

  it('/metrics on the admin port reports each plugin metric once for the gateway, not once per worker', async () => {
    const text = await fetchText(`${gw.adminUrl}/metrics`);
    assert.match(text, /# TYPE sluice_wasm_usage_meter_requests_total counter\nsluice_wasm_usage_meter_requests_total 25\n/);
    assert.match(text, /sluice_wasm_keyword_blocker_blocked_total 2\n/);
    assert.match(text, /sluice_wasm_usage_meter_duration_us_count 25\n/);
  });
});

async function fetchText(url: string): Promise<string> {
  const res = await fetch(url, { headers: { connection: 'close' } });
  assert.equal(res.status, 200);
  return res.text();
}

describe('scope by consumer and by route', () => {
  it('a plugin runs only for its consumers, another only on its route', async () => {
    const keyA = generateKey();
    const keyB = generateKey();
    const scoped = await startGateway({
      config: {
        log: { level: 'warn' },
        providers: [{ name: 'rec', type: 'openai', base_url: `${rec.url}/v1`, api_key: 'k-rec' }],
        models: [
          { name: 'routed', targets: [{ provider: 'rec', model: 'mock' }] },
          { name: '*', targets: [{ provider: 'rec', model: 'mock' }] },
        ],
        consumers: [
          { name: 'team-a', keys: [hashKey(keyA)] },
          { name: 'team-b', keys: [hashKey(keyB)] },
        ],
        plugins: [
          { name: 'for-a', path: pluginPath('header-rewriter'), config: { request: { set: { 'x-for-a': 'yes' } } }, scope: { consumers: ['team-a'] } },
          { name: 'on-route', path: pluginPath('header-rewriter'), config: { request: { set: { 'x-on-route': 'yes' } } }, scope: { routes: ['routed'] } },
        ],
      },
    });
    const send = (key: string, model: string) =>
      upstreamOf(rec, async () => {
        const res = await postJson(scoped.url, '/v1/chat/completions', { model, messages: hi }, { authorization: `Bearer ${key}` });
        assert.equal(res.status, 200, res.text);
      });
    const a = await send(keyA, 'other');
    assert.equal(a.headers['x-for-a'], 'yes');
    assert.equal(a.headers['x-on-route'], undefined);
    const b = await send(keyB, 'routed');
    assert.equal(b.headers['x-for-a'], undefined, 'another consumer');
    assert.equal(b.headers['x-on-route'], 'yes', 'the route the router resolved');
    await scoped.stop();
  });
});

describe('hot reload', () => {
  it('refuses a config whose plugin cannot start, naming it; the running plugins stay', async () => {
    const broken = examplePlugins();
    broken.push({ name: 'missing', path: join(tempDir(), 'no-such.wasm') });
    broken.push({ name: 'unconfigured', path: pluginPath('system-prompt'), config: {} });
    const res = await admin(gw.adminUrl, { path: '/admin/config', body: gatewayConfig(broken) });
    assert.equal(res.status, 400);
    const issues = (res.json.error as { issues: { path: string; message: string }[] }).issues;
    const n = examplePlugins().length;
    assert.deepEqual(issues.map((i) => i.path), [`plugins[${n}]`, `plugins[${n + 1}]`]);
    assert.match(issues[0]!.message, /cannot read .*no-such\.wasm/);
    assert.match(issues[1]!.message, /rejected its configuration/);
    const still = await postJson(gw.url, '/v1/chat/completions', { model: 'plain', messages: [{ role: 'user', content: 'secret-plan' }] });
    assert.equal(still.status, 403);
  });

  it('adding, changing and removing plugins takes effect in every worker; a stream in flight finishes on the old set', async () => {
    const stream = await startStream(gw.url, chatBody('a long answer please', 'slow', true));
    assert.equal(stream.status, 200);
    await stream.firstData;

    // rewriter changed, blocker removed, a relative-path plugin added (resolved next to the config file).
    copyFileSync(pluginPath('noop'), join(tempDir(), 'noop-copy.wasm'));
    copyFileSync(pluginPath('header-rewriter'), join(tempDir(), 'rewriter-copy.wasm'));
    const next = examplePlugins()
      .filter((p) => p.name !== 'blocker')
      .map((p) => (p.name === 'rewriter' ? { ...p, config: { request: { set: { 'x-team': 'ops' } } } } : p));
    next.push({ name: 'added', path: './rewriter-copy.wasm', config: { request: { set: { 'x-added': 'yes' } } } });
    next.push({ name: 'noop', path: 'noop-copy.wasm' });
    const res = await admin(gw.adminUrl, { path: '/admin/config', body: gatewayConfig(next) });
    assert.equal(res.status, 200, res.text);

    const ended = await stream.ended;
    assert.equal(ended.cut, false, 'the stream was not dropped');
    const summary = summarizeStream(ended.text);
    assert.equal(summary.done, true);
    assert.equal(summary.finishReason, 'stop');
    assert.ok(summary.deltas.length >= 20, 'the whole answer arrived');

    const before = rec.requests.length;
    const answers = await onFreshConnections(gw.url, 'plain', 24);
    assert.deepEqual(answers.map((r) => r.status), Array(24).fill(200));
    const sent = rec.requests.slice(before).filter((r) => r.method === 'POST');
    assert.equal(sent.length, 24);
    for (const r of sent) {
      assert.equal(r.headers['x-team'], 'ops', 'changed plugin');
      assert.equal(r.headers['x-added'], 'yes', 'added plugin');
    }
    for (const a of answers) assert.equal(a.headers['x-served-by'], undefined, 'the changed config sets no response header');
    const unblocked = await onFreshConnections(gw.url, 'plain', 12, {});
    assert.ok(unblocked.every((r) => r.status === 200));
    const secret = await Promise.all(
      Array.from({ length: 12 }, () => postJson(gw.url, '/v1/chat/completions', { model: 'plain', messages: [{ role: 'user', content: 'secret-plan' }] })),
    );
    assert.deepEqual(secret.map((r) => r.status), Array(12).fill(200), 'removed plugin');
  });

  it('a request waiting for its plugin\'s HTTP call finishes when a reload removes that plugin', async () => {
    const calls = authz.requests.length;
    const pending = upstreamOf(rec, async () => {
      const res = await postJson(gw.url, '/v1/chat/completions', { model: 'auth-a', messages: hi }, { authorization: 'Bearer slow' });
      assert.equal(res.status, 200, res.text);
    });
    await authz.nth(calls);
    const withoutAuth = examplePlugins().filter((p) => p.name !== 'auth' && p.name !== 'blocker');
    const res = await admin(gw.adminUrl, { path: '/admin/config', body: gatewayConfig(withoutAuth) });
    assert.equal(res.status, 200, res.text);
    const up = await pending;
    assert.equal(up.headers['x-consumer'], 'slowpoke', 'the answer reached the retired plugin, which let the request go on');
    const after = await postJson(gw.url, '/v1/chat/completions', { model: 'auth-a', messages: hi }, { authorization: 'Bearer bad' });
    assert.equal(after.status, 200, 'new requests no longer meet the plugin');
  });

  it('shared data survives a reload that keeps the plugin', async () => {
    const res = await postJson(gw.url, '/v1/chat/completions', { model: 'meter', messages: hi });
    assert.equal(res.headers['x-usage-count'], '26');
  });

  it('removing every plugin leaves the gateway serving', async () => {
    const res = await admin(gw.adminUrl, { path: '/admin/config', body: gatewayConfig([], []) });
    assert.equal(res.status, 200, res.text);
    const answers = await onFreshConnections(gw.url, 'plain', 12);
    assert.deepEqual(answers.map((r) => r.status), Array(12).fill(200));
  });
});
