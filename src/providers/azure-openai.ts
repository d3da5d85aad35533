/**
 * Azure OpenAI: OpenAI's wire format on a per-resource endpoint (`https://RESOURCE.openai.azure.com`),
 * authenticated with an `api-key` header.
 *
 * Two URL schemes exist:
 * - Deployments (the default): the model is chosen by the path, `/openai/deployments/{deployment}/
 *   {op}?api-version=…`, and the `model` field of the body is ignored. A deployment is named by its
 *   owner, so `deployments` maps the gateway's model name to it (default: the same name).
 * - `api_version: v1`: Azure's newer OpenAI-style surface, `/openai/v1/{op}`, with no api-version
 *   query and the deployment named by the body's `model`. The body is already encoded when it gets
 *   here, so `deployments` cannot apply: name the deployment in a `models` route's target instead.
 *
 * Deployment names are the user's own, so the type claims no model names by default.
 */

import type { ProviderConfig } from '../config/schema.js';
import { openaiChatCodec } from '../protocol/openai-chat.js';
import {
  BaseProvider,
  RequestHeaders,
  apiKeysFrom,
  endpointsFrom,
  configError,
  keyHeaderAuth,
  pathSegment,
  requireKeys,
  type ProviderEndpoint,
  type ProviderInput,
} from './common.js';
import type { Operation, ProviderDeps, ProviderFactory, UpstreamCall } from './provider.js';
import type { UpstreamRequest } from './transport.js';

const KEY_ENV = 'AZURE_OPENAI_API_KEY';
/**
 * 2024-10-21 is the newest dated GA api-version of the inference API; Azure's later GA surface is
 * the version-less v1 API, chosen with `api_version: v1`.
 */
export const AZURE_DEFAULT_API_VERSION = '2024-10-21';
const V1 = 'v1';

const OPS: readonly Operation[] = ['chat', 'completions', 'embeddings'];
const OP_SUFFIX: Readonly<Record<Operation, string>> = {
  chat: '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
  models: '/models',
};

class AzureOpenAIProvider extends BaseProvider {
  /** `?api-version=…`, escaped once; null in v1 mode. */
  private readonly versionQuery: string | null;
  private readonly deployments: Readonly<Record<string, string>>;

  constructor(
    config: ProviderConfig,
    endpoints: readonly ProviderEndpoint[],
    private readonly headers: RequestHeaders,
    apiVersion: string,
  ) {
    super(config, {
      type: 'azure-openai',
      protocol: 'openai-chat',
      codec: openaiChatCodec,
      ops: OPS,
      defaultModels: [],
      discoverModels: false,
      settings: ['api_version', 'deployments'],
      endpoints,
      keyCount: headers.keyCount,
    });
    this.versionQuery = apiVersion === V1 ? null : `?api-version=${encodeURIComponent(apiVersion)}`;
    this.deployments = config.deployments ?? {};
  }

  protected request(call: UpstreamCall): UpstreamRequest {
    const suffix = OP_SUFFIX[call.op];
    const endpoint = this.endpointOf(call);
    let path: string;
    if (this.versionQuery === null) {
      path = `${endpoint.prefix}/openai/v1${suffix}`;
    } else {
      const deployment = Object.hasOwn(this.deployments, call.model) ? this.deployments[call.model]! : call.model;
      path = `${endpoint.prefix}/openai/deployments/${pathSegment(deployment)}${suffix}${this.versionQuery}`;
    }
    return {
      origin: endpoint.origin,
      path,
      method: 'POST',
      headers: this.headers.build('POST', call.stream, call.key),
      body: call.body,
      timeouts: this.timeouts,
    };
  }
}

export const azureOpenAIProvider: ProviderFactory = (config: ProviderConfig, deps: ProviderDeps) => {
  if (config.base_url === undefined && config.endpoints === undefined) {
    throw configError(config, 'base_url is required (the resource endpoint, https://RESOURCE.openai.azure.com)');
  }
  const endpoints = endpointsFrom(config, null);
  const apiVersion = config.api_version ?? AZURE_DEFAULT_API_VERSION;
  if (apiVersion === '') throw configError(config, 'api_version must not be empty');
  if (apiVersion === V1 && config.deployments !== undefined) {
    throw configError(config, 'deployments has no effect with api_version v1; name the deployment as the model in a models route');
  }
  const keys = apiKeysFrom(config, deps, KEY_ENV);
  // Entra ID users send `authorization: Bearer <token>` through `headers` instead of a key.
  if (config.headers?.authorization === undefined) requireKeys(config, keys, KEY_ENV);
  const headers = new RequestHeaders(config, keyHeaderAuth('api-key', keys));
  return new AzureOpenAIProvider(config, endpoints, headers, apiVersion);
};

/** AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT together, with AZURE_OPENAI_API_VERSION if set. */
export function azureOpenAIProvidersFromEnv(env: ProviderDeps['env']): ProviderInput[] {
  const key = env[KEY_ENV]?.trim();
  const endpoint = env.AZURE_OPENAI_ENDPOINT?.trim();
  if (!key || !endpoint) return [];
  const apiVersion = env.AZURE_OPENAI_API_VERSION?.trim();
  return [
    {
      name: 'azure-openai',
      type: 'azure-openai',
      api_key: key,
      base_url: endpoint,
      ...(apiVersion ? { api_version: apiVersion } : {}),
    },
  ];
}
