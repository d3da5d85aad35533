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

  it('time per call covers the end of a request too: an overrun in on_log replaces the instance', async () => {
    const f = await plugin('abi-probe', { limits: { call_ms: 5 } });
    const first = f.runtime.current!;
    const ctx = chatContext({ headers: { 'x-probe': 'spin-log:30' } });
    assert.equal(await runRequest(f, ctx), undefined);
    finishResponse(f, ctx);
    assert.equal(f.stats.overruns, 1);
    assert.equal(first.usable, false);
    const next = chatContext();
    assert.equal(await runRequest(f, next), undefined);
    assert.notEqual(f.runtime.current, first, 'the next request runs on a new instance');
    finishResponse(f, next);
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

describe('a trap while requests are paused on the instance', () => {
  // Calls upstream "up" from on_request_headers and pauses; traps in on_http_call_response.
  const wat = `(module
    (import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 16) "up")
    ;; headers: 3 pairs (:method GET, :path /, :authority up)
    (data (i32.const 64) "\\03\\00\\00\\00\\07\\00\\00\\00\\03\\00\\00\\00\\05\\00\\00\\00\\01\\00\\00\\00\\0a\\00\\00\\00\\02\\00\\00\\00:method\\00GET\\00:path\\00/\\00:authority\\00up\\00")
    (global $heap (mut i32) (i32.const 1024))
    (func (export "proxy_abi_version_0_2_1"))
    (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
      (local $p i32) (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
    (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
      (drop (call $call (i32.const 16) (i32.const 2) (i32.const 64) (i32.const 62)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 8)))
      (i32.const 1))
    (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32) (unreachable)))`;

  it('releases every request paused on it with the fail policy, and the next request gets a new instance', async () => {
    const answers: (() => void)[] = [];
    const httpCaller = {
      has: (u: string) => u === 'up',
      call: () =>
        new Promise<{ status: number; headers: [string, string][]; body: Uint8Array; trailers: [string, string][] }>((resolve) => {
          answers.push(() => resolve({ status: 200, headers: [], body: new Uint8Array(0), trailers: [] }));
        }),
    };
    const f = await createWasmPluginFilter(
      { name: 'trap-on-answer', path: await moduleFile(wat), fail: 'closed' },
      recordingDeps({ httpCaller }),
    );
    const first = f.runtime.current!;
    const a = f.onRequestHeaders!(chatContext()) as Promise<unknown>;
    const b = f.onRequestHeaders!(chatContext()) as Promise<unknown>;
    assert.equal(answers.length, 2);
    answers[0]!();
    const [ra, rb] = (await Promise.all([a, b])) as { status: number }[];
    assert.equal(ra!.status, 500);
    assert.equal(rb!.status, 500, 'the other paused request is released too');
    answers[1]!(); // a late answer for the dead instance is dropped
    const c = f.onRequestHeaders!(chatContext()) as Promise<unknown>;
    assert.notEqual(f.runtime.current, first);
    answers[2]!();
    assert.equal(((await c) as { status: number }).status, 500);
  });
});
