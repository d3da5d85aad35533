/**
 * The built-in fake model: the mock responder behind an in-process MockTransport, speaking OpenAI or
 * (for chat) Anthropic as `mock.protocol` says, so a gateway can be run, tested and benchmarked with
 * no upstream and no key.
 *
 * Its quirk: the client's `x-mock-*` headers (status, delay, reset, hang, …) are copied into the
 * upstream request, so a test can ask the gateway for a fault scenario per request. No other family
 * forwards them: to a real upstream they are noise.
 */

import type { ProviderConfig } from '../config/schema.js';
import { MOCK_HEADERS, type MockOptions } from '../mock/options.js';
import { MockTransport } from '../mock/transport.js';
import { anthropicMessagesCodec } from '../protocol/anthropic-messages.js';
import { openaiChatCodec } from '../protocol/openai-chat.js';
import { ALL_OPERATIONS, BaseProvider, RequestHeaders, apiKeysFrom, bearerAuth, configError } from './common.js';
import type { Operation, ProviderDeps, ProviderFactory, UpstreamCall } from './provider.js';
import type { UpstreamRequest } from './transport.js';

/** Never dialled: the transport answers in-process. `.invalid` cannot resolve should it leak. */
const ORIGIN = 'http://mock.invalid';

const OPENAI_PATHS: Readonly<Record<Operation, string>> = {
  chat: '/v1/chat/completions',
  completions: '/v1/completions',
  embeddings: '/v1/embeddings',
  models: '/v1/models',
};
const ANTHROPIC_CHAT_PATH = '/v1/messages';

class MockProvider extends BaseProvider {
  private readonly chatPath: string;

  constructor(
    config: ProviderConfig,
    private readonly headers: RequestHeaders,
    transport: MockTransport,
  ) {
    const anthropic = config.mock?.protocol === 'anthropic';
    super(config, {
      type: 'mock',
      protocol: anthropic ? 'anthropic-messages' : 'openai-chat',
      codec: anthropic ? anthropicMessagesCodec : openaiChatCodec,
      ops: ALL_OPERATIONS,
      defaultModels: ['mock', 'mock-*'],
      discoverModels: false,
      settings: ['mock'],
      transport,
      endpoints: [{ origin: ORIGIN, prefix: '', url: ORIGIN, weight: 1 }],
      keyCount: headers.keyCount,
    });
    this.chatPath = anthropic ? ANTHROPIC_CHAT_PATH : OPENAI_PATHS.chat;
  }

  protected request(call: UpstreamCall): UpstreamRequest {
    const method = call.op === 'models' ? 'GET' : 'POST';
    const headers = this.headers.build(method, call.stream, call.key);
    for (const name of MOCK_HEADERS) {
      const value = call.clientHeaders[name];
      if (value !== undefined) headers[name] = value;
    }
    return {
      origin: ORIGIN,
      path: call.op === 'chat' ? this.chatPath : OPENAI_PATHS[call.op],
      method,
      headers,
      body: method === 'GET' ? null : call.body,
      timeouts: this.timeouts,
    };
  }
}

/** The config's snake_case `mock` settings as the responder's options; unset ones keep its defaults. */
function mockOptionsFrom(config: ProviderConfig): Partial<MockOptions> {
  const options: Partial<MockOptions> = {};
  const m = config.mock;
  if (m !== undefined) {
    options.ttftMs = m.ttft_ms;
    options.tokensPerSecond = m.tokens_per_second;
    options.chunkTokens = m.chunk_tokens;
    options.errorEvery = m.error_every;
    if (m.output_tokens !== undefined) options.outputTokens = m.output_tokens;
    if (m.error_status !== undefined) options.errorStatus = m.error_status;
  }
  // `GET /v1/models` lists names; the configured patterns that are plain names are the ones to list.
  const names = (config.models ?? []).filter((m) => !m.includes('*') && !m.includes('?'));
  if (names.length > 0) options.models = [...new Set(names)];
  return options;
}

export const mockProvider: ProviderFactory = (config: ProviderConfig, deps: ProviderDeps) => {
  // The built-in mock answers in-process: there is no URL to balance over or to probe.
  if (config.base_url !== undefined || config.endpoints !== undefined) throw configError(config, 'the mock has no base_url or endpoints');
  if (config.health_check !== undefined) throw configError(config, 'health_check does not apply to the in-process mock');
  let transport: MockTransport;
  try {
    transport = new MockTransport(mockOptionsFrom(config));
  } catch (err) {
    throw configError(config, `mock: ${err instanceof Error ? err.message : String(err)}`);
  }
  // The mock needs no key; one given in config is sent anyway, so key handling can be tested on it.
  const headers = new RequestHeaders(config, bearerAuth(apiKeysFrom(config, deps, null)));
  return new MockProvider(config, headers, transport);
};
