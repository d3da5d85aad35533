/**
 * The Anthropic Messages API (`POST /v1/messages`), both halves: what Anthropic clients (the
 * official SDKs, Claude Code) send Sluice, and what Sluice sends api.anthropic.com.
 *
 * Anthropic's usage counts `input_tokens` without the prompt-cache parts; the canonical model counts
 * them in (OpenAI's meaning). Every conversion below adds or subtracts the cache fields for that.
 */

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

/**
 * `max_tokens` for upstream requests whose client gave none. Anthropic requires the field while
 * OpenAI clients usually omit it; 4096 is within the output limit of every Claude model still
 * served (the Claude 3 family stops at 4096), so the default never causes a 400 by itself.
 */
export const DEFAULT_MAX_TOKENS = 4096;

/**
 * Key under which tool-call arguments that are not a JSON object reach an Anthropic client (see
 * `toolInput`).
 */
export const UNPARSED_ARGUMENTS_KEY = '_unparsed_arguments';

type AnthropicStopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'refusal';

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

// ---------------------------------------------------------------------------------------------
// Inbound: request validation and decoding
// ---------------------------------------------------------------------------------------------

function invalid(param: string, problem: string): GatewayError {
  return new GatewayError('invalid_request', `${param}: ${problem}`, { param });
}

function unsupported(param: string, problem: string): GatewayError {
  return new GatewayError('unsupported_operation', `${param}: ${problem}`, { param });
}

function requireString(value: unknown, param: string): string {
  if (typeof value !== 'string') throw invalid(param, 'field required (a string)');
  return value;
}

function optionalString(value: unknown, param: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(param, 'expected a string');
  return value;
}

function optionalNumber(value: unknown, param: string, integer: boolean): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw invalid(param, integer ? 'expected an integer' : 'expected a number');
  }
  return value;
}

function optionalBoolean(value: unknown, param: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw invalid(param, 'expected a boolean');
  return value;
}

/** Fields this codec reads; everything else is either dropped (below) or kept in `extra`. */
const DECODED_FIELDS = new Set([
  'model',
  'max_tokens',
  'messages',
  'system',
  'stop_sequences',
  'temperature',
  'top_p',
  'top_k',
  'stream',
  'tools',
  'tool_choice',
  'metadata',
  'thinking',
  'output_config',
]);

/**
 * Anthropic fields with no canonical meaning. They are not "unknown": `extra` is forwarded verbatim
 * to OpenAI-compatible upstreams, where these names mean nothing (or something else, like
 * `service_tier`) and strict servers reject the request.
 */
const ANTHROPIC_ONLY_FIELDS = new Set([
  'cache_control',
  'container',
  'context_management',
  'diagnostics',
  'inference_geo',
  'mcp_servers',
  'service_tier',
  'speed',
  'user_profile_id',
  'workspace_id',
]);

/** Block types that exist in Anthropic requests; used to tell "misplaced" from "untranslatable". */
const TRANSLATABLE_BLOCKS = new Set(['text', 'image', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking']);

function blockTypeError(type: unknown, path: string, where: string): GatewayError {
  const param = `${path}.type`;
  if (typeof type !== 'string') return invalid(param, 'field required (a string)');
  if (TRANSLATABLE_BLOCKS.has(type)) return invalid(param, `'${type}' blocks are not allowed in ${where}`);
  return unsupported(param, `content block type '${type}' is not supported for translation to this model's provider`);
}

function decodeText(block: JsonObject, path: string): ContentPart {
  return { type: 'text', text: requireString(block.text, `${path}.text`) };
}

function decodeImage(block: JsonObject, path: string): ContentPart {
  const source = block.source;
  if (!isObject(source)) throw invalid(`${path}.source`, 'field required (an object)');
  let image: ImageSource;
  if (source.type === 'base64') {
    image = {
      kind: 'base64',
      mediaType: requireString(source.media_type, `${path}.source.media_type`),
      data: requireString(source.data, `${path}.source.data`),
    };
  } else if (source.type === 'url') {
    image = { kind: 'url', url: requireString(source.url, `${path}.source.url`) };
  } else {
    // `file` sources name an upload in Anthropic's Files API, which no other provider can read.
    throw unsupported(`${path}.source.type`, `image source type '${String(source.type)}' is not supported for translation`);
  }
  return { type: 'image', source: image };
}

function decodeToolResult(block: JsonObject, path: string): Message {
  const toolCallId = requireString(block.tool_use_id, `${path}.tool_use_id`);
  const raw = block.content;
  const content: ContentPart[] = [];
  if (typeof raw === 'string') {
    if (raw !== '') content.push({ type: 'text', text: raw });
  } else if (Array.isArray(raw)) {
    for (let k = 0; k < raw.length; k++) {
      const inner: unknown = raw[k];
      const p = `${path}.content.${k}`;
      if (!isObject(inner)) throw invalid(p, 'expected a content block object');
      if (inner.type === 'text') content.push(decodeText(inner, p));
      else if (inner.type === 'image') content.push(decodeImage(inner, p));
      else throw blockTypeError(inner.type, p, 'tool_result content');
    }
  } else if (raw !== undefined && raw !== null) {
    throw invalid(`${path}.content`, 'expected a string or an array of content blocks');
  }
  const isError = optionalBoolean(block.is_error, `${path}.is_error`);
  return isError === true
    ? { role: 'tool', toolCallId, content, isError: true }
    : { role: 'tool', toolCallId, content };
}

/** Tool results become canonical `tool` messages placed before the rest of the user's turn. */
function decodeUserBlocks(blocks: unknown[], path: string, out: Message[]): void {
  const parts: ContentPart[] = [];
  let toolResults = 0;
  for (let j = 0; j < blocks.length; j++) {
    const block: unknown = blocks[j];
    const p = `${path}.content.${j}`;
    if (!isObject(block)) throw invalid(p, 'expected a content block object');
    switch (block.type) {
      case 'text':
        parts.push(decodeText(block, p));
        break;
      case 'image':
        parts.push(decodeImage(block, p));
        break;
      case 'tool_result':
        out.push(decodeToolResult(block, p));
        toolResults++;
        break;
      default:
        throw blockTypeError(block.type, p, 'user messages');
    }
  }
  if (parts.length > 0 || toolResults === 0) out.push({ role: 'user', content: parts });
}

function decodeAssistantBlocks(blocks: unknown[], path: string): Message {
  const content: ContentPart[] = [];
  const toolCalls: ToolCall[] = [];
  for (let j = 0; j < blocks.length; j++) {
    const block: unknown = blocks[j];
    const p = `${path}.content.${j}`;
    if (!isObject(block)) throw invalid(p, 'expected a content block object');
    switch (block.type) {
      case 'text':
        content.push(decodeText(block, p));
        break;
      case 'thinking': {
        const text = requireString(block.thinking, `${p}.thinking`);
        const signature = optionalString(block.signature, `${p}.signature`);
        content.push(signature === undefined ? { type: 'reasoning', text } : { type: 'reasoning', text, signature });
        break;
      }
      case 'redacted_thinking':
        // Encrypted reasoning only Anthropic can read; no other provider could use it.
        break;
      case 'tool_use': {
        const id = requireString(block.id, `${p}.id`);
        const name = requireString(block.name, `${p}.name`);
        if (!isObject(block.input)) throw invalid(`${p}.input`, 'field required (an object)');
        toolCalls.push({ id, name, arguments: JSON.stringify(block.input) });
        break;
      }
      default:
        throw blockTypeError(block.type, p, 'assistant messages');
    }
  }
  return toolCalls.length > 0 ? { role: 'assistant', content, toolCalls } : { role: 'assistant', content };
}

function decodeMessage(raw: unknown, path: string, out: Message[]): void {
  if (!isObject(raw)) throw invalid(path, 'expected a message object');
  const role = raw.role;
  if (role !== 'user' && role !== 'assistant') throw invalid(`${path}.role`, "expected 'user' or 'assistant'");
  const content = raw.content;
  if (typeof content === 'string') {
    out.push({ role, content: [{ type: 'text', text: content }] });
  } else if (Array.isArray(content)) {
    if (role === 'user') decodeUserBlocks(content, path, out);
    else out.push(decodeAssistantBlocks(content, path));
  } else {
    throw invalid(`${path}.content`, 'field required (a string or an array of content blocks)');
  }
}

function decodeSystem(raw: unknown): Message | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === 'string') return raw === '' ? undefined : { role: 'system', content: [{ type: 'text', text: raw }] };
  if (!Array.isArray(raw)) throw invalid('system', 'expected a string or an array of text blocks');
  const content: ContentPart[] = [];
  for (let i = 0; i < raw.length; i++) {
    const block: unknown = raw[i];
    const p = `system.${i}`;
    if (!isObject(block)) throw invalid(p, 'expected a text block object');
    if (block.type !== 'text') throw invalid(`${p}.type`, "system blocks must be of type 'text'");
    content.push(decodeText(block, p));
  }
  return content.length > 0 ? { role: 'system', content } : undefined;
}

function decodeTools(raw: unknown): ToolDefinition[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw)) throw invalid('tools', 'expected an array');
  const tools: ToolDefinition[] = [];
  for (let i = 0; i < raw.length; i++) {
    const tool: unknown = raw[i];
    const p = `tools.${i}`;
    if (!isObject(tool)) throw invalid(p, 'expected a tool object');
    if (tool.type !== undefined && tool.type !== null && tool.type !== 'custom') {
      // Server tools (web search, code execution, computer use…) run inside Anthropic's API.
      throw unsupported(`${p}.type`, `tool type '${String(tool.type)}' is an Anthropic server tool and is not supported for translation`);
    }
    const name = requireString(tool.name, `${p}.name`);
    if (!isObject(tool.input_schema)) throw invalid(`${p}.input_schema`, 'field required (an object)');
    const def: ToolDefinition = { name, parameters: tool.input_schema };
    const description = optionalString(tool.description, `${p}.description`);
    if (description !== undefined) def.description = description;
    const strict = optionalBoolean(tool.strict, `${p}.strict`);
    if (strict !== undefined) def.strict = strict;
    tools.push(def);
  }
  return tools;
}

function decodeToolChoice(raw: unknown, req: ChatRequest): void {
  if (raw === undefined || raw === null) return;
  if (!isObject(raw)) throw invalid('tool_choice', 'expected an object');
  let choice: ToolChoice;
  switch (raw.type) {
    case 'auto':
      choice = 'auto';
      break;
    case 'any':
      choice = 'required';
      break;
    case 'none':
      choice = 'none';
      break;
    case 'tool':
      choice = { name: requireString(raw.name, 'tool_choice.name') };
      break;
    default:
      throw invalid('tool_choice.type', "expected 'auto', 'any', 'tool' or 'none'");
  }
  req.toolChoice = choice;
  if (optionalBoolean(raw.disable_parallel_tool_use, 'tool_choice.disable_parallel_tool_use') === true) {
    req.parallelToolCalls = false;
  }
}

function decodeThinking(raw: unknown, req: ChatRequest): void {
  if (raw === undefined || raw === null) return;
  if (!isObject(raw)) throw invalid('thinking', 'expected an object');
  const type = requireString(raw.type, 'thinking.type');
  if (type !== 'enabled') return; // disabled, or a mode (adaptive…) that carries no budget to translate
  const budget = optionalNumber(raw.budget_tokens, 'thinking.budget_tokens', true);
  if (budget === undefined || budget < 1) throw invalid('thinking.budget_tokens', 'field required (a positive integer)');
  req.reasoningBudget = budget;
}

/** `output_config.format` is Anthropic's structured output; it is the same thing as a JSON schema format. */
function decodeOutputConfig(raw: unknown): ResponseFormat | undefined {
  if (!isObject(raw) || !isObject(raw.format)) return undefined;
  const format = raw.format;
  if (format.type !== 'json_schema' || !isObject(format.schema)) return undefined;
  return { type: 'json_schema', name: 'output', schema: format.schema };
}

function decodeRequest(body: JsonObject): ChatRequest {
  const model = requireString(body.model, 'model');
  if (model === '') throw invalid('model', 'must not be empty');
  const maxTokens = optionalNumber(body.max_tokens, 'max_tokens', true);
  if (maxTokens === undefined) throw invalid('max_tokens', 'field required (an integer)');
  if (maxTokens < 1) throw invalid('max_tokens', 'must be at least 1');
  if (!Array.isArray(body.messages)) throw invalid('messages', 'field required (an array)');

  const messages: Message[] = [];
  const system = decodeSystem(body.system);
  if (system !== undefined) messages.push(system);
  const raw: unknown[] = body.messages;
  for (let i = 0; i < raw.length; i++) decodeMessage(raw[i], `messages.${i}`, messages);

  const stream = optionalBoolean(body.stream, 'stream') ?? false;
  // Anthropic streams always end with usage, so the client is owed it whatever the upstream.
  const req: ChatRequest = { model, messages, stream, maxTokens };
  if (stream) req.includeUsage = true;

  const stop = body.stop_sequences;
  if (stop !== undefined && stop !== null) {
    if (!Array.isArray(stop)) throw invalid('stop_sequences', 'expected an array of strings');
    req.stop = stop.map((s: unknown, i) => requireString(s, `stop_sequences.${i}`));
  }
  const temperature = optionalNumber(body.temperature, 'temperature', false);
  if (temperature !== undefined) req.temperature = temperature;
  const topP = optionalNumber(body.top_p, 'top_p', false);
  if (topP !== undefined) req.topP = topP;
  const topK = optionalNumber(body.top_k, 'top_k', true);
  if (topK !== undefined) req.topK = topK;

  const tools = decodeTools(body.tools);
  if (tools !== undefined) req.tools = tools;
  decodeToolChoice(body.tool_choice, req);
  decodeThinking(body.thinking, req);

  const metadata = body.metadata;
  if (metadata !== undefined && metadata !== null) {
    if (!isObject(metadata)) throw invalid('metadata', 'expected an object');
    const user = optionalString(metadata.user_id, 'metadata.user_id');
    if (user !== undefined) req.user = user;
  }
  const format = decodeOutputConfig(body.output_config);
  if (format !== undefined) req.responseFormat = format;

  let extra: Record<string, unknown> | undefined;
  for (const key of Object.keys(body)) {
    if (DECODED_FIELDS.has(key) || ANTHROPIC_ONLY_FIELDS.has(key)) continue;
    (extra ??= {})[key] = body[key];
  }
  if (extra !== undefined) req.extra = extra;
  return req;
}

// ---------------------------------------------------------------------------------------------
// Inbound: responses, streams and errors for Anthropic clients
// ---------------------------------------------------------------------------------------------

/** SDKs and tools check that message ids look like Anthropic's; the prefix is stable per id. */
function messageId(id: string): string {
  return id.startsWith('msg_') ? id : `msg_${id}`;
}

function stopReason(reason: FinishReason | null, stopSequence: string | undefined): AnthropicStopReason {
  switch (reason) {
    case 'length':
      return 'max_tokens';
    case 'tool_calls':
      return 'tool_use';
    case 'content_filter':
      return 'refusal';
    case 'stop':
      return stopSequence !== undefined ? 'stop_sequence' : 'end_turn';
    default:
      // 'error' and an unknown reason: Anthropic has no such value, and end_turn is what a client
      // treats as "the answer is what you got".
      return 'end_turn';
  }
}

/** Anthropic usage fields from canonical usage: input without the cache parts. */
function anthropicUsage(usage: Usage): JsonObject {
  const cacheRead = usage.cachedInputTokens;
  const cacheWrite = usage.cacheCreationInputTokens;
  const out: JsonObject = {
    input_tokens: Math.max(0, usage.inputTokens - (cacheRead ?? 0) - (cacheWrite ?? 0)),
    output_tokens: usage.outputTokens,
  };
  if (cacheRead !== undefined) out.cache_read_input_tokens = cacheRead;
  if (cacheWrite !== undefined) out.cache_creation_input_tokens = cacheWrite;
  return out;
}

/**
 * The `input` object of a tool_use block. Arguments that are not a JSON object (a model cut off by
 * max_tokens, a provider that emits junk) are kept as text under UNPARSED_ARGUMENTS_KEY instead of
 * becoming `{}`: an empty input would run the tool as if called with no arguments, possibly with
 * destructive defaults, while the wrapped text fails the client's schema check visibly and keeps
 * what the model said.
 */
function toolInput(args: string): JsonObject {
  if (args.trim() === '') return {};
  try {
    const parsed: unknown = JSON.parse(args);
    if (isObject(parsed)) return parsed;
  } catch {
    // fall through to the wrapped text
  }
  return { [UNPARSED_ARGUMENTS_KEY]: args };
}

function encodeResponse(res: ChatResponse): JsonObject {
  // Anthropic has no `n`: a response has one message, so further choices cannot be represented.
  const choice: ChatChoice | undefined = res.choices[0];
  const content: JsonObject[] = [];
  let reason: AnthropicStopReason = 'end_turn';
  let stopSequence: string | null = null;
  if (choice !== undefined) {
    if ((choice.reasoning !== undefined && choice.reasoning !== '') || choice.reasoningSignature) {
      content.push({ type: 'thinking', thinking: choice.reasoning ?? '', signature: choice.reasoningSignature ?? '' });
    }
    // An OpenAI refusal has no Anthropic field; as text it still reaches the user.
    const text = choice.text ?? (choice.toolCalls === undefined || choice.toolCalls.length === 0 ? choice.refusal : undefined);
    if (text !== undefined && text !== null && text !== '') content.push({ type: 'text', text });
    for (const call of choice.toolCalls ?? []) {
      content.push({ type: 'tool_use', id: call.id, name: call.name, input: toolInput(call.arguments) });
    }
    reason = stopReason(choice.finishReason, choice.stopSequence);
    if (reason === 'stop_sequence') stopSequence = choice.stopSequence ?? null;
  }
  return {
    id: messageId(res.id),
    type: 'message',
    role: 'assistant',
    model: res.model,
    content,
    stop_reason: reason,
    stop_sequence: stopSequence,
    usage: res.usage === undefined ? { input_tokens: 0, output_tokens: 0 } : anthropicUsage(res.usage),
  };
}

/** Anthropic's error `type` for a kind; it has no timeout type that every client version knows. */
function encodeError(error: GatewayError): JsonObject {
  return { type: 'error', error: { type: error.kind, message: error.message } };
}

type BlockKind = 'none' | 'text' | 'thinking' | 'tool';

const PING = sseEvent('{"type":"ping"}', 'ping');
const MESSAGE_STOP = sseEvent('{"type":"message_stop"}', 'message_stop');

/**
 * Canonical events to Anthropic's SSE sequence. Anthropic blocks never interleave, so a block
 * stays open until the kind of content changes or another tool call begins.
 */
class AnthropicStreamEncoder implements StreamEncoder {
  private id: string;
  private model: string;
  private started = false;
  /** The tail was written or an error ended the stream: nothing more may follow. */
  private finished = false;
  private blockCount = 0;
  private open: BlockKind = 'none';
  private openTool = -1;
  private readonly toolsSeen = new Set<number>();
  private finishReason: FinishReason | null = null;
  private stopSequence: string | undefined;
  private usage: Usage | undefined;

  constructor(init: StreamInit) {
    this.id = init.id;
    this.model = init.model;
  }

  encode(event: StreamEvent): string {
    if (this.finished) return '';
    switch (event.type) {
      case 'start':
        if (this.started) return '';
        if (event.id !== '') this.id = event.id;
        if (event.model !== '') this.model = event.model;
        return this.messageStart();
      case 'text':
        if (event.choice !== 0 || event.text === '') return '';
        return `${this.messageStart()}${this.openBlock('text')}${this.delta(`{"type":"text_delta","text":${JSON.stringify(event.text)}}`)}`;
      case 'reasoning':
        if (event.choice !== 0 || event.text === '') return '';
        return `${this.messageStart()}${this.openBlock('thinking')}${this.delta(`{"type":"thinking_delta","thinking":${JSON.stringify(event.text)}}`)}`;
      case 'reasoning_signature':
        if (event.choice !== 0) return '';
        return `${this.messageStart()}${this.openBlock('thinking')}${this.delta(`{"type":"signature_delta","signature":${JSON.stringify(event.signature)}}`)}`;
      case 'tool_call': {
        if (event.choice !== 0 || this.toolsSeen.has(event.index)) return '';
        this.toolsSeen.add(event.index);
        const head = this.messageStart() + this.closeBlock();
        this.open = 'tool';
        this.openTool = event.index;
        // Clients answer with tool_result blocks naming this id, so it must never be empty.
        const id = event.id !== '' ? event.id : `toolu_${this.id}_${event.index}`;
        const block = JSON.stringify({ type: 'tool_use', id, name: event.name, input: {} });
        return `${head}${sseEvent(`{"type":"content_block_start","index":${this.blockCount},"content_block":${block}}`, 'content_block_start')}`;
      }
      case 'tool_args':
        // Arguments for a tool whose block is already closed cannot be sent: Anthropic blocks do not
        // reopen. No upstream interleaves tool calls that way, so dropping is the only safe answer.
        if (event.choice !== 0 || this.open !== 'tool' || this.openTool !== event.index || event.delta === '') return '';
        return this.delta(`{"type":"input_json_delta","partial_json":${JSON.stringify(event.delta)}}`);
      case 'finish':
        if (event.choice !== 0) return '';
        this.finishReason = event.reason;
        this.stopSequence = event.stopSequence;
        return this.closeBlock();
      case 'usage':
        this.usage = event.usage;
        return '';
      case 'error':
        this.finished = true;
        return sseEvent(JSON.stringify(encodeError(event.error)), 'error');
      case 'logprobs':
        return '';
    }
  }

  end(): string {
    if (this.finished) return '';
    this.finished = true;
    const head = this.messageStart() + this.closeBlock();
    const reason = stopReason(this.finishReason ?? 'stop', this.stopSequence);
    const delta = {
      type: 'message_delta',
      delta: { stop_reason: reason, stop_sequence: reason === 'stop_sequence' ? (this.stopSequence ?? null) : null },
      usage: this.usage === undefined ? { output_tokens: 0 } : anthropicUsage(this.usage),
    };
    return `${head}${sseEvent(JSON.stringify(delta), 'message_delta')}${MESSAGE_STOP}`;
  }

  /** message_start (and a ping, as Anthropic sends) the first time anything is written. */
  private messageStart(): string {
    if (this.started) return '';
    this.started = true;
    const message = {
      id: messageId(this.id),
      type: 'message',
      role: 'assistant',
      model: this.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      // Canonical streams report usage only at the end; message_delta carries the real counts.
      usage: { input_tokens: 0, output_tokens: 0 },
    };
    return sseEvent(JSON.stringify({ type: 'message_start', message }), 'message_start') + PING;
  }

  private openBlock(kind: 'text' | 'thinking'): string {
    if (this.open === kind) return '';
    const close = this.closeBlock();
    this.open = kind;
    const block = kind === 'text' ? '{"type":"text","text":""}' : '{"type":"thinking","thinking":"","signature":""}';
    return `${close}${sseEvent(`{"type":"content_block_start","index":${this.blockCount},"content_block":${block}}`, 'content_block_start')}`;
  }

  private closeBlock(): string {
    if (this.open === 'none') return '';
    this.open = 'none';
    this.openTool = -1;
    const index = this.blockCount++;
    return sseEvent(`{"type":"content_block_stop","index":${index}}`, 'content_block_stop');
  }

  private delta(delta: string): string {
    return sseEvent(`{"type":"content_block_delta","index":${this.blockCount},"delta":${delta}}`, 'content_block_delta');
  }
}

// ---------------------------------------------------------------------------------------------
// Outbound: requests to Anthropic
// ---------------------------------------------------------------------------------------------

/** One Anthropic turn being built; `lead` holds blocks Anthropic wants first in the turn. */
interface Turn {
  role: 'user' | 'assistant';
  lead: JsonObject[];
  rest: JsonObject[];
}

const DATA_URL = /^data:([^;,]+);base64,/;

function imageBlock(source: ImageSource): JsonObject {
  if (source.kind === 'base64') {
    return { type: 'image', source: { type: 'base64', media_type: source.mediaType, data: source.data } };
  }
  // OpenAI clients inline images as data URLs, which Anthropic's url source does not accept.
  const match = DATA_URL.exec(source.url);
  if (match !== null) {
    return {
      type: 'image',
      source: { type: 'base64', media_type: match[1], data: source.url.slice(match[0].length) },
    };
  }
  return { type: 'image', source: { type: 'url', url: source.url } };
}

function contentBlocks(parts: readonly ContentPart[], out: JsonObject[]): void {
  for (const part of parts) {
    // Anthropic rejects empty text blocks.
    if (part.type === 'text' && part.text !== '') out.push({ type: 'text', text: part.text });
    else if (part.type === 'image') out.push(imageBlock(part.source));
  }
}

function toolResultBlock(message: Extract<Message, { role: 'tool' }>): JsonObject {
  const block: JsonObject = { type: 'tool_result', tool_use_id: message.toolCallId };
  if (message.content.some((p) => p.type === 'image')) {
    const content: JsonObject[] = [];
    contentBlocks(message.content, content);
    block.content = content;
  } else {
    const text = textOf(message.content);
    if (text !== '') block.content = text;
  }
  if (message.isError === true) block.is_error = true;
  return block;
}

function toolUseInput(args: string, param: string): JsonObject {
  if (args.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    throw invalid(param, 'tool call arguments are not valid JSON, which Anthropic requires');
  }
  if (!isObject(parsed)) throw invalid(param, 'tool call arguments must be a JSON object for Anthropic');
  return parsed;
}

/**
 * Anthropic has no response_format on every model, so the request asks for JSON in words; this
 * works with any Claude model, and the client still parses the answer as it would have.
 */
function formatInstruction(format: ResponseFormat | undefined): string | undefined {
  if (format === undefined || format.type === 'text') return undefined;
  if (format.type === 'json_object') return 'Answer with one valid JSON object and nothing else: no prose, no code fences.';
  const about = format.description !== undefined ? ` (${format.description})` : '';
  return (
    `Answer with one valid JSON value and nothing else (no prose, no code fences). ` +
    `It must conform to this JSON Schema, named "${format.name}"${about}:\n${JSON.stringify(format.schema)}`
  );
}

function encodeTools(tools: readonly ToolDefinition[]): JsonObject[] {
  return tools.map((tool) => {
    // Anthropic requires an object schema; OpenAI allows a function with no parameters at all.
    const schema = tool.parameters.type === undefined ? { type: 'object', properties: {}, ...tool.parameters } : tool.parameters;
    // `strict` is dropped: only some Claude models accept it, and without it the call still works.
    const out: JsonObject = { name: tool.name, input_schema: schema };
    if (tool.description !== undefined) out.description = tool.description;
    return out;
  });
}

function encodeToolChoice(req: ChatRequest): JsonObject | undefined {
  let choice: JsonObject | undefined;
  const tc = req.toolChoice;
  if (tc === 'auto') choice = { type: 'auto' };
  else if (tc === 'none') choice = { type: 'none' };
  else if (tc === 'required') choice = { type: 'any' };
  else if (tc !== undefined) choice = { type: 'tool', name: tc.name };
  // Anthropic states the parallel preference on the tool_choice object, so one must exist.
  if (req.parallelToolCalls === false && choice?.type !== 'none') {
    choice = { ...(choice ?? { type: 'auto' }), disable_parallel_tool_use: true };
  }
  return choice;
}

function encodeRequest(req: ChatRequest, model: string): JsonObject {
  if (req.n !== undefined && req.n > 1) {
    throw new GatewayError('unsupported_operation', 'n > 1 is not supported by Anthropic', { param: 'n' });
  }
  const system: string[] = [];
  const turns: Turn[] = [];
  // Anthropic requires user/assistant alternation, so same-role neighbours share one turn.
  const add = (role: 'user' | 'assistant', lead: JsonObject[], rest: JsonObject[]): void => {
    if (lead.length === 0 && rest.length === 0) return;
    const last = turns[turns.length - 1];
    if (last !== undefined && last.role === role) {
      last.lead.push(...lead);
      last.rest.push(...rest);
    } else {
      turns.push({ role, lead, rest });
    }
  };

  for (let i = 0; i < req.messages.length; i++) {
    const m = req.messages[i];
    switch (m.role) {
      case 'system': {
        const text = textOf(m.content);
        if (text !== '') system.push(text);
        break;
      }
      case 'user': {
        const rest: JsonObject[] = [];
        contentBlocks(m.content, rest);
        add('user', [], rest);
        break;
      }
      case 'tool':
        // Tool results go first in their user turn: Anthropic wants them right after the tool_use turn.
        add('user', [toolResultBlock(m)], []);
        break;
      case 'assistant': {
        const lead: JsonObject[] = [];
        const rest: JsonObject[] = [];
        for (const part of m.content) {
          // Thinking without Anthropic's signature is rejected when sent back, so it is dropped.
          if (part.type === 'reasoning' && part.signature !== undefined && part.signature !== '') {
            lead.push({ type: 'thinking', thinking: part.text, signature: part.signature });
          } else if (part.type === 'text' && part.text !== '') {
            rest.push({ type: 'text', text: part.text });
          }
        }
        const calls = m.toolCalls ?? [];
        for (let j = 0; j < calls.length; j++) {
          const call = calls[j];
          const input = toolUseInput(call.arguments, `messages.${i}.tool_calls.${j}.function.arguments`);
          rest.push({ type: 'tool_use', id: call.id, name: call.name, input });
        }
        add('assistant', lead, rest);
        break;
      }
    }
  }

  const instruction = formatInstruction(req.responseFormat);
  if (instruction !== undefined) system.push(instruction);

  // budget_tokens must stay below max_tokens; a defaulted max leaves room for the answer too.
  const maxTokens =
    req.maxTokens ?? (req.reasoningBudget !== undefined ? req.reasoningBudget + DEFAULT_MAX_TOKENS : DEFAULT_MAX_TOKENS);
  const out: JsonObject = {
    model,
    max_tokens: maxTokens,
    messages: turns.map((t) => ({ role: t.role, content: t.lead.length === 0 ? t.rest : t.lead.concat(t.rest) })),
  };
  if (system.length > 0) out.system = system.join('\n\n');
  if (req.stop !== undefined && req.stop.length > 0) out.stop_sequences = req.stop;
  if (req.temperature !== undefined) out.temperature = req.temperature;
  if (req.topP !== undefined) out.top_p = req.topP;
  if (req.topK !== undefined) out.top_k = req.topK;
  // tool_choice without tools is a 400 at Anthropic; clients send it anyway.
  if (req.tools !== undefined && req.tools.length > 0) {
    out.tools = encodeTools(req.tools);
    const choice = encodeToolChoice(req);
    if (choice !== undefined) out.tool_choice = choice;
  }
  if (req.reasoningBudget !== undefined) out.thinking = { type: 'enabled', budget_tokens: req.reasoningBudget };
  if (req.user !== undefined) out.metadata = { user_id: req.user };
  if (req.stream) out.stream = true;
  // `extra` holds other vendors' fields; Anthropic would reject them.
  return out;
}

// ---------------------------------------------------------------------------------------------
// Outbound: Anthropic's answers
// ---------------------------------------------------------------------------------------------

function protocolError(problem: string): GatewayError {
  return new GatewayError('upstream_protocol_error', `invalid Anthropic response: ${problem}`);
}

function finishReason(reason: unknown): FinishReason | null {
  switch (reason) {
    case null:
    case undefined:
      return null;
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      // end_turn, stop_sequence, pause_turn and any reason added later: the turn ended normally.
      return 'stop';
  }
}

/** Anthropic's usage counters as they arrive; message_delta may overwrite any of them. */
export interface RawUsage {
  input?: number;
  output?: number;
  cacheRead?: number;
  cacheWrite?: number;
  thinking?: number;
}

export function readUsage(raw: unknown, into: RawUsage): void {
  if (!isObject(raw)) return;
  const input = num(raw.input_tokens);
  if (input !== undefined) into.input = input;
  const output = num(raw.output_tokens);
  if (output !== undefined) into.output = output;
  const cacheRead = num(raw.cache_read_input_tokens);
  if (cacheRead !== undefined) into.cacheRead = cacheRead;
  const cacheWrite = num(raw.cache_creation_input_tokens);
  if (cacheWrite !== undefined) into.cacheWrite = cacheWrite;
  const thinking = isObject(raw.output_tokens_details) ? num(raw.output_tokens_details.thinking_tokens) : undefined;
  if (thinking !== undefined) into.thinking = thinking;
}

export function canonicalUsage(raw: RawUsage): Usage {
  const usage: Usage = {
    inputTokens: (raw.input ?? 0) + (raw.cacheRead ?? 0) + (raw.cacheWrite ?? 0),
    outputTokens: raw.output ?? 0,
  };
  if (raw.cacheRead !== undefined) usage.cachedInputTokens = raw.cacheRead;
  if (raw.cacheWrite !== undefined) usage.cacheCreationInputTokens = raw.cacheWrite;
  if (raw.thinking !== undefined) usage.reasoningTokens = raw.thinking;
  return usage;
}

function decodeResponse(body: unknown): ChatResponse {
  if (!isObject(body)) throw protocolError('not a JSON object');
  if (body.type !== 'message') throw protocolError(`type is ${JSON.stringify(body.type)}, expected "message"`);
  if (typeof body.id !== 'string') throw protocolError('id is missing');
  if (typeof body.model !== 'string') throw protocolError('model is missing');
  if (!Array.isArray(body.content)) throw protocolError('content is not an array');

  let text: string | null = null;
  let reasoning: string | undefined;
  let signature: string | undefined;
  const toolCalls: ToolCall[] = [];
  for (let i = 0; i < body.content.length; i++) {
    const block: unknown = body.content[i];
    if (!isObject(block) || typeof block.type !== 'string') throw protocolError(`content.${i} is not a content block`);
    if (block.type === 'text') {
      if (typeof block.text !== 'string') throw protocolError(`content.${i}.text is not a string`);
      text = (text ?? '') + block.text;
    } else if (block.type === 'thinking') {
      if (typeof block.thinking !== 'string') throw protocolError(`content.${i}.thinking is not a string`);
      reasoning = (reasoning ?? '') + block.thinking;
      if (typeof block.signature === 'string' && block.signature !== '') signature = block.signature;
    } else if (block.type === 'tool_use') {
      if (typeof block.id !== 'string' || typeof block.name !== 'string') {
        throw protocolError(`content.${i} is a tool_use block without id or name`);
      }
      toolCalls.push({ id: block.id, name: block.name, arguments: JSON.stringify(block.input ?? {}) });
    }
    // redacted_thinking and server-tool blocks have no canonical form.
  }

  const choice: ChatChoice = {
    index: 0,
    text: text ?? (toolCalls.length > 0 ? null : ''),
    finishReason: finishReason(body.stop_reason),
  };
  if (reasoning !== undefined) choice.reasoning = reasoning;
  if (signature !== undefined) choice.reasoningSignature = signature;
  if (toolCalls.length > 0) choice.toolCalls = toolCalls;
  if (typeof body.stop_sequence === 'string') choice.stopSequence = body.stop_sequence;

  const response: ChatResponse = { id: body.id, model: body.model, created: clock.unixSeconds(), choices: [choice] };
  if (isObject(body.usage)) {
    const raw: RawUsage = {};
    readUsage(body.usage, raw);
    response.usage = canonicalUsage(raw);
  }
  return response;
}

const ERROR_KINDS: ReadonlySet<string> = new Set<ErrorKind>([
  'invalid_request_error',
  'authentication_error',
  'permission_error',
  'not_found_error',
  'request_too_large',
  'rate_limit_error',
  'api_error',
  'overloaded_error',
  'timeout_error',
]);

function isErrorKind(type: unknown): type is ErrorKind {
  return typeof type === 'string' && ERROR_KINDS.has(type);
}

class AnthropicStreamDecoder implements StreamDecoder {
  private readonly parser = new SseParser((event) => this.onEvent(event));
  /** message_stop or an error event arrived: the stream is complete. */
  private done = false;
  private started = false;
  private toolCount = 0;
  /** Block index → canonical tool index, for tool_use blocks only. */
  private readonly toolBlocks = new Map<number, number>();
  private readonly usage: RawUsage = {};

  constructor(private readonly sink: EventSink) {}

  push(chunk: Uint8Array): void {
    if (!this.done) this.parser.push(chunk);
  }

  end(): void {
    if (this.done) return;
    try {
      // Delivers a last event that lacks its closing blank line; a message_stop there still counts.
      this.parser.end();
    } catch (err) {
      // An event cut off mid-line fails to parse; the real problem is that the stream stopped.
      if (!(err instanceof GatewayError) || err.code !== 'upstream_protocol_error') throw err;
    }
    if (!this.done) throw new GatewayError('upstream_protocol_error', 'upstream stream ended early');
  }

  private onEvent(event: SseEvent): void {
    if (this.done || event.event === 'ping') return;
    let data: unknown;
    try {
      data = JSON.parse(event.data);
    } catch {
      throw new GatewayError('upstream_protocol_error', `upstream sent a ${event.event || 'message'} event that is not JSON`);
    }
    if (!isObject(data)) throw new GatewayError('upstream_protocol_error', 'upstream sent an event that is not an object');
    const type = event.event === 'error' ? 'error' : data.type;
    const sink = this.sink;
    switch (type) {
      case 'message_start': {
        const message = isObject(data.message) ? data.message : {};
        if (!this.started) {
          this.started = true;
          sink({
            type: 'start',
            id: typeof message.id === 'string' ? message.id : '',
            model: typeof message.model === 'string' ? message.model : '',
            created: clock.unixSeconds(),
          });
        }
        readUsage(message.usage, this.usage);
        return;
      }
      case 'content_block_start':
        return this.blockStart(data);
      case 'content_block_delta':
        return this.blockDelta(data);
      case 'message_delta': {
        const delta = isObject(data.delta) ? data.delta : {};
        const reason = finishReason(delta.stop_reason);
        if (reason !== null) {
          sink(
            typeof delta.stop_sequence === 'string'
              ? { type: 'finish', choice: 0, reason, stopSequence: delta.stop_sequence }
              : { type: 'finish', choice: 0, reason },
          );
        }
        // Newer API versions repeat input and cache counts here; they overwrite message_start's.
        readUsage(data.usage, this.usage);
        sink({ type: 'usage', usage: canonicalUsage(this.usage) });
        return;
      }
      case 'message_stop':
        this.done = true;
        return;
      case 'error': {
        this.done = true;
        const error = isObject(data.error) ? data.error : {};
        const message = typeof error.message === 'string' ? error.message : 'upstream stream failed';
        const kind: ErrorKind = isErrorKind(error.type) ? error.type : 'api_error';
        sink({ type: 'error', error: new GatewayError('upstream_error', message, { kind }) });
        return;
      }
      default:
        // content_block_stop and event types added later carry nothing to translate.
        return;
    }
  }

  private blockStart(data: JsonObject): void {
    const block = data.content_block;
    if (!isObject(block)) return;
    const sink = this.sink;
    if (block.type === 'text') {
      if (typeof block.text === 'string' && block.text !== '') sink({ type: 'text', choice: 0, text: block.text });
    } else if (block.type === 'thinking') {
      if (typeof block.thinking === 'string' && block.thinking !== '') sink({ type: 'reasoning', choice: 0, text: block.thinking });
      if (typeof block.signature === 'string' && block.signature !== '') {
        sink({ type: 'reasoning_signature', choice: 0, signature: block.signature });
      }
    } else if (block.type === 'tool_use') {
      const index = this.toolCount++;
      if (typeof data.index === 'number') this.toolBlocks.set(data.index, index);
      sink({
        type: 'tool_call',
        choice: 0,
        index,
        id: typeof block.id === 'string' ? block.id : '',
        name: typeof block.name === 'string' ? block.name : '',
      });
      // Anthropic opens with `{}` and streams the input; a non-empty start is all the input there is.
      if (isObject(block.input) && Object.keys(block.input).length > 0) {
        sink({ type: 'tool_args', choice: 0, index, delta: JSON.stringify(block.input) });
      }
    }
  }

  private blockDelta(data: JsonObject): void {
    const delta = data.delta;
    if (!isObject(delta)) return;
    switch (delta.type) {
      case 'text_delta':
        if (typeof delta.text === 'string' && delta.text !== '') this.sink({ type: 'text', choice: 0, text: delta.text });
        return;
      case 'thinking_delta':
        if (typeof delta.thinking === 'string' && delta.thinking !== '') {
          this.sink({ type: 'reasoning', choice: 0, text: delta.thinking });
        }
        return;
      case 'signature_delta':
        if (typeof delta.signature === 'string') this.sink({ type: 'reasoning_signature', choice: 0, signature: delta.signature });
        return;
      case 'input_json_delta': {
        // Server-tool blocks stream input_json_delta too; only client tool_use blocks are tool calls.
        const index = typeof data.index === 'number' ? this.toolBlocks.get(data.index) : undefined;
        if (index !== undefined && typeof delta.partial_json === 'string' && delta.partial_json !== '') {
          this.sink({ type: 'tool_args', choice: 0, index, delta: delta.partial_json });
        }
        return;
      }
      default:
        return;
    }
  }
}

function decodeError(status: number, body: Uint8Array): GatewayError {
  let message = `Anthropic returned HTTP ${status}`;
  try {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(body));
    if (isObject(parsed) && isObject(parsed.error) && typeof parsed.error.message === 'string') {
      message = parsed.error.message;
    }
  } catch {
    // an HTML error page from a proxy, or nothing at all: keep the generic message
  }
  return new GatewayError('upstream_error', message, { status, kind: kindForStatus(status), upstreamBody: body });
}

export const anthropicMessagesCodec: InboundCodec & OutboundCodec = {
  protocol: 'anthropic-messages',
  decodeRequest,
  encodeResponse,
  createStreamEncoder: (init: StreamInit): StreamEncoder => new AnthropicStreamEncoder(init),
  encodeError,
  encodeRequest,
  decodeResponse,
  createStreamDecoder: (sink: EventSink): StreamDecoder => new AnthropicStreamDecoder(sink),
  decodeError,
};
