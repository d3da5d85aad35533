/**
 * What every provider family shares: reading its config (base URL, keys, headers, timeouts), the
 * provider object's common fields, and the upstream headers of each request. Nothing here names a
 * provider; a family passes in its defaults and keeps its quirks in its own file.
 */

import type { z } from 'zod';
import type { ProviderConfig, ProviderSchema } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { OutboundCodec, WireProtocol } from '../protocol/codec.js';
import { HttpTransport } from './http-transport.js';
import { DEFAULT_TIMEOUTS, type Operation, type Provider, type ProviderDeps, type UpstreamCall } from './provider.js';
import type { Transport, UpstreamRequest, UpstreamTimeouts } from './transport.js';

/** A provider entry as a user writes it, before the schema fills defaults. */
export type ProviderInput = z.input<typeof ProviderSchema>;

export const ALL_OPERATIONS: readonly Operation[] = Object.freeze(['chat', 'completions', 'embeddings', 'models']);

/** A configuration mistake, found when the provider is built (at start or reload), never per request. */
export function configError(config: ProviderConfig, message: string): Error {
  return new Error(`provider "${config.name}" (type ${config.type}): ${message}`);
}

export function timeoutsFrom(config: ProviderConfig): UpstreamTimeouts {
  const t = config.timeouts;
  if (t === undefined) return { ...DEFAULT_TIMEOUTS };
  const timeouts: UpstreamTimeouts = { connectMs: t.connect_ms, firstByteMs: t.first_byte_ms, idleMs: t.idle_ms };
  if (t.total_ms !== undefined) timeouts.totalMs = t.total_ms;
  return timeouts;
}

export interface BaseUrl {
  /** Scheme, host and port. */
  origin: string;
  /** Path prefix without a trailing slash ('' for none), e.g. `/v1` or `/api/paas/v4`. */
  prefix: string;
}

/**
 * The configured `base_url`, else `defaultUrl`, split into origin and path prefix. A configured URL
 * that is only an origin (`http://gpu-box:8000`) gets `defaultPath`, because that is how people
 * write the address of an OpenAI-style server whose API lives under `/v1`.
 */
export function baseUrlFrom(config: ProviderConfig, defaultUrl: string | null, defaultPath = ''): BaseUrl {
  const text = config.base_url ?? defaultUrl;
  if (text === null) throw configError(config, 'base_url is required');
  return parseBaseUrl(config, 'base_url', text, config.base_url !== undefined ? defaultPath : '');
}

/** One replica of a provider: where it lives, its share of traffic, and its identity for shared counters. */
export interface ProviderEndpoint extends BaseUrl {
  /** Origin + prefix: names the endpoint in shared memory, logs and health checks. */
  readonly url: string;
  readonly weight: number;
}

/**
 * The provider's endpoints: each of `endpoints`, or the one base URL (configured or the type's
 * default). Configured URLs that are only an origin get `defaultPath`, as for `base_url`.
 */
export function endpointsFrom(config: ProviderConfig, defaultUrl: string | null, defaultPath = ''): ProviderEndpoint[] {
  if (config.endpoints === undefined) return [endpointOf(baseUrlFrom(config, defaultUrl, defaultPath), 1)];
  const seen = new Set<string>();
  return config.endpoints.map((e, i) => {
    const endpoint = endpointOf(parseBaseUrl(config, `endpoints[${i}].url`, e.url, defaultPath), e.weight);
    if (seen.has(endpoint.url)) throw configError(config, `endpoints[${i}]: ${endpoint.url} is listed twice`);
    seen.add(endpoint.url);
    return endpoint;
  });
}

function endpointOf(base: BaseUrl, weight: number): ProviderEndpoint {
  return Object.freeze({ ...base, url: base.origin + base.prefix, weight });
}

function parseBaseUrl(config: ProviderConfig, field: string, text: string, defaultPath: string): BaseUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw configError(config, `${field} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw configError(config, `${field} must be http or https`);
  // Credentials or a query in the base URL would ride along on every request and into any log of it.
  if (url.username !== '' || url.password !== '') {
    throw configError(config, `${field} must not contain credentials; use api_key or headers`);
  }
  if (url.search !== '' || url.hash !== '') throw configError(config, `${field} must not contain a query or fragment`);
  let prefix = url.pathname.replace(/\/+$/, '');
  if (prefix === '') prefix = defaultPath.replace(/\/+$/, '');
  return { origin: url.origin, prefix };
}

/**
 * The provider's keys: `api_key` from config, else the type's environment variable. An empty string
 * (an unset `${VAR}` in the file) counts as no key.
 */
export function apiKeysFrom(config: ProviderConfig, deps: ProviderDeps, envVar: string | null): string[] {
  const configured = config.api_key === undefined ? [] : typeof config.api_key === 'string' ? [config.api_key] : config.api_key;
  let keys = configured.map((k) => k.trim()).filter((k) => k !== '');
  if (keys.length === 0 && envVar !== null) {
    const fromEnv = deps.env[envVar]?.trim();
    if (fromEnv) keys = [fromEnv];
  }
  for (const k of keys) {
    // Checked here so a stray character fails the config load rather than every request. The key
    // itself is never quoted in the message.
    if (!/^[\x21-\x7e]+$/.test(k)) throw configError(config, 'api_key contains characters not allowed in an HTTP header');
  }
  return keys;
}

export function requireKeys(config: ProviderConfig, keys: readonly string[], envVar: string | null): void {
  if (keys.length > 0) return;
  throw configError(config, envVar === null ? 'an API key is required: set api_key' : `an API key is required: set api_key or ${envVar}`);
}

/** How a family authenticates: the header and its value for each key. */
export interface AuthHeader {
  name: string;
  values: readonly string[];
}

export function bearerAuth(keys: readonly string[]): AuthHeader | null {
  return keys.length === 0 ? null : { name: 'authorization', values: keys.map((k) => `Bearer ${k}`) };
}

export function keyHeaderAuth(name: string, keys: readonly string[]): AuthHeader | null {
  return keys.length === 0 ? null : { name, values: keys };
}

/** The transport sets these itself; a configured value would corrupt the framing or be refused. */
const TRANSPORT_HEADERS = new Set(['host', 'content-length', 'connection', 'transfer-encoding', 'keep-alive', 'upgrade', 'expect', 'te']);

/**
 * The headers of a provider's requests. Everything but the key is merged once at construction;
 * a request copies one of three prepared sets and adds the next key.
 *
 * Precedence, lowest first: the family's defaults, the configured `headers`, the protocol's own
 * (`content-type`, `accept`), whatever the family forwards from the client, and the key. Configured
 * headers may not set the auth header at all: keys belong in `api_key`, which is redacted from
 * config dumps and rotated, and a second copy in `headers` would bypass both.
 */
export class RequestHeaders {
  private readonly get: Readonly<Record<string, string>>;
  private readonly post: Readonly<Record<string, string>>;
  private readonly stream: Readonly<Record<string, string>>;
  private readonly authName: string | null;
  private readonly authValues: readonly string[];
  private next = 0;

  constructor(config: ProviderConfig, auth: AuthHeader | null, defaults: Readonly<Record<string, string>> = {}) {
    const configured = config.headers ?? {};
    for (const name of Object.keys(configured)) {
      if (TRANSPORT_HEADERS.has(name)) throw configError(config, `headers: ${name} is set by the transport`);
      if (auth !== null && name === auth.name) {
        throw configError(config, `headers: ${name} carries the API key; set api_key instead`);
      }
    }
    this.get = { ...defaults, ...configured };
    this.post = { ...this.get, 'content-type': 'application/json' };
    this.stream = { ...this.post, accept: 'text/event-stream' };
    this.authName = auth?.name ?? null;
    this.authValues = auth?.values ?? [];
  }

  /** How many keys there are to choose from (0 for a keyless provider). */
  get keyCount(): number {
    return this.authValues.length;
  }

  /**
   * A fresh object each time: request filters may edit it. `key` is the index of the key routing
   * chose (its key pool); without one (discovery, probes) keys take turns.
   */
  build(method: 'GET' | 'POST', stream: boolean, key = -1): Record<string, string> {
    const headers = { ...(method === 'GET' ? this.get : stream ? this.stream : this.post) };
    if (this.authName !== null) {
      headers[this.authName] = key >= 0 && key < this.authValues.length ? this.authValues[key]! : this.nextKey();
    }
    return headers;
  }

  private nextKey(): string {
    const values = this.authValues;
    if (values.length === 1) return values[0]!;
    const value = values[this.next]!;
    this.next = this.next + 1 === values.length ? 0 : this.next + 1;
    return value;
  }
}

/** A model name as one URL path segment; an empty name cannot address anything. */
export function pathSegment(model: string): string {
  if (model === '') throw new GatewayError('invalid_request', 'model is required', { param: 'model' });
  return encodeURIComponent(model);
}

/** Settings only some families read; any other family refuses them rather than ignoring them. */
export type FamilySetting = 'api_version' | 'deployments' | 'mock';

export interface ProviderSpec {
  /** The family or catalogue entry, canonical (an alias resolves to its entry). */
  type: string;
  protocol: WireProtocol;
  codec: OutboundCodec;
  ops: readonly Operation[];
  /** Used when the config lists no `models`. */
  defaultModels: readonly string[];
  discoverModels: boolean;
  /** Family-specific settings the family reads. */
  settings?: readonly FamilySetting[];
  /** Default: an HttpTransport sized by the config. */
  transport?: Transport;
  /** Where requests go (endpointsFrom); one per replica. */
  endpoints: readonly ProviderEndpoint[];
  /** How many API keys the provider rotates through. */
  keyCount: number;
}

/** The fields and checks every provider shares; a family adds how a call becomes a request. */
export abstract class BaseProvider implements Provider {
  readonly name: string;
  readonly type: string;
  readonly protocol: WireProtocol;
  readonly codec: OutboundCodec;
  readonly transport: Transport;
  readonly modelPatterns: readonly string[];
  readonly timeouts: UpstreamTimeouts;
  readonly discoverModels: boolean;
  readonly endpoints: readonly ProviderEndpoint[];
  readonly keyCount: number;
  private readonly ops: ReadonlySet<Operation>;

  constructor(config: ProviderConfig, spec: ProviderSpec) {
    const settings = spec.settings ?? [];
    for (const key of ['api_version', 'deployments', 'mock'] as const) {
      if (config[key] !== undefined && !settings.includes(key)) {
        throw configError(config, `${key} does not apply to this type`);
      }
    }
    this.name = config.name;
    this.type = spec.type;
    this.protocol = spec.protocol;
    this.codec = spec.codec;
    this.modelPatterns = Object.freeze([...(config.models ?? spec.defaultModels)]);
    // Shared by every request of this provider, so frozen: a per-request change needs its own object.
    this.timeouts = Object.freeze(timeoutsFrom(config));
    this.discoverModels = spec.discoverModels;
    this.endpoints = Object.freeze([...spec.endpoints]);
    this.keyCount = spec.keyCount;
    this.ops = new Set(spec.ops);
    this.transport =
      spec.transport ?? new HttpTransport({ connections: config.max_connections, connectTimeoutMs: this.timeouts.connectMs });
  }

  supports(op: Operation): boolean {
    return this.ops.has(op);
  }

  buildRequest(call: UpstreamCall): UpstreamRequest {
    if (!this.ops.has(call.op)) {
      throw new GatewayError('unsupported_operation', `provider ${this.name} does not support ${call.op}`);
    }
    return this.request(call);
  }

  /** The request for a call whose operation is supported. */
  protected abstract request(call: UpstreamCall): UpstreamRequest;

  /** The endpoint routing chose for the call (the first when it chose none). */
  protected endpointOf(call: UpstreamCall): ProviderEndpoint {
    return this.endpoints[call.endpoint ?? 0] ?? this.endpoints[0]!;
  }
}
