import type { ChatRequest, ChatResponse } from '../../src/protocol/canonical.js';
import { CacheSchema, type CacheConfig } from '../../src/cache/config.js';
import type { CacheRequest } from '../../src/cache/response-cache.js';

export function chat(question: string, extra: Partial<ChatRequest> = {}): ChatRequest {
  return {
    model: 'gpt-4o',
    stream: false,
    messages: [
      { role: 'system', content: [{ type: 'text', text: 'You are a helpful assistant.' }] },
      { role: 'user', content: [{ type: 'text', text: question }] },
    ],
    ...extra,
  };
}

export function answer(text: string, extra: Partial<ChatResponse> = {}): ChatResponse {
  return {
    id: 'chatcmpl-upstream',
    model: 'gpt-4o-2024-08-06',
    created: 1_700_000_000,
    choices: [{ index: 0, text, finishReason: 'stop' }],
    usage: { inputTokens: 25, outputTokens: 12 },
    ...extra,
  };
}

export function config(overrides: Record<string, unknown> = {}): CacheConfig {
  return CacheSchema.parse(overrides);
}

export function cacheRequest(request: ChatRequest, extra: Partial<CacheRequest> = {}): CacheRequest {
  return {
    request,
    clientModel: request.model,
    route: 'gpt-4o',
    target: { provider: 'openai', model: 'gpt-4o' },
    consumer: 'alice',
    headers: {},
    ...extra,
  };
}

/** A unit vector pointing mostly along `axis`, nudged by `wobble` along the next axis. */
export function unitVector(dim: number, axis: number, wobble = 0): Float32Array {
  const v = new Float32Array(dim);
  v[axis % dim] = 1;
  v[(axis + 1) % dim] = wobble;
  const n = Math.hypot(...v);
  for (let i = 0; i < dim; i++) v[i]! /= n;
  return v;
}
