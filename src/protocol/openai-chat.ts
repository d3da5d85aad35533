/**
 * OpenAI Chat Completions (`POST /v1/chat/completions`), both halves: the client-facing codec for
 * OpenAI-speaking clients and the upstream-facing codec for OpenAI and every server that copies its
 * API (vLLM, SGLang, Ollama, llama.cpp, DeepSeek, Groq, …). The upstream half is deliberately lenient
 * about what those servers send; the client half is strict about what clients send, so a bad request
 * is a 400 naming the field rather than a confusing error from an upstream in another protocol.
 */

import { randomUUID } from 'node:crypto';
import { clock } from '../clock.js';
import { GatewayError, kindForStatus, type ErrorKind } from '../errors.js';
import {
  textOf,
  type ChatChoice,
  type ChatRequest,
  type ChatResponse,
  type ContentPart,
  type FinishReason,
  type ImageSource,
  type Message,
  type ResponseFormat,
  type StreamEvent,
  type ToolCall,
  type ToolChoice,
  type ToolDefinition,
  type Usage,
} from './canonical.js';
import type {
  EventSink,
  InboundCodec,
  JsonObject,
  OutboundCodec,
  StreamDecoder,
  StreamEncoder,
  StreamInit,
} from './codec.js';
import { SseParser, sseEvent, type SseEvent } from './sse.js';

// ---------------------------------------------------------------------------------------------
// Shared helpers (exported for codecs of other OpenAI-shaped endpoints)

export type OpenAIFinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter';

/**
 * OpenAI has no finish reason for a failed generation; strictly typed clients (enums in Rust, Go,
 * Java SDKs) fail to parse unknown values, so an error surfaces as 'stop'.
 */
export function toOpenAIFinishReason(reason: FinishReason | null): OpenAIFinishReason | null {
  if (reason === null) return null;
  return reason === 'error' ? 'stop' : reason;
}

/** Also accepts the values OpenAI-compatible servers invent (vLLM's 'abort', legacy 'function_call'). */
export function fromOpenAIFinishReason(reason: string): FinishReason {
  switch (reason) {
    case 'stop':
    case 'length':
    case 'tool_calls':
    case 'content_filter':
      return reason;
    case 'function_call':
      return 'tool_calls';
    case 'abort':
    case 'error':
      return 'error';
    default:
      return 'stop';
  }
}

/** `usage` of a chat completion (also the legacy completions endpoint). */
export function encodeOpenAIUsage(usage: Usage): JsonObject {
  const out: JsonObject = {
    prompt_tokens: usage.inputTokens,
    completion_tokens: usage.outputTokens,
    total_tokens: usage.inputTokens + usage.outputTokens,
  };
  if (usage.cachedInputTokens !== undefined || usage.cacheCreationInputTokens !== undefined) {
    const details: JsonObject = {};
    if (usage.cachedInputTokens !== undefined) details.cached_tokens = usage.cachedInputTokens;
    if (usage.cacheCreationInputTokens !== undefined) details.cache_write_tokens = usage.cacheCreationInputTokens;
    out.prompt_tokens_details = details;
  }
  if (usage.reasoningTokens !== undefined) {
    out.completion_tokens_details = { reasoning_tokens: usage.reasoningTokens };
  }
  return out;
}

export function decodeOpenAIUsage(u: JsonObject): Usage {
  const usage: Usage = { inputTokens: count(u.prompt_tokens), outputTokens: count(u.completion_tokens) };
  const pd = u.prompt_tokens_details;
  if (isObject(pd)) {
    if (typeof pd.cached_tokens === 'number') usage.cachedInputTokens = pd.cached_tokens;
    if (typeof pd.cache_write_tokens === 'number') usage.cacheCreationInputTokens = pd.cache_write_tokens;
  }
  const cd = u.completion_tokens_details;
  if (isObject(cd) && typeof cd.reasoning_tokens === 'number') usage.reasoningTokens = cd.reasoning_tokens;
  return usage;
}

/** An `image_url.url` as an image source; null when it is neither http(s) nor a base64 data URL. */
export function parseImageUrl(url: string): ImageSource | null {
  if (/^https?:\/\//i.test(url)) return { kind: 'url', url };
  if (!/^data:/i.test(url)) return null;
  // Parsed by hand: data URLs run to megabytes and a regex over the payload is wasted work.
  const comma = url.indexOf(',');
  if (comma === -1) return null;
  const params = url.slice(5, comma).split(';');
  const mediaType = params[0]!.trim();
  let base64 = false;
  for (let i = 1; i < params.length; i++) if (params[i]!.trim().toLowerCase() === 'base64') base64 = true;
  const data = url.slice(comma + 1);
  if (!base64 || mediaType === '' || data === '') return null;
  return { kind: 'base64', mediaType, data };
}

/** The `image_url.url` for an image source. */
export function imageSourceUrl(source: ImageSource): string {
  return source.kind === 'url' ? source.url : `data:${source.mediaType};base64,${source.data}`;
}

// ---------------------------------------------------------------------------------------------
// Small private helpers

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function count(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function invalid(param: string | null, message: string): GatewayError {
  return new GatewayError('invalid_request', message, { param });
}

function unsupported(param: string, message: string): GatewayError {
  return new GatewayError('unsupported_operation', message, { param });
}

function badUpstream(): GatewayError {
  return new GatewayError('upstream_protocol_error', 'upstream returned an invalid chat completion');
}

function newToolCallId(): string {
  return `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`;
}

/** Tool-call arguments are JSON text; some servers send an object instead, which only fits re-serialized. */
function argumentsText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isObject(v)) return JSON.stringify(v);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Request decoding (client → canonical)

const KNOWN_REQUEST_FIELDS = new Set([
  'model',
  'messages',
  'stream',
  'stream_options',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'stop',
  'n',
  'seed',
  'presence_penalty',
  'frequency_penalty',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
  'response_format',
  'logprobs',
  'top_logprobs',
  'user',
  'reasoning_effort',
]);

const REASONING_EFFORTS = new Set(['minimal', 'low', 'medium', 'high']);

// OpenAI accepts null for every optional parameter and means "not set"; so do these readers.

function optNumber(body: JsonObject, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(key, `'${key}' must be a number`);
  return v;
}

function optInteger(body: JsonObject, key: string, min?: number): number | undefined {
  const v = optNumber(body, key);
  if (v === undefined) return undefined;
  if (!Number.isInteger(v)) throw invalid(key, `'${key}' must be an integer`);
  if (min !== undefined && v < min) throw invalid(key, `'${key}' must be at least ${min}`);
  return v;
}

function optBoolean(obj: JsonObject, key: string, param = key): boolean | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalid(param, `'${param}' must be a boolean`);
  return v;
}

function optString(obj: JsonObject, key: string, param = key): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(param, `'${param}' must be a string`);
  return v;
}

type ContentRole = 'system' | 'user' | 'assistant' | 'tool';

function decodeContent(v: unknown, param: string, role: ContentRole): ContentPart[] {
  if (typeof v === 'string') return v === '' ? [] : [{ type: 'text', text: v }];
  if (!Array.isArray(v)) throw invalid(param, `'${param}' must be a string or an array of content parts`);
  const parts: ContentPart[] = [];
  for (let j = 0; j < v.length; j++) {
    const part: unknown = v[j];
    const p = `${param}[${j}]`;
    if (!isObject(part)) throw invalid(p, `'${p}' must be an object`);
    const type = part.type;
    switch (type) {
      case 'text': {
        if (typeof part.text !== 'string') throw invalid(`${p}.text`, `'${p}.text' must be a string`);
        parts.push({ type: 'text', text: part.text });
        break;
      }
      case 'image_url': {
        // Images in tool results are not OpenAI's, but are valid in the protocols we translate to.
        if (role !== 'user' && role !== 'tool') {
          throw invalid(`${p}.type`, `'${p}.type': image parts are not allowed in ${role} messages`);
        }
        parts.push(decodeImagePart(part, p));
        break;
      }
      case 'refusal': {
        if (role !== 'assistant') throw invalid(`${p}.type`, `'${p}.type': refusal parts are only allowed in assistant messages`);
        if (typeof part.refusal !== 'string') throw invalid(`${p}.refusal`, `'${p}.refusal' must be a string`);
        // What the assistant said, as far as any other protocol's history is concerned.
        parts.push({ type: 'text', text: part.refusal });
        break;
      }
      case 'input_audio':
      case 'file':
        throw unsupported(`${p}.type`, `'${p}.type': content part type '${type}' is not supported for translation`);
      default:
        throw invalid(`${p}.type`, `'${p}.type' is not a known content part type: ${JSON.stringify(type ?? null)}`);
    }
  }
  return parts;
}

function decodeImagePart(part: JsonObject, p: string): ContentPart {
  const iu = part.image_url;
  let url: unknown;
  let detail: unknown;
  // A bare string is not OpenAI's shape, but several client libraries send it and vLLM accepts it.
  if (typeof iu === 'string') url = iu;
  else if (isObject(iu)) {
    url = iu.url;
    detail = iu.detail;
  } else throw invalid(`${p}.image_url`, `'${p}.image_url' must be an object with a url`);
  if (typeof url !== 'string') throw invalid(`${p}.image_url.url`, `'${p}.image_url.url' must be a string`);
  const source = parseImageUrl(url);
  if (source === null) {
    throw invalid(`${p}.image_url.url`, `'${p}.image_url.url' must be an http(s) URL or a base64 data: URL`);
  }
  const image: ContentPart = { type: 'image', source };
  if (detail === 'auto' || detail === 'low' || detail === 'high') image.detail = detail;
  else if (detail !== undefined && detail !== null && typeof detail !== 'string') {
    throw invalid(`${p}.image_url.detail`, `'${p}.image_url.detail' must be a string`);
  }
  // Other detail strings are newer OpenAI values with no counterpart elsewhere; dropping them is harmless.
  return image;
}

function decodeToolCalls(v: unknown, param: string): ToolCall[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalid(param, `'${param}' must be an array`);
  const calls: ToolCall[] = [];
  for (let k = 0; k < v.length; k++) {
    const tc: unknown = v[k];
    const p = `${param}[${k}]`;
    if (!isObject(tc)) throw invalid(p, `'${p}' must be an object`);
    if (tc.type !== undefined && tc.type !== 'function') {
      if (tc.type === 'custom') throw unsupported(`${p}.type`, `'${p}.type': custom tool calls are not supported for translation`);
      throw invalid(`${p}.type`, `'${p}.type' must be 'function'`);
    }
    if (typeof tc.id !== 'string' || tc.id === '') throw invalid(`${p}.id`, `'${p}.id' must be a non-empty string`);
    const fn = tc.function;
    if (!isObject(fn)) throw invalid(`${p}.function`, `'${p}.function' must be an object`);
    if (typeof fn.name !== 'string' || fn.name === '') {
      throw invalid(`${p}.function.name`, `'${p}.function.name' must be a non-empty string`);
    }
    let args = '{}';
    if (fn.arguments !== undefined && fn.arguments !== null) {
      const text = argumentsText(fn.arguments);
      if (text === undefined) throw invalid(`${p}.function.arguments`, `'${p}.function.arguments' must be a JSON string`);
      args = text;
    }
    calls.push({ id: tc.id, name: fn.name, arguments: args });
  }
  return calls.length > 0 ? calls : undefined;
}

function decodeMessage(m: unknown, i: number): Message {
  const p = `messages[${i}]`;
  if (!isObject(m)) throw invalid(p, `'${p}' must be an object`);
  const role = m.role;
  switch (role) {
    case 'system':
    case 'developer': {
      if (m.content === undefined || m.content === null) throw invalid(`${p}.content`, `'${p}.content' is required`);
      return { role: 'system', content: decodeContent(m.content, `${p}.content`, 'system') };
    }
    case 'user': {
      if (m.content === undefined || m.content === null) throw invalid(`${p}.content`, `'${p}.content' is required`);
      const msg: Message = { role: 'user', content: decodeContent(m.content, `${p}.content`, 'user') };
      const name = optString(m, 'name', `${p}.name`);
      if (name !== undefined) msg.name = name;
      return msg;
    }
    case 'assistant': {
      if (m.function_call !== undefined && m.function_call !== null) {
        throw unsupported(
          `${p}.function_call`,
          `'${p}.function_call': the legacy 'function_call' is not supported for translation; use 'tool_calls'`,
        );
      }
      const content =
        m.content === undefined || m.content === null ? [] : decodeContent(m.content, `${p}.content`, 'assistant');
      const reasoning = optString(m, 'reasoning_content', `${p}.reasoning_content`);
      if (reasoning !== undefined && reasoning !== '') content.unshift({ type: 'reasoning', text: reasoning });
      // A refused turn has null content; without its refusal text the turn would be empty, which
      // other protocols reject.
      const refusal = optString(m, 'refusal', `${p}.refusal`);
      if (refusal !== undefined && refusal !== '' && textOf(content) === '') content.push({ type: 'text', text: refusal });
      const msg: Message = { role: 'assistant', content };
      const toolCalls = decodeToolCalls(m.tool_calls, `${p}.tool_calls`);
      if (toolCalls !== undefined) msg.toolCalls = toolCalls;
      return msg;
    }
    case 'tool': {
      const id = m.tool_call_id;
      if (typeof id !== 'string' || id === '') {
        throw invalid(`${p}.tool_call_id`, `'${p}.tool_call_id' must be a non-empty string`);
      }
      const content = m.content === undefined || m.content === null ? [] : decodeContent(m.content, `${p}.content`, 'tool');
      return { role: 'tool', toolCallId: id, content };
    }
    case 'function':
      throw unsupported(
        `${p}.role`,
        `'${p}.role': the legacy 'function' role is not supported for translation; use 'tool' messages with 'tool_call_id'`,
      );
    default:
      throw invalid(`${p}.role`, `'${p}.role' must be one of system, developer, user, assistant, tool`);
  }
}

function decodeTools(v: unknown): ToolDefinition[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalid('tools', `'tools' must be an array`);
  const tools: ToolDefinition[] = [];
  for (let k = 0; k < v.length; k++) {
    const t: unknown = v[k];
    const p = `tools[${k}]`;
    if (!isObject(t)) throw invalid(p, `'${p}' must be an object`);
    if (t.type !== 'function') {
      if (t.type === 'custom') throw unsupported(`${p}.type`, `'${p}.type': custom tools are not supported for translation`);
      throw invalid(`${p}.type`, `'${p}.type' must be 'function'`);
    }
    const fn = t.function;
    if (!isObject(fn)) throw invalid(`${p}.function`, `'${p}.function' must be an object`);
    if (typeof fn.name !== 'string' || fn.name === '') {
      throw invalid(`${p}.function.name`, `'${p}.function.name' must be a non-empty string`);
    }
    const tool: ToolDefinition = { name: fn.name, parameters: {} };
    const description = optString(fn, 'description', `${p}.function.description`);
    if (description !== undefined) tool.description = description;
    const params = fn.parameters;
    if (params === undefined || params === null) {
      // OpenAI lets a function omit parameters (it takes none); other protocols insist on a schema.
      tool.parameters = { type: 'object', properties: {} };
    } else if (isObject(params)) {
      tool.parameters = params;
    } else {
      throw invalid(`${p}.function.parameters`, `'${p}.function.parameters' must be a JSON Schema object`);
    }
    const strict = optBoolean(fn, 'strict', `${p}.function.strict`);
    if (strict !== undefined) tool.strict = strict;
    tools.push(tool);
  }
  return tools;
}

function decodeToolChoice(v: unknown): ToolChoice | undefined {
  if (v === undefined || v === null) return undefined;
  if (v === 'auto' || v === 'none' || v === 'required') return v;
  if (isObject(v)) {
    if (v.type === 'function') {
      const fn = v.function;
      if (!isObject(fn) || typeof fn.name !== 'string' || fn.name === '') {
        throw invalid('tool_choice.function.name', `'tool_choice.function.name' must be a non-empty string`);
      }
      return { name: fn.name };
    }
    if (v.type === 'allowed_tools' || v.type === 'custom') {
      throw unsupported('tool_choice.type', `'tool_choice.type': '${v.type}' is not supported for translation`);
    }
  }
  throw invalid('tool_choice', `'tool_choice' must be 'auto', 'none', 'required' or {type:'function', function:{name}}`);
}

function decodeResponseFormat(v: unknown): ResponseFormat | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw invalid('response_format', `'response_format' must be an object`);
  switch (v.type) {
    case 'text':
      return { type: 'text' };
    case 'json_object':
      return { type: 'json_object' };
    case 'json_schema': {
      const js = v.json_schema;
      if (!isObject(js)) throw invalid('response_format.json_schema', `'response_format.json_schema' must be an object`);
      if (typeof js.name !== 'string' || js.name === '') {
        throw invalid('response_format.json_schema.name', `'response_format.json_schema.name' must be a non-empty string`);
      }
      let schema: Record<string, unknown> = {};
      if (js.schema !== undefined && js.schema !== null) {
        if (!isObject(js.schema)) {
          throw invalid('response_format.json_schema.schema', `'response_format.json_schema.schema' must be an object`);
        }
        schema = js.schema;
      }
      const rf: ResponseFormat = { type: 'json_schema', name: js.name, schema };
      const strict = optBoolean(js, 'strict', 'response_format.json_schema.strict');
      if (strict !== undefined) rf.strict = strict;
      const description = optString(js, 'description', 'response_format.json_schema.description');
      if (description !== undefined) rf.description = description;
      return rf;
    }
    default:
      throw invalid('response_format.type', `'response_format.type' must be 'text', 'json_object' or 'json_schema'`);
  }
}

function decodeRequest(body: JsonObject): ChatRequest {
  if (!isObject(body)) throw invalid(null, 'the request body must be a JSON object');
  const model = body.model;
  if (typeof model !== 'string' || model === '') throw invalid('model', `'model' is required and must be a non-empty string`);
  const rawMessages = body.messages;
  if (!Array.isArray(rawMessages) || rawMessages.length === 0) {
    throw invalid('messages', `'messages' is required and must be a non-empty array`);
  }
  const messages: Message[] = new Array<Message>(rawMessages.length);
  for (let i = 0; i < rawMessages.length; i++) messages[i] = decodeMessage(rawMessages[i], i);

  const req: ChatRequest = { model, messages, stream: optBoolean(body, 'stream') === true };

  const so = body.stream_options;
  if (so !== undefined && so !== null) {
    if (!isObject(so)) throw invalid('stream_options', `'stream_options' must be an object`);
    const iu = optBoolean(so, 'include_usage', 'stream_options.include_usage');
    if (iu !== undefined) req.includeUsage = iu;
  }

  // max_tokens is deprecated in favour of max_completion_tokens; a client sending both means the newer.
  const maxCompletionTokens = optInteger(body, 'max_completion_tokens', 1);
  const maxTokens = optInteger(body, 'max_tokens', 1);
  if (maxCompletionTokens !== undefined || maxTokens !== undefined) req.maxTokens = maxCompletionTokens ?? maxTokens;
  const temperature = optNumber(body, 'temperature');
  if (temperature !== undefined) req.temperature = temperature;
  const topP = optNumber(body, 'top_p');
  if (topP !== undefined) req.topP = topP;

  const stop = body.stop;
  if (typeof stop === 'string') req.stop = [stop];
  else if (Array.isArray(stop)) {
    for (let k = 0; k < stop.length; k++) {
      if (typeof stop[k] !== 'string') throw invalid(`stop[${k}]`, `'stop[${k}]' must be a string`);
    }
    req.stop = stop as string[];
  } else if (stop !== undefined && stop !== null) throw invalid('stop', `'stop' must be a string or an array of strings`);

  const n = optInteger(body, 'n', 1);
  if (n !== undefined) req.n = n;
  const seed = optInteger(body, 'seed');
  if (seed !== undefined) req.seed = seed;
  const pp = optNumber(body, 'presence_penalty');
  if (pp !== undefined) req.presencePenalty = pp;
  const fp = optNumber(body, 'frequency_penalty');
  if (fp !== undefined) req.frequencyPenalty = fp;

  const tools = decodeTools(body.tools);
  if (tools !== undefined) req.tools = tools;
  const toolChoice = decodeToolChoice(body.tool_choice);
  if (toolChoice !== undefined) req.toolChoice = toolChoice;
  const ptc = optBoolean(body, 'parallel_tool_calls');
  if (ptc !== undefined) req.parallelToolCalls = ptc;
  const rf = decodeResponseFormat(body.response_format);
  if (rf !== undefined) req.responseFormat = rf;

  const logprobs = optBoolean(body, 'logprobs');
  if (logprobs !== undefined) req.logprobs = logprobs;
  const topLogprobs = optInteger(body, 'top_logprobs', 0);
  if (topLogprobs !== undefined) req.topLogprobs = topLogprobs;
  const user = optString(body, 'user');
  if (user !== undefined) req.user = user;

  let extra: Record<string, unknown> | undefined;
  const effort = optString(body, 'reasoning_effort');
  if (effort !== undefined) {
    if (REASONING_EFFORTS.has(effort)) req.reasoningEffort = effort as ChatRequest['reasoningEffort'];
    // Efforts the canonical model lacks ('none', 'xhigh', …) still reach OpenAI-compatible upstreams
    // verbatim through `extra`; other protocols have no way to say them anyway.
    else extra = { reasoning_effort: effort };
  }

  for (const key of Object.keys(body)) {
    // `__proto__` would become the prototype of `extra` rather than a field of it.
    if (KNOWN_REQUEST_FIELDS.has(key) || key === '__proto__') continue;
    (extra ??= {})[key] = body[key];
  }
  if (extra !== undefined) req.extra = extra;
  return req;
}

// ---------------------------------------------------------------------------------------------
// Request encoding (canonical → upstream)

function encodeUserContent(parts: readonly ContentPart[]): string | JsonObject[] {
  // A plain string where possible: some servers' chat templates only handle string content.
  if (parts.length === 0) return '';
  if (parts.length === 1 && parts[0]!.type === 'text') return parts[0]!.text;
  const out: JsonObject[] = [];
  for (const part of parts) {
    if (part.type === 'text') out.push({ type: 'text', text: part.text });
    else if (part.type === 'image') out.push(encodeImagePart(part.source, part.detail));
    // Reasoning has no place in a user turn.
  }
  return out.length > 0 ? out : '';
}

function encodeImagePart(source: ImageSource, detail: 'auto' | 'low' | 'high' | undefined): JsonObject {
  const image: JsonObject = { url: imageSourceUrl(source) };
  if (detail !== undefined) image.detail = detail;
  return { type: 'image_url', image_url: image };
}

function encodeMessages(messages: readonly Message[]): JsonObject[] {
  const out: JsonObject[] = [];
  // OpenAI tool messages carry text only, and every tool message must directly follow its assistant
  // turn; so images from a run of tool results go into one user message after the run.
  let toolImages: JsonObject[] | undefined;
  for (const m of messages) {
    if (toolImages !== undefined && m.role !== 'tool') {
      out.push({ role: 'user', content: toolImages });
      toolImages = undefined;
    }
    switch (m.role) {
      case 'system':
        out.push({ role: 'system', content: textOf(m.content) });
        break;
      case 'user': {
        const msg: JsonObject = { role: 'user', content: encodeUserContent(m.content) };
        if (m.name !== undefined) msg.name = m.name;
        out.push(msg);
        break;
      }
      case 'assistant': {
        // Reasoning parts are dropped: OpenAI has no input field for them and rejects unknown ones.
        const text = textOf(m.content);
        const hasTools = m.toolCalls !== undefined && m.toolCalls.length > 0;
        const msg: JsonObject = { role: 'assistant', content: hasTools && text === '' ? null : text };
        if (hasTools) msg.tool_calls = m.toolCalls!.map(encodeToolCall);
        out.push(msg);
        break;
      }
      case 'tool': {
        out.push({ role: 'tool', tool_call_id: m.toolCallId, content: textOf(m.content) });
        for (const part of m.content) {
          if (part.type === 'image') (toolImages ??= []).push(encodeImagePart(part.source, part.detail));
        }
        break;
      }
    }
  }
  if (toolImages !== undefined) out.push({ role: 'user', content: toolImages });
  return out;
}

function encodeToolCall(tc: ToolCall): JsonObject {
  return { id: tc.id, type: 'function', function: { name: tc.name, arguments: tc.arguments } };
}

function encodeTool(t: ToolDefinition): JsonObject {
  const fn: JsonObject = { name: t.name };
  if (t.description !== undefined) fn.description = t.description;
  fn.parameters = t.parameters;
  if (t.strict !== undefined) fn.strict = t.strict;
  return { type: 'function', function: fn };
}

function encodeResponseFormat(rf: ResponseFormat): JsonObject {
  if (rf.type !== 'json_schema') return { type: rf.type };
  const js: JsonObject = { name: rf.name, schema: rf.schema };
  if (rf.strict !== undefined) js.strict = rf.strict;
  if (rf.description !== undefined) js.description = rf.description;
  return { type: 'json_schema', json_schema: js };
}

function encodeRequest(req: ChatRequest, model: string): JsonObject {
  const body: JsonObject = { model, messages: encodeMessages(req.messages) };
  if (req.stream) {
    body.stream = true;
    // Always: usage accounting needs it; the client-facing encoder hides it when not asked for.
    body.stream_options = { include_usage: true };
  }
  // max_tokens rather than max_completion_tokens: every OpenAI-compatible server knows it.
  if (req.maxTokens !== undefined) body.max_tokens = req.maxTokens;
  if (req.temperature !== undefined) body.temperature = req.temperature;
  if (req.topP !== undefined) body.top_p = req.topP;
  if (req.stop !== undefined && req.stop.length > 0) body.stop = req.stop;
  if (req.n !== undefined) body.n = req.n;
  if (req.seed !== undefined) body.seed = req.seed;
  if (req.presencePenalty !== undefined) body.presence_penalty = req.presencePenalty;
  if (req.frequencyPenalty !== undefined) body.frequency_penalty = req.frequencyPenalty;
  // OpenAI rejects tool_choice and parallel_tool_calls without tools.
  if (req.tools !== undefined && req.tools.length > 0) {
    body.tools = req.tools.map(encodeTool);
    if (req.toolChoice !== undefined) {
      body.tool_choice =
        typeof req.toolChoice === 'string' ? req.toolChoice : { type: 'function', function: { name: req.toolChoice.name } };
    }
    if (req.parallelToolCalls !== undefined) body.parallel_tool_calls = req.parallelToolCalls;
  }
  if (req.responseFormat !== undefined) body.response_format = encodeResponseFormat(req.responseFormat);
  if (req.logprobs !== undefined) body.logprobs = req.logprobs;
  if (req.topLogprobs !== undefined) body.top_logprobs = req.topLogprobs;
  if (req.user !== undefined) body.user = req.user;
  if (req.reasoningEffort !== undefined) body.reasoning_effort = req.reasoningEffort;
  if (req.extra !== undefined) {
    for (const key of Object.keys(req.extra)) {
      if (key !== '__proto__' && !Object.hasOwn(body, key)) body[key] = req.extra[key];
    }
  }
  return body;
}

// ---------------------------------------------------------------------------------------------
// Response encoding (canonical → client)

function encodeChoice(c: ChatChoice): JsonObject {
  const message: JsonObject = { role: 'assistant', content: c.text, refusal: c.refusal ?? null };
  if (c.reasoning !== undefined) message.reasoning_content = c.reasoning;
  if (c.toolCalls !== undefined && c.toolCalls.length > 0) message.tool_calls = c.toolCalls.map(encodeToolCall);
  return {
    index: c.index,
    message,
    logprobs: c.logprobs ?? null,
    finish_reason: toOpenAIFinishReason(c.finishReason),
  };
}

function encodeResponse(res: ChatResponse): JsonObject {
  const out: JsonObject = {
    id: res.id,
    object: 'chat.completion',
    created: res.created,
    model: res.model,
    choices: res.choices.map(encodeChoice),
  };
  if (res.usage !== undefined) out.usage = encodeOpenAIUsage(res.usage);
  if (res.systemFingerprint !== undefined) out.system_fingerprint = res.systemFingerprint;
  return out;
}

function encodeError(err: GatewayError): JsonObject {
  return { error: { message: err.message, type: err.kind, param: err.param, code: err.code } };
}

/**
 * Chunks are assembled as strings around a precomputed head: this runs once per token, and only
 * the small varying part goes through JSON.stringify.
 */
class ChatChunkEncoder implements StreamEncoder {
  /** `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,` */
  private head: string;
  /** Choices that have had their first chunk, which must carry the role. */
  private readonly opened: boolean[] = [];

  constructor(private readonly init: StreamInit) {
    this.head = chunkHead(init.id, init.created, init.model);
  }

  encode(ev: StreamEvent): string {
    switch (ev.type) {
      case 'start':
        this.head = chunkHead(ev.id || this.init.id, ev.created || this.init.created, ev.model || this.init.model);
        return '';
      case 'text':
        return this.chunk(ev.choice, `"content":${JSON.stringify(ev.text)}`, 'null', 'null');
      case 'reasoning':
        return this.chunk(ev.choice, `"reasoning_content":${JSON.stringify(ev.text)}`, 'null', 'null');
      case 'reasoning_signature':
        return '';
      case 'tool_call':
        return this.chunk(
          ev.choice,
          `"tool_calls":[{"index":${ev.index},"id":${JSON.stringify(ev.id)},"type":"function","function":{"name":${JSON.stringify(ev.name)},"arguments":""}}]`,
          'null',
          'null',
        );
      case 'tool_args':
        return this.chunk(
          ev.choice,
          `"tool_calls":[{"index":${ev.index},"function":{"arguments":${JSON.stringify(ev.delta)}}}]`,
          'null',
          'null',
        );
      case 'logprobs':
        return this.chunk(ev.choice, '', JSON.stringify(ev.logprobs ?? null), 'null');
      case 'finish':
        return this.chunk(ev.choice, '', 'null', JSON.stringify(toOpenAIFinishReason(ev.reason)));
      case 'usage':
        if (!this.init.includeUsage) return '';
        return sseEvent(`${this.head}"choices":[],"usage":${JSON.stringify(encodeOpenAIUsage(ev.usage))}}`);
      case 'error':
        return sseEvent(JSON.stringify(encodeError(ev.error)));
    }
  }

  end(): string {
    return 'data: [DONE]\n\n';
  }

  private chunk(choice: number, delta: string, logprobs: string, finish: string): string {
    if (this.opened[choice] !== true) {
      this.opened[choice] = true;
      delta = delta === '' ? '"role":"assistant"' : `"role":"assistant",${delta}`;
    }
    return sseEvent(
      `${this.head}"choices":[{"index":${choice},"delta":{${delta}},"logprobs":${logprobs},"finish_reason":${finish}}]}`,
    );
  }
}

function chunkHead(id: string, created: number, model: string): string {
  return `{"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},`;
}

// ---------------------------------------------------------------------------------------------
// Response decoding (upstream → canonical)

function decodeMessageText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return null;
  // Some servers (Mistral-style reasoning models) answer with an array of typed parts.
  if (Array.isArray(v)) {
    let text = '';
    for (const part of v) if (isObject(part) && part.type === 'text' && typeof part.text === 'string') text += part.text;
    return text;
  }
  throw badUpstream();
}

function decodeResponseToolCalls(v: unknown): ToolCall[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw badUpstream();
  const calls: ToolCall[] = [];
  for (const tc of v) {
    if (!isObject(tc) || !isObject(tc.function) || typeof tc.function.name !== 'string') throw badUpstream();
    const id = typeof tc.id === 'string' && tc.id !== '' ? tc.id : newToolCallId();
    calls.push({ id, name: tc.function.name, arguments: argumentsText(tc.function.arguments) ?? '{}' });
  }
  return calls.length > 0 ? calls : undefined;
}

function decodeResponseChoice(c: unknown, position: number): ChatChoice {
  if (!isObject(c)) throw badUpstream();
  const msg = c.message;
  if (!isObject(msg)) throw badUpstream();
  const fr = c.finish_reason;
  const choice: ChatChoice = {
    index: typeof c.index === 'number' ? c.index : position,
    text: decodeMessageText(msg.content),
    finishReason: typeof fr === 'string' && fr !== '' ? fromOpenAIFinishReason(fr) : null,
  };
  // vLLM renamed reasoning_content to reasoning; accept either.
  const reasoning = typeof msg.reasoning_content === 'string' ? msg.reasoning_content : msg.reasoning;
  if (typeof reasoning === 'string' && reasoning !== '') choice.reasoning = reasoning;
  const toolCalls = decodeResponseToolCalls(msg.tool_calls);
  if (toolCalls !== undefined) choice.toolCalls = toolCalls;
  if (typeof msg.refusal === 'string' && msg.refusal !== '') choice.refusal = msg.refusal;
  if (c.logprobs !== undefined && c.logprobs !== null) choice.logprobs = c.logprobs;
  // vLLM says which stop string matched (a number when it was a stop token id).
  if (typeof c.stop_reason === 'string') choice.stopSequence = c.stop_reason;
  return choice;
}

function decodeResponse(body: unknown): ChatResponse {
  if (!isObject(body)) throw badUpstream();
  const choices = body.choices;
  if (!Array.isArray(choices)) {
    // Some servers answer an error with status 200.
    if (body.error !== undefined && body.error !== null) throw embeddedError(body);
    throw badUpstream();
  }
  const res: ChatResponse = {
    id: typeof body.id === 'string' ? body.id : '',
    model: typeof body.model === 'string' ? body.model : '',
    created: typeof body.created === 'number' ? body.created : clock.unixSeconds(),
    choices: choices.map(decodeResponseChoice),
  };
  if (isObject(body.usage)) res.usage = decodeOpenAIUsage(body.usage);
  if (typeof body.system_fingerprint === 'string') res.systemFingerprint = body.system_fingerprint;
  return res;
}

/** An error reported inside a 200 answer or stream (`{"error": …}`). */
function embeddedError(chunk: JsonObject): GatewayError {
  const e = chunk.error;
  let message: string | undefined;
  let param: string | null = null;
  let status: number | undefined;
  if (isObject(e)) {
    if (typeof e.message === 'string') message = e.message;
    if (typeof e.param === 'string') param = e.param;
    // vLLM puts the HTTP status it would have answered with in `code`.
    if (typeof e.code === 'number' && e.code >= 400 && e.code <= 599) status = e.code;
  } else if (typeof e === 'string') message = e;
  if (message === undefined && typeof chunk.message === 'string') message = chunk.message;
  const opts: { param: string | null; status?: number; kind?: ErrorKind } = { param };
  if (status !== undefined) {
    opts.status = status;
    opts.kind = kindForStatus(status);
  }
  return new GatewayError('upstream_error', safeMessage(message ?? 'upstream reported an error'), opts);
}

interface ToolTrack {
  /** Tool-call indexes already announced with a `tool_call` event. */
  readonly seen: Set<number>;
  /** For servers that omit `index`: the call the last fragment belonged to. */
  last: number;
  lastId: string | undefined;
}

class ChatChunkDecoder implements StreamDecoder {
  private readonly parser = new SseParser((e) => this.onEvent(e));
  private started = false;
  /** `[DONE]` seen: the stream is complete, whatever follows is ignored. */
  private done = false;
  /** An error was reported (as an event or thrown); nothing more is decoded. */
  private failed = false;
  private finished = false;
  /** Inside end(): a last event that does not parse was cut off, not malformed. */
  private ending = false;
  private usageSent = false;
  /** Usage seen on a chunk that still had choices; servers differ on which chunk carries the total. */
  private pendingUsage: Usage | undefined;
  private readonly tools: (ToolTrack | undefined)[] = [];

  constructor(private readonly sink: EventSink) {}

  push(chunk: Uint8Array): void {
    if (this.done || this.failed) return;
    this.parser.push(chunk);
  }

  end(): void {
    if (this.done || this.failed) return;
    this.ending = true;
    this.parser.end();
    if (this.done || this.failed) return;
    this.flushUsage();
    // Some servers never send [DONE]; a finish_reason is as good a sign that nothing was lost.
    if (!this.finished) throw new GatewayError('upstream_protocol_error', 'upstream stream ended early');
  }

  private onEvent(e: SseEvent): void {
    if (this.done || this.failed) return;
    const data = e.data;
    if (data === '[DONE]') {
      this.done = true;
      this.flushUsage();
      return;
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      chunk = undefined;
    }
    if (!isObject(chunk)) {
      this.failed = true;
      if (e.event === 'error') {
        this.sink({ type: 'error', error: new GatewayError('upstream_error', 'upstream reported an error') });
        return;
      }
      throw new GatewayError(
        'upstream_protocol_error',
        this.ending ? 'upstream stream ended early' : 'upstream sent an invalid stream chunk',
      );
    }
    if (e.event === 'error' || (chunk.error !== undefined && chunk.error !== null)) {
      this.failed = true;
      this.sink({ type: 'error', error: embeddedError(chunk) });
      return;
    }
    if (!this.started) {
      this.started = true;
      this.sink({
        type: 'start',
        id: typeof chunk.id === 'string' ? chunk.id : '',
        model: typeof chunk.model === 'string' ? chunk.model : '',
        created: typeof chunk.created === 'number' ? chunk.created : 0,
      });
    }
    const choices = chunk.choices;
    if (Array.isArray(choices)) {
      for (const c of choices) if (isObject(c)) this.onChoice(c);
    }
    const usage = chunk.usage;
    if (isObject(usage) && !this.usageSent) {
      const u = decodeOpenAIUsage(usage);
      // OpenAI's own usage chunk has no choices and comes last. Servers that also put usage on
      // content or finish chunks (running totals) are held until the end, so only the total is sent.
      if (Array.isArray(choices) && choices.length === 0) {
        this.usageSent = true;
        this.pendingUsage = undefined;
        this.sink({ type: 'usage', usage: u });
      } else {
        this.pendingUsage = u;
      }
    }
  }

  private onChoice(c: JsonObject): void {
    const choice = typeof c.index === 'number' ? c.index : 0;
    const delta = c.delta;
    if (isObject(delta)) {
      const content = delta.content;
      if (typeof content === 'string' && content !== '') this.sink({ type: 'text', choice, text: content });
      const reasoning = typeof delta.reasoning_content === 'string' ? delta.reasoning_content : delta.reasoning;
      if (typeof reasoning === 'string' && reasoning !== '') this.sink({ type: 'reasoning', choice, text: reasoning });
      // The event model has no refusal; as text it still reaches the user, which is its purpose.
      const refusal = delta.refusal;
      if (typeof refusal === 'string' && refusal !== '') this.sink({ type: 'text', choice, text: refusal });
      const toolCalls = delta.tool_calls;
      if (Array.isArray(toolCalls)) {
        for (const tc of toolCalls) if (isObject(tc)) this.onToolDelta(choice, tc);
      }
    }
    if (c.logprobs !== undefined && c.logprobs !== null) this.sink({ type: 'logprobs', choice, logprobs: c.logprobs });
    const fr = c.finish_reason;
    if (typeof fr === 'string' && fr !== '') {
      this.finished = true;
      const ev: Extract<StreamEvent, { type: 'finish' }> = { type: 'finish', choice, reason: fromOpenAIFinishReason(fr) };
      if (typeof c.stop_reason === 'string') ev.stopSequence = c.stop_reason;
      this.sink(ev);
    }
  }

  private onToolDelta(choice: number, tc: JsonObject): void {
    let track = this.tools[choice];
    if (track === undefined) {
      track = { seen: new Set<number>(), last: 0, lastId: undefined };
      this.tools[choice] = track;
    }
    const id = typeof tc.id === 'string' && tc.id !== '' ? tc.id : undefined;
    let index: number;
    if (typeof tc.index === 'number' && Number.isInteger(tc.index) && tc.index >= 0) index = tc.index;
    else if (id !== undefined && id !== track.lastId) index = track.seen.size;
    else index = track.last;
    track.last = index;
    if (id !== undefined) track.lastId = id;

    const fn = isObject(tc.function) ? tc.function : undefined;
    if (!track.seen.has(index)) {
      track.seen.add(index);
      const name = fn !== undefined && typeof fn.name === 'string' ? fn.name : '';
      this.sink({ type: 'tool_call', choice, index, id: id ?? newToolCallId(), name });
    }
    const args = fn === undefined ? undefined : argumentsText(fn.arguments);
    if (args !== undefined && args !== '') this.sink({ type: 'tool_args', choice, index, delta: args });
  }

  private flushUsage(): void {
    if (this.pendingUsage === undefined || this.usageSent) return;
    this.usageSent = true;
    const usage = this.pendingUsage;
    this.pendingUsage = undefined;
    this.sink({ type: 'usage', usage });
  }
}

// ---------------------------------------------------------------------------------------------
// Upstream error replies

const MAX_ERROR_MESSAGE = 2000;

/**
 * Upstream messages are relayed to clients; some servers echo a rejected key or a signed URL, so
 * anything that looks like a credential is masked and very long messages (tracebacks) are cut.
 */
function safeMessage(message: string): string {
  let m = message
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [redacted]')
    .replace(/\b((?:sk|pk|rk|gsk|xai|hf)[-_][A-Za-z0-9_-]{12,})/g, '[redacted]')
    .replace(/([?&](?:key|api_key|api-key|token|sig|signature)=)[^&\s"']+/gi, '$1[redacted]');
  if (m.length > MAX_ERROR_MESSAGE) m = `${m.slice(0, MAX_ERROR_MESSAGE)}…`;
  return m;
}

/** FastAPI's `detail`: a string, or a list of validation errors with `loc` and `msg`. */
function detailMessage(detail: unknown): string | undefined {
  if (typeof detail === 'string') return detail;
  if (isObject(detail) && typeof detail.message === 'string') return detail.message;
  if (!Array.isArray(detail)) return undefined;
  const parts: string[] = [];
  for (const d of detail) {
    if (!isObject(d) || typeof d.msg !== 'string') continue;
    parts.push(Array.isArray(d.loc) ? `${d.loc.join('.')}: ${d.msg}` : d.msg);
  }
  return parts.length > 0 ? parts.join('; ') : undefined;
}

function decodeError(status: number, body: Uint8Array): GatewayError {
  let message: string | undefined;
  let param: string | null = null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch {
    parsed = undefined;
  }
  if (isObject(parsed)) {
    const e = parsed.error;
    if (isObject(e)) {
      if (typeof e.message === 'string' && e.message !== '') message = e.message;
      if (typeof e.param === 'string') param = e.param;
    } else if (typeof e === 'string' && e !== '') {
      message = e;
    }
    if (message === undefined && typeof parsed.message === 'string' && parsed.message !== '') message = parsed.message;
    if (message === undefined) message = detailMessage(parsed.detail);
  }
  return new GatewayError('upstream_error', safeMessage(message ?? `upstream returned HTTP ${status}`), {
    status,
    kind: kindForStatus(status),
    param,
    upstreamBody: body,
  });
}

// ---------------------------------------------------------------------------------------------

export const openaiChatCodec: InboundCodec & OutboundCodec = {
  protocol: 'openai-chat',
  decodeRequest,
  encodeResponse,
  createStreamEncoder: (init: StreamInit): StreamEncoder => new ChatChunkEncoder(init),
  encodeError,
  encodeRequest,
  decodeResponse,
  createStreamDecoder: (sink: EventSink): StreamDecoder => new ChatChunkDecoder(sink),
  decodeError,
};
