// The callbacks a proxy-wasm 0.2.1 module exports. A plugin re-exports this file
// (`export * from "../sdk/exports"`) and registers its root context factory.

import { _createContext, _delete, _http, _isRoot, rootContext } from "./proxy-wasm";

export function proxy_abi_version_0_2_1(): void {}

export function proxy_on_memory_allocate(size: usize): usize {
  return heap.alloc(size);
}

export function proxy_on_context_create(id: u32, parent: u32): void {
  _createContext(id, parent);
}

export function proxy_on_vm_start(id: u32, size: usize): bool {
  return rootContext().onVmStart(size);
}

export function proxy_on_configure(id: u32, size: usize): bool {
  return rootContext().onConfigure(size);
}

export function proxy_on_tick(id: u32): void {
  rootContext().onTick();
}

export function proxy_on_queue_ready(id: u32, queue: u32): void {
  rootContext().onQueueReady(queue);
}

export function proxy_on_request_headers(id: u32, headers: u32, eos: bool): u32 {
  return _http(id).onRequestHeaders(headers, eos);
}

export function proxy_on_request_body(id: u32, size: usize, eos: bool): u32 {
  return _http(id).onRequestBody(size, eos);
}

export function proxy_on_request_trailers(id: u32, trailers: u32): u32 {
  return 0;
}

export function proxy_on_response_headers(id: u32, headers: u32, eos: bool): u32 {
  return _http(id).onResponseHeaders(headers, eos);
}

export function proxy_on_response_body(id: u32, size: usize, eos: bool): u32 {
  return _http(id).onResponseBody(size, eos);
}

export function proxy_on_response_trailers(id: u32, trailers: u32): u32 {
  return 0;
}

export function proxy_on_http_call_response(id: u32, token: u32, headers: u32, body: usize, trailers: u32): void {
  if (_isRoot(id)) rootContext().onHttpCallResponse(token, headers, body, trailers);
  else _http(id).onHttpCallResponse(token, headers, body, trailers);
}

export function proxy_on_done(id: u32): bool {
  if (_isRoot(id)) return true;
  return _http(id).onDone();
}

export function proxy_on_log(id: u32): void {
  if (!_isRoot(id)) _http(id).onLog();
}

export function proxy_on_delete(id: u32): void {
  _delete(id);
}
