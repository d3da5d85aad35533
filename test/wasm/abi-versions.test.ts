import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { detectAbiVersion, UnsupportedAbiError } from '../../src/wasm/abi-version.js';
import { createWasmPluginFilter } from '../../src/wasm/index.js';
import { Wasm } from '../../src/wasm/wasm-api.js';
import { assemble, chatContext, finishResponse, moduleFile, plugin, recordingDeps, runRequest } from './helpers.js';

const marker = (name: string) => `(module (memory (export "memory") 1) (func (export "${name}")))`;

describe('ABI version detection and the 0.1.0 plugin', () => {
  it('reads the version from the marker export, newest first', async () => {
    const mod = async (wat: string) => new Wasm.Module(await assemble(wat));
    assert.equal(detectAbiVersion(await mod(marker('proxy_abi_version_0_1_0'))), '0.1.0');
    assert.equal(detectAbiVersion(await mod(marker('proxy_abi_version_0_2_0'))), '0.2.0');
    assert.equal(detectAbiVersion(await mod(marker('proxy_abi_version_0_2_1'))), '0.2.1');
    const both =
      '(module (memory 1) (func (export "proxy_abi_version_0_1_0")) (func (export "proxy_abi_version_0_2_1")))';
    assert.equal(detectAbiVersion(await mod(both)), '0.2.1');
    assert.throws(() => detectAbiVersion(new Wasm.Module(Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0))), UnsupportedAbiError);
  });

  it('refuses a module without a marker, or with an unknown version, at load', async () => {
    const none = await moduleFile('(module (memory (export "memory") 1) (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1)))');
    await assert.rejects(createWasmPluginFilter({ name: 'none', path: none }, recordingDeps()), /no proxy_abi_version_\* marker/);
    const future = await moduleFile(marker('proxy_abi_version_0_3_0'));
    await assert.rejects(createWasmPluginFilter({ name: 'future', path: future }, recordingDeps()), /unsupported ABI versions: proxy_abi_version_0_3_0/);
  });

  it('runs the hand-written 0.1.0 plugin: malloc, proxy_get_configuration, proxy_continue_request, 2-argument header callbacks', async () => {
    const deps = recordingDeps();
    const f = await plugin('legacy-tagger', { config: 'tag-42' }, deps);
    assert.equal(f.runtime.compiled.abi, '0.1.0');
    assert.ok(deps.lines.some((l) => l.message === 'legacy-tagger configured' && l.level === 2));
    const ctx = chatContext();
    assert.equal(await runRequest(f, ctx), undefined, 'continue_request before Pause counts as continue');
    assert.equal(ctx.upstreamHeaderEdits.set['x-legacy-abi'], '0.1.0');
    assert.equal(ctx.upstreamHeaderEdits.set['x-legacy-config'], 'tag-42');
    finishResponse(f, ctx);
    assert.equal(ctx.responseHeaders['x-legacy-abi'], '0.1.0');
  });

  it('runs a 0.2.0 module: three-argument header callbacks receive end_of_stream', async () => {
    // Records the third argument of proxy_on_request_headers as a header value ("0" or "1").
    const wat = `(module
      (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "x-eos01")
      (global $heap (mut i32) (i32.const 1024))
      (func (export "proxy_abi_version_0_2_0"))
      (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
        (local $p i32) (local.set $p (global.get $heap))
        (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
      (func (export "proxy_on_context_create") (param i32 i32))
      (func (export "proxy_on_request_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
        (drop (call $add (i32.const 0) (i32.const 16) (i32.const 5)
          (i32.add (i32.const 21) (local.get $eos)) (i32.const 1)))
        (i32.const 0)))`;
    const f = await createWasmPluginFilter({ name: 'v020', path: await moduleFile(wat) }, recordingDeps());
    assert.equal(f.runtime.compiled.abi, '0.2.0');
    const ctx = chatContext();
    await runRequest(f, ctx);
    assert.equal(ctx.upstreamHeaderEdits.set['x-eos'], '0', 'headers arrive with end_of_stream=false (a body follows)');
    f.onDone?.(ctx);
  });
});
