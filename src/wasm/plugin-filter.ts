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
import { HttpStream } from './http-stream.js';
import type { PluginRuntime } from './plugin-runtime.js';

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

/** Which request phase a callback belongs to, i.e. what to write back after it. */
const HEADERS = 0;
const BODY = 1;
type RequestPhase = typeof HEADERS | typeof BODY;

/*
 * Every request pays for what this file touches with cold caches (in a worker, the server, codecs
 * and the upstream client run between two plugin calls), so the hooks allocate nothing but the
 * stream, keep the settings they read per request in the filter itself, and make no closures.
 */
export class WasmPluginFilter implements Filter {
  readonly name: string;
  onRequestHeaders?: (ctx: RequestContext) => HookResult;
  onRequestBody?: (ctx: RequestContext) => HookResult;
  onResponseHeaders?: (ctx: RequestContext) => void;
  onResponseEvent?: (ctx: RequestContext, event: ResponseEvent) => void;
  onDone?: (ctx: RequestContext) => void;

  private readonly config: PluginConfig;
  /** Undefined when the plugin sees every request. */
  private readonly inScope: ((ctx: RequestContext) => boolean) | undefined;
  /** Model/route scope can only be decided after the body is parsed. */
  private readonly deferHeaders: boolean;
  private readonly callRequestHeaders: boolean;
  private readonly callRequestBody: boolean;
  private readonly callResponseHeaders: boolean;
  private readonly callResponseBody: boolean;
  private readonly callMs: number;
  private readonly failOpen: boolean;
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
        ? undefined
        : (ctx) =>
            (models === undefined || matchesAny(models, ctx.model)) &&
            (routes === undefined || (ctx.route !== undefined && routes.has(ctx.route.plan.name))) &&
            (consumers === undefined || consumers.has(facts.consumer?.(ctx) ?? '\0'));

    const p = config.phases;
    this.callRequestHeaders = p.request_headers;
    this.callRequestBody = p.request_body;
    this.callResponseHeaders = p.response_headers;
    this.callResponseBody = p.response_body;
    this.callMs = config.limits.call_ms;
    this.failOpen = config.fail === 'open';
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
    if (this.inScope !== undefined && !this.inScope(ctx)) return undefined;
    const started = performance.now();
    const s = this.begin(ctx);
    if (!(s instanceof HttpStream)) return s;
    if (!this.callRequestHeaders) return undefined;
    return this.callRequest(s, HEADERS, started);
  }

  private requestBody(ctx: RequestContext): HookResult {
    let s = this.streamOf(ctx);
    if (s === undefined) {
      if (!this.deferHeaders || !this.inScope!(ctx)) return undefined;
      const started = performance.now();
      const begun = this.begin(ctx);
      if (!(begun instanceof HttpStream)) return begun;
      s = begun;
      if (this.callRequestHeaders) {
        const bound = s;
        const r = this.callRequest(bound, HEADERS, started);
        if (r instanceof Promise) return r.then((res) => res ?? this.body(bound));
        if (r) return r;
      }
    }
    return this.body(s);
  }

  private body(s: HttpStream): HookResult {
    if (!this.callRequestBody || !alive(s)) return undefined;
    const raw = s.ctx.bodyChanged ? undefined : this.facts.rawBody?.(s.ctx);
    if (raw !== undefined) s.setRequestBodyBytes(raw);
    else s.setRequestBodyText(JSON.stringify(s.ctx.body));
    return this.callRequest(s, BODY, performance.now());
  }

  private responseHeaders(ctx: RequestContext): void {
    const s = this.streamOf(ctx);
    // Already delivered before the first event when non-streamed answers run events first.
    if (s === undefined || !alive(s) || s.responseHeadersDelivered) return;
    this.deliverResponseHeaders(s);
  }

  /** Response phases cannot wait or answer within the filter contract: Pause counts as Continue. */
  private deliverResponseHeaders(s: HttpStream): void {
    s.resetResponseHeaders();
    const started = performance.now();
    let action: number;
    try {
      action = s.vm.onResponseHeaders(s, false);
    } catch (err) {
      this.noteFailure(s, err);
      return;
    }
    if (!this.withinLimit(s, started)) return;
    this.applyResponseHeaders(s);
    this.afterResponseCallback(s, action);
  }

  private responseEvent(ctx: RequestContext, ev: ResponseEvent): void {
    const s = this.streamOf(ctx);
    if (s === undefined || !alive(s)) return;
    if (!s.responseHeadersDelivered && this.callResponseHeaders) this.deliverResponseHeaders(s);
    if (!alive(s)) return;
    const eos = ev.type === 'response' || ev.type === 'error';
    const payload = ev.type === 'response' ? ev.response : ev.type === 'error' ? errorPayload(ev.error) : ev;
    s.responseBody = Buffer.from(JSON.stringify(payload), 'utf8');
    s.responseBodyEdited = false;
    if (eos) s.responseEos = true;
    const started = performance.now();
    let action: number;
    try {
      action = s.vm.onResponseBody(s, s.responseBody.byteLength, eos);
    } catch (err) {
      this.noteFailure(s, err);
      return;
    }
    if (!this.withinLimit(s, started)) return;
    if (s.responseBodyEdited && ev.type !== 'error') this.applyResponseBody(s, payload as Record<string, unknown>);
    this.afterResponseCallback(s, action);
  }

  private done(ctx: RequestContext): void {
    const s = this.streamOf(ctx);
    if (s === undefined) return;
    const streams = ctx.pluginStreams!;
    streams.splice(streams.indexOf(s), 1);
    const vm = s.vm;
    // The exchange ended while the plugin held the request (client gone): release the waiting hook
    // so nothing stays pending; the server checks ctx.aborted before going on.
    if (s.paused) s.resume(undefined);
    if (!alive(s)) {
      vm.forgetStream(s);
      return;
    }
    const started = performance.now();
    try {
      if (this.callResponseBody && s.responseHeadersDelivered && !s.responseEos) {
        // The spec's last chunk: plugins that buffer until end_of_stream see it.
        s.responseBody = new Uint8Array(0);
        vm.onResponseBody(s, 0, true);
      }
      vm.finishStream(s);
    } catch (err) {
      this.noteFailure(s, err);
      vm.forgetStream(s);
      return;
    }
    this.withinLimit(s, started);
  }

  // ── plumbing ──────────────────────────────────────────────────────────────────────────────

  /** A stream, or the fail-policy result when the plugin is unavailable or traps at once. */
  private begin(ctx: RequestContext): HttpStream | FilterResult {
    // The client left (and onDone ran) while an earlier filter waited: nothing would end this context.
    if (ctx.aborted) return undefined;
    const vm = this.runtime.acquire();
    if (vm === undefined) {
      this.runtime.stats.unavailable++;
      return this.failOpen
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
    stream.owner = this;
    if (ctx.pluginStreams === undefined) ctx.pluginStreams = [stream];
    else ctx.pluginStreams.push(stream);
    return stream;
  }

  /** This filter's stream for the request, if it made one. */
  private streamOf(ctx: RequestContext): HttpStream | undefined {
    const streams = ctx.pluginStreams;
    if (streams === undefined) return undefined;
    for (let i = 0; i < streams.length; i++) if (streams[i]!.owner === this) return streams[i] as HttpStream;
    return undefined;
  }

  /**
   * Runs one request-phase callback (`started` is when the phase began: creating the context counts
   * towards the first one) and turns its action into the hook's result.
   */
  private callRequest(s: HttpStream, phase: RequestPhase, started: number): HookResult {
    let action: number;
    try {
      action = phase === HEADERS ? s.vm.onRequestHeaders(s, false) : s.vm.onRequestBody(s, s.requestBodySize, true);
    } catch (err) {
      this.noteFailure(s, err);
      return this.failResult();
    }
    if (!this.withinLimit(s, started)) return this.failResult();
    this.applyRequest(s, phase);
    if (s.localReply) return s.localReply;
    if (action === Action.Continue || s.resumeRequested) {
      s.resumeRequested = false;
      return undefined;
    }
    return this.waitForPlugin(s, phase);
  }

  private afterResponseCallback(s: HttpStream, action: number): void {
    if (action !== Action.Continue && !this.warnedResponsePause) {
      this.warnedResponsePause = true;
      this.log(3, 'paused a response phase; Sluice cannot hold responses, so it continues');
    }
    if (s.localReply) {
      s.localReply = undefined;
      this.log(3, 'sent a local response after the upstream answered; ignored');
    }
  }

  /** False (and the instance is replaced) when the callbacks since `started` overran limits.call_ms. */
  private withinLimit(s: HttpStream, started: number): boolean {
    const ms = performance.now() - started;
    if (ms <= this.callMs) return true;
    this.runtime.stats.overruns++;
    this.noteFailure(s, s.vm.abandon('limit', `callback ran ${ms.toFixed(1)} ms (limit ${this.callMs} ms)`));
    return false;
  }

  private waitForPlugin(s: HttpStream, phase: RequestPhase): Promise<FilterResult> {
    const timer = setTimeout(() => {
      this.log(3, `kept a request paused longer than ${this.config.limits.pause_ms} ms`);
      s.failed = true;
      s.resume(undefined);
    }, this.config.limits.pause_ms);

    return s.wait().then((result) => {
      clearTimeout(timer);
      if (s.failed || !s.vm.usable) {
        if (!s.failed) this.noteFailure(s, s.vm.broken);
        return this.failResult();
      }
      this.applyRequest(s, phase);
      return s.localReply ?? result;
    });
  }

  private noteFailure(s: HttpStream, err: unknown): void {
    s.failed = true;
    this.runtime.stats.failures++;
    this.log(4, err instanceof Error ? err.message : String(err));
  }

  private failResult(): FilterResult {
    if (this.failOpen) return undefined;
    return localError(new GatewayError('internal_error', `plugin ${this.config.name} failed`));
  }

  private log(level: number, message: string): void {
    this.runtime.deps.logger(this.config.name, level, message);
  }

  // ── writing the plugin's edits back ───────────────────────────────────────────────────────

  private applyRequest(s: HttpStream, phase: RequestPhase): void {
    this.applyRequestHeaders(s);
    if (phase === BODY) this.applyRequestBody(s);
  }

  private applyRequestHeaders(s: HttpStream): void {
    if (!s.requestHeadersChanged) return;
    const map = s.requestHeaders;
    s.appliedRequestHeaders = map.version;
    const touched = map.takeTouched();
    if (touched === undefined) return;
    const ctx = s.ctx;
    const edits = ctx.upstreamHeaderEdits;
    const setKeys = (s.setKeys ??= []);
    for (const k of touched) {
      if (k.charCodeAt(0) === 58 /* ':' */) continue;
      const v = map.joined(k);
      const client = ctx.headers[k];
      const mine = setKeys.indexOf(k);
      if (v === undefined) {
        if (typeof client !== 'string' && mine < 0) continue;
        if (edits.set[k] !== undefined) delete edits.set[k];
        if (mine >= 0) setKeys.splice(mine, 1);
        if (!edits.remove.includes(k)) edits.remove.push(k);
      } else if (v !== client || mine >= 0) {
        edits.set[k] = v;
        if (mine < 0) setKeys.push(k);
        const at = edits.remove.indexOf(k);
        if (at >= 0) edits.remove.splice(at, 1);
      }
    }
  }

  private applyRequestBody(s: HttpStream): void {
    if (!s.requestBodyEdited) return;
    s.requestBodyEdited = false;
    const parsed = parseObject(s.requestBody!);
    if (parsed === undefined) {
      this.noteFailure(s, new Error('set a request body that is not a JSON object'));
      const reply = this.failResult();
      if (reply) s.localReply = reply;
      return;
    }
    s.ctx.body = parsed;
    s.ctx.bodyChanged = true;
  }

  private applyResponseHeaders(s: HttpStream): void {
    if (!s.responseHeadersChanged) return;
    const map = s.responseHeaders;
    s.appliedResponseHeaders = map.version;
    const touched = map.takeTouched();
    if (touched === undefined) return;
    const values: (string | undefined)[] = [];
    for (const k of touched) values.push(map.joined(k));
    // The map reads through to the record, which is about to hold these edits.
    map.settle();
    const target = s.ctx.responseHeaders;
    for (let i = 0; i < touched.length; i++) {
      const k = touched[i]!;
      if (k.charCodeAt(0) === 58 /* ':' */) continue;
      const v = values[i];
      if (v === undefined) delete target[k];
      else target[k] = v;
    }
  }

  /** Edits replace the event's fields in place: codecs encode the event after the filters ran. */
  private applyResponseBody(s: HttpStream, target: Record<string, unknown>): void {
    const parsed = parseObject(s.responseBody!);
    if (parsed === undefined) {
      this.log(3, 'set a response body that is not a JSON object; edit ignored');
      return;
    }
    for (const k of Object.keys(target)) delete target[k];
    Object.assign(target, parsed);
  }
}

function alive(s: HttpStream): boolean {
  return !s.failed && s.vm.usable;
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
