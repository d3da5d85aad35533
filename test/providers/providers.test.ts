import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import { ProviderSchema } from '../../src/config/schema.js';
import { GatewayError } from '../../src/errors.js';
import type { ProviderInput } from '../../src/providers/common.js';
import { HttpTransport } from '../../src/providers/http-transport.js';
import { OPENAI_COMPATIBLE_VENDORS } from '../../src/providers/openai-compatible.js';
import type { Provider, UpstreamCall } from '../../src/providers/provider.js';
import { createProvider, knownProviderTypes, providersFromEnv } from '../../src/providers/registry.js';
import type { Exchange, UpstreamHandler, UpstreamRequest, UpstreamTimeouts } from '../../src/providers/transport.js';

// ---------------------------------------------------------------------------------------------
// Helpers

const opened: Provider[] = [];
after(async () => {
  await Promise.all(opened.map((p) => p.transport.close()));
});

function make(input: ProviderInput, env: Record<string, string | undefined> = {}): Provider {
  const provider = createProvider(ProviderSchema.parse(input), { env });
  opened.push(provider);
  return provider;
}

function call(over: Partial<UpstreamCall> = {}): UpstreamCall {
  return {
    op: 'chat',
    model: 'some-model',
    stream: false,
    body: '{"model":"some-model"}',
    clientHeaders: {},
    inbound: 'openai-chat',
    ...over,
  };
}

/** The key is in exactly one place: the named header. */
function assertKeyOnlyIn(req: UpstreamRequest, header: string, expected: string, key: string): void {
  assert.equal(req.headers[header], expected);
  assert.ok(!req.origin.includes(key), 'key in origin');
  assert.ok(!req.path.includes(key), 'key in path');
  for (const [name, value] of Object.entries(req.headers)) {
    if (name !== header) assert.ok(!value.includes(key), `key in header ${name}`);
  }
  if (typeof req.body === 'string') assert.ok(!req.body.includes(key), 'key in body');
}

function throwsConfig(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof Error && !(err instanceof GatewayError), `expected a config Error, got ${String(err)}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// OpenAI and the catalogue

describe('openai', () => {
  it('posts chat to api.openai.com/v1 with a bearer key', () => {
    const p = make({ name: 'openai', type: 'openai', api_key: 'sk-test-123' });
    assert.equal(p.protocol, 'openai-chat');
    assert.equal(p.discoverModels, false);
    assert.ok(p.modelPatterns.includes('gpt-*') && p.modelPatterns.includes('o3*'));
    const req = p.buildRequest(call());
    assert.equal(req.origin, 'https://api.openai.com');
    assert.equal(req.path, '/v1/chat/completions');
    assert.equal(req.method, 'POST');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers.accept, undefined);
    assert.equal(req.body, '{"model":"some-model"}');
    assert.deepEqual(req.timeouts, { connectMs: 10_000, firstByteMs: 300_000, idleMs: 300_000 });
    assertKeyOnlyIn(req, 'authorization', 'Bearer sk-test-123', 'sk-test-123');
  });

  it('asks for SSE when streaming, and maps each operation to its path', () => {
    const p = make({ name: 'openai', type: 'openai', api_key: 'k' });
    assert.equal(p.buildRequest(call({ stream: true })).headers.accept, 'text/event-stream');
    assert.equal(p.buildRequest(call({ op: 'completions' })).path, '/v1/completions');
    assert.equal(p.buildRequest(call({ op: 'embeddings' })).path, '/v1/embeddings');
    const models = p.buildRequest(call({ op: 'models', body: null }));
    assert.equal(models.method, 'GET');
    assert.equal(models.path, '/v1/models');
    assert.equal(models.body, null);
    assert.equal(models.headers['content-type'], undefined);
    assert.equal(models.headers.authorization, 'Bearer k');
  });

  it('reads the key from the environment and takes timeouts from config', () => {
    const p = make(
      { name: 'oa', type: 'openai', timeouts: { connect_ms: 1000, first_byte_ms: 2000, idle_ms: 3000 } },
      { OPENAI_API_KEY: 'sk-env' },
    );
    const req = p.buildRequest(call());
    assert.equal(req.headers.authorization, 'Bearer sk-env');
    assert.deepEqual(req.timeouts, { connectMs: 1000, firstByteMs: 2000, idleMs: 3000 });
  });

  it('gives a bare-origin base_url the /v1 prefix and keeps an explicit path', () => {
    assert.equal(make({ name: 'a', type: 'openai', api_key: 'k', base_url: 'https://proxy.example.com' }).buildRequest(call()).path, '/v1/chat/completions');
    const req = make({ name: 'b', type: 'openai', api_key: 'k', base_url: 'https://proxy.example.com/openai/v1/' }).buildRequest(call());
    assert.equal(req.origin, 'https://proxy.example.com');
    assert.equal(req.path, '/openai/v1/chat/completions');
  });

  it('rotates over several keys', () => {
    const p = make({ name: 'oa', type: 'openai', api_key: ['k1', 'k2', 'k3'] });
    const seen = [1, 2, 3, 4].map(() => p.buildRequest(call()).headers.authorization);
    assert.deepEqual(seen, ['Bearer k1', 'Bearer k2', 'Bearer k3', 'Bearer k1']);
  });

  it('adds configured headers but never lets them carry the key', () => {
    const p = make({ name: 'oa', type: 'openai', api_key: 'k', headers: { 'X-Team': 'blue', 'openai-organization': 'org-1' } });
    const req = p.buildRequest(call());
    assert.equal(req.headers['x-team'], 'blue');
    assert.equal(req.headers['openai-organization'], 'org-1');
    throwsConfig(() => make({ name: 'oa', type: 'openai', api_key: 'k', headers: { Authorization: 'Bearer other' } }), /"oa"/, /api_key/);
    throwsConfig(() => make({ name: 'oa', type: 'openai', api_key: 'k', headers: { host: 'x' } }), /host/);
  });

  it('returns a fresh headers object per request', () => {
    const p = make({ name: 'oa', type: 'openai', api_key: 'k' });
    const a = p.buildRequest(call());
    a.headers['x-edited'] = '1';
    assert.equal(p.buildRequest(call()).headers['x-edited'], undefined);
  });

  it('refuses settings of other families and bad base URLs', () => {
    throwsConfig(() => make({ name: 'oa', type: 'openai', api_key: 'k', api_version: '2024-10-21' }), /api_version/);
    throwsConfig(() => make({ name: 'oa', type: 'openai', api_key: 'k', base_url: 'https://user:pw@example.com/v1' }), /credentials/);
    throwsConfig(() => make({ name: 'oa', type: 'openai', api_key: 'k', base_url: 'https://example.com/v1?key=x' }), /query/);
  });

  it('fails at config time without a key, naming the provider and the variable', () => {
    throwsConfig(() => make({ name: 'main', type: 'openai' }), /"main"/, /OPENAI_API_KEY/);
    throwsConfig(() => make({ name: 'ds', type: 'deepseek', api_key: '' }), /"ds"/, /DEEPSEEK_API_KEY/);
  });
});

describe('openai-compatible catalogue', () => {
  it('joins each hosted vendor base URL with /chat/completions and sends its key as a bearer', () => {
    for (const [type, vendor] of Object.entries(OPENAI_COMPATIBLE_VENDORS)) {
      if (vendor.baseUrl === null) continue;
      const p = make({ name: 'v', type, api_key: 'sk-vendor' });
      const req = p.buildRequest(call());
      assert.equal(req.origin + req.path, `${vendor.baseUrl}/chat/completions`, type);
      assertKeyOnlyIn(req, 'authorization', 'Bearer sk-vendor', 'sk-vendor');
      assert.equal(p.type, type);
      assert.equal(p.discoverModels, vendor.selfHosted, type);
    }
  });

  it('keeps path prefixes', () => {
    const path = (type: string): string => make({ name: 'v', type, api_key: 'k' }).buildRequest(call()).path;
    assert.equal(path('zhipu'), '/api/paas/v4/chat/completions');
    assert.equal(path('qwen'), '/compatible-mode/v1/chat/completions');
    assert.equal(path('groq'), '/openai/v1/chat/completions');
    assert.equal(path('fireworks'), '/inference/v1/chat/completions');
  });

  it('resolves the dashscope alias to qwen', () => {
    const p = make({ name: 'ds', type: 'dashscope' }, { DASHSCOPE_API_KEY: 'sk-ds' });
    assert.equal(p.type, 'qwen');
    assert.equal(p.buildRequest(call()).origin, 'https://dashscope-intl.aliyuncs.com');
  });

  it('runs self-hosted servers without a key and discovers their models', () => {
    const p = make({ name: 'local', type: 'vllm' });
    assert.equal(p.discoverModels, true);
    assert.deepEqual(p.modelPatterns, []);
    assert.ok(p.supports('embeddings') && p.supports('models'));
    const req = p.buildRequest(call());
    assert.equal(req.origin, 'http://127.0.0.1:8000');
    assert.equal(req.path, '/v1/chat/completions');
    assert.equal(req.headers.authorization, undefined);
    const remote = make({ name: 'gpu', type: 'ollama', base_url: 'http://gpu-box:11434', api_key: 'secret' }).buildRequest(call());
    assert.equal(remote.origin + remote.path, 'http://gpu-box:11434/v1/chat/completions');
    assert.equal(remote.headers.authorization, 'Bearer secret');
  });

  it('requires base_url for the generic type', () => {
    throwsConfig(() => make({ name: 'x', type: 'openai-compatible' }), /"x"/, /base_url is required/);
    const req = make({ name: 'x', type: 'openai-compatible', base_url: 'https://llm.internal' }).buildRequest(call({ op: 'embeddings' }));
    assert.equal(req.origin + req.path, 'https://llm.internal/v1/embeddings');
  });

  it('refuses operations a vendor does not offer', () => {
    const p = make({ name: 'pplx', type: 'perplexity', api_key: 'k' });
    assert.equal(p.supports('embeddings'), false);
    assert.throws(() => p.buildRequest(call({ op: 'embeddings' })), (e: unknown) => e instanceof GatewayError && e.code === 'unsupported_operation');
  });

  it('uses configured models instead of the defaults', () => {
    assert.deepEqual(make({ name: 'g', type: 'groq', api_key: 'k', models: ['llama-*'] }).modelPatterns, ['llama-*']);
    assert.deepEqual(make({ name: 'd', type: 'deepseek', api_key: 'k' }).modelPatterns, ['deepseek-*']);
  });
});

// ---------------------------------------------------------------------------------------------
// Azure, Anthropic, Gemini, mock

describe('azure-openai', () => {
  const base = 'https://res.openai.azure.com';

  it('maps models to deployments in the path, with the default api-version and an api-key header', () => {
    const p = make({ name: 'az', type: 'azure-openai', base_url: base, api_key: 'az-key', deployments: { 'gpt-4o': 'prod-4o' } });
    assert.deepEqual(p.modelPatterns, []);
    const req = p.buildRequest(call({ model: 'gpt-4o' }));
    assert.equal(req.origin, base);
    assert.equal(req.path, '/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21');
    assertKeyOnlyIn(req, 'api-key', 'az-key', 'az-key');
    assert.equal(req.headers.authorization, undefined);
    assert.equal(p.buildRequest(call({ model: 'text-embedding-3-small', op: 'embeddings' })).path, '/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21');
    assert.equal(p.supports('models'), false);
  });

  it('escapes deployment names and honours api_version', () => {
    const p = make({ name: 'az', type: 'azure-openai', base_url: base, api_key: 'k', api_version: '2025-04-01-preview' });
    assert.equal(p.buildRequest(call({ model: '../x?y' })).path, '/openai/deployments/..%2Fx%3Fy/chat/completions?api-version=2025-04-01-preview');
  });

  it('uses the /openai/v1 surface for api_version v1', () => {
    const p = make({ name: 'az', type: 'azure-openai', base_url: base, api_key: 'k', api_version: 'v1' });
    const req = p.buildRequest(call({ model: 'my-deployment', stream: true }));
    assert.equal(req.path, '/openai/v1/chat/completions');
    assert.equal(req.body, '{"model":"some-model"}');
    assert.equal(req.headers.accept, 'text/event-stream');
    throwsConfig(
      () => make({ name: 'az', type: 'azure-openai', base_url: base, api_key: 'k', api_version: 'v1', deployments: { a: 'b' } }),
      /deployments/,
    );
  });

  it('needs base_url and a key', () => {
    throwsConfig(() => make({ name: 'az', type: 'azure-openai', api_key: 'k' }), /"az"/, /base_url/);
    throwsConfig(() => make({ name: 'az', type: 'azure-openai', base_url: base }), /AZURE_OPENAI_API_KEY/);
    assert.equal(make({ name: 'az', type: 'azure-openai', base_url: base }, { AZURE_OPENAI_API_KEY: 'e' }).buildRequest(call()).headers['api-key'], 'e');
  });
});

describe('anthropic', () => {
  it('posts to /v1/messages with x-api-key and the default version', () => {
    const p = make({ name: 'claude', type: 'anthropic', api_key: 'sk-ant-1' });
    assert.equal(p.protocol, 'anthropic-messages');
    assert.deepEqual(p.modelPatterns, ['claude-*']);
    assert.equal(p.supports('embeddings'), false);
    const req = p.buildRequest(call({ model: 'claude-sonnet-4-5', inbound: 'openai-chat', clientHeaders: { 'anthropic-beta': 'x' } }));
    assert.equal(req.origin, 'https://api.anthropic.com');
    assert.equal(req.path, '/v1/messages');
    assert.equal(req.headers['anthropic-version'], '2023-06-01');
    assert.equal(req.headers['anthropic-beta'], undefined, 'beta forwarded for an OpenAI client');
    assertKeyOnlyIn(req, 'x-api-key', 'sk-ant-1', 'sk-ant-1');
  });

  it('forwards the client version and betas only when the client spoke Anthropic', () => {
    const p = make({ name: 'claude', type: 'anthropic', api_key: 'k' });
    const clientHeaders = { 'anthropic-version': '2024-01-01', 'anthropic-beta': 'interleaved-thinking-2025-05-14', 'x-other': 'no' };
    const req = p.buildRequest(call({ inbound: 'anthropic-messages', clientHeaders, stream: true }));
    assert.equal(req.headers['anthropic-version'], '2024-01-01');
    assert.equal(req.headers['anthropic-beta'], 'interleaved-thinking-2025-05-14');
    assert.equal(req.headers['x-other'], undefined);
    assert.equal(req.headers.accept, 'text/event-stream');
  });

  it('adds client betas to configured ones', () => {
    const p = make({ name: 'claude', type: 'anthropic', api_key: 'k', headers: { 'anthropic-beta': 'context-1m-2025-08-07' } });
    assert.equal(p.buildRequest(call()).headers['anthropic-beta'], 'context-1m-2025-08-07');
    const req = p.buildRequest(call({ inbound: 'anthropic-messages', clientHeaders: { 'anthropic-beta': 'b2' } }));
    assert.equal(req.headers['anthropic-beta'], 'context-1m-2025-08-07,b2');
  });
});

describe('gemini', () => {
  it('puts the model in the path and the key in x-goog-api-key', () => {
    const p = make({ name: 'g', type: 'gemini', api_key: 'AIza-test' });
    assert.equal(p.protocol, 'gemini');
    const req = p.buildRequest(call({ model: 'gemini-2.5-flash' }));
    assert.equal(req.origin, 'https://generativelanguage.googleapis.com');
    assert.equal(req.path, '/v1beta/models/gemini-2.5-flash:generateContent');
    assertKeyOnlyIn(req, 'x-goog-api-key', 'AIza-test', 'AIza-test');
  });

  it('streams with streamGenerateContent?alt=sse', () => {
    const p = make({ name: 'g', type: 'gemini', api_key: 'k' });
    const req = p.buildRequest(call({ model: 'gemini-2.5-pro', stream: true }));
    assert.equal(req.path, '/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse');
    assert.equal(req.headers.accept, 'text/event-stream');
  });

  it('normalises models/ names and keeps tuned models', () => {
    const p = make({ name: 'g', type: 'gemini', api_key: 'k' });
    assert.equal(p.buildRequest(call({ model: 'models/gemini-2.0-flash' })).path, '/v1beta/models/gemini-2.0-flash:generateContent');
    assert.equal(p.buildRequest(call({ model: 'tunedModels/my-tune' })).path, '/v1beta/tunedModels/my-tune:generateContent');
    assert.equal(p.buildRequest(call({ model: 'a/../b' })).path, '/v1beta/models/a%2F..%2Fb:generateContent');
  });

  it('falls back to GOOGLE_API_KEY', () => {
    const p = make({ name: 'g', type: 'gemini' }, { GOOGLE_API_KEY: 'goog' });
    assert.equal(p.buildRequest(call({ model: 'gemini-x' })).headers['x-goog-api-key'], 'goog');
    throwsConfig(() => make({ name: 'g', type: 'gemini' }), /GEMINI_API_KEY/);
  });
});

describe('mock', () => {
  it('copies x-mock-* headers and nothing else from the client', () => {
    const p = make({ name: 'mock', type: 'mock' });
    assert.deepEqual(p.modelPatterns, ['mock', 'mock-*']);
    assert.ok(p.supports('embeddings'));
    const req = p.buildRequest(call({ model: 'mock', clientHeaders: { 'x-mock-status': '503', 'x-mock-ttft-ms': '5', 'x-other': '1' } }));
    assert.equal(req.path, '/v1/chat/completions');
    assert.equal(req.headers['x-mock-status'], '503');
    assert.equal(req.headers['x-mock-ttft-ms'], '5');
    assert.equal(req.headers['x-other'], undefined);
    assert.equal(req.headers.authorization, undefined);
  });

  it('speaks Anthropic for chat when configured to', () => {
    const p = make({ name: 'mock', type: 'mock', mock: { protocol: 'anthropic' } });
    assert.equal(p.protocol, 'anthropic-messages');
    assert.equal(p.buildRequest(call()).path, '/v1/messages');
    assert.equal(p.buildRequest(call({ op: 'embeddings' })).path, '/v1/embeddings');
  });

  it('answers through its in-process transport, honouring x-mock-status', async () => {
    const p = make({ name: 'mock', type: 'mock', mock: { output_tokens: 3 } });
    const body = JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: 'hello there' }] });
    const ok = await collect(p.transport, p.buildRequest(call({ model: 'mock', body })));
    assert.equal(ok.status, 200);
    assert.equal(ok.error, null);
    assert.ok(ok.ended);
    const answer = JSON.parse(ok.body) as { choices: unknown[] };
    assert.equal(answer.choices.length, 1);
    const failed = await collect(p.transport, p.buildRequest(call({ model: 'mock', body, clientHeaders: { 'x-mock-status': '429' } })));
    assert.equal(failed.status, 429);
  });

  it('is the only type that takes mock settings', () => {
    throwsConfig(() => make({ name: 'mock', type: 'openai', api_key: 'k', mock: {} }), /mock/);
  });
});

// ---------------------------------------------------------------------------------------------
// Registry

describe('registry', () => {
  it('lists families, catalogue entries and aliases', () => {
    const types = knownProviderTypes();
    for (const t of ['openai', 'azure-openai', 'anthropic', 'gemini', 'mock', 'deepseek', 'vllm', 'openai-compatible', 'dashscope']) {
      assert.ok(types.includes(t), t);
    }
  });

  it('rejects an unknown type, listing the known ones', () => {
    throwsConfig(() => make({ name: 'x', type: 'bedrockish' }), /"x"/, /bedrockish/, /openai, azure-openai, anthropic/, /vllm/);
  });

  it('creates providers from the usual environment variables', () => {
    const configs = providersFromEnv({
      OPENAI_API_KEY: 'sk-o',
      OPENAI_BASE_URL: 'https://proxy.example.com/v1',
      ANTHROPIC_API_KEY: 'sk-a',
      GOOGLE_API_KEY: 'g',
      AZURE_OPENAI_API_KEY: 'az',
      AZURE_OPENAI_ENDPOINT: 'https://res.openai.azure.com',
      AZURE_OPENAI_API_VERSION: '2025-04-01-preview',
      DEEPSEEK_API_KEY: 'sk-d',
      DASHSCOPE_API_KEY: 'sk-q',
      GROQ_API_KEY: '',
      VLLM_API_KEY: 'ignored',
    });
    assert.deepEqual(
      configs.map((c) => c.name),
      ['openai', 'anthropic', 'gemini', 'azure-openai', 'deepseek', 'qwen'],
    );
    const [openai, , gemini, azure] = configs;
    assert.equal(openai!.base_url, 'https://proxy.example.com/v1');
    assert.equal(openai!.max_connections, 256, 'schema defaults filled');
    assert.equal(gemini!.api_key, 'g');
    assert.equal(azure!.api_version, '2025-04-01-preview');
    for (const c of configs) {
      const p = createProvider(c, { env: {} });
      opened.push(p);
      assert.equal(p.name, c.name);
    }
  });

  it('needs both the Azure key and endpoint', () => {
    assert.deepEqual(providersFromEnv({ AZURE_OPENAI_API_KEY: 'az' }), []);
    assert.deepEqual(providersFromEnv({}), []);
  });
});

// ---------------------------------------------------------------------------------------------
// HttpTransport against a local server

interface Collected {
  status: number | null;
  headers: Record<string, string>;
  chunks: Uint8Array[];
  body: string;
  ended: boolean;
  error: GatewayError | null;
  /** Callbacks seen after the exchange finished or was aborted. */
  late: string[];
}

interface CollectOptions {
  /** Return false from onData for these chunk indexes. */
  pauseAt?: ReadonlySet<number>;
  onExchange?: (exchange: Exchange, event: 'headers' | 'data', collected: Collected) => void;
}

function collect(
  transport: { send(r: UpstreamRequest, h: UpstreamHandler): Exchange },
  request: UpstreamRequest,
  options: CollectOptions = {},
): Promise<Collected> & { exchange: Exchange; collected: Collected } {
  const c: Collected = { status: null, headers: {}, chunks: [], body: '', ended: false, error: null, late: [] };
  let finish!: () => void;
  const done = new Promise<Collected>((resolve) => {
    finish = () => {
      c.body = Buffer.concat(c.chunks).toString('utf8');
      resolve(c);
    };
  });
  let exchange: Exchange | null = null;
  let finished = false;
  const handler: UpstreamHandler = {
    onHeaders(status, headers) {
      if (finished) c.late.push('headers');
      c.status = status;
      c.headers = headers;
      if (exchange) options.onExchange?.(exchange, 'headers', c);
    },
    onData(chunk) {
      if (finished) c.late.push('data');
      c.chunks.push(chunk);
      if (exchange) options.onExchange?.(exchange, 'data', c);
      return !options.pauseAt?.has(c.chunks.length - 1);
    },
    onEnd() {
      if (finished) c.late.push('end');
      finished = true;
      c.ended = true;
      finish();
    },
    onError(error) {
      if (finished) c.late.push('error');
      if (exchange === null) c.late.push('error before send() returned');
      finished = true;
      c.error = error;
      finish();
    },
  };
  exchange = transport.send(request, handler);
  return Object.assign(done, { exchange, collected: c });
}

interface TestServer {
  origin: string;
  close(): Promise<void>;
  requests: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[];
}

async function startServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const requests: TestServer['requests'] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(parts).toString('utf8') });
      handle(req, res);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const FAST: UpstreamTimeouts = { connectMs: 2000, firstByteMs: 5000, idleMs: 5000 };

function req(origin: string, over: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return {
    origin,
    path: '/v1/chat/completions',
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer secret-key' },
    body: '{"hello":"world"}',
    timeouts: FAST,
    ...over,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A fresh transport and server per test, both closed however the test ends. */
async function withServer(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  run: (server: TestServer, transport: HttpTransport) => Promise<void>,
): Promise<void> {
  const server = await startServer(handle);
  const transport = new HttpTransport({ connections: 4, connectTimeoutMs: 2000 });
  try {
    await run(server, transport);
  } finally {
    await server.close();
    await transport.close();
  }
}

function assertSafe(error: GatewayError | null, code: string): asserts error is GatewayError {
  assert.ok(error instanceof GatewayError, `expected a GatewayError, got ${String(error)}`);
  assert.equal(error.code, code);
  assert.ok(!/127\.0\.0\.1|secret|http:/.test(error.message), `unsafe message: ${error.message}`);
}

describe('HttpTransport', () => {
  it('sends the request and streams the response in chunks', async () => {
    await withServer(
      (_req, res) => {
        res.setHeader('Content-Type', 'text/event-stream');
        res.setHeader('X-Multi', ['a', 'b']);
        res.writeHead(200);
        res.write('data: one\n\n');
        setTimeout(() => res.write('data: two\n\n'), 20);
        setTimeout(() => res.end('data: [DONE]\n\n'), 40);
      },
      async (server, transport) => {
        const r = await collect(transport, req(server.origin));
        assert.equal(r.error, null);
        assert.equal(r.status, 200);
        assert.ok(r.ended);
        assert.equal(r.headers['content-type'], 'text/event-stream');
        assert.equal(r.headers['x-multi'], 'a, b');
        assert.ok(r.chunks.length >= 2, `expected several chunks, got ${r.chunks.length}`);
        assert.equal(r.body, 'data: one\n\ndata: two\n\ndata: [DONE]\n\n');
        const seen = server.requests[0]!;
        assert.equal(seen.method, 'POST');
        assert.equal(seen.url, '/v1/chat/completions');
        assert.equal(seen.headers.authorization, 'Bearer secret-key');
        assert.equal(seen.body, '{"hello":"world"}');
      },
    );
  });

  it('sends a Uint8Array body and a GET without one', async () => {
    await withServer(
      (_req, res) => res.end('ok'),
      async (server, transport) => {
        await collect(transport, req(server.origin, { body: new TextEncoder().encode('{"bytes":true}') }));
        await collect(transport, req(server.origin, { method: 'GET', path: '/v1/models', body: null }));
        assert.equal(server.requests[0]!.body, '{"bytes":true}');
        assert.equal(server.requests[1]!.method, 'GET');
        assert.equal(server.requests[1]!.body, '');
      },
    );
  });

  it('pauses when onData returns false and resumes on resume()', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first;');
        setTimeout(() => {
          res.write('second;');
          res.end('third;');
        }, 30);
      },
      async (server, transport) => {
        const pending = collect(transport, req(server.origin), { pauseAt: new Set([0]) });
        await sleep(250);
        assert.equal(pending.collected.chunks.length, 1, 'data arrived while paused');
        assert.equal(pending.collected.ended, false);
        pending.exchange.resume();
        const r = await pending;
        assert.equal(r.body, 'first;second;third;');
        assert.ok(r.ended);
      },
    );
  });

  it('relays a 500 as a status, not an error', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"boom"}}');
      },
      async (server, transport) => {
        const r = await collect(transport, req(server.origin));
        assert.equal(r.status, 500);
        assert.equal(r.error, null);
        assert.ok(r.ended);
        assert.equal(r.body, '{"error":{"message":"boom"}}');
      },
    );
  });

  it('maps connection refused to upstream_unreachable without naming the address', async () => {
    const server = await startServer((_q, s) => s.end());
    const origin = server.origin;
    await server.close();
    const transport = new HttpTransport({ connections: 1, connectTimeoutMs: 2000 });
    try {
      const r = await collect(transport, req(origin));
      assertSafe(r.error, 'upstream_unreachable');
      assert.equal(r.error.status, 502);
      assert.match(r.error.message, /ECONNREFUSED/);
      assert.equal(r.status, null);
    } finally {
      await transport.close();
    }
  });

  it('maps a headers timeout to upstream_timeout', async () => {
    await withServer(
      () => {
        // Never answers.
      },
      async (server, transport) => {
        const r = await collect(transport, req(server.origin, { timeouts: { ...FAST, firstByteMs: 200 } }));
        assertSafe(r.error, 'upstream_timeout');
        assert.equal(r.error.status, 504);
        assert.equal(r.status, null);
      },
    );
  });

  it('maps a stalled body to upstream_timeout', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: one\n\n');
      },
      async (server, transport) => {
        const r = await collect(transport, req(server.origin, { timeouts: { ...FAST, idleMs: 200 } }));
        assert.equal(r.status, 200);
        assertSafe(r.error, 'upstream_timeout');
      },
    );
  });

  it('maps a socket destroyed mid-body to upstream_unreachable', async () => {
    await withServer(
      (request, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: one\n\n');
        setTimeout(() => request.socket.destroy(), 30);
      },
      async (server, transport) => {
        const r = await collect(transport, req(server.origin));
        assert.equal(r.status, 200);
        assert.equal(r.body, 'data: one\n\n');
        assertSafe(r.error, 'upstream_unreachable');
        assert.equal(r.error.message, 'upstream connection reset');
        assert.equal(r.ended, false);
      },
    );
  });

  it('stops all callbacks after abort()', async () => {
    let timer: NodeJS.Timeout | undefined;
    await withServer(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        timer = setInterval(() => res.write('data: tick\n\n'), 10);
        res.on('close', () => clearInterval(timer));
      },
      async (server, transport) => {
        const pending = collect(transport, req(server.origin), {
          onExchange: (exchange, event) => {
            if (event === 'data') {
              exchange.abort();
              exchange.abort();
            }
          },
        });
        await sleep(200);
        const c = pending.collected;
        assert.equal(c.chunks.length, 1);
        assert.equal(c.ended, false);
        assert.equal(c.error, null);
        assert.deepEqual(c.late, []);
        pending.exchange.resume();
      },
    );
    clearInterval(timer);
  });

  it('stops all callbacks when aborted before the response', async () => {
    await withServer(
      (_req, res) => setTimeout(() => res.end('late'), 50),
      async (server, transport) => {
        const pending = collect(transport, req(server.origin));
        pending.exchange.abort();
        await sleep(200);
        assert.equal(pending.collected.status, null);
        assert.equal(pending.collected.error, null);
        assert.equal(pending.collected.ended, false);
      },
    );
  });

  it('reports a send on a closed transport as an error after send() returns', async () => {
    const transport = new HttpTransport({ connections: 1, connectTimeoutMs: 1000 });
    await transport.close();
    const r = await collect(transport, req('http://127.0.0.1:9'));
    assertSafe(r.error, 'upstream_unreachable');
    assert.deepEqual(r.late, []);
  });
});
