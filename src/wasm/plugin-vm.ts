/**
 * One instance of a plugin's module: its memory, its root (plugin) context and the HTTP contexts of
 * the requests it is handling. Every call into the guest goes through `invoke`, which turns a trap
 * (or any exception thrown out of the guest) into a broken VM: the owner (PluginRuntime) then builds
 * a fresh instance for the next request, and requests in flight on this one follow the fail policy.
 */

import { isMemory, Wasm, type WasmMemory, type WasmModule } from './wasm-api.js';
import { createRequire } from 'node:module';
import type { WASI } from 'node:wasi';
import { Action, BufferType } from './abi-constants.js';
import { isLegacyAbi, type AbiVersion } from './abi-version.js';
import { GuestMemory } from './guest-memory.js';
import { HeaderMap } from './header-map.js';
import { HttpStream } from './http-stream.js';
import { StreamTable } from './stream-table.js';
import { buildImports } from './imports/index.js';
import type { PluginIdentity, PropertyGetter } from './properties.js';
import type { HttpCallResponse, HttpCaller, MetricSink, SharedDataStore, SharedQueueStore } from './seams.js';
import type { RequestContext } from '../pipeline/context.js';

/** proxy_log levels 0..5 (trace..critical). */
export type PluginLogger = (plugin: string, level: number, message: string) => void;

export interface HostDeps {
  sharedData: SharedDataStore;
  sharedQueues: SharedQueueStore;
  httpCaller: HttpCaller;
  metrics: MetricSink;
  logger: PluginLogger;
  /** Extra or overriding property getters (e.g. the consumer, once the gateway has one). */
  properties?: Readonly<Record<string, PropertyGetter>>;
}

export interface VmOptions extends PluginIdentity {
  module: WasmModule;
  abi: AbiVersion;
  /** Set when the module imports its memory: the host creates it with this many pages at most. */
  importedMemoryMaxPages: number | undefined;
  vmConfig: Uint8Array;
  pluginConfig: Uint8Array;
  /** proxy_get_log_level answers this; proxy_log below it is dropped. */
  logLevel: number;
  deps: HostDeps;
}

/** Thrown out of `invoke` after the guest trapped; the VM is unusable from then on. */
export class PluginTrapError extends Error {
  readonly code = 'wasm_plugin_trap';
  constructor(
    readonly plugin: string,
    readonly where: string,
    override readonly cause: unknown,
  ) {
    super(`plugin ${plugin} failed in ${where}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'PluginTrapError';
  }
}

/** proc_exit from the guest: no process to end, so the instance ends instead. */
export class GuestExitError extends Error {
  constructor(readonly exitCode: number) {
    super(`guest called proc_exit(${exitCode})`);
    this.name = 'GuestExitError';
  }
}

type GuestFn = (...args: number[]) => number | undefined;

/** The callbacks a plugin may export; all optional except what the ABI makes mandatory. */
interface GuestExports {
  memory?: WasmMemory;
  _initialize?: GuestFn;
  _start?: GuestFn;
  main?: GuestFn;
  proxy_on_memory_allocate?: GuestFn;
  malloc?: GuestFn;
  proxy_on_context_create?: GuestFn;
  proxy_on_vm_start?: GuestFn;
  proxy_on_configure?: GuestFn;
  proxy_on_tick?: GuestFn;
  proxy_on_queue_ready?: GuestFn;
  proxy_on_request_headers?: GuestFn;
  proxy_on_request_body?: GuestFn;
  proxy_on_request_trailers?: GuestFn;
  proxy_on_response_headers?: GuestFn;
  proxy_on_response_body?: GuestFn;
  proxy_on_response_trailers?: GuestFn;
  proxy_on_done?: GuestFn;
  proxy_on_log?: GuestFn;
  proxy_on_delete?: GuestFn;
  proxy_on_http_call_response?: GuestFn;
}

/** What an HTTP call's answer looks like to the plugin while its callback runs. */
interface CallResponseView {
  headers: HeaderMap;
  trailers: HeaderMap;
  status: number;
  message: string;
}

const ROOT_CONTEXT_ID = 1;

export class PluginVm {
  readonly mem = new GuestMemory();
  readonly abi: AbiVersion;
  readonly identity: PluginIdentity;
  readonly deps: HostDeps;
  readonly logLevel: number;
  readonly rootContextId = ROOT_CONTEXT_ID;
  private readonly exports: GuestExports;
  private readonly legacy: boolean;

  /** The context the guest is running in: a stream, or undefined for the root context. */
  effective: HttpStream | undefined = undefined;
  readonly streams = new StreamTable(ROOT_CONTEXT_ID + 1);
  /** Buffers that exist only during one callback (configuration, an HTTP call's body). */
  readonly callbackBuffers = new Map<number, Uint8Array>();
  callResponse: CallResponseView | undefined = undefined;

  broken: PluginTrapError | undefined = undefined;
  private disposed = false;
  /** Retired by a reload: no new timers or queue listeners; streams in flight carry on. */
  private retired = false;
  private tickTimer: NodeJS.Timeout | undefined = undefined;
  private readonly calls = new Map<number, HttpStream | undefined>();
  private nextCallToken = 1;
  private readonly queueSubscriptions = new Map<number, () => void>();
  /** Unknown imports stubbed at link time, reported once each when first called. */
  readonly stubbedImports = new Set<string>();

  constructor(private readonly options: VmOptions) {
    this.abi = options.abi;
    this.legacy = isLegacyAbi(options.abi);
    this.identity = { name: options.name, rootId: options.rootId, vmId: options.vmId };
    this.deps = options.deps;
    this.logLevel = options.logLevel;

    const importedMemory =
      options.importedMemoryMaxPages === undefined
        ? undefined
        : new Wasm.Memory({ initial: 1, maximum: options.importedMemoryMaxPages });
    const usesWasi = Wasm.Module.imports(options.module).some((i) => i.module === 'wasi_snapshot_preview1');
    // Only modules that import WASI get one (AssemblyScript and hand-written plugins do not).
    const wasi = usesWasi ? quietWasi() : undefined;
    const imports = buildImports(this, options.module, wasi, importedMemory);
    const instance = new Wasm.Instance(options.module, imports);
    this.exports = instance.exports as unknown as GuestExports;
    const memory = importedMemory ?? this.exports.memory;
    if (!isMemory(memory)) throw new Error('plugin exports no memory');
    const allocate = this.exports.proxy_on_memory_allocate ?? this.exports.malloc;
    this.mem.bind(memory, allocate ? (n) => allocate(n) as number : undefined);

    this.invoke('start', () => {
      const ex = this.exports;
      if (wasi && ex.memory) {
        // node:wasi refuses initialize() when _start exists and start() when _initialize exists.
        if (ex._start && !ex._initialize) wasi.start(instance);
        else wasi.initialize(instance);
      } else if (ex._initialize) ex._initialize();
      else if (ex._start) ex._start();
      if (ex._initialize && ex.main) ex.main(0, 0);
    });
  }

  /** Creates the root context and hands over the VM and plugin configuration. */
  configure(): void {
    const ex = this.exports;
    const o = this.options;
    this.invoke('proxy_on_context_create(root)', () => ex.proxy_on_context_create?.(ROOT_CONTEXT_ID, 0));
    this.callbackBuffers.set(BufferType.VmConfiguration, o.vmConfig);
    this.callbackBuffers.set(BufferType.PluginConfiguration, o.pluginConfig);
    try {
      const started = this.invoke('proxy_on_vm_start', () => ex.proxy_on_vm_start?.(ROOT_CONTEXT_ID, o.vmConfig.byteLength) ?? 1);
      if (started === 0) throw this.fail('proxy_on_vm_start', new Error('plugin rejected its VM configuration'));
      const configured = this.invoke('proxy_on_configure', () =>
        ex.proxy_on_configure?.(ROOT_CONTEXT_ID, o.pluginConfig.byteLength) ?? 1,
      );
      if (configured === 0) throw this.fail('proxy_on_configure', new Error('plugin rejected its configuration'));
    } finally {
      this.callbackBuffers.delete(BufferType.VmConfiguration);
    }
    // PluginConfiguration stays readable: some SDKs read it lazily after on_configure.
  }

  get pluginConfig(): Uint8Array {
    return this.options.pluginConfig;
  }

  get usable(): boolean {
    return this.broken === undefined && !this.disposed;
  }

  /** Runs guest code; any exception marks the VM broken and is rethrown as PluginTrapError. */
  invoke<T>(where: string, f: () => T): T {
    if (this.broken) throw this.broken;
    try {
      return f();
    } catch (err) {
      throw this.fail(where, err);
    }
  }

  private fail(where: string, err: unknown): PluginTrapError {
    const trap = err instanceof PluginTrapError ? err : new PluginTrapError(this.identity.name, where, err);
    if (this.broken === undefined) {
      this.broken = trap;
      this.stopBackground();
      // Requests paused on this instance cannot be resumed by it any more: release them now, the
      // filter sees `failed` and applies the fail policy.
      this.streams.forEach((s) => {
        s.failed = true;
        s.resume(undefined);
      });
    }
    return trap;
  }

  /**
   * Calls a guest export with the effective context set, without allocating a closure: this runs
   * several times per request. Extra arguments are ignored by Wasm functions that take fewer.
   */
  private call(stream: HttpStream | undefined, where: string, f: GuestFn, a: number, b = 0, c = 0): number {
    if (this.broken) throw this.broken;
    const prev = this.effective;
    this.effective = stream;
    try {
      return f(a, b, c) as number;
    } catch (err) {
      throw this.fail(where, err);
    } finally {
      this.effective = prev;
    }
  }

  private withContext<T>(stream: HttpStream | undefined, where: string, f: () => T): T {
    const prev = this.effective;
    this.effective = stream;
    try {
      return this.invoke(where, f);
    } finally {
      this.effective = prev;
    }
  }

  // ── HTTP contexts ─────────────────────────────────────────────────────────────────────────

  createStream(ctx: RequestContext): HttpStream {
    const stream = new HttpStream(this.streams.freeId(), ctx, this);
    this.streams.add(stream);
    const create = this.exports.proxy_on_context_create;
    if (create) this.call(stream, 'proxy_on_context_create', create, stream.id, ROOT_CONTEXT_ID);
    return stream;
  }

  onRequestHeaders(stream: HttpStream, endOfStream: boolean): number {
    stream.requestHeadersDelivered = true;
    const f = this.exports.proxy_on_request_headers;
    if (!f) return Action.Continue;
    const n = stream.requestHeaderCount();
    // 0.1.0 callbacks take no end_of_stream; the extra argument is simply dropped by Wasm.
    return this.call(stream, 'proxy_on_request_headers', f, stream.id, n, endOfStream && !this.legacy ? 1 : 0);
  }

  onRequestBody(stream: HttpStream, size: number, endOfStream: boolean): number {
    const f = this.exports.proxy_on_request_body;
    if (!f) return Action.Continue;
    return this.call(stream, 'proxy_on_request_body', f, stream.id, size, endOfStream ? 1 : 0);
  }

  onResponseHeaders(stream: HttpStream, endOfStream: boolean): number {
    stream.responseHeadersDelivered = true;
    const f = this.exports.proxy_on_response_headers;
    if (!f) return Action.Continue;
    const n = stream.responseHeaderCount();
    return this.call(stream, 'proxy_on_response_headers', f, stream.id, n, endOfStream && !this.legacy ? 1 : 0);
  }

  onResponseBody(stream: HttpStream, size: number, endOfStream: boolean): number {
    const f = this.exports.proxy_on_response_body;
    if (!f) return Action.Continue;
    return this.call(stream, 'proxy_on_response_body', f, stream.id, size, endOfStream ? 1 : 0);
  }

  /** proxy_on_done, then (unless the plugin defers with `false` + proxy_done) on_log and on_delete. */
  finishStream(stream: HttpStream): void {
    if (stream.deleted || stream.awaitingDone) return;
    const done = this.exports.proxy_on_done;
    const completed = done ? this.call(stream, 'proxy_on_done', done, stream.id) : 1;
    if (completed === 0) {
      stream.awaitingDone = true;
      return;
    }
    this.deleteStream(stream);
  }

  /** proxy_done from the guest, for a stream whose on_done returned false. */
  streamDone(stream: HttpStream): void {
    if (!stream.awaitingDone) return;
    stream.awaitingDone = false;
    this.deleteStream(stream);
  }

  private deleteStream(stream: HttpStream): void {
    stream.deleted = true;
    this.streams.delete(stream);
    const ex = this.exports;
    try {
      if (ex.proxy_on_log) this.call(stream, 'proxy_on_log', ex.proxy_on_log, stream.id);
    } finally {
      if (ex.proxy_on_delete && this.usable) this.call(stream, 'proxy_on_delete', ex.proxy_on_delete, stream.id);
    }
  }

  /** Drops a stream without calling the guest (its instance broke, or the VM is being replaced). */
  forgetStream(stream: HttpStream): void {
    stream.deleted = true;
    this.streams.delete(stream);
  }

  // ── root-context services ─────────────────────────────────────────────────────────────────

  setTickPeriod(ms: number): void {
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.tickTimer = undefined;
    const tick = this.exports.proxy_on_tick;
    if (ms === 0 || !tick || this.disposed || this.retired) return;
    this.tickTimer = setInterval(() => {
      if (!this.usable) return;
      try {
        this.withContext(undefined, 'proxy_on_tick', () => tick(ROOT_CONTEXT_ID));
      } catch (err) {
        this.deps.logger(this.identity.name, 4, (err as Error).message);
      }
    }, Math.max(1, ms));
    this.tickTimer.unref();
  }

  subscribeQueue(queueId: number): void {
    if (this.queueSubscriptions.has(queueId) || this.disposed || this.retired) return;
    const ready = this.exports.proxy_on_queue_ready;
    if (!ready) return;
    const unsubscribe = this.deps.sharedQueues.onReady(queueId, () => {
      if (!this.usable) return;
      try {
        this.withContext(undefined, 'proxy_on_queue_ready', () => ready(ROOT_CONTEXT_ID, queueId));
      } catch (err) {
        this.deps.logger(this.identity.name, 4, (err as Error).message);
      }
    });
    this.queueSubscriptions.set(queueId, unsubscribe);
  }

  /**
   * Starts an HTTP call for the effective context and returns its token. The answer is delivered to
   * proxy_on_http_call_response on the context that made the call.
   */
  startHttpCall(stream: HttpStream | undefined, request: Parameters<HttpCaller['call']>[0]): number {
    const token = this.nextCallToken++;
    if (this.nextCallToken > 0x7fffffff) this.nextCallToken = 1;
    this.calls.set(token, stream);
    if (stream) stream.pendingCalls++;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('plugin HTTP call timed out')), Math.max(1, request.timeoutMs));

    });
    Promise.race([this.deps.httpCaller.call(request), timeout]).then(
      (res) => {
        clearTimeout(timer);
        this.deliverHttpCall(token, res);
      },
      (err: unknown) => {
        clearTimeout(timer);
        this.deps.logger(this.identity.name, 3, `HTTP call to ${request.upstream} failed: ${(err as Error).message}`);
        this.deliverHttpCall(token, undefined);
      },
    );
    return token;
  }

  private deliverHttpCall(token: number, res: HttpCallResponse | undefined): void {
    if (!this.calls.has(token)) return;
    const stream = this.calls.get(token);
    this.calls.delete(token);
    if (stream) stream.pendingCalls--;
    // Envoy drops answers for contexts that are gone; so do we.
    if (!this.usable || (stream && (stream.deleted || stream.failed))) return;
    const cb = this.exports.proxy_on_http_call_response;
    const contextId = stream ? stream.id : ROOT_CONTEXT_ID;
    if (cb) {
      this.callResponse = res
        ? {
            headers: new HeaderMap([[':status', String(res.status)], ...res.headers]),
            trailers: new HeaderMap(res.trailers),
            status: res.status,
            message: '',
          }
        : { headers: new HeaderMap(), trailers: new HeaderMap(), status: 0, message: 'call failed' };
      if (res) this.callbackBuffers.set(BufferType.HttpCallResponseBody, res.body);
      try {
        this.withContext(stream, 'proxy_on_http_call_response', () =>
          cb(contextId, token, res ? this.callResponse!.headers.size : 0, res ? res.body.byteLength : 0, res ? res.trailers.length : 0),
        );
      } catch {
        // The instance is now broken, and fail() released the streams paused on it.
      } finally {
        this.callResponse = undefined;
        this.callbackBuffers.delete(BufferType.HttpCallResponseBody);
      }
    }
  }

  /** Retires the instance without a trap (a limit was exceeded): same consequences as one. */
  abandon(where: string, reason: string): PluginTrapError {
    return this.fail(where, new Error(reason));
  }

  /**
   * A reload dropped or replaced this plugin: its ticks and queue listeners stop now, while the
   * requests that started on it (a stream, a request waiting for its HTTP call) finish on it.
   */
  retire(): void {
    this.retired = true;
    this.stopBackground();
  }

  /** Ends the instance: nothing more is called in it, answers to its HTTP calls are dropped. */
  dispose(): void {
    this.disposed = true;
    this.stopBackground();
  }

  private stopBackground(): void {
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.tickTimer = undefined;
    for (const unsubscribe of this.queueSubscriptions.values()) unsubscribe();
    this.queueSubscriptions.clear();
  }

  /** For proxy_set_effective_context. */
  contextExists(id: number): boolean {
    return id === ROOT_CONTEXT_ID || this.streams.get(id) !== undefined;
  }

  /** Bytes currently used by the instance's memory. */
  get memoryBytes(): number {
    return this.mem.byteLength;
  }

}

/**
 * node:wasi announces itself as experimental when first loaded, on stderr, in every worker. The host
 * uses it with no preopens, arguments or environment (nothing experimental is relied on), so it is
 * loaded on first need (most plugins never import WASI) with that one notice dropped.
 */
let WasiClass: typeof WASI | undefined;

function quietWasi(): WASI {
  if (WasiClass === undefined) {
    const emit = process.emitWarning;
    process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
      if (String(warning).includes('WASI')) return;
      (emit as (...a: unknown[]) => void).call(process, warning, ...rest);
    }) as typeof process.emitWarning;
    try {
      WasiClass = (createRequire(import.meta.url)('node:wasi') as { WASI: typeof WASI }).WASI;
    } finally {
      process.emitWarning = emit;
    }
  }
  return new WasiClass({ version: 'preview1', args: [], env: {}, returnOnExit: true });
}
