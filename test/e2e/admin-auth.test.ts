/**
 * Admin API access: a bearer token from SLUICE_ADMIN_TOKEN or admin.token guards every route, every
 * answer (refusals included) carries the config generation, and an admin API on a non-loopback
 * address without a token is refused at start.
 */

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { admin, cleanupE2E, runSluice, startGateway, writeTempConfig, type AdminAnswer, type GatewayProcess } from '../helpers/index.js';

after(cleanupE2E);

const TWO_WORKERS = ['--port', '0', '--workers', '2'];
const MOCK_ONLY = { providers: [{ name: 'mock', type: 'mock' }], log: { level: 'warn' } };

function assertGeneration(res: AdminAnswer, what: string): void {
  assert.equal(typeof res.json.generation, 'number', `${what}: generation in the body`);
  assert.equal(res.headers['x-sluice-config-generation'], String(res.json.generation), `${what}: generation header`);
}

/** Every route refuses without the right bearer token and answers with it. */
async function checkGuarded(gw: GatewayProcess, token: string): Promise<void> {
  // With --config the reload re-reads it (200); without, the route answers 409.
  const reloadStatus = gw.configPath === undefined ? 409 : 200;
  const routes: { method: string; path: string; body?: object; ok: number }[] = [
    { method: 'GET', path: '/admin/workers', ok: 200 },
    { method: 'GET', path: '/admin/config', ok: 200 },
    { method: 'PUT', path: '/admin/config', body: MOCK_ONLY, ok: 200 },
    { method: 'POST', path: '/admin/reload', ok: reloadStatus },
    { method: 'GET', path: '/admin/nothing', ok: 405 },
  ];
  const sameLength = token.replace(/.$/, (c) => (c === 'x' ? 'y' : 'x'));
  const wrong: { what: string; headers?: Record<string, string>; token?: string }[] = [
    { what: 'no token' },
    { what: 'wrong token', token: 'not-the-token' },
    { what: 'wrong token of the same length', token: sameLength },
    { what: 'right token, wrong scheme', headers: { authorization: `Basic ${token}` } },
  ];
  for (const r of routes) {
    for (const w of wrong) {
      const res = await admin(gw.adminUrl, { method: r.method, path: r.path, ...(r.body ? { body: r.body } : {}), ...w });
      assert.equal(res.status, 401, `${r.method} ${r.path} with ${w.what}: ${res.text}`);
      assertGeneration(res, `${r.method} ${r.path} 401`);
      assert.ok(!res.text.includes(token), 'the token is not echoed');
    }
    const res = await admin(gw.adminUrl, { method: r.method, path: r.path, ...(r.body ? { body: r.body } : {}), token });
    assert.equal(res.status, r.ok, `${r.method} ${r.path} with the token: ${res.text}`);
    assertGeneration(res, `${r.method} ${r.path} ${r.ok}`);
  }
}

describe('admin token', () => {
  it('from SLUICE_ADMIN_TOKEN', async () => {
    const token = 'env-admin-token-0123456789';
    const gw = await startGateway({ args: TWO_WORKERS, env: { SLUICE_ADMIN_TOKEN: token } });
    await checkGuarded(gw, token);
    await gw.stop();
  });

  it('from admin.token in the config, which wins over the environment and is redacted', async () => {
    const token = 'config-admin-token-abcdefgh';
    const gw = await startGateway({
      config: { ...MOCK_ONLY, admin: { token } },
      args: TWO_WORKERS,
      env: { SLUICE_ADMIN_TOKEN: 'env-token-not-used-0123456789' },
    });
    await checkGuarded(gw, token);
    const byEnv = await admin(gw.adminUrl, { path: '/admin/workers', token: 'env-token-not-used-0123456789' });
    assert.equal(byEnv.status, 401, 'admin.token wins over SLUICE_ADMIN_TOKEN');
    await gw.stop();
  });

  it('the config shown keeps admin.token redacted', async () => {
    const token = 'config-admin-token-redacted-1';
    const gw = await startGateway({ config: { ...MOCK_ONLY, admin: { token } }, args: TWO_WORKERS });
    const res = await admin(gw.adminUrl, { path: '/admin/config', token });
    assert.equal(res.status, 200);
    assert.equal((res.json.config as { admin: { token: string } }).admin.token, '[redacted]');
    assert.ok(!res.text.includes(token));
    await gw.stop();
  });

  it('a config push cannot change or drop the token: admin settings apply on restart only', async () => {
    const token = 'config-admin-token-kept-12345';
    const gw = await startGateway({ config: { ...MOCK_ONLY, admin: { token } }, args: TWO_WORKERS });
    const withoutToken = { ...MOCK_ONLY, models: [{ name: 'pushed', targets: [{ provider: 'mock', model: 'mock' }] }] };
    const put = await admin(gw.adminUrl, { method: 'PUT', path: '/admin/config', body: withoutToken, token });
    assert.equal(put.status, 200, put.text);
    // The rest of the push applied; the token did not go away.
    assert.equal((await admin(gw.adminUrl, { path: '/admin/workers' })).status, 401);
    const shown = await admin(gw.adminUrl, { path: '/admin/config', token });
    assert.equal(shown.status, 200);
    const config = shown.json.config as { admin: { token?: string }; models: { name: string }[] };
    assert.equal(config.admin.token, '[redacted]');
    assert.equal(config.models[0]?.name, 'pushed');
    assert.match(gw.stderr(), /admin settings change on restart only/);
    await gw.stop();
  });
});

describe('admin API beyond loopback', () => {
  it('without a token: start refuses, exits non-zero and names the token settings', async () => {
    const config = writeTempConfig({ ...MOCK_ONLY, admin: { host: '0.0.0.0' } });
    const r = await runSluice(['start', '--config', config, ...TWO_WORKERS, '--admin-port', '0']);
    assert.notEqual(r.code, 0);
    assert.equal(r.signal, null);
    assert.match(r.stderr, /admin API would listen on 0\.0\.0\.0 without a token/);
    assert.match(r.stderr, /SLUICE_ADMIN_TOKEN/);
    assert.match(r.stderr, /admin\.token/);
    assert.doesNotMatch(r.stdout, /listening/);
  });

  it('with a token: starts, and the token is required', async () => {
    const token = 'exposed-admin-token-987654321';
    const gw = await startGateway({ config: { ...MOCK_ONLY, admin: { host: '0.0.0.0', token } }, args: TWO_WORKERS });
    assert.equal((await admin(gw.adminUrl, { path: '/admin/workers' })).status, 401);
    assert.equal((await admin(gw.adminUrl, { path: '/admin/workers', token })).status, 200);
    await gw.stop();
  });
});
