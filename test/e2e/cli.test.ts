/**
 * The `sluice` command as users run it: version, help, usage errors, `validate`, `schema`, `start`
 * failures, sidecar mode (`--upstream`), the no-config default (`npm start`) with its printed curl
 * line, providers from environment keys, and SIGHUP reload / SIGTERM drain.
 */

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import {
  REPO_ROOT,
  cleanupE2E,
  postJson,
  raw,
  runSluice,
  startGateway,
  startMock,
  writeTempConfig,
} from '../helpers/index.js';

const VERSION = (JSON.parse(readFileSync(`${REPO_ROOT}/package.json`, 'utf8')) as { version: string }).version;

let mockPort: number;

before(async () => {
  const mock = await startMock({ models: ['sidecar-a', 'sidecar-b'] });
  mockPort = mock.port;
});

after(cleanupE2E);

describe('one-shot commands', () => {
  it('--version prints the package version, exit 0', async () => {
    const r = await runSluice(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), VERSION);
    assert.equal(r.stderr, '');
  });

  it('--help prints usage, exit 0; no command prints it too, exit 2', async () => {
    const help = await runSluice(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage:/);
    for (const cmd of ['start', 'validate', 'schema', 'mock']) assert.match(help.stdout, new RegExp(`sluice ${cmd}`));
    const none = await runSluice([]);
    assert.equal(none.code, 2);
    assert.match(none.stdout, /Usage:/);
  });

  it('an unknown command exits 2 and names it', async () => {
    const r = await runSluice(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command "frobnicate"/);
    assert.match(r.stderr, /--help/);
  });

  it('an unknown flag or a bad --port is a usage error, exit 2', async () => {
    assert.equal((await runSluice(['start', '--no-such-flag'])).code, 2);
    const port = await runSluice(['start', '--port', 'eighty']);
    assert.equal(port.code, 2);
    assert.match(port.stderr, /--port/);
  });

  it('validate: a good file is valid, exit 0', async () => {
    const good = writeTempConfig('providers:\n  - name: local\n    type: mock\nmodels:\n  - name: m\n    targets: [{ provider: local }]\n', 'good.yaml');
    const r = await runSluice(['validate', good]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /good\.yaml: valid/);
  });

  it('validate: a bad file exits 78 and names the path of each problem', async () => {
    const bad = writeTempConfig('providers:\n  - name: p\n    type: 42\n  - name: q\n    type: mock\n    colour: blue\n', 'bad.yaml');
    const r = await runSluice(['validate', bad]);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /bad\.yaml/);
    assert.match(r.stderr, /providers\[0\]\.type/);
    assert.match(r.stderr, /providers\[1\]: unknown key "colour"/);
    // Cross-references are checked once the shapes are right (zod runs refinements last).
    const dangling = writeTempConfig('providers:\n  - name: q\n    type: mock\nmodels:\n  - name: m\n    targets: [{ provider: nobody }]\n', 'dangling.yaml');
    const d = await runSluice(['validate', dangling]);
    assert.equal(d.code, 78);
    assert.match(d.stderr, /models\[0\]\.targets\[0\]\.provider: unknown provider "nobody"/);
  });

  it('validate: a missing file or an unset variable exits 78', async () => {
    const missing = await runSluice(['validate', '/nonexistent/sluice.yaml']);
    assert.equal(missing.code, 78);
    assert.match(missing.stderr, /file not found/);
    const unset = writeTempConfig('providers:\n  - name: o\n    type: openai\n    api_key: ${SLUICE_TEST_UNSET_KEY}\n', 'unset.yaml');
    const r = await runSluice(['validate', unset]);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /providers\[0\]\.api_key: environment variable SLUICE_TEST_UNSET_KEY is not set/);
  });

  it(
    'validate: a provider that cannot be built (unknown type, missing key) is invalid, exit 78',
    async () => {
      const unknownType = writeTempConfig('providers:\n  - name: p\n    type: nosuch\n', 'unknown-type.yaml');
      const r = await runSluice(['validate', unknownType]);
      assert.equal(r.code, 78, `validate exit ${r.code}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /providers\[0\]\.type|provider "p"/);
      const noKey = writeTempConfig('providers:\n  - name: o\n    type: openai\n', 'no-key.yaml');
      assert.equal((await runSluice(['validate', noKey])).code, 78);
      assert.equal((await runSluice(['start', '--config', unknownType, '--port', '0'])).code, 78);
    },
  );

  it('schema prints a JSON Schema with properties.providers', async () => {
    const r = await runSluice(['schema']);
    assert.equal(r.code, 0);
    const schema = JSON.parse(r.stdout);
    assert.equal(schema.type, 'object');
    assert.ok(schema.properties.providers, 'properties.providers');
    assert.ok(schema.properties.models && schema.properties.filters && schema.properties.server);
    assert.match(String(schema.$schema), /json-schema/);
  });
});

describe('start failures', () => {
  let blocker: Server;
  let busyPort: number;

  before(async () => {
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    busyPort = (blocker.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));

  it('a port already in use: clear message, non-zero exit, no banner', async () => {
    const config = writeTempConfig({ providers: [{ name: 'mk', type: 'mock' }] });
    const r = await runSluice(['start', '--config', config, '--host', '127.0.0.1', '--port', String(busyPort)]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`port ${busyPort}.*already in use`));
    assert.doesNotMatch(r.stdout, /listening/);
  });

  it('a missing config file: exit 78', async () => {
    const r = await runSluice(['start', '--config', '/nonexistent/x.yaml', '--port', '0']);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /file not found/);
  });
});

describe('sidecar mode: start --upstream URL', () => {
  it("serves the upstream's /v1/models models and chats through them", async () => {
    const gw = await startGateway({ args: ['--upstream', `http://127.0.0.1:${mockPort}`, '--port', '0'] });
    assert.match(gw.stdout(), /providers: upstream \(openai-compatible\)/);
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const ids: string[] = [];
    for await (const m of openai.models.list()) ids.push(m.id);
    assert.deepEqual(ids.sort(), ['sidecar-a', 'sidecar-b']);
    const res = await openai.chat.completions.create({ model: 'sidecar-b', messages: [{ role: 'user', content: 'via the sidecar' }] });
    assert.equal(res.choices[0]!.message.content, 'Echo: via the sidecar');
    const anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'k', maxRetries: 0 });
    const msg = await anthropic.messages.create({ model: 'sidecar-a', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(msg.content[0]?.type === 'text' && msg.content[0].text, 'Echo: hi');
    assert.deepEqual(await gw.stop(), { code: 0, signal: null });
  });
});

describe('no config file (npm start)', () => {
  it('serves the built-in mock and prints a curl line that works', async () => {
    const gw = await startGateway({ args: ['--port', '0'] });
    assert.match(gw.stdout(), /providers: mock \(mock\)/);
    // Wait for the whole banner (it is written in one piece, but may arrive in several reads).
    const deadline = Date.now() + 2000;
    while (!/-d '.*'/.test(gw.stdout()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const out = gw.stdout();
    const url = /curl (http:\/\/\S+)/.exec(out)?.[1];
    const body = /-d '([^']*)'/.exec(out)?.[1];
    assert.ok(url && body, `a curl line in:\n${out}`);
    assert.match(out, /-H 'content-type: application\/json'/);
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(res.status, 200);
    const json = (await res.json()) as { choices: { message: { content: string } }[]; model: string };
    assert.equal(json.model, 'mock');
    assert.equal(json.choices[0]!.message.content, 'Echo: Hello, Sluice!');
    assert.deepEqual(await gw.stop(), { code: 0, signal: null }, 'SIGTERM drains and exits 0');
  });

  it('provider keys in the environment add providers (ANTHROPIC_API_KEY + ANTHROPIC_BASE_URL)', async () => {
    const gw = await startGateway({
      args: ['--port', '0'],
      env: { ANTHROPIC_API_KEY: 'env-key', ANTHROPIC_BASE_URL: `http://127.0.0.1:${mockPort}` },
    });
    assert.match(gw.stdout(), /anthropic \(anthropic\)/);
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const res = await openai.chat.completions.create({ model: 'claude-test', messages: [{ role: 'user', content: 'from env' }] });
    assert.equal(res.choices[0]!.message.content, 'Echo: from env');
    const viaMock = await postJson(gw.url, '/v1/chat/completions', { model: 'mock', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(viaMock.headers['x-sluice-provider'], 'mock');
    await gw.stop();
  });
});

describe('signals', () => {
  it('SIGTERM drains: a stream in flight completes, then the process exits 0', async () => {
    const gw = await startGateway({ config: { providers: [{ name: 'mk', type: 'mock' }] } });
    // About a second of stream: 10 tokens at 10 per second.
    const pending = postJson(
      gw.url,
      '/v1/chat/completions',
      { model: 'mock', stream: true, messages: [{ role: 'user', content: 'a b c d e f g h i' }] },
      { 'x-mock-tps': '10' },
    );
    await new Promise((r) => setTimeout(r, 300));
    process.kill(gw.pid, 'SIGTERM');
    const res = await pending;
    assert.equal(res.status, 200);
    assert.ok(res.text.trimEnd().endsWith('data: [DONE]'), 'the stream finished');
    assert.deepEqual(await gw.exited, { code: 0, signal: null });
    assert.match(gw.stderr(), /"msg":"draining"/);
  });

  it('SIGHUP reloads --config; an invalid new file keeps the running config', async () => {
    const config = writeTempConfig({ providers: [{ name: 'mk', type: 'mock' }], models: [{ name: 'first', targets: [{ provider: 'mk', model: 'mock' }] }] }, 'reload.json');
    const gw = await startGateway({ configPath: config });
    const status = async (model: string) => (await postJson(gw.url, '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'x' }] })).status;
    assert.equal(await status('first'), 200);
    assert.equal(await status('second'), 404);

    writeFileSync(config, JSON.stringify({ providers: [{ name: 'mk', type: 'mock' }], models: [{ name: 'second', targets: [{ provider: 'mk', model: 'mock' }] }] }));
    process.kill(gw.pid, 'SIGHUP');
    const until = Date.now() + 3000;
    while ((await status('second')) !== 200 && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
    assert.equal(await status('second'), 200, 'the new route is served');
    assert.equal(await status('first'), 404, 'the old one is gone');

    writeFileSync(config, '{ "providers": [ { "name": "mk", "type": 42 } ] }');
    process.kill(gw.pid, 'SIGHUP');
    const logged = Date.now() + 3000;
    while (!/reload failed/.test(gw.stderr()) && Date.now() < logged) await new Promise((r) => setTimeout(r, 25));
    assert.match(gw.stderr(), /reload failed; keeping the running config/);
    assert.equal(await status('second'), 200);
    assert.equal((await raw(gw.url, { path: '/healthz' })).status, 200);
    assert.deepEqual(await gw.stop(), { code: 0, signal: null });
  });
});
