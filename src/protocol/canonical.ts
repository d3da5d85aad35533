/**
 * The canonical chat model: what every codec decodes into and encodes from.
 *
 * It is the meeting point of OpenAI chat, Anthropic messages and Gemini, so it keeps only what can
 * be translated. Requests that stay in one protocol never pass through it (the gateway forwards the
 * client's own JSON), so nothing here has to carry every vendor field.
 *
 * Conventions:
 * - Token counts follow OpenAI's meaning: `inputTokens` includes tokens read from or written to a
 *   prompt cache; the cached parts are broken out beside it.
 * - Tool-call arguments are JSON text, as the models produce them, never re-serialized.
 */

import type { GatewayError } from '../errors.js';

export type ImageSource =
  | { kind: 'url'; url: string }
  | { kind: 'base64'; mediaType: string; data: string };

export type ContentPart =
  | { type: 'text'; text: string }
  | { type: 'image'; source: ImageSource; detail?: 'auto' | 'low' | 'high' }
  /** Model reasoning ("thinking"); `signature` is Anthropic's opaque proof, kept for round trips. */
  | { type: 'reasoning'; text: string; signature?: string };

export interface ToolCall {
  id: string;
  name: string;
  /** JSON text of the arguments, exactly as the model produced it. */
  arguments: string;
}

export type Message =
  | { role: 'system'; content: ContentPart[] }
  | { role: 'user'; content: ContentPart[]; name?: string }
  | { role: 'assistant'; content: ContentPart[]; toolCalls?: ToolCall[] }
  | { role: 'tool'; toolCallId: string; content: ContentPart[]; isError?: boolean };

export interface ToolDefinition {
  name: string;
  description?: string;
  /** JSON Schema of the arguments object. */
  parameters: Record<string, unknown>;
  strict?: boolean;
}

export type ToolChoice = 'auto' | 'none' | 'required' | { name: string };

export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; name: string; schema: Record<string, unknown>; strict?: boolean; description?: string };

export interface ChatRequest {
  /** The model the client asked for (before mapping). */
  model: string;
  messages: Message[];
  stream: boolean;
  /** OpenAI `stream_options.include_usage`: the client wants a usage chunk at the end of a stream. */
  includeUsage?: boolean;
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  stop?: string[];
  n?: number;
  seed?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  tools?: ToolDefinition[];
  toolChoice?: ToolChoice;
  parallelToolCalls?: boolean;
  responseFormat?: ResponseFormat;
  logprobs?: boolean;
  topLogprobs?: number;
  /** End-user id for abuse monitoring (OpenAI `user`, Anthropic `metadata.user_id`). */
  user?: string;
  /** Reasoning budget in tokens (Anthropic `thinking.budget_tokens`, Gemini `thinkingBudget`). */
  reasoningBudget?: number;
  /** OpenAI `reasoning_effort`. */
  reasoningEffort?: 'minimal' | 'low' | 'medium' | 'high';
  /**
   * Top-level fields the decoder did not recognise (e.g. vLLM's `chat_template_kwargs`). Encoders
   * of OpenAI-compatible upstreams pass them on verbatim; other encoders drop them.
   */
  extra?: Record<string, unknown>;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'error';

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  /** Part of `inputTokens` served from the provider's prompt cache. */
  cachedInputTokens?: number;
  /** Part of `inputTokens` written to the provider's prompt cache (Anthropic). */
  cacheCreationInputTokens?: number;
  /** Part of `outputTokens` spent on reasoning. */
  reasoningTokens?: number;
}

export interface ChatChoice {
  index: number;
  /** Answer text; null when the model only called tools. */
  text: string | null;
  reasoning?: string;
  reasoningSignature?: string;
  toolCalls?: ToolCall[];
  finishReason: FinishReason | null;
  /** The stop sequence that ended generation, when the upstream says which. */
  stopSequence?: string;
  /** OpenAI-shaped logprobs object, passed through untouched. */
  logprobs?: unknown;
  /** A refusal message (OpenAI `refusal`). */
  refusal?: string;
}

export interface ChatResponse {
  id: string;
  /** The model that answered, as the upstream reports it. */
  model: string;
  /** Unix seconds. */
  created: number;
  choices: ChatChoice[];
  usage?: Usage;
  systemFingerprint?: string;
}

/**
 * One step of a streamed answer. A stream is: `start`, then any number of content events, a
 * `finish` per choice, at most one `usage`, and the decoder's end; or an `error` at any point.
 * `choice` is the choice index (always 0 for protocols without `n`); `index` is the tool call's
 * position within its choice.
 */
export type StreamEvent =
  | { type: 'start'; id: string; model: string; created: number }
  | { type: 'text'; choice: number; text: string }
  | { type: 'reasoning'; choice: number; text: string }
  | { type: 'reasoning_signature'; choice: number; signature: string }
  | { type: 'tool_call'; choice: number; index: number; id: string; name: string }
  | { type: 'tool_args'; choice: number; index: number; delta: string }
  | { type: 'logprobs'; choice: number; logprobs: unknown }
  | { type: 'finish'; choice: number; reason: FinishReason; stopSequence?: string }
  | { type: 'usage'; usage: Usage }
  | { type: 'error'; error: GatewayError };

/** Text of the parts that are text, joined; what a codec sends where only a string fits. */
export function textOf(parts: readonly ContentPart[]): string {
  let out = '';
  for (const p of parts) if (p.type === 'text') out += p.text;
  return out;
}
