/**
 * Google's Gemini API (generativelanguage.googleapis.com): the model is part of the path,
 * `/v1beta/models/{model}:generateContent`, and streaming is a different method,
 * `:streamGenerateContent?alt=sse` (without `alt=sse` the stream is one long JSON array).
 *
 * The key goes in the `x-goog-api-key` header. The API also accepts `?key=`, but a key in a URL ends
 * up in access logs and traces along the way.
 *
 * Model names arrive both bare (`gemini-2.5-flash`) and as resource names (`models/gemini-2.5-flash`,
 * as Google's SDKs and `models.list` spell them); both address the same model. A tuned model's
 * resource name (`tunedModels/…`) is kept as it is.
 */

import type { ProviderConfig } from '../config/schema.js';
import { geminiCodec } from '../protocol/gemini.js';
import {
  BaseProvider,
  RequestHeaders,
  apiKeysFrom,
  endpointsFrom,
  keyHeaderAuth,
  pathSegment,
  requireKeys,
  type ProviderEndpoint,
  type ProviderInput,
} from './common.js';
import type { ProviderDeps, ProviderFactory, UpstreamCall } from './provider.js';
import type { UpstreamRequest } from './transport.js';

const DEFAULT_BASE_URL = 'https://generativelanguage.googleapis.com';
const KEY_ENV = 'GEMINI_API_KEY';
/** Google's SDKs fall back to it, so people have it set. */
const KEY_ENV_FALLBACK = 'GOOGLE_API_KEY';

/** `models/x` → `models/x`, `x` → `models/x`, `tunedModels/x` kept; each segment escaped. */
export function geminiModelResource(model: string): string {
  if (model.startsWith('tunedModels/')) return `tunedModels/${pathSegment(model.slice('tunedModels/'.length))}`;
  return `models/${pathSegment(model.startsWith('models/') ? model.slice('models/'.length) : model)}`;
}

class GeminiProvider extends BaseProvider {
  /** `{prefix}/v1beta/` per endpoint, joined once. */
  private readonly roots: readonly string[];

  constructor(
    config: ProviderConfig,
    endpoints: readonly ProviderEndpoint[],
    private readonly headers: RequestHeaders,
  ) {
    super(config, {
      type: 'gemini',
      protocol: 'gemini',
      codec: geminiCodec,
      ops: ['chat'],
      defaultModels: ['gemini-*', 'models/gemini-*'],
      discoverModels: false,
      endpoints,
      keyCount: headers.keyCount,
    });
    this.roots = endpoints.map((e) => `${e.prefix}/v1beta/`);
  }

  protected request(call: UpstreamCall): UpstreamRequest {
    const resource = geminiModelResource(call.model);
    const root = this.roots[call.endpoint ?? 0] ?? this.roots[0]!;
    const path = call.stream ? `${root}${resource}:streamGenerateContent?alt=sse` : `${root}${resource}:generateContent`;
    return {
      origin: this.endpointOf(call).origin,
      path,
      method: 'POST',
      headers: this.headers.build('POST', call.stream, call.key),
      body: call.body,
      timeouts: this.timeouts,
    };
  }
}

export const geminiProvider: ProviderFactory = (config: ProviderConfig, deps: ProviderDeps) => {
  const endpoints = endpointsFrom(config, DEFAULT_BASE_URL);
  let keys = apiKeysFrom(config, deps, KEY_ENV);
  if (keys.length === 0) keys = apiKeysFrom(config, deps, KEY_ENV_FALLBACK);
  requireKeys(config, keys, KEY_ENV);
  const headers = new RequestHeaders(config, keyHeaderAuth('x-goog-api-key', keys));
  return new GeminiProvider(config, endpoints, headers);
};

/** GEMINI_API_KEY, else GOOGLE_API_KEY. */
export function geminiProvidersFromEnv(env: ProviderDeps['env']): ProviderInput[] {
  const key = env[KEY_ENV]?.trim() || env[KEY_ENV_FALLBACK]?.trim();
  return key ? [{ name: 'gemini', type: 'gemini', api_key: key }] : [];
}
