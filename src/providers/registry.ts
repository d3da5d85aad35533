/**
 * Provider types → factories, and the providers implied by environment variables when there is no
 * config file. This is the one place that lists the families; everything else reaches a provider
 * through the `Provider` interface.
 */

import { ProviderSchema, type ProviderConfig } from '../config/schema.js';
import { anthropicProvider, anthropicProvidersFromEnv } from './anthropic.js';
import { azureOpenAIProvider, azureOpenAIProvidersFromEnv } from './azure-openai.js';
import type { ProviderInput } from './common.js';
import { geminiProvider, geminiProvidersFromEnv } from './gemini.js';
import { mockProvider } from './mock.js';
import {
  openaiCompatibleProviders,
  openaiCompatibleProvidersFromEnv,
  openaiProvider,
  openaiProvidersFromEnv,
} from './openai.js';
import type { Provider, ProviderDeps, ProviderFactory } from './provider.js';

const FACTORIES: ReadonlyMap<string, ProviderFactory> = new Map<string, ProviderFactory>([
  ['openai', openaiProvider],
  ['azure-openai', azureOpenAIProvider],
  ['anthropic', anthropicProvider],
  ['gemini', geminiProvider],
  ['mock', mockProvider],
  ...Object.entries(openaiCompatibleProviders),
]);

/** Build a provider from its config entry. Throws an Error naming the provider on a config mistake. */
export function createProvider(config: ProviderConfig, deps: ProviderDeps): Provider {
  const factory = FACTORIES.get(config.type);
  if (factory === undefined) {
    throw new Error(`provider "${config.name}": unknown type "${config.type}" (known: ${knownProviderTypes().join(', ')})`);
  }
  return factory(config, deps);
}

/** Every `type` a provider entry may name, aliases included. */
export function knownProviderTypes(): string[] {
  return [...FACTORIES.keys()];
}

/**
 * Providers implied by the usual environment variables (OPENAI_API_KEY, ANTHROPIC_API_KEY,
 * GEMINI_API_KEY, AZURE_OPENAI_API_KEY + AZURE_OPENAI_ENDPOINT, DEEPSEEK_API_KEY, …), each named after
 * its type, in the order families are listed here: that order is also the order in which their
 * model patterns are tried.
 */
export function providersFromEnv(env: ProviderDeps['env']): ProviderConfig[] {
  const inputs: ProviderInput[] = [
    ...openaiProvidersFromEnv(env),
    ...anthropicProvidersFromEnv(env),
    ...geminiProvidersFromEnv(env),
    ...azureOpenAIProvidersFromEnv(env),
    ...openaiCompatibleProvidersFromEnv(env),
  ];
  return inputs.map((input) => ProviderSchema.parse(input));
}
