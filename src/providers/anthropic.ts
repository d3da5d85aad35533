/**
 * Anthropic's Messages API: `POST /v1/messages` with `x-api-key` and an `anthropic-version`.
 *
 * Its quirk: a client that itself speaks the Messages API picks the API version and opts into beta
 * features with `anthropic-version` and `anthropic-beta` headers, and may depend on them (Claude
 * Code does), so those two are forwarded when the inbound protocol is Anthropic's. A client speaking
 * OpenAI knows nothing of them; its request is encoded for the default version.
 */

import type { ProviderConfig } from '../config/schema.js';
import { anthropicMessagesCodec } from '../protocol/anthropic-messages.js';
import {
  BaseProvider,
  RequestHeaders,
  apiKeysFrom,
  endpointsFrom,
  keyHeaderAuth,
  requireKeys,
  type ProviderEndpoint,
  type ProviderInput,
} from './common.js';
import type { ProviderDeps, ProviderFactory, UpstreamCall } from './provider.js';
import type { UpstreamRequest } from './transport.js';

const DEFAULT_BASE_URL = 'https://api.anthropic.com';
const KEY_ENV = 'ANTHROPIC_API_KEY';
/** The version the Anthropic codec encodes for. */
const API_VERSION = '2023-06-01';

class AnthropicProvider extends BaseProvider {
  /** A configured `anthropic-beta`, kept so a client's betas add to it instead of replacing it. */
  private readonly configuredBeta: string | undefined;

  constructor(
    config: ProviderConfig,
    endpoints: readonly ProviderEndpoint[],
    private readonly headers: RequestHeaders,
  ) {
    super(config, {
      type: 'anthropic',
      protocol: 'anthropic-messages',
      codec: anthropicMessagesCodec,
      ops: ['chat'],
      defaultModels: ['claude-*'],
      discoverModels: false,
      endpoints,
      keyCount: headers.keyCount,
    });
    this.configuredBeta = config.headers?.['anthropic-beta'];
  }

  protected request(call: UpstreamCall): UpstreamRequest {
    const headers = this.headers.build('POST', call.stream, call.key);
    if (call.inbound === 'anthropic-messages') {
      const version = call.clientHeaders['anthropic-version'];
      if (version) headers['anthropic-version'] = version;
      const beta = call.clientHeaders['anthropic-beta'];
      if (beta) {
        headers['anthropic-beta'] =
          this.configuredBeta === undefined || this.configuredBeta === beta ? beta : `${this.configuredBeta},${beta}`;
      }
    }
    const endpoint = this.endpointOf(call);
    return {
      origin: endpoint.origin,
      path: `${endpoint.prefix}/v1/messages`,
      method: 'POST',
      headers,
      body: call.body,
      timeouts: this.timeouts,
    };
  }
}

export const anthropicProvider: ProviderFactory = (config: ProviderConfig, deps: ProviderDeps) => {
  const endpoints = endpointsFrom(config, DEFAULT_BASE_URL);
  const keys = apiKeysFrom(config, deps, KEY_ENV);
  requireKeys(config, keys, KEY_ENV);
  const headers = new RequestHeaders(config, keyHeaderAuth('x-api-key', keys), { 'anthropic-version': API_VERSION });
  return new AnthropicProvider(config, endpoints, headers);
};

/** ANTHROPIC_API_KEY, with ANTHROPIC_BASE_URL as Anthropic's SDKs read it. */
export function anthropicProvidersFromEnv(env: ProviderDeps['env']): ProviderInput[] {
  const key = env[KEY_ENV]?.trim();
  if (!key) return [];
  const baseUrl = env.ANTHROPIC_BASE_URL?.trim();
  return [{ name: 'anthropic', type: 'anthropic', api_key: key, ...(baseUrl ? { base_url: baseUrl } : {}) }];
}
