import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

import { PluginSchema, WasmPluginManager, type HttpCaller, type PluginConfigInput } from '../../src/wasm/index.js';
import { ModuleCache } from '../../src/wasm/module-loader.js';
import { chatContext, finishResponse, pluginPath, recordingDeps, runRequest } from './helpers.js';

const parse = (list: PluginConfigInput[]) => list.map((p) => PluginSchema.parse(p));

/** A full collection on demand, without starting the test runner with --expose-gc. */
function collectGarbage(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

describe('hot reload through WasmPluginManager', () => {
  it('keeps an unchanged plugin running, replaces a changed one, retires a removed one; in-flight requests finish', async () => {
    const deps = recordingDeps();
    const manager = new WasmPluginManager(deps);
    const rewriter = (value: string): PluginConfigInput => ({
      name: 'rewriter',
      path: pluginPath('header-rewriter'),
      config: { request: { set: { 'x-version': value } } },
    });
    const meter: PluginConfigInput = { name: 'meter', path: pluginPath('usage-meter'), config: { tick_ms: 1000 } };

    const v1 = await manager.prepare(parse([rewriter('1'), meter]));
    manager.activate(v1);
    const inflight = chatContext();
    await v1.get('rewriter')!.onRequestHeaders!(inflight);

    // Same meter, new rewriter config.
    const v2 = await manager.prepare(parse([rewriter('2'), meter]));
    assert.equal(v2.get('meter'), v1.get('meter'), 'unchanged plugin keeps its filter and instance');
    assert.notEqual(v2.get('rewriter'), v1.get('rewriter'));
    manager.activate(v2);

    // The request that started on v1 finishes on v1's instance.
    await v1.get('rewriter')!.onRequestBody!(inflight);
    finishResponse(v1.get('rewriter')!, inflight);
    assert.equal(inflight.upstreamHeaderEdits.set['x-version'], '1');

    const fresh = chatContext();
    await runRequest(v2.get('rewriter')!, fresh);
    assert.equal(fresh.upstreamHeaderEdits.set['x-version'], '2');

    // Remove the meter: it is retired (ticks and queue listeners stop) but still serves requests
    // that started on the old snapshot.
    const meterVm = v2.get('meter')!.runtime.current!;
    assert.notEqual((meterVm as unknown as { tickTimer: unknown }).tickTimer, undefined, 'ticking while live');
    const v3 = await manager.prepare(parse([rewriter('2')]));
    assert.equal(v3.get('rewriter'), v2.get('rewriter'));
    manager.activate(v3);
    assert.equal((meterVm as unknown as { tickTimer: unknown }).tickTimer, undefined, 'ticks stopped');
    const late = chatContext();
    await runRequest(v2.get('meter')!, late);
    finishResponse(v2.get('meter')!, late);
    assert.ok(late.responseHeaders['x-usage-count'], 'a request on the old snapshot still runs through the retired plugin');
    const live = v3.get('rewriter')!.runtime.current!;
    manager.close();
    assert.equal(live.usable, false, 'closing the manager ends the live instances');
  });

  it('a request waiting for its HTTP call when its plugin is removed still gets the answer', async () => {
    let answer: (() => void) | undefined;
    const httpCaller: HttpCaller = {
      has: (name) => name === 'authz',
      call: () =>
        new Promise((resolve) => {
          answer = () => resolve({ status: 200, headers: [['x-consumer', 'late-team']], body: new Uint8Array(0), trailers: [] });
        }),
    };
    const manager = new WasmPluginManager(recordingDeps({ httpCaller }));
    const v1 = await manager.prepare(parse([{ name: 'auth', path: pluginPath('external-auth'), config: { upstream: 'authz', path: '/check' } }]));
    manager.activate(v1);
    const ctx = chatContext();
    const pending = v1.get('auth')!.onRequestHeaders!(ctx);
    assert.ok(pending instanceof Promise);
    manager.activate(await manager.prepare([]));
    answer!();
    assert.equal(await pending, undefined, 'continued, not failed');
    assert.equal(ctx.upstreamHeaderEdits.set['x-consumer'], 'late-team');
    manager.close();
  });

  it('nothing keeps a retired plugin: its instance, memory and filter are collectable once its requests are done', async () => {
    const gc = collectGarbage();
    const manager = new WasmPluginManager(recordingDeps());
    const refs: WeakRef<object>[] = [];
    // Plugin, no plugin, plugin …: what a config toggled through the admin API does.
    for (let i = 0; i < 6; i++) {
      const set = await manager.prepare(parse(i % 2 === 0 ? [{ name: 'meter', path: pluginPath('usage-meter'), config: { tick_ms: 5 } }] : []));
      manager.activate(set);
      const f = set.get('meter');
      if (f === undefined) continue;
      const ctx = chatContext();
      await runRequest(f, ctx);
      finishResponse(f, ctx);
      refs.push(new WeakRef(f), new WeakRef(f.runtime), new WeakRef(f.runtime.current!), new WeakRef(f.runtime.current!.mem));
    }
    manager.activate(await manager.prepare([]));
    for (let i = 0; i < 5 && refs.some((r) => r.deref() !== undefined); i++) {
      await new Promise((r) => setTimeout(r, 10));
      gc();
    }
    assert.deepEqual(
      refs.map((r) => r.deref()?.constructor.name).filter((n) => n !== undefined),
      [],
      'filters, runtimes, instances and memories of retired plugins are all collected',
    );
    manager.close();
  });

  it('a reload with a plugin that cannot start fails as a whole and leaves the live set alone', async () => {
    const manager = new WasmPluginManager(recordingDeps());
    const good = await manager.prepare(parse([{ name: 'noop', path: pluginPath('noop') }]));
    manager.activate(good);
    await assert.rejects(
      manager.prepare(parse([{ name: 'noop', path: pluginPath('noop') }, { name: 'bad', path: pluginPath('system-prompt'), config: {} }])),
      /rejected its configuration/,
    );
    const ctx = chatContext();
    assert.equal(await runRequest(good.get('noop')!, ctx), undefined);
    manager.close();
  });

  it('compiles a module once per hash, whatever its path; checks sha256; loads file URLs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-wasm-'));
    const copy = join(dir, 'copy.wasm');
    copyFileSync(pluginPath('noop'), copy);
    const sha = createHash('sha256').update(readFileSync(copy)).digest('hex');
    const cache = new ModuleCache();
    const a = await cache.load({ name: 'a', path: pluginPath('noop') }, 1024);
    const b = await cache.load({ name: 'b', url: pathToFileURL(copy).href, sha256: sha }, 1024);
    assert.equal(a, b);
    assert.equal(cache.size, 1);
    await assert.rejects(cache.load({ name: 'c', path: copy, sha256: '0'.repeat(64) }, 1024), /sha256 mismatch/);
    // A pinned hash that is already compiled is not fetched again (a reload of a URL plugin).
    assert.equal(await cache.load({ name: 'f', url: 'https://plugins.invalid/noop.wasm', sha256: sha }, 1024), a);
    writeFileSync(join(dir, 'junk.wasm'), 'not wasm');
    await assert.rejects(cache.load({ name: 'd', path: join(dir, 'junk.wasm') }, 1024), /not a WebAssembly binary/);
    await assert.rejects(cache.load({ name: 'e', path: join(dir, 'missing.wasm') }, 1024), /cannot read .*ENOENT/);
  });
});
