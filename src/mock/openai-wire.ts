/**
 * OpenAI's wire formats, written out independently of the gateway's codecs (so a bug in those cannot
 * hide behind the same bug here): chat completions, legacy completions, embeddings, models, errors.
 */

import { GatewayError, type ErrorKind } from '../errors.js';
import { countWords, type Answer, type AnswerMessage, type AnswerRequest, type AnswerTool, type AnswerToolChoice, type AnswerUsage } from './answer.js';
import { embed, float32Base64, float32Json } from './embedding.js';
import { isArray, isObject, optionalBoolean, optionalPositiveInteger, requireString, type JsonObject } from './json.js';
import { MAX_EMBEDDING_DIMENSIONS } from './options.js';
import { generationDelayMs, groups, jsonReply, sseData, sseReply, type MockReply, type Pacing, type ReplyIdentity } from './reply.js';

/** What rendering needs to know about the request besides the answer itself. */
export interface OpenAICall {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  answer: AnswerRequest;
}

// ---- chat completions ----

export function parseChatRequest(body: JsonObject, outputTokens: number | null): OpenAICall {
  const model = requireString(body, 'model');
  if (!isArray(body.messages) || body.messages.length === 0) {
    throw new GatewayError('invalid_request', 'messages: a non-empty array is required', { param: 'messages' });
  }
  const messages = body.messages.map(chatMessage);
  const tools = isArray(body.tools) ? body.tools.map(chatTool) : [];
  const maxTokens = optionalPositiveInteger(body, 'max_completion_tokens') ?? optionalPositiveInteger(body, 'max_tokens');
  return {
    model,
    stream: optionalBoolean(body, 'stream') ?? false,
    includeUsage: isObject(body.stream_options) && body.stream_options.include_usage === true,
    answer: {
      messages,
      tools,
      toolChoice: chatToolChoice(body.tool_choice),
      parallelToolCalls: optionalBoolean(body, 'parallel_tool_calls') ?? true,
      maxTokens: maxTokens ?? null,
      outputTokens,
    },
  };
}

export function renderChat(call: OpenAICall, ans: Answer, ident: ReplyIdentity, pacing: Pacing): MockReply {
  const finish = ans.kind === 'tool_calls' ? 'tool_calls' : ans.truncated ? 'length' : 'stop';
  if (!call.stream) {
    const message =
      ans.kind === 'text'
        ? { role: 'assistant', content: ans.tokens.join(''), refusal: null, annotations: [] }
        : {
            role: 'assistant',
            content: null,
            tool_calls: ans.calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
            refusal: null,
            annotations: [],
          };
    const body = JSON.stringify({
      id: ident.id,
      object: 'chat.completion',
      created: ident.created,
      model: call.model,
      choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
      usage: usageJson(ans.usage),
      system_fingerprint: null,
    });
    return jsonReply(200, body, generationDelayMs(pacing, ans.usage.outputTokens));
  }

  // Every chunk shares its envelope; only the delta and finish_reason differ.
  const head = `{"id":${JSON.stringify(ident.id)},"object":"chat.completion.chunk","created":${ident.created},"model":${JSON.stringify(call.model)},"system_fingerprint":null,"choices":[{"index":0,"delta":`;
  const usageNull = call.includeUsage ? ',"usage":null' : '';
  const tail = `,"logprobs":null,"finish_reason":null}]${usageNull}}`;
  const chunk = (delta: object): string => sseData(head + JSON.stringify(delta) + tail);

  const steps: string[] = [];
  let prelude = '';
  if (ans.kind === 'text') {
    prelude = chunk({ role: 'assistant', content: '', refusal: null });
    for (const g of groups(ans.tokens, pacing.chunkTokens)) steps.push(chunk({ content: g.join('') }));
  } else {
    ans.calls.forEach((c, index) => {
      const opening = { index, id: c.id, type: 'function', function: { name: c.name, arguments: '' } };
      steps.push(chunk(index === 0 ? { role: 'assistant', content: null, tool_calls: [opening], refusal: null } : { tool_calls: [opening] }));
      for (const g of groups(c.argumentTokens, pacing.chunkTokens)) {
        steps.push(chunk({ tool_calls: [{ index, function: { arguments: g.join('') } }] }));
      }
    });
  }
  let epilogue = sseData(head + `{},"logprobs":null,"finish_reason":"${finish}"}]${usageNull}}`);
  if (call.includeUsage) {
    epilogue += sseData(
      `{"id":${JSON.stringify(ident.id)},"object":"chat.completion.chunk","created":${ident.created},"model":${JSON.stringify(call.model)},"system_fingerprint":null,"choices":[],"usage":${JSON.stringify(usageJson(ans.usage))}}`,
    );
  }
  epilogue += 'data: [DONE]\n\n';
  return sseReply(prelude, steps, epilogue, pacing);
}

function chatMessage(m: unknown, i: number): AnswerMessage {
  if (!isObject(m) || typeof m.role !== 'string') {
    throw new GatewayError('invalid_request', `messages[${i}]: an object with a role is required`, { param: `messages[${i}]` });
  }
  const text = contentText(m.content);
  switch (m.role) {
    case 'system':
    case 'developer':
      return { role: 'system', text, toolCalls: 0 };
    case 'user':
      return { role: 'user', text, toolCalls: 0 };
    case 'assistant':
      return { role: 'assistant', text, toolCalls: isArray(m.tool_calls) ? m.tool_calls.length : 0 };
    case 'tool':
    case 'function':
      return { role: 'tool', text, toolCalls: 0 };
    default:
      throw new GatewayError('invalid_request', `messages[${i}].role: unknown role ${m.role}`, { param: `messages[${i}].role` });
  }
}

/** A string, or the text parts of a content array joined by spaces (images carry no text). */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!isArray(content)) return '';
  const texts: string[] = [];
  for (const part of content) {
    if (isObject(part) && typeof part.text === 'string') texts.push(part.text);
  }
  return texts.join(' ');
}

function chatTool(t: unknown, i: number): AnswerTool {
  if (!isObject(t) || !isObject(t.function) || typeof t.function.name !== 'string') {
    throw new GatewayError('invalid_request', `tools[${i}].function.name: a string is required`, { param: `tools[${i}]` });
  }
  return { name: t.function.name, parameters: t.function.parameters };
}

function chatToolChoice(choice: unknown): AnswerToolChoice {
  if (choice === 'none' || choice === 'required') return choice;
  if (isObject(choice) && isObject(choice.function) && typeof choice.function.name === 'string') {
    return { name: choice.function.name };
  }
  return 'auto';
}

function usageJson(u: AnswerUsage): object {
  return {
    prompt_tokens: u.inputTokens,
    completion_tokens: u.outputTokens,
    total_tokens: u.inputTokens + u.outputTokens,
    prompt_tokens_details: { cached_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0 },
  };
}

// ---- legacy completions ----

export function parseCompletionRequest(body: JsonObject, outputTokens: number | null): OpenAICall {
  const model = requireString(body, 'model');
  const maxTokens = optionalPositiveInteger(body, 'max_tokens');
  return {
    model,
    stream: optionalBoolean(body, 'stream') ?? false,
    includeUsage: isObject(body.stream_options) && body.stream_options.include_usage === true,
    answer: {
      messages: [{ role: 'user', text: promptText(body.prompt), toolCalls: 0 }],
      tools: [],
      toolChoice: 'none',
      parallelToolCalls: false,
      maxTokens: maxTokens ?? null,
      outputTokens,
    },
  };
}

/** One answer for the whole prompt: several prompts are answered as one joined text. */
function promptText(prompt: unknown): string {
  if (typeof prompt === 'string') return prompt;
  if (isArray(prompt) && prompt.every((p) => typeof p === 'string')) return prompt.join(' ');
  if (prompt === undefined || prompt === null) return '';
  throw new GatewayError('invalid_request', 'prompt: a string or an array of strings is required', { param: 'prompt' });
}

export function renderCompletion(call: OpenAICall, ans: Answer, ident: ReplyIdentity, pacing: Pacing): MockReply {
  // Completions never offer tools, so the answer is always text.
  const tokens = ans.kind === 'text' ? ans.tokens : [];
  const finish = ans.kind === 'text' && ans.truncated ? 'length' : 'stop';
  if (!call.stream) {
    const body = JSON.stringify({
      id: ident.id,
      object: 'text_completion',
      created: ident.created,
      model: call.model,
      choices: [{ text: tokens.join(''), index: 0, logprobs: null, finish_reason: finish }],
      usage: completionUsage(ans.usage),
    });
    return jsonReply(200, body, generationDelayMs(pacing, ans.usage.outputTokens));
  }
  const head = `{"id":${JSON.stringify(ident.id)},"object":"text_completion","created":${ident.created},"model":${JSON.stringify(call.model)},"choices":[{"text":`;
  const usageNull = call.includeUsage ? ',"usage":null' : '';
  const chunk = (text: string, finishReason: string | null): string =>
    sseData(head + JSON.stringify(text) + `,"index":0,"logprobs":null,"finish_reason":${JSON.stringify(finishReason)}}]${usageNull}}`);
  const steps = groups(tokens, pacing.chunkTokens).map((g) => chunk(g.join(''), null));
  let epilogue = chunk('', finish);
  if (call.includeUsage) {
    epilogue += sseData(
      `{"id":${JSON.stringify(ident.id)},"object":"text_completion","created":${ident.created},"model":${JSON.stringify(call.model)},"choices":[],"usage":${JSON.stringify(completionUsage(ans.usage))}}`,
    );
  }
  epilogue += 'data: [DONE]\n\n';
  return sseReply('', steps, epilogue, pacing);
}

function completionUsage(u: AnswerUsage): object {
  return { prompt_tokens: u.inputTokens, completion_tokens: u.outputTokens, total_tokens: u.inputTokens + u.outputTokens };
}

// ---- embeddings ----

export function renderEmbeddings(body: JsonObject, defaultDimensions: number, delayMs: number): MockReply {
  const model = requireString(body, 'model');
  const inputs = embeddingInputs(body.input);
  const dimensions = optionalPositiveInteger(body, 'dimensions') ?? defaultDimensions;
  if (dimensions > MAX_EMBEDDING_DIMENSIONS) {
    throw new GatewayError('invalid_request', `dimensions: at most ${MAX_EMBEDDING_DIMENSIONS}`, { param: 'dimensions' });
  }
  const format = body.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') {
    throw new GatewayError('invalid_request', 'encoding_format: "float" or "base64"', { param: 'encoding_format' });
  }
  let tokens = 0;
  const data: string[] = [];
  inputs.forEach((input, index) => {
    tokens += input.tokens;
    const v = embed(input.key, dimensions);
    const encoded = format === 'base64' ? JSON.stringify(float32Base64(v)) : float32Json(v);
    data.push(`{"object":"embedding","index":${index},"embedding":${encoded}}`);
  });
  const json = `{"object":"list","data":[${data.join(',')}],"model":${JSON.stringify(model)},"usage":{"prompt_tokens":${tokens},"total_tokens":${tokens}}}`;
  return jsonReply(200, json, delayMs);
}

interface EmbeddingInput {
  /** What the vector is derived from. */
  key: string;
  tokens: number;
}

/** A string, an array of strings, a token array or an array of token arrays. */
function embeddingInputs(input: unknown): EmbeddingInput[] {
  if (typeof input === 'string') return [stringInput(input)];
  if (isArray(input) && input.length > 0) {
    if (input.every(isString)) return input.map(stringInput);
    if (isTokenArray(input)) return [tokenInput(input)];
    if (input.every((x) => isTokenArray(x) && x.length > 0)) return input.filter(isTokenArray).map(tokenInput);
  }
  throw new GatewayError('invalid_request', 'input: a string, array of strings or array of token arrays is required', {
    param: 'input',
  });
}

function isString(x: unknown): x is string {
  return typeof x === 'string';
}

function isTokenArray(x: unknown): x is readonly number[] {
  return isArray(x) && x.every((t) => typeof t === 'number' && Number.isInteger(t) && t >= 0);
}

function stringInput(s: string): EmbeddingInput {
  // An empty string still costs a token.
  return { key: s, tokens: Math.max(1, countWords(s)) };
}

function tokenInput(ids: readonly number[]): EmbeddingInput {
  return { key: JSON.stringify(ids), tokens: ids.length };
}

// ---- models and errors ----

export function renderModels(models: readonly string[]): string {
  return JSON.stringify({
    object: 'list',
    data: models.map((id) => ({ id, object: 'model', created: 0, owned_by: 'sluice-mock' })),
  });
}

export function openAIErrorBody(kind: ErrorKind, message: string, param: string | null, code: string | null): string {
  return JSON.stringify({ error: { message, type: kind, param, code } });
}
