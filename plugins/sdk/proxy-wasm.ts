// A small proxy-wasm SDK for AssemblyScript, written for Sluice's example plugins. It wraps the host
// functions in string/ArrayBuffer helpers and dispatches the callbacks to context classes.

import * as host from "./imports";

export const enum Status { Ok = 0, NotFound = 1, BadArgument = 2, InvalidMemoryAccess = 6, Empty = 7, CasMismatch = 8, Unimplemented = 12 }
export const enum Action { Continue = 0, Pause = 1 }
export const enum MapType { RequestHeaders = 0, RequestTrailers = 1, ResponseHeaders = 2, ResponseTrailers = 3, HttpCallResponseHeaders = 6, HttpCallResponseTrailers = 7 }
export const enum BufferType { RequestBody = 0, ResponseBody = 1, HttpCallResponseBody = 4, VmConfiguration = 6, PluginConfiguration = 7 }
export const enum StreamType { Request = 0, Response = 1 }
export const enum LogLevel { Trace = 0, Debug = 1, Info = 2, Warn = 3, Error = 4, Critical = 5 }
export const enum MetricType { Counter = 0, Gauge = 1, Histogram = 2 }

// Out-parameters for host calls: static memory, never freed.
const RET_PTR = memory.data(8);
const RET_LEN = memory.data(8);
const RET_EXTRA = memory.data(8);

/** Status of the last helper call that can fail; helpers return null/0 on failure. */
export let lastStatus: u32 = 0;

function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

/** Takes ownership of a host-allocated block (from proxy_on_memory_allocate) and copies it out. */
function takeBytes(): ArrayBuffer {
  const ptr = load<usize>(RET_PTR);
  const len = load<u32>(RET_LEN);
  const out = new ArrayBuffer(len);
  if (len > 0) memory.copy(changetype<usize>(out), ptr, len);
  if (ptr != 0) heap.free(ptr);
  return out;
}

function takeString(): string {
  return String.UTF8.decode(takeBytes());
}

export class Pair {
  constructor(public key: string, public value: string) {}
}

export function serializePairs(pairs: Array<Pair>): ArrayBuffer {
  const keys = new Array<ArrayBuffer>(pairs.length);
  const values = new Array<ArrayBuffer>(pairs.length);
  let size = 4 + pairs.length * 8;
  for (let i = 0; i < pairs.length; i++) {
    keys[i] = utf8(pairs[i].key);
    values[i] = utf8(pairs[i].value);
    size += keys[i].byteLength + values[i].byteLength + 2;
  }
  const out = new ArrayBuffer(size);
  const base = changetype<usize>(out);
  store<u32>(base, pairs.length);
  let data = base + 4 + pairs.length * 8;
  for (let i = 0; i < pairs.length; i++) {
    const k = keys[i];
    const v = values[i];
    store<u32>(base + 4 + i * 8, k.byteLength);
    store<u32>(base + 8 + i * 8, v.byteLength);
    memory.copy(data, changetype<usize>(k), k.byteLength);
    data += k.byteLength;
    store<u8>(data, 0);
    data += 1;
    memory.copy(data, changetype<usize>(v), v.byteLength);
    data += v.byteLength;
    store<u8>(data, 0);
    data += 1;
  }
  return out;
}

export function parsePairs(buf: ArrayBuffer): Array<Pair> {
  const out = new Array<Pair>();
  if (buf.byteLength < 4) return out;
  const base = changetype<usize>(buf);
  const n = load<u32>(base);
  let data = base + 4 + n * 8;
  for (let i: u32 = 0; i < n; i++) {
    const kl = load<u32>(base + 4 + i * 8);
    const vl = load<u32>(base + 8 + i * 8);
    const k = String.UTF8.decodeUnsafe(data, kl);
    data += kl + 1;
    const v = String.UTF8.decodeUnsafe(data, vl);
    data += vl + 1;
    out.push(new Pair(k, v));
  }
  return out;
}

// ── logging, time ──────────────────────────────────────────────────────────────────────────

export function log(level: LogLevel, message: string): void {
  const m = utf8(message);
  host.proxy_log(level, changetype<usize>(m), m.byteLength);
}

export function getLogLevel(): u32 {
  lastStatus = host.proxy_get_log_level(RET_PTR);
  return load<u32>(RET_PTR);
}

export function nowNanos(): u64 {
  lastStatus = host.proxy_get_current_time_nanoseconds(RET_PTR);
  return load<u64>(RET_PTR);
}

export function setTickPeriod(ms: u32): u32 {
  return host.proxy_set_tick_period_milliseconds(ms);
}

// ── header maps ────────────────────────────────────────────────────────────────────────────

export function getHeader(map: MapType, key: string): string | null {
  const k = utf8(key);
  lastStatus = host.proxy_get_header_map_value(map, changetype<usize>(k), k.byteLength, RET_PTR, RET_LEN);
  return lastStatus == Status.Ok ? takeString() : null;
}

export function addHeader(map: MapType, key: string, value: string): u32 {
  const k = utf8(key);
  const v = utf8(value);
  return host.proxy_add_header_map_value(map, changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
}

export function replaceHeader(map: MapType, key: string, value: string): u32 {
  const k = utf8(key);
  const v = utf8(value);
  return host.proxy_replace_header_map_value(map, changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
}

export function removeHeader(map: MapType, key: string): u32 {
  const k = utf8(key);
  return host.proxy_remove_header_map_value(map, changetype<usize>(k), k.byteLength);
}

// Variants over bytes encoded once (e.g. at configure time), for per-request hot paths.

export function addHeaderBytes(map: MapType, key: ArrayBuffer, value: ArrayBuffer): u32 {
  return host.proxy_add_header_map_value(map, changetype<usize>(key), key.byteLength, changetype<usize>(value), value.byteLength);
}

export function replaceHeaderBytes(map: MapType, key: ArrayBuffer, value: ArrayBuffer): u32 {
  return host.proxy_replace_header_map_value(map, changetype<usize>(key), key.byteLength, changetype<usize>(value), value.byteLength);
}

export function removeHeaderBytes(map: MapType, key: ArrayBuffer): u32 {
  return host.proxy_remove_header_map_value(map, changetype<usize>(key), key.byteLength);
}

export function getHeaderPairs(map: MapType): Array<Pair> {
  lastStatus = host.proxy_get_header_map_pairs(map, RET_PTR, RET_LEN);
  return lastStatus == Status.Ok ? parsePairs(takeBytes()) : new Array<Pair>();
}

export function setHeaderPairs(map: MapType, pairs: Array<Pair>): u32 {
  const b = serializePairs(pairs);
  return host.proxy_set_header_map_pairs(map, changetype<usize>(b), b.byteLength);
}

export function getHeaderMapSize(map: MapType): u32 {
  lastStatus = host.proxy_get_header_map_size(map, RET_PTR);
  return load<u32>(RET_PTR);
}

// ── buffers ────────────────────────────────────────────────────────────────────────────────

export function getBuffer(type: BufferType, start: u32, max: u32): ArrayBuffer | null {
  lastStatus = host.proxy_get_buffer_bytes(type, start, max, RET_PTR, RET_LEN);
  return lastStatus == Status.Ok ? takeBytes() : null;
}

export function getBufferString(type: BufferType): string | null {
  const b = getBuffer(type, 0, 0xffffffff);
  return b === null ? null : String.UTF8.decode(b);
}

export function getBufferSize(type: BufferType): u32 {
  lastStatus = host.proxy_get_buffer_status(type, RET_PTR, RET_LEN);
  return load<u32>(RET_PTR);
}

export function setBuffer(type: BufferType, start: u32, size: u32, data: string): u32 {
  const d = utf8(data);
  return host.proxy_set_buffer_bytes(type, start, size, changetype<usize>(d), d.byteLength);
}

// ── stream control ─────────────────────────────────────────────────────────────────────────

export function sendLocalResponse(status: u32, details: string, body: string, headers: Array<Pair>): u32 {
  const d = utf8(details);
  const b = utf8(body);
  const h = serializePairs(headers);
  return host.proxy_send_local_response(status, changetype<usize>(d), d.byteLength, changetype<usize>(b), b.byteLength, changetype<usize>(h), h.byteLength, -1);
}

export function continueStream(type: StreamType): u32 {
  return host.proxy_continue_stream(type);
}

export function closeStream(type: StreamType): u32 {
  return host.proxy_close_stream(type);
}

export function done(): u32 {
  return host.proxy_done();
}

export function setEffectiveContext(id: u32): u32 {
  return host.proxy_set_effective_context(id);
}

// ── properties ─────────────────────────────────────────────────────────────────────────────

function pathBytes(path: string): ArrayBuffer {
  // "request.path" → "request\0path"
  return utf8(path.replaceAll(".", "\0"));
}

export function getProperty(path: string): ArrayBuffer | null {
  const p = pathBytes(path);
  lastStatus = host.proxy_get_property(changetype<usize>(p), p.byteLength, RET_PTR, RET_LEN);
  return lastStatus == Status.Ok ? takeBytes() : null;
}

export function getPropertyString(path: string): string | null {
  const b = getProperty(path);
  return b === null ? null : String.UTF8.decode(b);
}

export function setProperty(path: string, value: string): u32 {
  const p = pathBytes(path);
  const v = utf8(value);
  return host.proxy_set_property(changetype<usize>(p), p.byteLength, changetype<usize>(v), v.byteLength);
}

// ── HTTP calls ─────────────────────────────────────────────────────────────────────────────

/** Returns the call's token, or 0 with lastStatus set when the host refused the call. */
export function httpCall(upstream: string, headers: Array<Pair>, body: string, timeoutMs: u32): u32 {
  const u = utf8(upstream);
  const h = serializePairs(headers);
  const b = utf8(body);
  const t = serializePairs(new Array<Pair>());
  lastStatus = host.proxy_http_call(changetype<usize>(u), u.byteLength, changetype<usize>(h), h.byteLength, changetype<usize>(b), b.byteLength, changetype<usize>(t), t.byteLength, timeoutMs, RET_PTR);
  return lastStatus == Status.Ok ? load<u32>(RET_PTR) : 0;
}

export class CallStatus {
  constructor(public code: u32, public message: string) {}
}

export function getStatus(): CallStatus {
  lastStatus = host.proxy_get_status(RET_EXTRA, RET_PTR, RET_LEN);
  if (lastStatus != Status.Ok) return new CallStatus(0, "");
  const code = load<u32>(RET_EXTRA);
  return new CallStatus(code, takeString());
}

// ── shared data and queues ─────────────────────────────────────────────────────────────────

export let lastCas: u32 = 0;

export function getSharedData(key: string): string | null {
  const k = utf8(key);
  lastStatus = host.proxy_get_shared_data(changetype<usize>(k), k.byteLength, RET_PTR, RET_LEN, RET_EXTRA);
  if (lastStatus != Status.Ok) return null;
  lastCas = load<u32>(RET_EXTRA);
  return takeString();
}

export function setSharedData(key: string, value: string, cas: u32): u32 {
  const k = utf8(key);
  const v = utf8(value);
  return host.proxy_set_shared_data(changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength, cas);
}

export function registerQueue(name: string): u32 {
  const n = utf8(name);
  lastStatus = host.proxy_register_shared_queue(changetype<usize>(n), n.byteLength, RET_PTR);
  return load<u32>(RET_PTR);
}

export function resolveQueue(vmId: string, name: string): u32 {
  const v = utf8(vmId);
  const n = utf8(name);
  lastStatus = host.proxy_resolve_shared_queue(changetype<usize>(v), v.byteLength, changetype<usize>(n), n.byteLength, RET_PTR);
  return lastStatus == Status.Ok ? load<u32>(RET_PTR) : 0;
}

export function enqueue(id: u32, value: string): u32 {
  const v = utf8(value);
  return host.proxy_enqueue_shared_queue(id, changetype<usize>(v), v.byteLength);
}

export function dequeue(id: u32): string | null {
  lastStatus = host.proxy_dequeue_shared_queue(id, RET_PTR, RET_LEN);
  return lastStatus == Status.Ok ? takeString() : null;
}

// ── metrics ────────────────────────────────────────────────────────────────────────────────

export function defineMetric(type: MetricType, name: string): u32 {
  const n = utf8(name);
  lastStatus = host.proxy_define_metric(type, changetype<usize>(n), n.byteLength, RET_PTR);
  return load<u32>(RET_PTR);
}

export function incrementMetric(id: u32, delta: i64): u32 {
  return host.proxy_increment_metric(id, delta);
}

export function recordMetric(id: u32, value: u64): u32 {
  return host.proxy_record_metric(id, value);
}

export function getMetric(id: u32): u64 {
  lastStatus = host.proxy_get_metric(id, RET_PTR);
  return load<u64>(RET_PTR);
}

// ── functions Sluice does not provide (for tests of the status codes) ───────────────────────

export function tryGrpcCall(): u32 {
  const e = utf8("x");
  const p = changetype<usize>(e);
  return host.proxy_grpc_call(p, 1, p, 1, p, 1, 0, 0, 0, 0, 1000, RET_PTR);
}

export function tryForeignFunction(name: string): u32 {
  const n = utf8(name);
  return host.proxy_call_foreign_function(changetype<usize>(n), n.byteLength, 0, 0, RET_PTR, RET_LEN);
}

// ── contexts ───────────────────────────────────────────────────────────────────────────────

export class RootContext {
  constructor(public id: u32) {}
  onVmStart(vmConfigSize: usize): bool { return true; }
  onConfigure(configSize: usize): bool { return true; }
  onTick(): void {}
  onQueueReady(queueId: u32): void {}
  onHttpCallResponse(token: u32, headers: u32, bodySize: usize, trailers: u32): void {}
  newHttpContext(id: u32): HttpContext { return new PassThrough(id, this); }
}

export class HttpContext {
  constructor(public id: u32, public root: RootContext) {}
  onRequestHeaders(headers: u32, endOfStream: bool): Action { return Action.Continue; }
  onRequestBody(size: usize, endOfStream: bool): Action { return Action.Continue; }
  onResponseHeaders(headers: u32, endOfStream: bool): Action { return Action.Continue; }
  onResponseBody(size: usize, endOfStream: bool): Action { return Action.Continue; }
  onHttpCallResponse(token: u32, headers: u32, bodySize: usize, trailers: u32): void {}
  onDone(): bool { return true; }
  onLog(): void {}
  onDelete(): void {}
  /**
   * True when this object may serve later requests once its own is over: the SDK keeps it and hands
   * it out again (with the new `id`, after `reset()`) instead of asking the root for a new one. A
   * plugin that allocates nothing else per request then allocates nothing at all, and the
   * collector has no work. Say yes only when the class keeps no per-request state, or clears it in
   * `reset()`: field initializers run once per object, not once per request.
   */
  reusable(): bool { return false; }
  /** Called before a kept context serves another request. */
  reset(): void {}
}

/** What the default root makes: continues every callback, keeps nothing, so it is reused. */
class PassThrough extends HttpContext {
  reusable(): bool { return true; }
}

let rootFactory: (id: u32) => RootContext = (id: u32): RootContext => new RootContext(id);
let root: RootContext | null = null;

// Live contexts by id: a slot per `id & SLOT_MASK`, and a map for the rare id whose slot is taken.
// Hosts number contexts in sequence, so the slots hold every context of a normal load and a lookup
// is an index, not a hash (this runs for every callback).
const SLOTS: i32 = 256;
const SLOT_MASK: u32 = <u32>SLOTS - 1;
const slots = new StaticArray<HttpContext | null>(SLOTS);
const overflow = new Map<u32, HttpContext>();
/** Finished contexts that said they are reusable. */
const spare = new Array<HttpContext>();
const MAX_SPARE: i32 = 64;

export function setRootContextFactory(f: (id: u32) => RootContext): void {
  rootFactory = f;
}

export function rootContext(): RootContext {
  return root!;
}

// Called from the exported callbacks (exports.ts).

export function _createContext(id: u32, parent: u32): void {
  if (parent == 0) {
    root = rootFactory(id);
    return;
  }
  let ctx: HttpContext;
  if (spare.length > 0) {
    ctx = spare.pop();
    ctx.id = id;
    ctx.reset();
  } else {
    ctx = root!.newHttpContext(id);
  }
  const at = <i32>(id & SLOT_MASK);
  if (unchecked(slots[at]) === null) unchecked((slots[at] = ctx));
  else overflow.set(id, ctx);
}

export function _http(id: u32): HttpContext {
  const ctx = unchecked(slots[<i32>(id & SLOT_MASK)]);
  if (ctx !== null && ctx.id == id) return ctx;
  return overflow.get(id);
}

export function _isRoot(id: u32): bool {
  return root !== null && root!.id == id;
}

export function _delete(id: u32): void {
  const at = <i32>(id & SLOT_MASK);
  let ctx = unchecked(slots[at]);
  if (ctx !== null && ctx.id == id) {
    unchecked((slots[at] = null));
  } else {
    if (!overflow.has(id)) return;
    ctx = overflow.get(id);
    overflow.delete(id);
  }
  ctx!.onDelete();
  if (ctx!.reusable() && spare.length < MAX_SPARE) spare.push(ctx!);
}
