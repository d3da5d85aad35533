;; Legacy tagger: a plugin written against proxy-wasm ABI 0.1.0, by hand in WebAssembly text, to
;; keep the host honest about the old ABI: `malloc` instead of proxy_on_memory_allocate,
;; proxy_get_configuration instead of a configuration buffer, proxy_continue_request instead of
;; proxy_continue_stream, and two-argument header callbacks.
;; It adds `x-legacy-abi: 0.1.0` and `x-legacy-config: <its configuration>` to the upstream request
;; and `x-legacy-abi: 0.1.0` to the response.
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_configuration" (func $get_configuration (param i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_request" (func $continue_request (result i32)))
  (memory (export "memory") 2)
  ;; A bump allocator: configuration is read once, so nothing is ever freed.
  (global $heap (mut i32) (i32.const 4096))
  (global $config_ptr (mut i32) (i32.const 0))
  (global $config_len (mut i32) (i32.const 0))
  (data (i32.const 16) "x-legacy-abi")
  (data (i32.const 32) "0.1.0")
  (data (i32.const 48) "x-legacy-config")
  (data (i32.const 64) "legacy-tagger configured")
  (func (export "proxy_abi_version_0_1_0"))
  (func (export "malloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap
      (i32.and (i32.add (i32.add (global.get $heap) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq
              (memory.grow (i32.add (i32.shr_u (local.get $size) (i32.const 16)) (i32.const 1)))
              (i32.const -1))
          (then (unreachable)))))
    (local.get $ptr))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    (if (i32.eqz (call $get_configuration (i32.const 0) (i32.const 4)))
      (then
        (global.set $config_ptr (i32.load (i32.const 0)))
        (global.set $config_len (i32.load (i32.const 4)))))
    (drop (call $log (i32.const 2) (i32.const 64) (i32.const 24)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $headers i32) (result i32)
    (drop (call $add_header (i32.const 0) (i32.const 16) (i32.const 12) (i32.const 32) (i32.const 5)))
    (drop (call $add_header (i32.const 0) (i32.const 48) (i32.const 15)
      (global.get $config_ptr) (global.get $config_len)))
    ;; Resume first, then return Pause: the host must treat the stream as continued.
    (drop (call $continue_request))
    (i32.const 1))
  (func (export "proxy_on_response_headers") (param $ctx i32) (param $headers i32) (result i32)
    (drop (call $add_header (i32.const 2) (i32.const 16) (i32.const 12) (i32.const 32) (i32.const 5)))
    (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32)))
