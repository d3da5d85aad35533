/**
 * OpenAI chat and completions requests as the simulator needs them: the prompt(s) as tokens, how
 * many tokens to generate, streaming flags. Anything malformed is a SimRequestError carrying the
 * status and error type vLLM answers with; fields the simulator does not model (temperature, stop,
 * tools choice, …) are accepted and ignored, as a model server must not refuse ordinary clients.
 */

import { chatPromptTokens, completionPromptTokens } from '../../src/routing/prompt-blocks.js';
import type { FinishReason } from './engine.js';

export class SimRequestError extends Error {
  override readonly name = 'SimRequestError';
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

export interface PromptPlan {
  readonly tokens: readonly number[];
  readonly maxTokens: number;
  readonly finishReason: FinishReason;
}

export interface GenerationRequest {
  readonly kind: 'chat' | 'completion';
  /** One per prompt: chat has one, completions may batch several. */
  readonly prompts: readonly PromptPlan[];
  /** Choices per prompt. */
  readonly n: number;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly salt: string | undefined;
}

export interface RequestLimits {
  readonly model: string;
  readonly maxModelLen: number;
  readonly maxTokensDefault: number;
}

/** More choices than this per request is a mistake, not a workload. */
const MAX_N = 128;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function badRequest(message: string, param: string | null = null): SimRequestError {
  return new SimRequestError(400, 'BadRequestError', message, param);
}

export function parseJsonBody(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw badRequest('the request body is not valid JSON');
  }
  if (!isRecord(value)) throw badRequest('the request body must be a JSON object');
  return value;
}

function optionalPositiveInt(body: Record<string, unknown>, field: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw badRequest(`${field} must be an integer from 1 to ${max}`, field);
  }
  return value;
}

function checkModel(body: Record<string, unknown>, limits: RequestLimits): void {
  const model = body.model;
  if (model === undefined || model === null) return;
  if (typeof model !== 'string') throw badRequest('model must be a string', 'model');
  if (model !== limits.model) throw new SimRequestError(404, 'NotFoundError', `model "${model}" is not served here (this replica serves "${limits.model}")`, 'model');
}

function plan(tokens: readonly number[], requested: number | undefined, limits: RequestLimits): PromptPlan {
  if (tokens.length === 0) throw badRequest('the prompt is empty', 'prompt');
  const room = limits.maxModelLen - tokens.length;
  if (requested !== undefined) {
    if (requested > room) {
      throw badRequest(
        `the maximum context length is ${limits.maxModelLen} tokens, but ${tokens.length + requested} were requested (${tokens.length} in the prompt, ${requested} to generate)`,
        'max_tokens',
      );
    }
    return { tokens, maxTokens: requested, finishReason: 'length' };
  }
  if (room < 1) throw badRequest(`the prompt has ${tokens.length} tokens, leaving none of the maximum context length ${limits.maxModelLen}`, 'messages');
  // Without max_tokens the simulated model "stops" by itself after the configured default.
  return { tokens, maxTokens: Math.min(limits.maxTokensDefault, room), finishReason: 'stop' };
}

function streamFlags(body: Record<string, unknown>): { stream: boolean; includeUsage: boolean } {
  const stream = body.stream;
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') throw badRequest('stream must be a boolean', 'stream');
  const options = body.stream_options;
  const includeUsage = stream === true && isRecord(options) && options.include_usage === true;
  return { stream: stream === true, includeUsage };
}

function salt(body: Record<string, unknown>): string | undefined {
  const value = body.cache_salt;
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value === '') throw badRequest('cache_salt must be a non-empty string', 'cache_salt');
  return value;
}

export function parseChatRequest(body: Record<string, unknown>, limits: RequestLimits): GenerationRequest {
  checkModel(body, limits);
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) throw badRequest('messages must be a non-empty array', 'messages');
  for (const [i, message] of messages.entries()) {
    if (!isRecord(message) || typeof message.role !== 'string') throw badRequest(`messages[${i}] must be an object with a role`, `messages[${i}]`);
  }
  const requested = optionalPositiveInt(body, 'max_completion_tokens') ?? optionalPositiveInt(body, 'max_tokens');
  const n = optionalPositiveInt(body, 'n', MAX_N) ?? 1;
  const tokens = chatPromptTokens({ messages, tools: body.tools });
  return { kind: 'chat', prompts: [plan(tokens, requested, limits)], n, ...streamFlags(body), salt: salt(body) };
}

function isTokenArray(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((t) => typeof t === 'number' && Number.isInteger(t) && t >= 0);
}

/** A completions `prompt`: a string, a list of strings, a token array or a list of token arrays. */
function completionPrompts(prompt: unknown): (string | number[])[] {
  if (typeof prompt === 'string') return [prompt];
  if (isTokenArray(prompt) && prompt.length > 0) return [prompt];
  if (Array.isArray(prompt) && prompt.length > 0 && prompt.every((p) => typeof p === 'string' || (isTokenArray(p) && p.length > 0))) {
    return prompt as (string | number[])[];
  }
  throw badRequest('prompt must be a string, a token array, or a non-empty list of either', 'prompt');
}

export function parseCompletionRequest(body: Record<string, unknown>, limits: RequestLimits): GenerationRequest {
  checkModel(body, limits);
  const prompts = completionPrompts(body.prompt);
  const requested = optionalPositiveInt(body, 'max_tokens');
  const n = optionalPositiveInt(body, 'n', MAX_N) ?? 1;
  if (prompts.length * n > MAX_N) throw badRequest(`at most ${MAX_N} choices (prompts x n) per request`, 'n');
  const plans = prompts.map((p) => plan(completionPromptTokens(p), requested, limits));
  return { kind: 'completion', prompts: plans, n, ...streamFlags(body), salt: salt(body) };
}
