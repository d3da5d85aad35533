/** `sluice mock` flags → mock server options. */

import { resolveMockOptions, type MockOptions } from '../mock/options.js';

export const MOCK_CLI_HELP = `Usage: sluice mock [--host H] [--port N] [options]

A deterministic fake model server speaking the OpenAI (chat, completions, embeddings, models) and
Anthropic (messages) wire formats, for tests and benchmarks. Answers echo the prompt.

  --ttft-ms MS          delay before the first token (default 0)
  --tps N               streamed tokens per second (default 0 = as fast as possible)
  --output-tokens N     fixed answer length in tokens (default: echo the prompt)
  --chunk-tokens N      tokens per streamed chunk (default 1)
  --error-status S      status injected on every --error-every-th request (default 500)
  --error-every N       inject an error on every Nth request (default 0 = never)
  --models a,b          model names listed by /v1/models (default mock,mock-large)

Per request, headers override: x-mock-status, x-mock-retry-after, x-mock-ttft-ms, x-mock-tps,
x-mock-output-tokens, x-mock-chunk-tokens, x-mock-reset-after (N chunks, then reset), x-mock-hang.
`;

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`--${name} must be a number, got "${v}"`);
  return n;
}

export function mockCliOptions(values: Record<string, string | boolean | undefined>): MockOptions {
  const s = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  try {
    return resolveMockOptions({
      ttftMs: num('ttft-ms', s('ttft-ms')),
      tokensPerSecond: num('tps', s('tps')),
      outputTokens: num('output-tokens', s('output-tokens')),
      chunkTokens: num('chunk-tokens', s('chunk-tokens')),
      errorStatus: num('error-status', s('error-status')),
      errorEvery: num('error-every', s('error-every')),
      models: s('models')
        ?.split(',')
        .map((m) => m.trim())
        .filter(Boolean),
    });
  } catch (err) {
    throw new Error((err as Error).message);
  }
}
