/**
 * The catalogue of OpenAI-compatible vendors: data only. Each entry is served by the OpenAI family
 * (`openai.ts`); adding a vendor is adding a row here and one to docs/providers.md.
 *
 * `baseUrl` includes the vendor's path prefix up to where the OpenAI paths start, exactly as its docs
 * give it for the OpenAI SDKs: requests go to `baseUrl + /chat/completions` (or `/completions`,
 * `/embeddings`, `/models`). Where a vendor runs separate international and mainland-China
 * platforms, the entry names the international one unless the vendor's name is the China platform's;
 * the other is a `base_url` away (docs/providers.md lists them), and keys work only on their own.
 */

import type { Operation } from './provider.js';

export interface OpenAICompatibleVendor {
  /** Base URL with the path prefix; null = the config must give `base_url`. */
  readonly baseUrl: string | null;
  /** Environment variable read for the key when the config has no `api_key`; null = none. */
  readonly keyEnv: string | null;
  /** A hosted API refuses requests without a key; self-hosted servers usually run without one. */
  readonly keyRequired: boolean;
  /** Client model names or patterns routed here when no route matches. */
  readonly models: readonly string[];
  /** Self-hosted: the gateway learns the served models from `GET /models` instead of patterns. */
  readonly selfHosted: boolean;
  readonly ops: readonly Operation[];
}

const ALL: readonly Operation[] = ['chat', 'completions', 'embeddings', 'models'];

function hosted(baseUrl: string, keyEnv: string, models: readonly string[], ops: readonly Operation[]): OpenAICompatibleVendor {
  return Object.freeze({ baseUrl, keyEnv, keyRequired: true, models: Object.freeze([...models]), selfHosted: false, ops });
}

function selfHosted(baseUrl: string | null): OpenAICompatibleVendor {
  return Object.freeze({ baseUrl, keyEnv: null, keyRequired: false, models: Object.freeze([]), selfHosted: true, ops: ALL });
}

/**
 * Hosted aggregators (groq, together, fireworks, …) serve other labs' models under overlapping names,
 * so they claim no model names by default: reach them with `NAME/model` or a `models` route.
 */
export const OPENAI_COMPATIBLE_VENDORS: Readonly<Record<string, OpenAICompatibleVendor>> = Object.freeze({
  deepseek: hosted('https://api.deepseek.com', 'DEEPSEEK_API_KEY', ['deepseek-*'], ['chat', 'models']),
  groq: hosted('https://api.groq.com/openai/v1', 'GROQ_API_KEY', [], ['chat', 'models']),
  mistral: hosted(
    'https://api.mistral.ai/v1',
    'MISTRAL_API_KEY',
    ['mistral-*', 'open-mistral-*', 'open-mixtral-*', 'codestral-*', 'pixtral-*', 'ministral-*', 'magistral-*', 'devstral-*'],
    ['chat', 'embeddings', 'models'],
  ),
  together: hosted('https://api.together.xyz/v1', 'TOGETHER_API_KEY', [], ALL),
  fireworks: hosted('https://api.fireworks.ai/inference/v1', 'FIREWORKS_API_KEY', ['accounts/fireworks/*'], ALL),
  openrouter: hosted('https://openrouter.ai/api/v1', 'OPENROUTER_API_KEY', [], ['chat', 'completions', 'models']),
  xai: hosted('https://api.x.ai/v1', 'XAI_API_KEY', ['grok-*'], ['chat', 'models']),
  moonshot: hosted('https://api.moonshot.ai/v1', 'MOONSHOT_API_KEY', ['moonshot-v1-*', 'kimi-*'], ['chat', 'models']),
  qwen: hosted(
    'https://dashscope-intl.aliyuncs.com/compatible-mode/v1',
    'DASHSCOPE_API_KEY',
    ['qwen*', 'qwq-*', 'qvq-*'],
    ['chat', 'embeddings', 'models'],
  ),
  zhipu: hosted('https://open.bigmodel.cn/api/paas/v4', 'ZHIPUAI_API_KEY', ['glm-*'], ['chat', 'embeddings']),
  perplexity: hosted('https://api.perplexity.ai', 'PERPLEXITY_API_KEY', ['sonar*'], ['chat']),
  cerebras: hosted('https://api.cerebras.ai/v1', 'CEREBRAS_API_KEY', [], ['chat', 'completions', 'models']),
  sambanova: hosted('https://api.sambanova.ai/v1', 'SAMBANOVA_API_KEY', [], ['chat', 'models']),
  nvidia: hosted('https://integrate.api.nvidia.com/v1', 'NVIDIA_API_KEY', [], ALL),
  hyperbolic: hosted('https://api.hyperbolic.xyz/v1', 'HYPERBOLIC_API_KEY', [], ['chat', 'completions', 'models']),
  novita: hosted('https://api.novita.ai/v3/openai', 'NOVITA_API_KEY', [], ['chat', 'completions', 'models']),
  siliconflow: hosted('https://api.siliconflow.com/v1', 'SILICONFLOW_API_KEY', [], ['chat', 'embeddings', 'models']),
  baichuan: hosted('https://api.baichuan-ai.com/v1', 'BAICHUAN_API_KEY', ['Baichuan*'], ['chat', 'embeddings']),
  minimax: hosted('https://api.minimax.io/v1', 'MINIMAX_API_KEY', ['MiniMax-*', 'abab*'], ['chat']),
  stepfun: hosted('https://api.stepfun.ai/v1', 'STEPFUN_API_KEY', ['step-*'], ['chat', 'models']),
  ollama: selfHosted('http://127.0.0.1:11434/v1'),
  vllm: selfHosted('http://127.0.0.1:8000/v1'),
  sglang: selfHosted('http://127.0.0.1:30000/v1'),
  llamacpp: selfHosted('http://127.0.0.1:8080/v1'),
  lmstudio: selfHosted('http://127.0.0.1:1234/v1'),
  localai: selfHosted('http://127.0.0.1:8080/v1'),
  // Anything else that speaks the OpenAI API: the address is the user's to give.
  'openai-compatible': selfHosted(null),
});

/** Other names users know a vendor by → its entry. */
export const OPENAI_COMPATIBLE_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  dashscope: 'qwen',
});

/** The `/v1`-like prefix assumed when a generic server's base_url is only an origin. */
export const DEFAULT_OPENAI_PATH = '/v1';
