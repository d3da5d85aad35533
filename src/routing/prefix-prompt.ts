/**
 * One request's prompt as a chain of KV-block hashes, for the prefix balancer: computed at most once
 * per request and only if a provider group that balances by prefix asks, so requests routed any
 * other way never tokenize anything.
 *
 * The prompt is rendered as the model server will see it (prompt-blocks.ts): an OpenAI chat body as
 * is, a completions prompt as its text or token ids. An Anthropic Messages body is first put in the
 * shape the gateway would send an OpenAI-compatible replica (decoded to the canonical request, then
 * encoded by the OpenAI chat codec, which is exactly what translation does), so the same conversation
 * hashes to the same blocks whichever protocol the client speaks, and those blocks are the ones the
 * replica caches.
 *
 * Tokens are kept; hashes are per (block size, salt). The salt is the upstream model name: one
 * replica URL serving several models (LoRA adapters) keeps a cache per model, and two models never
 * share KV.
 */

import type { JsonObject, WireProtocol } from '../protocol/codec.js';
import { inboundCodec } from '../protocol/index.js';
import { openaiChatCodec } from '../protocol/openai-chat.js';
import type { Operation } from '../providers/provider.js';
import { blockHashes, chatPromptTokens, completionPromptTokens } from './prompt-blocks.js';

/** The parts of a request that make its prompt (a RequestContext is one, so nothing is allocated to pass it). */
export interface PromptRequest {
  readonly protocol: WireProtocol;
  readonly op: Operation;
  readonly body: JsonObject;
}

/** What a planner asks of a request's prompt; undefined when it has none a replica would cache. */
export interface PromptBlockSource {
  blocks(blockSize: number, salt: string): Float64Array | undefined;
}

/** The prompt's token ids as a replica renders them, or undefined (no prompt, or a body that does not parse). */
export function requestPromptTokens(protocol: WireProtocol, op: Operation, body: JsonObject): number[] | undefined {
  try {
    if (op === 'completions') {
      const prompt = body.prompt;
      if (typeof prompt === 'string') return completionPromptTokens(prompt);
      if (Array.isArray(prompt) && prompt.length > 0) {
        // A list of prompts is served as separate sequences; the first stands for the batch.
        const first: unknown = prompt[0];
        if (typeof first === 'number') return prompt.every((t) => typeof t === 'number') ? completionPromptTokens(prompt as number[]) : undefined;
        if (typeof first === 'string') return completionPromptTokens(first);
        if (Array.isArray(first) && first.every((t) => typeof t === 'number')) return completionPromptTokens(first as number[]);
      }
      return undefined;
    }
    if (op !== 'chat') return undefined;
    if (protocol === 'openai-chat') return chatPromptTokens(body);
    const canonical = inboundCodec(protocol).decodeRequest(body);
    return chatPromptTokens(openaiChatCodec.encodeRequest(canonical, ''));
  } catch {
    // A body the codec refuses is answered by the request path; routing just goes without affinity.
    return undefined;
  }
}

/** The lazy, memoised PromptBlockSource of one request. */
export class RequestPrompt implements PromptBlockSource {
  private tokens: number[] | undefined | null = null;
  private lastKey = '';
  private lastBlocks: Float64Array | undefined;

  constructor(
    private readonly protocol: WireProtocol,
    private readonly op: Operation,
    private readonly body: JsonObject,
  ) {}

  blocks(blockSize: number, salt: string): Float64Array | undefined {
    if (this.tokens === null) this.tokens = requestPromptTokens(this.protocol, this.op, this.body);
    if (this.tokens === undefined) return undefined;
    // Attempts on one group ask again with the same key: one cached answer covers them.
    const key = `${blockSize}\n${salt}`;
    if (key !== this.lastKey) {
      this.lastKey = key;
      this.lastBlocks = blockHashes(this.tokens, { blockSize, salt });
    }
    return this.lastBlocks;
  }
}
