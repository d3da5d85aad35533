/**
 * What a hit sends back, and the `x-sluice-cache` header.
 *
 * The reply is the stored canonical answer under a fresh id and `created` time; the gateway encodes
 * it in the client's protocol, as JSON or (through `responseToEvents`) as a real stream of several
 * events with the stored finish reason and usage.
 *
 * Usage rule: a hit reports the token counts of the answer it replays (what the client would have
 * been billed upstream), with every input token marked as cached (`cachedInputTokens =
 * inputTokens`). For spend and quotas the gateway books a hit as cached tokens at zero cost
 * (`HitAccounting`), never as upstream spend. On a semantic hit the counts are the cached
 * question's, not the new one's: the new prompt was never tokenised by anyone.
 */

import type { ChatResponse, Usage } from '../protocol/canonical.js';
import type { CacheEntry } from './cache-entry.js';

export type CacheStatus = 'hit' | 'semantic-hit' | 'miss' | 'bypass';

export const CACHE_HEADER = 'x-sluice-cache';

/** `hit`, `semantic-hit;score=0.97`, `miss` or `bypass`. */
export function cacheHeaderValue(status: CacheStatus, score?: number): string {
  return status === 'semantic-hit' && score !== undefined ? `semantic-hit;score=${score.toFixed(2)}` : status;
}

/** Tokens served from the cache instead of bought upstream. */
export interface HitAccounting {
  cachedInputTokens: number;
  cachedOutputTokens: number;
}

export interface HitReply {
  response: ChatResponse;
  accounting: HitAccounting;
}

export function hitUsage(stored: Usage): Usage {
  const u: Usage = { inputTokens: stored.inputTokens, outputTokens: stored.outputTokens, cachedInputTokens: stored.inputTokens };
  if (stored.reasoningTokens !== undefined) u.reasoningTokens = stored.reasoningTokens;
  return u;
}

export function hitReply(entry: CacheEntry, id: string, createdSeconds: number): HitReply {
  const stored = entry.response;
  // Copies down to the tool calls, so a response filter that edits the answer it sends cannot edit
  // the stored one (strings are immutable; logprobs are passed through untouched by everyone).
  const choices = stored.choices.map((c) => (c.toolCalls ? { ...c, toolCalls: c.toolCalls.map((t) => ({ ...t })) } : { ...c }));
  const response: ChatResponse = { id, model: stored.model, created: createdSeconds, choices };
  if (stored.systemFingerprint !== undefined) response.systemFingerprint = stored.systemFingerprint;
  if (stored.usage !== undefined) response.usage = hitUsage(stored.usage);
  return {
    response,
    accounting: { cachedInputTokens: stored.usage?.inputTokens ?? 0, cachedOutputTokens: stored.usage?.outputTokens ?? 0 },
  };
}
