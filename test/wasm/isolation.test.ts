import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { GatewayError } from '../../src/errors.js';
import { createWasmPluginFilter } from '../../src/wasm/index.js';
import { chatContext, finishResponse, plugin, moduleFile, recordingDeps, runRequest } from './helpers.js';

describe('traps, limits and the fail policy', () => {
  it('fail closed: a trap answers 500, the next request gets a fresh instance', async () => {
    const deps = recordingDeps();
    const f = await plugin('abi-probe', { fail: 'closed' }, deps);
    const first = f.runtime.current!;
    const ctx = chatContext({ headers: { 'x-probe': 'trap' } });
    const reply = await runRequest(f, ctx);
    assert.equal(reply?.status, 500);
    assert.ok(reply?.error instanceof GatewayError);
    assert.equal(reply.error.code, 'internal_error');
    f.onDone?.(ctx);
    assert.equal(first.usable, false);
    assert.ok(deps.lines.some((l) => l.level === 4 && /unreachable/i.test(l.message)));

    const ok = chatContext();
    assert.equal(await runRequest(f, ok), undefined);
    finishResponse(f, ok);
    assert.notEqual(f.runtime.current, first, 're-instantiated from the cached module');
    assert.equal(f.stats.instances, 2);
    assert.equal(f.stats.failures, 1);
  });

  it('fail open: a trap skips the plugin for that request', async () => {
    const f = await plugin('abi-probe', { fail: 'open' });
    const ctx = chatContext({ headers: { 'x-probe': 'trap' } });
    assert.equal(await runRequest(f, ctx), undefined);
    finishResponse(f, ctx);
    const next = chatContext({ headers: { 'x-probe': 'statuses' } });
    await runRequest(f, next);
    assert.equal(next.upstreamHeaderEdits.set['x-probe-grpc'], '12', 'the new instance works');
  });

  it('a trap does not disturb requests in flight on other plugins or instances', async () => {
    const a = await plugin('abi-probe', { name: 'probe-a' });
    const b = await plugin('header-rewriter', { config: { request: { set: { 'x-b': '1' } } } });
    const ctxB = chatContext();
    await b.onRequestHeaders!(ctxB);
    const ctxA = chatContext({ headers: { 'x-probe': 'trap' } });
    await runRequest(a, ctxA);
    await b.onRequestBody!(ctxB);
    finishResponse(b, ctxB);
    assert.equal(ctxB.upstreamHeaderEdits.set['x-b'], '1');
  });

  it('memory cap: growing past limits.memory_mb traps instead of taking the host down', async () => {
    const f = await plugin('abi-probe', { limits: { memory_mb: 2 }, fail: 'closed' });
    const ctx = chatContext({ headers: { 'x-probe': 'grow' } });
    const reply = await runRequest(f, ctx);
    assert.equal(reply?.status, 500);
    const vm = f.runtime.current!;
    assert.ok(vm.memoryBytes <= 2 * 1024 * 1024, `memory stayed under the cap (${vm.memoryBytes})`);
  });

  it('memory cap: a module that needs more at start than the cap is refused at load', async () => {
    // 32 pages (2 MiB) at start against a 1 MiB cap.
    const wat = '(module (memory (export "memory") 32) (func (export "proxy_abi_version_0_2_1")))';
    const file = await moduleFile(wat, 'big.wasm');
    await assert.rejects(
      createWasmPluginFilter({ name: 'big', path: file, limits: { memory_mb: 1 } }, recordingDeps()),
      /needs 2048 KiB of memory at start/,
    );
  });

  it('time per call: an overrun applies the fail policy and replaces the instance', async () => {
    const f = await plugin('abi-probe', { limits: { call_ms: 5 }, fail: 'closed' });
    const first = f.runtime.current!;
    const ctx = chatContext({ headers: { 'x-probe': 'spin:30' } });
    const reply = await runRequest(f, ctx);
    assert.equal(reply?.status, 500);
    assert.equal(f.stats.overruns, 1);
    assert.equal(first.usable, false);
    f.onDone?.(ctx);
  });

  it('a request paused with nothing to resume it ends after limits.pause_ms (fail open continues)', async () => {
    const f = await plugin('abi-probe', { limits: { pause_ms: 20 }, fail: 'open' });
    const ctx = chatContext({ headers: { 'x-probe': 'pause' } });
    const started = performance.now();
    assert.equal(await runRequest(f, ctx), undefined);
    assert.ok(performance.now() - started >= 15);
    f.onDone?.(ctx);
    assert.equal(f.runtime.current?.usable, true, 'a pause timeout is not a trap');
  });

  it('a request body that is not JSON after the plugin edited it follows the fail policy', async () => {
    const closed = await plugin('abi-probe', { fail: 'closed' });
    const ctx = chatContext({ headers: { 'x-probe': 'bad-body' } });
    assert.equal((await runRequest(closed, ctx))?.status, 500);
    const open = await plugin('abi-probe', { fail: 'open' });
    const ctx2 = chatContext({ headers: { 'x-probe': 'bad-body' } });
    assert.equal(await runRequest(open, ctx2), undefined);
    assert.equal(ctx2.bodyChanged, false, 'the original body is kept');
  });

  it('crash loop: past restarts_per_minute the plugin is unavailable (503 when closed)', async () => {
    const f = await plugin('abi-probe', { limits: { restarts_per_minute: 2 }, fail: 'closed' });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const ctx = chatContext({ headers: { 'x-probe': 'trap' } });
      statuses.push((await runRequest(f, ctx))?.status ?? 200);
      f.onDone?.(ctx);
    }
    assert.deepEqual(statuses, [500, 500, 500, 503, 503]);
    assert.equal(f.stats.instances, 3);
    assert.ok(f.stats.unavailable >= 2);
  });

  it('no file or network access: WASI has no preopened directories', async () => {
    // The plugin can only reach what the ABI gives it; here: the probe's imports link without fs.
    const f = await plugin('abi-probe');
    const { Wasm } = await import('../../src/wasm/wasm-api.js');
    const imports = Wasm.Module.imports(f.runtime.compiled.module).map((i) => i.module);
    assert.ok(imports.every((m) => m === 'env' || m === 'wasi_snapshot_preview1'));
  });
});
