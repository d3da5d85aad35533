/**
 * The OpenAI wire format of the simulator's answers, shaped as vLLM sends them: whole
 * `chat.completion` / `text_completion` objects, and SSE chunks (`data: {...}\n\n`, ended by
 * `data: [DONE]`). A stream's chunks share everything but the choice and its delta, so the shared
 * head is serialized once per request and a token costs one JSON.stringify of its text.
 */

import type { FinishReason } from './engine.js';
import type { GenerationRequest } from './openai-requests.js';

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  readonly prompt_tokens_details: { readonly cached_tokens: number };
}

export interface ChoiceResult {
  readonly index: number;
  readonly text: string;
  readonly finishReason: FinishReason;
}

export function usage(promptTokens: number, completionTokens: number, cachedTokens: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens },
  };
}

export function errorBody(status: number, type: string, message: string, param: string | null = null): string {
  return JSON.stringify({ error: { message, type, param, code: status } });
}

/** The whole answer of a request that did not stream. */
export function completeBody(kind: GenerationRequest['kind'], id: string, created: number, model: string, choices: readonly ChoiceResult[], totals: Usage): string {
  if (kind === 'chat') {
    return JSON.stringify({
      id,
      object: 'chat.completion',
      created,
      model,
      choices: choices.map((c) => ({
        index: c.index,
        message: { role: 'assistant', content: c.text, tool_calls: [] },
        logprobs: null,
        finish_reason: c.finishReason,
        stop_reason: null,
      })),
      usage: totals,
    });
  }
  return JSON.stringify({
    id,
    object: 'text_completion',
    created,
    model,
    choices: choices.map((c) => ({ index: c.index, text: c.text, logprobs: null, finish_reason: c.finishReason, stop_reason: null })),
    usage: totals,
  });
}

/** The SSE chunks of one streamed request. */
export class ChunkFormatter {
  private readonly head: string;
  private readonly tail: string;
  private readonly chat: boolean;

  constructor(kind: GenerationRequest['kind'], id: string, created: number, model: string, includeUsage: boolean) {
    this.chat = kind === 'chat';
    const object = this.chat ? 'chat.completion.chunk' : 'text_completion';
    this.head = `data: {"id":${JSON.stringify(id)},"object":"${object}","created":${created},"model":${JSON.stringify(model)},"choices":[`;
    // OpenAI: with include_usage every chunk carries "usage": null except the last, which carries it.
    this.tail = includeUsage ? '],"usage":null}\n\n' : ']}\n\n';
  }

  /** The opening chunk of a chat choice (role, empty content), sent with its first token. */
  role(index: number): string {
    return `${this.head}{"index":${index},"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}${this.tail}`;
  }

  token(index: number, text: string, finish: FinishReason | null): string {
    const reason = finish === null ? 'null' : `"${finish}"`;
    const body = this.chat
      ? `{"index":${index},"delta":{"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":${reason}}`
      : `{"index":${index},"text":${JSON.stringify(text)},"logprobs":null,"finish_reason":${reason},"stop_reason":null}`;
    return this.head + body + this.tail;
  }

  usage(totals: Usage): string {
    return `${this.head}],"usage":${JSON.stringify(totals)}}\n\n`;
  }

  done(): string {
    return 'data: [DONE]\n\n';
  }
}
