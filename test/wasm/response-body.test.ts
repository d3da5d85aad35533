import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { ResponseEvent } from '../../src/pipeline/filter.js';
import { createWasmPluginFilter } from '../../src/wasm/index.js';
import { chatContext, moduleFile, recordingDeps, runRequest } from './helpers.js';

describe('response body (phases.response_body)', () => {
  // Replaces every response-body chunk with {"type":"text","choice":0,"text":"X"} and counts the
  // calls with end_of_stream=true in a header it adds on the last one.
  const wat = `(module
    (import "env" "proxy_set_buffer_bytes" (func $set (param i32 i32 i32 i32 i32) (result i32)))
    (import "env" "proxy_get_buffer_status" (func $status (param i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 64) "{\\"type\\":\\"text\\",\\"choice\\":0,\\"text\\":\\"X\\"}")
    (global $heap (mut i32) (i32.const 1024))
    (global $eos (mut i32) (i32.const 0))
    (func (export "proxy_abi_version_0_2_1"))
    (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
      (local $p i32) (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
    (func (export "proxy_on_response_body") (param $id i32) (param $size i32) (param $eos i32) (result i32)
      (global.set $eos (i32.add (global.get $eos) (local.get $eos)))
      (if (i32.gt_u (local.get $size) (i32.const 0))
        (then
          (drop (call $status (i32.const 1) (i32.const 0) (i32.const 4)))
          (drop (call $set (i32.const 1) (i32.const 0) (i32.load (i32.const 0)) (i32.const 64) (i32.const 37)))))
      (i32.const 0))
    (func (export "eos_count") (result i32) (global.get $eos)))`;

  it('sees each event as canonical JSON, edits apply in place, a last empty chunk ends the stream', async () => {
    const f = await createWasmPluginFilter(
      { name: 'rb', path: await moduleFile(wat), phases: { response_body: true } },
      recordingDeps(),
    );
    const ctx = chatContext();
    await runRequest(f, ctx);
    const events: ResponseEvent[] = [
      { type: 'text', choice: 0, text: 'hello' },
      { type: 'text', choice: 0, text: 'world' },
    ];
    ctx.status = 200;
    f.onResponseHeaders?.(ctx);
    for (const ev of events) f.onResponseEvent!(ctx, ev);
    assert.deepEqual(events, [
      { type: 'text', choice: 0, text: 'X' },
      { type: 'text', choice: 0, text: 'X' },
    ]);
    f.onDone!(ctx);
    const eos = (f.runtime.current as unknown as { exports: Record<string, () => number> }).exports['eos_count']!();
    assert.equal(eos, 1);
  });
});
