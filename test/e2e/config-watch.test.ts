/**
 * Watching --config: a save reloads every worker within about a second, whether the editor writes
 * the file in place or writes a temporary file and renames it over; an invalid save is logged and
 * the running config keeps serving; the watch survives all of these.
 */

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  cleanupE2E,
  configGeneration,
  onFreshConnections,
  postJson,
  startGateway,
  statusAndModel,
  waitFor,
  writeTempConfig,
  type GatewayProcess,
} from '../helpers/index.js';

after(cleanupE2E);

const TWO_WORKERS = ['--port', '0', '--workers', '2'];
/** The watcher folds a save's burst of events for 300 ms, then every worker swaps: ~1 s is ample. */
const RELOAD_WITHIN_MS = 1_500;

/** A config whose only route is `name` → mock-large. */
function routeConfig(name: string): string {
  return JSON.stringify({
    log: { level: 'info' },
    providers: [{ name: 'mock', type: 'mock' }],
    models: [{ name, targets: [{ provider: 'mock', model: 'mock-large' }] }],
  });
}

async function status(gw: GatewayProcess, model: string): Promise<number> {
  return (await postJson(gw.url, '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'x' }] })).status;
}

/** Reloads the supervisor finished (it logs one line once every worker acknowledged). */
function appliedCount(gw: GatewayProcess): number {
  return gw.stderr().split('"msg":"config applied"').length - 1;
}

/**
 * Save with `write`, then: `model` is served within the bound, every worker serves it, and the
 * generation went up by exactly one.
 */
async function saveAndExpectReload(gw: GatewayProcess, model: string, generationBefore: number, write: () => void): Promise<void> {
  const appliedBefore = appliedCount(gw);
  const savedAt = performance.now();
  write();
  await waitFor(`${model} served after the save`, async () => (await status(gw, model)) === 200, { timeoutMs: RELOAD_WITHIN_MS * 2, intervalMs: 25 });
  const ms = performance.now() - savedAt;
  assert.ok(ms < RELOAD_WITHIN_MS, `reloaded ${Math.round(ms)} ms after the save`);
  // The first worker to answer may have swapped a moment before the other.
  await waitFor('every worker to acknowledge', () => appliedCount(gw) > appliedBefore, { timeoutMs: 2_000 });
  const answers = statusAndModel(await onFreshConnections(gw.url, model));
  assert.deepEqual(answers, answers.map(() => [200, 'mock-large']), `every worker serves ${model}`);
  assert.equal(await configGeneration(gw.adminUrl), generationBefore + 1, 'one save, one reload');
}

describe('config file watch', () => {
  it('reloads on in-place writes and on rename-over saves; an invalid save keeps the running config', async () => {
    const file = writeTempConfig(routeConfig('first'), 'watched.json');
    const gw = await startGateway({ configPath: file, args: TWO_WORKERS });
    assert.equal(await status(gw, 'first'), 200);
    let gen = await configGeneration(gw.adminUrl);
    assert.equal(appliedCount(gw), 0);

    // 1. In place (truncate + write, like `echo > file` and many editors).
    await saveAndExpectReload(gw, 'second', gen++, () => writeFileSync(file, routeConfig('second')));
    assert.equal(await status(gw, 'first'), 404, 'the old route is gone');

    // 2. Write a temporary file beside it and rename it over (vim, VS Code, atomic writers): the
    // watched inode is replaced.
    const temp = join(dirname(file), '.watched.json.tmp');
    writeFileSync(temp, routeConfig('third'));
    await saveAndExpectReload(gw, 'third', gen++, () => renameSync(temp, file));

    // 3. In place again: the watch follows the new inode.
    await saveAndExpectReload(gw, 'fourth', gen++, () => writeFileSync(file, routeConfig('fourth')));

    // 4. An invalid save: an error in the log, nothing changes, traffic goes on.
    const errorsBefore = gw.stderr().split('config file changed but is invalid').length;
    writeFileSync(file, JSON.stringify({ providers: [{ name: 'mock', type: 'mock', max_connections: 0 }] }));
    await waitFor('the invalid save to be logged', () => gw.stderr().split('config file changed but is invalid').length > errorsBefore, {
      timeoutMs: RELOAD_WITHIN_MS * 2,
    });
    assert.match(gw.stderr(), /"level":"error".*"msg":"config file changed but is invalid; keeping the running config".*providers\[0\]\.max_connections/);
    assert.equal(await configGeneration(gw.adminUrl), gen, 'generation unchanged');
    const answers = statusAndModel(await onFreshConnections(gw.url, 'fourth', 8));
    assert.deepEqual(answers, answers.map(() => [200, 'mock-large']), 'still serving the last good config');

    // 5. Fixed again: the watch is still alive after the invalid save.
    await saveAndExpectReload(gw, 'fifth', gen, () => writeFileSync(file, routeConfig('fifth')));
    await gw.stop();
  });
});
