/**
 * Config reload through the admin API of a 2-worker gateway: PUT /admin/config while a stream runs
 * (the stream keeps its snapshot, the new route is served by every worker once the PUT answers,
 * secrets stay redacted), invalid configs refused with the path of each problem and nothing changed,
 * and POST /admin/reload re-reading --config (409 without one).
 */

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import {
  admin,
  cleanupE2E,
  chatBody,
  configGeneration,
  onFreshConnections,
  postJson,
  startGateway,
  startStream,
  statusAndModel,
  summarizeStream,
  writeTempConfig,
} from '../helpers/index.js';

after(cleanupE2E);

const TWO_WORKERS = ['--port', '0', '--workers', '2'];
/** A key that must never come back from the admin API. */
const SECRET = 'sk-reload-test-5f1e0c7a9b3d';
/** admin.watch off: these tests rewrite the file and must count every reload themselves. */
const BASE = {
  providers: [{ name: 'mock', type: 'mock', api_key: SECRET }],
  admin: { watch: false },
  log: { level: 'warn' },
};
const WITH_FRESH = { ...BASE, models: [{ name: 'fresh', targets: [{ provider: 'mock', model: 'mock-large' }] }] };

interface Issue {
  path: string;
  message: string;
}

describe('PUT /admin/config during a stream', () => {
  it('the stream finishes intact on its config; the new route is served everywhere once the PUT answers', async () => {
    const gw = await startGateway({ config: BASE, args: TWO_WORKERS });
    const gen0 = await configGeneration(gw.adminUrl);
    assert.deepEqual(statusAndModel(await onFreshConnections(gw.url, 'fresh', 4)).map(([s]) => s), [404, 404, 404, 404], 'not routed yet');

    // 60 tokens at 20 per second: three seconds of stream. The mock answers the same request with
    // the same tokens, so a fast copy of it is the reference for "intact".
    const body = chatBody('reload mid-stream', 'mock', true);
    const shape = { 'x-mock-output-tokens': '60' };
    const reference = summarizeStream((await postJson(gw.url, '/v1/chat/completions', body, shape)).text);
    assert.equal(reference.deltas.length, 60);

    const live = await startStream(gw.url, body, { ...shape, 'x-mock-tps': '20' });
    assert.equal(live.status, 200);
    await live.firstData;
    const put = await admin(gw.adminUrl, { path: '/admin/config', body: WITH_FRESH });
    const putAnsweredAt = performance.now();
    assert.equal(put.status, 200, put.text);
    assert.equal(put.json.applied_generation, gen0 + 1);
    assert.equal(put.json.generation, gen0 + 1);
    assert.equal(put.headers['x-sluice-config-generation'], String(gen0 + 1));

    // The PUT answers once every worker acknowledged the new snapshot: no polling needed.
    const fresh = statusAndModel(await onFreshConnections(gw.url, 'fresh'));
    assert.deepEqual(fresh, fresh.map(() => [200, 'mock-large']), 'every worker serves the new route right after the PUT');

    const ended = await live.ended;
    assert.ok(putAnsweredAt < ended.at, 'the PUT was answered while the stream was still running');
    assert.equal(ended.cut, false);
    assert.deepEqual(summarizeStream(ended.text), reference, 'all 60 tokens, finish_reason and [DONE]');

    const shown = await admin(gw.adminUrl, { path: '/admin/config' });
    assert.equal(shown.status, 200);
    assert.equal(shown.json.generation, gen0 + 1);
    const config = shown.json.config as { models: { name: string }[]; providers: { api_key: unknown }[] };
    assert.deepEqual(config.models.map((m) => m.name), ['fresh']);
    assert.equal(config.providers[0]!.api_key, '[redacted]');
    assert.ok(!shown.text.includes(SECRET), 'the key is not in the body');
    assert.equal(await configGeneration(gw.adminUrl), gen0 + 1, 'exactly one generation more');
    await gw.stop();
  });
});

describe('invalid configs', () => {
  it('are refused with 400 and the path of each problem; config, generation and traffic unchanged', async () => {
    const gw = await startGateway({ config: BASE, args: TWO_WORKERS });
    const before = await admin(gw.adminUrl, { path: '/admin/config' });
    const gen0 = before.json.generation;
    // A stream spans all the refused PUTs: traffic must not notice them.
    const body = chatBody('during refusals', 'mock', true);
    const live = await startStream(gw.url, body, { 'x-mock-output-tokens': '20', 'x-mock-tps': '20' });

    const cases: { what: string; body: object | string; path: RegExp }[] = [
      // Only building the provider finds this: the schema takes any type string.
      { what: 'unknown provider type', body: { providers: [{ name: 'mock', type: 'nosuch' }] }, path: /^providers\[0\]$/ },
      { what: 'schema error in YAML', body: 'providers:\n  - name: mock\n    type: mock\n    max_connections: 0\n', path: /^providers\[0\]\.max_connections$/ },
      { what: 'unknown key in YAML', body: 'server:\n  workerz: 2\nproviders:\n  - name: mock\n    type: mock\n', path: /^server$/ },
      { what: 'dangling route', body: { ...BASE, models: [{ name: 'm', targets: [{ provider: 'nobody' }] }] }, path: /^models\[0\]\.targets\[0\]\.provider$/ },
      { what: 'YAML syntax error', body: 'providers: [\n', path: /^$/ },
    ];
    for (const c of cases) {
      const res = await admin(gw.adminUrl, { path: '/admin/config', body: c.body });
      assert.equal(res.status, 400, `${c.what}: ${res.text}`);
      const error = res.json.error as { message: string; issues: Issue[] };
      assert.match(error.message, /running config is unchanged/);
      assert.ok(error.issues.some((i) => c.path.test(i.path)), `${c.what}: an issue at ${c.path}: ${JSON.stringify(error.issues)}`);
      assert.equal(res.json.generation, gen0, `${c.what}: generation unchanged`);
      assert.equal(res.headers['x-sluice-config-generation'], String(gen0));
    }

    const after = await admin(gw.adminUrl, { path: '/admin/config' });
    assert.equal(after.text, before.text, 'the running config is the same');
    assert.equal(await configGeneration(gw.adminUrl), gen0);
    const ended = await live.ended;
    const stream = summarizeStream(ended.text);
    assert.equal(stream.deltas.length, 20);
    assert.ok(stream.done && !ended.cut, 'the stream finished');
    const answers = statusAndModel(await onFreshConnections(gw.url, 'mock', 8));
    assert.deepEqual(answers, answers.map(() => [200, 'mock']));
    await gw.stop();
  });
});

describe('POST /admin/reload', () => {
  it('re-reads the --config file', async () => {
    const file = writeTempConfig(BASE, 'reload-source.json');
    const gw = await startGateway({ configPath: file, args: TWO_WORKERS });
    const gen0 = await configGeneration(gw.adminUrl);
    writeFileSync(file, JSON.stringify(WITH_FRESH));
    const res = await admin(gw.adminUrl, { method: 'POST', path: '/admin/reload' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.applied_generation, gen0 + 1);
    const fresh = statusAndModel(await onFreshConnections(gw.url, 'fresh'));
    assert.deepEqual(fresh, fresh.map(() => [200, 'mock-large']));

    // A broken file is refused like a PUT: 400 naming the path, nothing changes.
    writeFileSync(file, JSON.stringify({ providers: [{ name: 'mock', type: 'mock', colour: 'blue' }] }));
    const bad = await admin(gw.adminUrl, { method: 'POST', path: '/admin/reload' });
    assert.equal(bad.status, 400, bad.text);
    assert.ok((bad.json.error as { issues: Issue[] }).issues.some((i) => i.path === 'providers[0]' && /colour/.test(i.message)));
    assert.equal(await configGeneration(gw.adminUrl), gen0 + 1);
    assert.equal((await onFreshConnections(gw.url, 'fresh', 4)).every((r) => r.status === 200), true);
    await gw.stop();
  });

  it('without --config answers 409 and says why', async () => {
    const gw = await startGateway({ args: TWO_WORKERS });
    const gen0 = await configGeneration(gw.adminUrl);
    const res = await admin(gw.adminUrl, { method: 'POST', path: '/admin/reload' });
    assert.equal(res.status, 409, res.text);
    assert.match((res.json.error as { message: string }).message, /started without --config/);
    assert.equal(res.json.generation, gen0);
    await gw.stop();
  });
});
