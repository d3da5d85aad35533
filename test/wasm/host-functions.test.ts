import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { capModuleMemory } from '../../src/wasm/memory-cap.js';
import { HeaderMap, parseHeaderPairs, serializeHeaderPairs } from '../../src/wasm/header-map.js';
import type { HttpStream } from '../../src/wasm/http-stream.js';
import { StreamTable } from '../../src/wasm/stream-table.js';
import { createWasmPluginFilter, PluginSchema } from '../../src/wasm/index.js';
import { Wasm } from '../../src/wasm/wasm-api.js';
import { assemble, chatContext, finishResponse, moduleFile, recordingDeps, runRequest } from './helpers.js';

describe('header map serialization', () => {
  it('matches the spec example and round-trips UTF-8', () => {
    const bytes = serializeHeaderPairs([
      ['a', '1'],
      ['b', '22'],
    ]);
    assert.deepEqual(
      [...bytes],
      [2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0x61, 0, 0x31, 0, 0x62, 0, 0x32, 0x32, 0],
    );
    const pairs: [string, string][] = [['x-ünï', 'värde'], ['empty', '']];
    assert.deepEqual(parseHeaderPairs(serializeHeaderPairs(pairs)), pairs);
    assert.deepEqual(parseHeaderPairs(new Uint8Array(0)), []);
    assert.deepEqual(parseHeaderPairs(Uint8Array.of(0)), []);
    assert.equal(parseHeaderPairs(Uint8Array.of(5, 0, 0, 0, 1)), undefined, 'truncated maps are rejected');
  });

  it('keeps repeats, replaces the first, removes all', () => {
    const m = new HeaderMap([['a', '1']]);
    m.add('a', '2');
    assert.equal(m.toRecord()['a'], '1, 2');
    m.replace('a', '3');
    assert.deepEqual(m.pairs, [['a', '3']]);
    m.remove('a');
    assert.equal(m.size, 0);
  });

  // The same edits through a view over a record and through a map built from the same pairs must
  // read the same at every step and end with the same pairs, in the same order.
  it('a view over a record behaves exactly like the built map', () => {
    const ctx = chatContext();
    const pseudo = (): [string, string][] => [[':method', 'POST'], [':path', '/v1/x']];
    const record = { host: 'h', accept: 'a', 'x-rep': 'r1' };
    const steps: [string, string, string][] = [
      ['add', 'x-rep', 'r2'],
      ['replace', 'accept', 'b'],
      ['remove', 'host', ''],
      ['remove', 'nothing-here', ''],
      ['remove', 'constructor', ''],
      ['add', 'x-new', 'n1'],
      ['replace', 'x-rep', 'only'],
      ['add', 'host', 'again'],
      ['replace', ':path', '/v1/y'],
      ['add', 'x-new', 'n2'],
    ];
    const view = HeaderMap.over(record, pseudo, ctx);
    const built = new HeaderMap([...pseudo(), ...Object.entries(record)]);
    const names = ['host', 'accept', 'x-rep', 'x-new', ':path', ':method', 'constructor', '__proto__', 'nothing-here'];
    for (const [op, k, v] of steps) {
      for (const m of [view, built]) {
        if (op === 'add') m.add(k, v);
        else if (op === 'replace') m.replace(k, v);
        else m.remove(k);
      }
      for (const n of names) {
        assert.equal(view.get(n), built.get(n), `get(${n}) after ${op} ${k}`);
        assert.equal(view.joined(n), built.joined(n), `joined(${n}) after ${op} ${k}`);
      }
      assert.equal(view.version, built.version, `version after ${op} ${k}`);
    }
    assert.deepEqual(view.takeTouched(), built.takeTouched());
    assert.equal(view.size, built.size);
    assert.deepEqual(view.pairs, built.pairs);
    assert.deepEqual(record, { host: 'h', accept: 'a', 'x-rep': 'r1' }, 'the record itself is never written');
  });

  it('a view counts without building, and settles onto a record that took its edits', () => {
    const ctx = chatContext();
    const record: Record<string, string> = { a: '1', b: '2' };
    const view = HeaderMap.over(record, () => [[':status', '200']], ctx);
    assert.equal(view.size, 3);
    view.replace('a', 'x');
    view.remove('b');
    // What the host's write-back does: settle(), then the record takes the edits.
    view.settle();
    record['a'] = 'x';
    delete record['b'];
    record['c'] = 'added later by another filter';
    assert.equal(view.get('a'), 'x');
    assert.equal(view.get('b'), undefined);
    assert.equal(view.get('c'), 'added later by another filter', 'a settled view reads the record as it is now');
    // An added repeat cannot live in a one-value record: the view keeps its own pairs instead.
    view.add('a', 'y');
    view.settle();
    record['a'] = 'x, y';
    assert.deepEqual(view.pairs, [[':status', '200'], ['a', 'x'], ['c', 'added later by another filter'], ['a', 'y']]);
  });
});

describe('context ids', () => {
  const stream = (id: number) => ({ id }) as unknown as HttpStream;

  it('hands out ids whose slot is free, finds and forgets them, and grows with the requests in flight', () => {
    const table = new StreamTable(2);
    const live = new Map<number, HttpStream>();
    for (let i = 0; i < 1000; i++) {
      const s = stream(table.freeId());
      assert.ok(s.id >= 2 && !live.has(s.id), 'a fresh id, never the root context\'s');
      table.add(s);
      live.set(s.id, s);
      // Keep every third one in flight, so the table must grow and skip taken slots.
      if (i % 3 !== 0) {
        table.delete(s);
        live.delete(s.id);
      }
    }
    assert.equal(table.size, live.size);
    for (const [id, s] of live) assert.equal(table.get(id), s);
    assert.equal(table.get(999_999), undefined);
    const seen: HttpStream[] = [];
    table.forEach((s) => seen.push(s));
    assert.equal(seen.length, live.size);
  });
});

describe('header names and values from the guest', () => {
  // Adds five request headers, each a case for the host's checks, then reports each call's status as
  // a digit in `x-status` (in call order).
  const wat = `(module
    (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
    (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 16) "X-Upper-Case")    ;; 12 bytes: lower-cased
    (data (i32.const 32) "x-bad name")      ;; 10: not a token
    (data (i32.const 48) "x-crlf")          ;; 6
    (data (i32.const 64) "a\\0d\\0ab")   ;; 4: CR LF inside
    (data (i32.const 80) "x-utf8")          ;; 6
    (data (i32.const 96) "v\\c3\\a4rde")      ;; 6: UTF-8
    (data (i32.const 112) "HOST")           ;; 4: read back through a capitalised name
    (data (i32.const 128) "x-status")       ;; 8
    (data (i32.const 144) "x-host")         ;; 6
    (data (i32.const 160) "0123456789")
    (global $heap (mut i32) (i32.const 1024))
    (func (export "proxy_abi_version_0_2_1"))
    (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
      (local $p i32) (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
    (func $digit (param $st i32) (param $at i32)
      (i32.store8 (i32.add (i32.const 200) (local.get $at)) (i32.add (i32.const 48) (local.get $st))))
    (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
      (call $digit (call $add (i32.const 0) (i32.const 16) (i32.const 12) (i32.const 96) (i32.const 6)) (i32.const 0))
      (call $digit (call $add (i32.const 0) (i32.const 32) (i32.const 10) (i32.const 96) (i32.const 6)) (i32.const 1))
      (call $digit (call $add (i32.const 0) (i32.const 48) (i32.const 6) (i32.const 64) (i32.const 4)) (i32.const 2))
      (call $digit (call $add (i32.const 0) (i32.const 80) (i32.const 6) (i32.const 96) (i32.const 6)) (i32.const 3))
      (call $digit (call $add (i32.const 0) (i32.const 80) (i32.const 6) (i32.const 96) (i32.const 100000)) (i32.const 4))
      (drop (call $add (i32.const 0) (i32.const 128) (i32.const 8) (i32.const 200) (i32.const 5)))
      (if (i32.eqz (call $get (i32.const 0) (i32.const 112) (i32.const 4) (i32.const 0) (i32.const 4)))
        (then (drop (call $add (i32.const 0) (i32.const 144) (i32.const 6) (i32.load (i32.const 0)) (i32.load (i32.const 4))))))
      (i32.const 0)))`;

  it('lower-cases names, refuses non-tokens and CR/LF, keeps UTF-8 values, and checks bounds', async () => {
    const f = await createWasmPluginFilter({ name: 'fields', path: await moduleFile(wat, 'fields.wasm') }, recordingDeps());
    for (let i = 0; i < 3; i++) {
      // Several requests: the second and third find the names among the recently decoded ones.
      const ctx = chatContext();
      await runRequest(f, ctx);
      const set = ctx.upstreamHeaderEdits.set;
      assert.equal(set['x-status'], '02206', 'ok, bad argument, bad argument, ok, invalid memory access');
      assert.equal(set['x-upper-case'], 'värde');
      assert.equal(set['x-utf8'], 'värde');
      assert.equal(set['x-host'], 'gateway.test');
      assert.equal(Object.keys(set).some((k) => k !== k.toLowerCase()), false);
      finishResponse(f, ctx);
    }
  });
});

describe('memory cap', () => {
  it('writes the maximum into a module that declares none, and lowers a larger one', async () => {
    for (const decl of ['1', '1 1000']) {
      const capped = capModuleMemory(await assemble(`(module (memory (export "memory") ${decl}))`), 4);
      const inst = new Wasm.Instance(new Wasm.Module(capped.bytes), {});
      const mem = inst.exports['memory'] as { grow(n: number): number };
      assert.equal(mem.grow(3), 1);
      assert.throws(() => mem.grow(1), 'growing past the cap fails');
    }
  });

  it('leaves a smaller maximum alone and reports imported memories', async () => {
    const small = capModuleMemory(await assemble('(module (memory 1 2))'), 64);
    const inst = new Wasm.Instance(new Wasm.Module(small.bytes), {});
    void inst;
    const imported = capModuleMemory(await assemble('(module (import "env" "memory" (memory 1)))'), 8);
    assert.equal(imported.importsMemory, true);
  });
});

describe('linking', () => {
  it('stubs imports Sluice does not provide: they answer Unimplemented and are logged once', async () => {
    const wat = `(module
      (import "env" "proxy_some_other_hosts_extension" (func $ext (result i32)))
      (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "x-ext01234567890123")
      (global $heap (mut i32) (i32.const 1024))
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
        (local $p i32) (local.set $p (global.get $heap))
        (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (local $st i32)
        (local.set $st (call $ext))
        (drop (call $ext))
        ;; header value: the digit at offset 21 + status%10 → "2" for 12
        (drop (call $add (i32.const 0) (i32.const 16) (i32.const 5)
          (i32.add (i32.const 21) (i32.rem_u (local.get $st) (i32.const 10))) (i32.const 1)))
        (i32.const 0)))`;
    const deps = recordingDeps();
    const f = await createWasmPluginFilter({ name: 'ext', path: await moduleFile(wat) }, deps);
    const ctx = chatContext();
    await runRequest(f, ctx);
    assert.equal(ctx.upstreamHeaderEdits.set['x-ext'], '2', 'status 12 (Unimplemented) % 10');
    assert.equal(deps.lines.filter((l) => l.message.includes('proxy_some_other_hosts_extension')).length, 1);
  });

  it('WASI: a _start (TinyGo-style) module runs it once; stdout goes to the log at info, stdin reads nothing', async () => {
    const wat = `(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "hello from _start\\n")
      (global $started (mut i32) (i32.const 0))
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "_start")
        (global.set $started (i32.add (global.get $started) (i32.const 1)))
        (i32.store (i32.const 0) (i32.const 100))
        (i32.store (i32.const 4) (i32.const 18))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
      (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
        ;; 1 only if _start ran exactly once, stdin is closed (EBADF=8), randomness and env work.
        (if (i32.ne (global.get $started) (i32.const 1)) (then (return (i32.const 0))))
        (if (i32.ne (call $fd_read (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 8)) (i32.const 8))
          (then (return (i32.const 0))))
        (if (i32.ne (call $random (i32.const 200) (i32.const 16)) (i32.const 0)) (then (return (i32.const 0))))
        (if (i32.ne (call $env_sizes (i32.const 300) (i32.const 304)) (i32.const 0)) (then (return (i32.const 0))))
        (i32.eqz (i32.load (i32.const 300)))))`;
    const deps = recordingDeps();
    const f = await createWasmPluginFilter({ name: 'tinygo-like', path: await moduleFile(wat) }, deps);
    assert.ok(f.runtime.current?.usable);
    assert.ok(deps.lines.some((l) => l.level === 2 && l.message === 'hello from _start'));
  });
});

describe('configuration schema', () => {
  it('fills defaults and checks path/url/sha256', () => {
    const p = PluginSchema.parse({ name: 'x', path: 'a.wasm' });
    assert.equal(p.fail, 'closed');
    assert.equal(p.limits.memory_mb, 64);
    assert.equal(p.phases.response_body, false);
    assert.equal(PluginSchema.safeParse({ name: 'x' }).success, false);
    assert.equal(PluginSchema.safeParse({ name: 'x', path: 'a', url: 'file:///a' }).success, false);
    assert.equal(PluginSchema.safeParse({ name: 'x', url: 'https://example.test/a.wasm' }).success, false, 'URL needs sha256');
    assert.equal(PluginSchema.safeParse({ name: 'x', path: 'a', extra: 1 }).success, false, 'strict');
  });
});

describe('properties', () => {
  // Reads the property whose dotted path is the plugin configuration and adds it as `x-prop`.
  const reader = `(module
    (import "env" "proxy_get_buffer_bytes" (func $buf (param i32 i32 i32 i32 i32) (result i32)))
    (import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))
    (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 16) "x-propx-status")
    (global $heap (mut i32) (i32.const 1024))
    (func (export "proxy_abi_version_0_2_1"))
    (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
      (local $p i32) (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
    (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
      (local $path i32) (local $len i32) (local $i i32) (local $st i32)
      (drop (call $buf (i32.const 7) (i32.const 0) (i32.const 1000) (i32.const 0) (i32.const 4)))
      (local.set $path (i32.load (i32.const 0)))
      (local.set $len (i32.load (i32.const 4)))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (if (i32.eq (i32.load8_u (i32.add (local.get $path) (local.get $i))) (i32.const 46))
          (then (i32.store8 (i32.add (local.get $path) (local.get $i)) (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
      (local.set $st (call $prop (local.get $path) (local.get $len) (i32.const 8) (i32.const 12)))
      (if (i32.eqz (local.get $st))
        (then (drop (call $add (i32.const 0) (i32.const 16) (i32.const 6) (i32.load (i32.const 8)) (i32.load (i32.const 12)))))
        (else (drop (call $add (i32.const 0) (i32.const 22) (i32.const 8) (i32.const 16) (i32.const 1)))))
      (i32.const 0)))`;

  async function read(path: string, ctxOpts: Parameters<typeof chatContext>[0] = {}, extra: Parameters<typeof recordingDeps>[0] = {}) {
    const file = await moduleFile(reader, 'reader.wasm');
    const f = await createWasmPluginFilter({ name: 'reader', path: file, config: path }, recordingDeps(extra));
    const ctx = chatContext(ctxOpts);
    await runRequest(f, ctx);
    return ctx.upstreamHeaderEdits.set['x-prop'] ?? (ctx.upstreamHeaderEdits.set['x-status'] ? 'NOT FOUND' : '?');
  }

  it('request, plugin and Sluice facts', async () => {
    assert.equal(await read('request.path', { path: '/v1/chat/completions?x=1' }), '/v1/chat/completions?x=1');
    assert.equal(await read('request.url_path', { path: '/v1/chat/completions?x=1' }), '/v1/chat/completions');
    assert.equal(await read('request.method'), 'POST');
    assert.equal(await read('request.host'), 'gateway.test');
    assert.equal(await read('plugin_name'), 'reader');
    assert.equal(await read('plugin_vm_id'), 'reader');
    assert.equal(await read('model', { model: 'gpt-4o-mini' }), 'gpt-4o-mini');
    assert.equal(await read('sluice.protocol', { protocol: 'anthropic-messages' }), 'anthropic-messages');
    assert.equal(await read('no.such.thing'), 'NOT FOUND');
  });

  it('the gateway can add properties (e.g. the consumer) through HostDeps.properties', async () => {
    const consumer = () => Buffer.from('team-a');
    assert.equal(await read('consumer', {}, { properties: { consumer } }), 'team-a');
  });
});
