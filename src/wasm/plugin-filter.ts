/**
 * The adapter between Sluice's filter contract and a proxy-wasm plugin. Per request it creates an
 * HTTP context on the plugin's current instance and maps the phases:
 *
 *   onRequestHeaders  → proxy_on_request_headers (deferred to onRequestBody when the scope names
 *                       models or routes, which are only known once the body is parsed)
 *   onRequestBody     → proxy_on_request_body with the JSON body, end_of_stream = true
 *   onResponseHeaders → proxy_on_response_headers over ctx.responseHeaders (+ :status)
 *   onResponseEvent   → proxy_on_response_body per event (only with phases.response_body)
 *   onDone            → proxy_on_done, proxy_on_log, proxy_on_delete
 *
 * A request callback that returns Pause makes the hook return a promise, settled when the plugin
 * calls proxy_continue_stream / proxy_send_local_response (typically from on_http_call_response),
 * or by the fail policy on a trap or after limits.pause_ms.
 */

import { GatewayError } from '../errors.js';
import type { RequestContext } from '../pipeline/context.js';
import { localError, type Filter, type FilterResult, type ResponseEvent } from '../pipeline/filter.js';
import { compilePattern, matchesAny } from '../routing/pattern.js';
import { Action } from './abi-constants.js';
import type { PluginConfig } from './config.js';
import type { HttpStream } from './http-stream.js';
import type { PluginRuntime } from './plugin-runtime.js';
import type { PluginVm } from './plugin-vm.js';

interface Binding {
  vm: PluginVm;
  stream: HttpStream;
  /** Upstream header names this plugin put into ctx.upstreamHeaderEdits.set. */
  setKeys: Set<string> | undefined;
  responseEos: boolean;
}

/** Facts the filter needs that RequestContext does not carry (yet); the gateway provides them. */
export interface RequestFacts {
  /** The authenticated consumer's name, for `scope.consumers`. */
  consumer?(ctx: RequestContext): string | undefined;
  /**
   * The body bytes as the client sent them. Used while no filter changed the body, so the plugin
   * gets the client's bytes without a JSON.stringify of ctx.body.
   */
  rawBody?(ctx: RequestContext): Uint8Array | undefined;
}


type HookResult = FilterResult | Promise<FilterResult>;

export class WasmPluginFilter implements Filter {
  readonly name: string;
  onRequestHeaders?: (ctx: RequestContext) => HookResult;
  onRequestBody?: (ctx: RequestContext) => HookResult;
  onResponseHeaders?: (ctx: RequestContext) => void;
  onResponseEvent?: (ctx: RequestContext, event: ResponseEvent) => void;
  onDone?: (ctx: RequestContext) => void;

  private readonly config: PluginConfig;
  private readonly bindings = new WeakMap<RequestContext, Binding>();
  private readonly inScope: (ctx: RequestContext) => boolean;
  /** Model/route scope can only be decided after the body is parsed. */
  private readonly deferHeaders: boolean;
  private warnedResponsePause = false;

  constructor(
    readonly runtime: PluginRuntime,
    private readonly facts: RequestFacts = {},
  ) {
    const config = runtime.config;
    this.config = config;
    this.name = `wasm:${config.name}`;
    const scope = config.scope;
    const models = scope?.models?.length ? scope.models.map(compilePattern) : undefined;
    const routes = scope?.routes?.length ? new Set(scope.routes) : undefined;
    const consumers = scope?.consumers?.length ? new Set(scope.consumers) : undefined;
    this.deferHeaders = models !== undefined || routes !== undefined;
    this.inScope =
      models === undefined && routes === undefined && consumers === undefined
        ? () => true
        : (ctx) =>
            (models === undefined || matchesAny(models, ctx.model)) &&
            (routes === undefined || (ctx.route !== undefined && routes.has(ctx.route.plan.name))) &&
            (consumers === undefined || consumers.has(facts.consumer?.(ctx) ?? '\0'));

    const p = config.phases;
    // Hooks are own properties only when needed: the chain skips filters without a hook, and a
    // declared onResponseEvent would force the gateway to decode answers.
    if (!this.deferHeaders) this.onRequestHeaders = (ctx) => this.requestHeaders(ctx);
    this.onRequestBody = (ctx) => this.requestBody(ctx);
    if (p.response_headers) this.onResponseHeaders = (ctx) => this.responseHeaders(ctx);
    if (p.response_body) this.onResponseEvent = (ctx, ev) => this.responseEvent(ctx, ev);
    this.onDone = (ctx) => this.done(ctx);
  }

  get stats(): PluginRuntime['stats'] {
    return this.runtime.stats;
  }

  // ── phases ────────────────────────────────────────────────────────────────────────────────

  private requestHeaders(ctx: RequestContext): HookResult {
    if (!this.inScope(ctx)) return undefined;
    const b = this.begin(ctx);
    if (b === undefined || !('stream' in b)) return b;
    if (!this.config.phases.request_headers) return undefined;
    return this.run(b, () => b.vm.onRequestHeaders(b.stream, false), () => this.applyRequestHeaders(b));
  }

  private requestBody(ctx: RequestContext): HookResult {
    let b = this.bindings.get(ctx);
    if (b === undefined) {
      if (!this.deferHeaders || !this.inScope(ctx)) return undefined;
      const started = this.begin(ctx);
      if (started === undefined || !('stream' in started)) return started;
      b = started;
      if (this.config.phases.request_headers) {
        const bound = b;
        const r = this.run(bound, () => bound.vm.onRequestHeaders(bound.stream, false), () =>
          this.applyRequestHeaders(bound),
        );
        if (r instanceof Promise) return r.then((res) => res ?? this.body(bound));
        if (r) return r;
      }
    }
    return this.body(b);
  }

  private body(b: Binding): HookResult {
    if (!this.config.phases.request_body || !this.alive(b)) return undefined;
    const s = b.stream;
    const raw = s.ctx.bodyChanged ? undefined : this.facts.rawBody?.(s.ctx);
    if (raw !== undefined) s.setRequestBodyBytes(raw);
    else s.setRequestBodyText(JSON.stringify(s.ctx.body));
    return this.run(
      b,
      () => b.vm.onRequestBody(s, s.requestBodySize, true),
      () => {
        this.applyRequestHeaders(b);
        this.applyRequestBody(b);
      },
    );
  }

  private responseHeaders(ctx: RequestContext): void {
    const b = this.bindings.get(ctx);
    if (b === undefined || !this.alive(b)) return;
    if (b.stream.responseHeadersDelivered) {
      // Already delivered before the first event (non-streamed answers run events first).
      return;
    }
    this.deliverResponseHeaders(b);
  }

  private deliverResponseHeaders(b: Binding): void {
    b.stream.resetResponseHeaders();
    this.runSync(b, () => b.vm.onResponseHeaders(b.stream, false), () => this.applyResponseHeaders(b));
  }

  private responseEvent(ctx: RequestContext, ev: ResponseEvent): void {
    const b = this.bindings.get(ctx);
    if (b === undefined || !this.alive(b)) return;
    const s = b.stream;
    if (!s.responseHeadersDelivered && this.config.phases.response_headers) this.deliverResponseHeaders(b);
    if (!this.alive(b)) return;
    const eos = ev.type === 'response' || ev.type === 'error';
    const payload = ev.type === 'response' ? ev.response : ev.type === 'error' ? errorPayload(ev.error) : ev;
    s.responseBody = Buffer.from(JSON.stringify(payload), 'utf8');
    s.responseBodyEdited = false;
    if (eos) b.responseEos = true;
    this.runSync(b, () => b.vm.onResponseBody(s, s.responseBody!.byteLength, eos), () => {
      if (s.responseBodyEdited && ev.type !== 'error') this.applyResponseBody(b, payload as Record<string, unknown>);
    });
  }

  private done(ctx: RequestContext): void {
    const b = this.bindings.get(ctx);
    if (b === undefined) return;
    this.bindings.delete(ctx);
    const { vm, stream } = b;
    // The exchange ended while the plugin held the request (client gone): release the waiting hook
    // so nothing stays pending; the server checks ctx.aborted before going on.
    if (stream.paused) stream.resume(undefined);
    if (!this.alive(b)) {
      vm.forgetStream(stream);
      return;
    }
    try {
      if (this.config.phases.response_body && stream.responseHeadersDelivered && !b.responseEos) {
        // The spec's last chunk: plugins that buffer until end_of_stream see it.
        stream.responseBody = new Uint8Array(0);
        vm.onResponseBody(stream, 0, true);
      }
      vm.finishStream(stream);
    } catch (err) {
      this.noteFailure(b, err);
      vm.forgetStream(stream);
    }
  }

  // ── plumbing ──────────────────────────────────────────────────────────────────────────────

  /** A binding, or the fail-policy result when the plugin is unavailable or traps at once. */
  private begin(ctx: RequestContext): Binding | FilterResult {
    // The client left (and onDone ran) while an earlier filter waited: nothing would end this context.
    if (ctx.aborted) return undefined;
    const vm = this.runtime.acquire();
    if (vm === undefined) {
      this.runtime.stats.unavailable++;
      return this.config.fail === 'open'
        ? undefined
        : localError(new GatewayError('overloaded', `plugin ${this.config.name} is unavailable`));
    }
    let stream: HttpStream;
    try {
      stream = vm.createStream(ctx);
    } catch (err) {
      this.runtime.stats.failures++;
      this.log(4, `trapped creating a context: ${(err as Error).message}`);
      return this.failResult();
    }
    const b: Binding = { vm, stream, setKeys: undefined, responseEos: false };
    this.bindings.set(ctx, b);
    return b;
  }

  private alive(b: Binding): boolean {
    return !b.stream.failed && b.vm.usable;
  }

  /** Runs one request-phase callback and turns its action into the hook's result. */
  private run(b: Binding, call: () => number, apply: () => void): HookResult {
    const s = b.stream;
    const action = this.timed(b, call);
    if (action === undefined) return this.failResult();
    apply();
    if (s.localReply) return s.localReply;
    if (action === Action.Continue || s.resumeRequested) {
      s.resumeRequested = false;
      return undefined;
    }
    return this.waitForPlugin(b, apply);
  }

  /** Response phases cannot wait or answer within the filter contract: Pause counts as Continue. */
  private runSync(b: Binding, call: () => number, apply: () => void): void {
    const action = this.timed(b, call);
    if (action === undefined) return;
    apply();
    if (action !== Action.Continue && !this.warnedResponsePause) {
      this.warnedResponsePause = true;
      this.log(3, 'paused a response phase; Sluice cannot hold responses, so it continues');
    }
    if (b.stream.localReply) {
      b.stream.localReply = undefined;
      this.log(3, 'sent a local response after the upstream answered; ignored');
    }
  }

  /** The callback's action, or undefined after a trap or a time overrun (the instance is replaced). */
  private timed(b: Binding, call: () => number): number | undefined {
    const t0 = performance.now();
    let action: number;
    try {
      action = call();
    } catch (err) {
      this.noteFailure(b, err);
      return undefined;
    }
    const ms = performance.now() - t0;
    if (ms > this.config.limits.call_ms) {
      this.runtime.stats.overruns++;
      this.noteFailure(b, b.vm.abandon('limit', `callback ran ${ms.toFixed(1)} ms (limit ${this.config.limits.call_ms} ms)`));
      return undefined;
    }
    return action;
  }

  private waitForPlugin(b: Binding, apply: () => void): Promise<FilterResult> {
    const s = b.stream;
    const timer = setTimeout(() => {
      this.log(3, `kept a request paused longer than ${this.config.limits.pause_ms} ms`);
      s.failed = true;
      s.resume(undefined);
    }, this.config.limits.pause_ms);

    return s.wait().then((result) => {
      clearTimeout(timer);
      if (s.failed || !b.vm.usable) {
        if (!s.failed) this.noteFailure(b, b.vm.broken);
        return this.failResult();
      }
      apply();
      return s.localReply ?? result;
    });
  }

  private noteFailure(b: Binding, err: unknown): void {
    b.stream.failed = true;
    this.runtime.stats.failures++;
    this.log(4, err instanceof Error ? err.message : String(err));
  }

  private failResult(): FilterResult {
    if (this.config.fail === 'open') return undefined;
    return localError(new GatewayError('internal_error', `plugin ${this.config.name} failed`));
  }

  private log(level: number, message: string): void {
    this.runtime.deps.logger(this.config.name, level, message);
  }

  // ── writing the plugin's edits back ───────────────────────────────────────────────────────

  private applyRequestHeaders(b: Binding): void {
    const s = b.stream;
    if (!s.requestHeadersChanged) return;
    const map = s.requestHeaders;
    s.appliedRequestHeaders = map.version;
    const touched = map.takeTouched();
    if (touched === undefined) return;
    const ctx = s.ctx;
    const edits = ctx.upstreamHeaderEdits;
    const setKeys = (b.setKeys ??= new Set());
    for (const k of touched) {
      if (k.charCodeAt(0) === 58 /* ':' */) continue;
      const v = map.joined(k);
      if (v === undefined) {
        if (!(k in ctx.headers) && !setKeys.has(k)) continue;
        delete edits.set[k];
        setKeys.delete(k);
        if (!edits.remove.includes(k)) edits.remove.push(k);
      } else if (v !== ctx.headers[k] || setKeys.has(k)) {
        edits.set[k] = v;
        setKeys.add(k);
        const at = edits.remove.indexOf(k);
        if (at >= 0) edits.remove.splice(at, 1);
      }
    }
  }

  private applyRequestBody(b: Binding): void {
    const s = b.stream;
    if (!s.requestBodyEdited) return;
    s.requestBodyEdited = false;
    const parsed = parseObject(s.requestBody!);
    if (parsed === undefined) {
      this.noteFailure(b, new Error('set a request body that is not a JSON object'));
      const reply = this.failResult();
      if (reply) s.localReply = reply;
      return;
    }
    s.ctx.body = parsed;
    s.ctx.bodyChanged = true;
  }

  private applyResponseHeaders(b: Binding): void {
    const s = b.stream;
    if (!s.responseHeadersChanged) return;
    const map = s.responseHeaders;
    s.appliedResponseHeaders = map.version;
    const touched = map.takeTouched();
    if (touched === undefined) return;
    const target = s.ctx.responseHeaders;
    for (const k of touched) {
      if (k.charCodeAt(0) === 58 /* ':' */) continue;
      const v = map.joined(k);
      if (v === undefined) delete target[k];
      else target[k] = v;
    }
  }

  /** Edits replace the event's fields in place: codecs encode the event after the filters ran. */
  private applyResponseBody(b: Binding, target: Record<string, unknown>): void {
    const parsed = parseObject(b.stream.responseBody!);
    if (parsed === undefined) {
      this.log(3, 'set a response body that is not a JSON object; edit ignored');
      return;
    }
    for (const k of Object.keys(target)) delete target[k];
    Object.assign(target, parsed);
  }
}

function parseObject(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function errorPayload(err: GatewayError): Record<string, unknown> {
  return { type: 'error', error: { code: err.code, status: err.status, message: err.message } };
}
