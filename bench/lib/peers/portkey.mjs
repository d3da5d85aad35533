/**
 * The Portkey AI gateway (Node build) as a peer gateway. Installed once with npm into
 * bench/.peers/portkey (git-ignored); `@hono/node-server` is pinned through npm overrides.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../ports.mjs';
import { spawnReady } from '../processes.mjs';

export const PORTKEY_VERSION = '1.15.2';
const HONO_NODE_SERVER_VERSION = '1.14.1';

function installedVersion(dir) {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'node_modules/@portkey-ai/gateway/package.json'), 'utf8'));
    return pkg.version;
  } catch {
    return null;
  }
}

/**
 * Makes sure `dir` holds @portkey-ai/gateway@PORTKEY_VERSION; installs it with npm if not.
 * @returns {{ version: string, installed: boolean }}
 * @throws with npm's last lines when the install fails
 */
export function ensurePortkey(dir, log = console.log) {
  if (installedVersion(dir) === PORTKEY_VERSION) return { version: PORTKEY_VERSION, installed: false };
  mkdirSync(dir, { recursive: true });
  const manifest = {
    name: 'sluice-bench-peer-portkey',
    private: true,
    description: 'Scratch install of the Portkey gateway for bench/gateway.mjs; not part of Sluice.',
    dependencies: { '@portkey-ai/gateway': PORTKEY_VERSION },
    overrides: { '@hono/node-server': HONO_NODE_SERVER_VERSION },
  };
  writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
  log(`installing @portkey-ai/gateway@${PORTKEY_VERSION} into ${dir} (once) ...`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 600_000,
  });
  const version = installedVersion(dir);
  if (r.status !== 0 || version !== PORTKEY_VERSION) {
    const why = (r.error?.message ?? `${r.stderr}${r.stdout}`).trim().split('\n').slice(-4).join(' | ');
    throw new Error(`npm install @portkey-ai/gateway@${PORTKEY_VERSION} failed: ${why || `exit ${r.status}`}`);
  }
  return { version, installed: true };
}

/**
 * Starts the Portkey gateway on a free port (its CLI takes `--port=N`; `--headless` drops the UI).
 * @returns {Promise<{ proc, origin: string, version: string }>}
 */
export async function startPortkey(dir) {
  const entry = join(dir, 'node_modules/@portkey-ai/gateway/build/start-server.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing`);
  const port = await freePort();
  const { proc } = await spawnReady('portkey', process.execPath, [entry, `--port=${port}`, '--headless'], {
    cwd: dir,
    ready: /Ready for connections/,
    timeoutMs: 30_000,
  });
  return { proc, origin: `http://127.0.0.1:${port}`, version: installedVersion(dir) ?? 'unknown' };
}

/** Headers that make Portkey forward an OpenAI-style request to `upstreamBase` (…/v1). */
export function portkeyHeaders(upstreamBase) {
  return { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': upstreamBase };
}
