/**
 * The OpenAI family: api.openai.com itself and every vendor or server in the OpenAI-compatible
 * catalogue (`openai-compatible.ts`). They differ only in data (base URL, key variable, model names,
 * operations), so one provider class serves them all with `Authorization: Bearer` and the OpenAI paths
 * under the entry's base URL.
 */

import type { ProviderConfig } from '../config/schema.js';
import type { JsonObject } from '../protocol/codec.js';
import { openaiChatCodec } from '../protocol/openai-chat.js';
import {
  ALL_OPERATIONS,
  BaseProvider,
  RequestHeaders,
  apiKeysFrom,
  endpointsFrom,
  bearerAuth,
  requireKeys,
  type ProviderEndpoint,
  type ProviderInput,
} from './common.js';
import {
  DEFAULT_OPENAI_PATH,
  OPENAI_COMPATIBLE_ALIASES,
  OPENAI_COMPATIBLE_VENDORS,
  type OpenAICompatibleVendor,
} from './openai-compatible.js';
import type { Operation, ProviderDeps, ProviderFactory, UpstreamCall } from './provider.js';
import type { UpstreamRequest } from './transport.js';

/** api.openai.com, described like a catalogue entry. */
const OPENAI: OpenAICompatibleVendor = Object.freeze({
  baseUrl: 'https://api.openai.com/v1',
  keyEnv: 'OPENAI_API_KEY',
  keyRequired: true,
  models: Object.freeze(['gpt-*', 'o1*', 'o3*', 'o4*', 'chatgpt-*', 'text-embedding-*', 'omni-*', 'codex-*']),
  selfHosted: false,
  ops: ALL_OPERATIONS,
});

const REASONING_MODEL = /^(o\d|gpt-5)/;

const OP_PATHS: Readonly<Record<Operation, string>> = {
  chat: '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
  models: '/models',
};

class OpenAIProvider extends BaseProvider {
  /** Full path per endpoint and operation, joined once. */
  private readonly paths: readonly Readonly<Record<Operation, string>>[];
  private readonly headers: RequestHeaders;

  constructor(
    config: ProviderConfig,
    type: string,
    vendor: OpenAICompatibleVendor,
    endpoints: readonly ProviderEndpoint[],
    headers: RequestHeaders,
  ) {
    super(config, {
      type,
      protocol: 'openai-chat',
      codec: openaiChatCodec,
      ops: vendor.ops,
      defaultModels: vendor.models,
      discoverModels: vendor.selfHosted,
      endpoints,
      keyCount: headers.keyCount,
    });
    this.paths = endpoints.map((e) => ({
      chat: e.prefix + OP_PATHS.chat,
      completions: e.prefix + OP_PATHS.completions,
      embeddings: e.prefix + OP_PATHS.embeddings,
      models: e.prefix + OP_PATHS.models,
    }));
    this.headers = headers;
  }

  /**
   * OpenAI's reasoning models (o-series, gpt-5) refuse `max_tokens` and want
   * `max_completion_tokens`; the codec writes `max_tokens`, which every other compatible server reads.
   */
  adaptTranslatedBody(body: JsonObject, model: string): void {
    if (this.type !== 'openai' || body.max_tokens === undefined || !REASONING_MODEL.test(model)) return;
    body.max_completion_tokens = body.max_tokens;
    delete body.max_tokens;
  }

  protected request(call: UpstreamCall): UpstreamRequest {
    const method = call.op === 'models' ? 'GET' : 'POST';
    const endpoint = this.endpointOf(call);
    return {
      origin: endpoint.origin,
      path: (this.paths[call.endpoint ?? 0] ?? this.paths[0]!)[call.op],
      method,
      headers: this.headers.build(method, call.stream, call.key),
      body: method === 'GET' ? null : call.body,
      timeouts: this.timeouts,
    };
  }
}

function factoryFor(type: string, vendor: OpenAICompatibleVendor): ProviderFactory {
  const defaultPath = vendor.baseUrl === null ? DEFAULT_OPENAI_PATH : new URL(vendor.baseUrl).pathname;
  return (config: ProviderConfig, deps: ProviderDeps) => {
    const endpoints = endpointsFrom(config, vendor.baseUrl, defaultPath);
    const keys = apiKeysFrom(config, deps, vendor.keyEnv);
    if (vendor.keyRequired) requireKeys(config, keys, vendor.keyEnv);
    const headers = new RequestHeaders(config, bearerAuth(keys));
    return new OpenAIProvider(config, type, vendor, endpoints, headers);
  };
}

export const openaiProvider: ProviderFactory = factoryFor('openai', OPENAI);

/** A factory per catalogue entry and alias, keyed by the `type` users write. */
export const openaiCompatibleProviders: Readonly<Record<string, ProviderFactory>> = (() => {
  const out: Record<string, ProviderFactory> = {};
  for (const [type, vendor] of Object.entries(OPENAI_COMPATIBLE_VENDORS)) out[type] = factoryFor(type, vendor);
  for (const [alias, type] of Object.entries(OPENAI_COMPATIBLE_ALIASES)) {
    const factory = out[type];
    if (factory !== undefined) out[alias] = factory;
  }
  return Object.freeze(out);
})();

/** OPENAI_API_KEY, with OPENAI_BASE_URL as the OpenAI SDKs read it. */
export function openaiProvidersFromEnv(env: ProviderDeps['env']): ProviderInput[] {
  const key = env.OPENAI_API_KEY?.trim();
  if (!key) return [];
  const baseUrl = env.OPENAI_BASE_URL?.trim();
  return [{ name: 'openai', type: 'openai', api_key: key, ...(baseUrl ? { base_url: baseUrl } : {}) }];
}

/**
 * Each hosted catalogue vendor whose key variable is set. Self-hosted servers need an address rather
 * than a key, so they come from config only.
 */
export function openaiCompatibleProvidersFromEnv(env: ProviderDeps['env']): ProviderInput[] {
  const out: ProviderInput[] = [];
  for (const [type, vendor] of Object.entries(OPENAI_COMPATIBLE_VENDORS)) {
    if (vendor.selfHosted || vendor.keyEnv === null) continue;
    const key = env[vendor.keyEnv]?.trim();
    if (key) out.push({ name: type, type, api_key: key });
  }
  return out;
}
