/**
 * Google Gemini API codec, upstream side: `generateContent` bodies and `streamGenerateContent?alt=sse`
 * frames. The model name and the stream flag travel in the URL (the provider builds it), so the body
 * never names them.
 *
 * Gemini speaks protobuf-as-JSON: fields holding their default value (index 0, a log probability of
 * 0) are left out of replies, and unknown request fields are rejected rather than ignored. Both
 * shape what follows.
 */

import { randomBytes, randomUUID } from 'node:crypto';
import { clock } from '../clock.js';
import { GatewayError, kindForStatus } from '../errors.js';
import {
  textOf,
  type ChatChoice,
  type ChatRequest,
  type ChatResponse,
  type ContentPart,
  type FinishReason,
  type ImageSource,
  type Message,
  type ToolCall,
  type ToolChoice,
  type ToolDefinition,
  type Usage,
} from './canonical.js';
import type { EventSink, JsonObject, OutboundCodec, StreamDecoder } from './codec.js';
import { SseParser } from './sse.js';

type Role = 'user' | 'model';
interface Content {
  role: Role;
  parts: JsonObject[];
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function protocolError(message: string): GatewayError {
  return new GatewayError('upstream_protocol_error', message);
}

/** Assigns `value` unless it is undefined, so encoded bodies carry no empty keys. */
function put(target: JsonObject, key: string, value: unknown): void {
  if (value !== undefined) target[key] = value;
}

// ---------------------------------------------------------------------------------------------
// Request

function encodeRequest(req: ChatRequest): JsonObject {
  const { contents, system } = encodeMessages(req.messages);
  const body: JsonObject = { contents };
  if (system.length > 0) body.systemInstruction = { parts: system };
  put(body, 'generationConfig', encodeGenerationConfig(req));
  if (req.tools !== undefined && req.tools.length > 0) {
    body.tools = [{ functionDeclarations: req.tools.map(encodeTool) }];
  }
  if (req.toolChoice !== undefined) body.toolConfig = { functionCallingConfig: encodeToolChoice(req.toolChoice) };
  return body;
}

function encodeMessages(messages: readonly Message[]): { contents: Content[]; system: JsonObject[] } {
  const contents: Content[] = [];
  const system: JsonObject[] = [];
  // Gemini pairs a function response with its call by name; canonical tool results only carry the
  // call id, so the names come from the assistant turns seen so far.
  const toolNames = new Map<string, string>();

  // Gemini wants turns to alternate, and tool results answer as a user turn: merging neighbours of
  // one role gives a batch of tool results (and any user text after them) a single turn.
  const append = (role: Role, parts: JsonObject[]): void => {
    if (parts.length === 0) return; // an empty `parts` is a 400
    const last = contents[contents.length - 1];
    if (last !== undefined && last.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };

  messages.forEach((message, i) => {
    switch (message.role) {
      case 'system': {
        const text = textOf(message.content);
        if (text !== '') system.push({ text });
        break;
      }
      case 'user':
        append('user', encodeParts(message.content));
        break;
      case 'assistant': {
        const parts = encodeParts(message.content);
        for (const call of message.toolCalls ?? []) {
          toolNames.set(call.id, call.name);
          parts.push({ functionCall: { id: call.id, name: call.name, args: parseArguments(call, i) } });
        }
        append('model', parts);
        break;
      }
      case 'tool': {
        const name = toolNames.get(message.toolCallId);
        if (name === undefined) {
          throw new GatewayError(
            'invalid_request',
            `tool result for "${message.toolCallId}" answers no tool call in an earlier assistant message`,
            { param: `messages[${i}]` },
          );
        }
        const response = encodeToolResult(textOf(message.content), message.isError === true);
        append('user', [{ functionResponse: { id: message.toolCallId, name, response } }]);
        break;
      }
    }
  });
  return { contents, system };
}

function encodeParts(content: readonly ContentPart[]): JsonObject[] {
  const parts: JsonObject[] = [];
  for (const part of content) {
    // Gemini rejects empty text parts.
    if (part.type === 'text' && part.text !== '') parts.push({ text: part.text });
    else if (part.type === 'image') parts.push(encodeImage(part.source));
    // Reasoning is not sent back: Gemini's thought summaries are output only, and text from another
    // vendor's reasoning would read to the model as something it said.
  }
  return parts;
}

function encodeImage(source: ImageSource): JsonObject {
  if (source.kind === 'base64') return { inlineData: { mimeType: source.mediaType, data: source.data } };
  // A data URL is inline data that reached us unparsed; Gemini cannot fetch it.
  const dataUrl = /^data:([^;,]+);base64,/i.exec(source.url);
  if (dataUrl !== null) {
    return { inlineData: { mimeType: dataUrl[1], data: source.url.slice(dataUrl[0].length) } };
  }
  // Limitation: `fileData` must name the type, and nothing is fetched here to learn it, so it is a
  // guess from the extension. Which URIs Gemini accepts (Files API, Cloud Storage, public HTTPS)
  // depends on the endpoint and model; an unsupported one fails upstream with its own message.
  return { fileData: { mimeType: imageTypeOf(source.url), fileUri: source.url } };
}

const IMAGE_TYPES: Readonly<Record<string, string>> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  heic: 'image/heic',
  heif: 'image/heif',
};

function imageTypeOf(url: string): string {
  const ext = /\.([a-z0-9]+)(?:[?#]|$)/i.exec(url)?.[1]?.toLowerCase();
  return (ext !== undefined ? IMAGE_TYPES[ext] : undefined) ?? 'image/jpeg';
}

/** Gemini takes arguments as an object, not JSON text; text that is no object cannot be sent. */
function parseArguments(call: ToolCall, messageIndex: number): JsonObject {
  if (call.arguments.trim() === '') return {};
  const args = parseJsonObject(call.arguments);
  if (args === undefined) {
    throw new GatewayError('invalid_request', `arguments of tool call "${call.id}" are not a JSON object`, {
      param: `messages[${messageIndex}]`,
    });
  }
  return args;
}

function parseJsonObject(text: string): JsonObject | undefined {
  if (!text.trimStart().startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** `response` must be an object; Google documents `error` as the key for a failed call. */
function encodeToolResult(text: string, isError: boolean): JsonObject {
  return parseJsonObject(text) ?? (isError ? { error: text } : { content: text });
}

function encodeGenerationConfig(req: ChatRequest): JsonObject | undefined {
  const config: JsonObject = {};
  put(config, 'maxOutputTokens', req.maxTokens);
  put(config, 'temperature', req.temperature);
  put(config, 'topP', req.topP);
  put(config, 'topK', req.topK);
  if (req.stop !== undefined && req.stop.length > 0) config.stopSequences = req.stop;
  put(config, 'candidateCount', req.n);
  put(config, 'seed', req.seed);
  put(config, 'presencePenalty', req.presencePenalty);
  put(config, 'frequencyPenalty', req.frequencyPenalty);

  const format = req.responseFormat;
  if (format !== undefined && format.type !== 'text') config.responseMimeType = 'application/json';
  // `responseJsonSchema` takes JSON Schema as clients write it ($ref, additionalProperties, ...),
  // so the schema passes unchanged. `responseSchema` is Google's OpenAPI subset and would need the
  // lossy rewrite that tool parameters get below.
  if (format?.type === 'json_schema') config.responseJsonSchema = format.schema;

  if (req.reasoningBudget !== undefined) {
    const thinking: JsonObject = { thinkingBudget: req.reasoningBudget };
    // Without this Gemini thinks but returns none of it; a budget of 0 turns thinking off.
    if (req.reasoningBudget !== 0) thinking.includeThoughts = true;
    config.thinkingConfig = thinking;
  }
  if (req.logprobs === true) {
    config.responseLogprobs = true;
    put(config, 'logprobs', req.topLogprobs);
  }
  return Object.keys(config).length > 0 ? config : undefined;
}

function encodeTool(tool: ToolDefinition): JsonObject {
  const declaration: JsonObject = { name: tool.name };
  put(declaration, 'description', tool.description);
  const parameters = toGeminiSchema(tool.parameters);
  // A parameterless tool must leave `parameters` out: Gemini answers 400 ("properties: should be
  // non-empty for OBJECT type") to an object schema without properties.
  const properties = isObject(parameters) ? parameters.properties : undefined;
  if (isObject(properties) && Object.keys(properties).length > 0) declaration.parameters = parameters;
  return declaration;
}

/**
 * The keys of Gemini's `Schema` (a subset of OpenAPI 3.0). Any other key, e.g. `$schema`,
 * `additionalProperties`, `const`, `$ref`, fails the whole request with "Unknown name ... Cannot
 * find field", so the schema is filtered to these rather than stripped of a known few.
 */
const SCHEMA_KEYS = new Set([
  'type', 'format', 'title', 'description', 'nullable', 'enum', 'items', 'minItems', 'maxItems',
  'properties', 'required', 'minProperties', 'maxProperties', 'minLength', 'maxLength', 'pattern',
  'example', 'anyOf', 'propertyOrdering', 'default', 'minimum', 'maximum',
]);
/** Other string formats are rejected ("only 'enum' and 'date-time' are supported for STRING"). */
const SCHEMA_FORMATS = new Set(['enum', 'date-time', 'float', 'double', 'int32', 'int64']);

/**
 * A JSON Schema rewritten into what Gemini's `parameters` accepts. Lossy by necessity: constraints
 * Gemini cannot express are dropped (the model sees less, the call still works), and `$ref`s are
 * not inlined, so a referenced definition reaches the model as an untyped value.
 */
function toGeminiSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toGeminiSchema);
  if (!isObject(schema)) return schema;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(schema)) {
    if (!SCHEMA_KEYS.has(key)) continue;
    if (key === 'properties' && isObject(value)) {
      // Keys here are parameter names, not keywords, so they are all kept.
      out.properties = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, toGeminiSchema(sub)]));
    } else if (key === 'items' || key === 'anyOf') {
      out[key] = toGeminiSchema(value);
    } else {
      out[key] = value;
    }
  }
  // `type` is a single enum value in Gemini; a JSON Schema type list becomes nullable / anyOf.
  if (Array.isArray(schema.type)) {
    const types = schema.type.filter((t) => t !== 'null');
    delete out.type;
    if (types.length < schema.type.length) out.nullable = true;
    if (types.length === 1) out.type = types[0];
    else if (types.length > 1) out.anyOf = types.map((type) => ({ type }));
  }
  if (typeof schema.const === 'string' && out.enum === undefined) {
    out.enum = [schema.const];
    out.type ??= 'string';
  }
  if (typeof out.format === 'string' && !SCHEMA_FORMATS.has(out.format)) delete out.format;
  // Gemini's enum values are strings only.
  if (Array.isArray(out.enum) && !out.enum.every((v) => typeof v === 'string')) delete out.enum;
  return out;
}

function encodeToolChoice(choice: ToolChoice): JsonObject {
  if (choice === 'auto') return { mode: 'AUTO' };
  if (choice === 'none') return { mode: 'NONE' };
  if (choice === 'required') return { mode: 'ANY' };
  return { mode: 'ANY', allowedFunctionNames: [choice.name] };
}

// ---------------------------------------------------------------------------------------------
// Response

type Piece =
  | { kind: 'text' | 'reasoning'; text: string }
  | { kind: 'call'; id: string; name: string; args: string };

/** Gemini gives no id for most calls; ours must not repeat across turns, as clients echo them back. */
function newToolCallId(): string {
  return `call_${randomBytes(12).toString('hex')}`;
}

function candidateIndex(candidate: JsonObject, position: number): number {
  return typeof candidate.index === 'number' ? candidate.index : position;
}

function readParts(candidate: JsonObject): Piece[] {
  const content = candidate.content;
  // A candidate stopped by a filter may have no content at all.
  if (content === undefined) return [];
  if (!isObject(content)) throw protocolError('Gemini candidate content is not an object');
  const parts = content.parts;
  if (parts === undefined) return [];
  if (!Array.isArray(parts)) throw protocolError('Gemini candidate parts is not an array');
  const pieces: Piece[] = [];
  for (const part of parts) {
    if (!isObject(part)) throw protocolError('Gemini content part is not an object');
    if (typeof part.text === 'string') {
      if (part.text !== '') pieces.push({ kind: part.thought === true ? 'reasoning' : 'text', text: part.text });
    } else if (part.functionCall !== undefined) {
      const call = part.functionCall;
      if (!isObject(call) || typeof call.name !== 'string') throw protocolError('Gemini functionCall has no name');
      const id = typeof call.id === 'string' && call.id !== '' ? call.id : newToolCallId();
      // Gemini sends arguments as an object, so serializing once here is unavoidable.
      pieces.push({ kind: 'call', id, name: call.name, args: JSON.stringify(call.args ?? {}) });
    }
    // Other parts (generated images, code execution, bare thought signatures) have no canonical place.
  }
  return pieces;
}

const FILTERED = new Set(['SAFETY', 'RECITATION', 'BLOCKLIST', 'PROHIBITED_CONTENT', 'SPII', 'IMAGE_SAFETY']);

function finishReasonOf(raw: unknown, calledTools: boolean): FinishReason | null {
  if (typeof raw !== 'string') return null;
  if (raw === 'MAX_TOKENS') return 'length';
  if (FILTERED.has(raw)) return 'content_filter';
  // Gemini ends a turn of function calls with STOP; clients look for tool_calls to run them.
  return calledTools && raw === 'STOP' ? 'tool_calls' : 'stop';
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function decodeUsage(meta: unknown): Usage | undefined {
  if (!isObject(meta)) return undefined;
  const thoughts = count(meta.thoughtsTokenCount);
  const usage: Usage = {
    inputTokens: count(meta.promptTokenCount) ?? 0,
    // Gemini counts thinking apart from the answer; canonical output includes it.
    outputTokens: (count(meta.candidatesTokenCount) ?? 0) + (thoughts ?? 0),
  };
  const cached = count(meta.cachedContentTokenCount);
  if (cached !== undefined) usage.cachedInputTokens = cached;
  if (thoughts !== undefined) usage.reasoningTokens = thoughts;
  return usage;
}

const utf8 = new TextEncoder();

/** Gemini's `logprobsResult` in OpenAI's shape, which is what the canonical model passes on. */
function decodeLogprobs(result: unknown): unknown {
  if (!isObject(result) || !Array.isArray(result.chosenCandidates)) return undefined;
  const top = Array.isArray(result.topCandidates) ? result.topCandidates : [];
  const token = (raw: unknown): JsonObject => {
    const c = isObject(raw) ? raw : {};
    const text = typeof c.token === 'string' ? c.token : '';
    // An absent logProbability is protobuf's omitted default, i.e. 0, not unknown.
    return { token: text, logprob: count(c.logProbability) ?? 0, bytes: Array.from(utf8.encode(text)) };
  };
  return {
    content: result.chosenCandidates.map((chosen, step) => {
      const alternatives: unknown = isObject(top[step]) ? top[step].candidates : undefined;
      return { ...token(chosen), top_logprobs: Array.isArray(alternatives) ? alternatives.map(token) : [] };
    }),
  };
}

function hasBlockReason(body: JsonObject): boolean {
  return isObject(body.promptFeedback) && typeof body.promptFeedback.blockReason === 'string';
}

function decodeCandidate(raw: unknown, position: number): ChatChoice {
  if (!isObject(raw)) throw protocolError('Gemini candidate is not an object');
  let text: string | null = null;
  let reasoning: string | undefined;
  const toolCalls: ToolCall[] = [];
  for (const piece of readParts(raw)) {
    if (piece.kind === 'call') toolCalls.push({ id: piece.id, name: piece.name, arguments: piece.args });
    else if (piece.kind === 'text') text = (text ?? '') + piece.text;
    else reasoning = (reasoning ?? '') + piece.text;
  }
  const choice: ChatChoice = {
    index: candidateIndex(raw, position),
    text,
    finishReason: finishReasonOf(raw.finishReason, toolCalls.length > 0),
  };
  if (reasoning !== undefined) choice.reasoning = reasoning;
  if (toolCalls.length > 0) choice.toolCalls = toolCalls;
  const logprobs = decodeLogprobs(raw.logprobsResult);
  if (logprobs !== undefined) choice.logprobs = logprobs;
  return choice;
}

function decodeResponse(body: unknown): ChatResponse {
  if (!isObject(body)) throw protocolError('Gemini response is not a JSON object');
  const candidates = body.candidates;
  let choices: ChatChoice[];
  if (Array.isArray(candidates) && candidates.length > 0) {
    choices = candidates.map(decodeCandidate);
  } else if (candidates === undefined && hasBlockReason(body)) {
    // The prompt itself was blocked: no candidate was generated at all.
    choices = [{ index: 0, text: null, finishReason: 'content_filter' }];
  } else {
    throw protocolError('Gemini response has no candidates');
  }
  const response: ChatResponse = {
    id: typeof body.responseId === 'string' ? body.responseId : randomUUID(),
    model: typeof body.modelVersion === 'string' ? body.modelVersion : '',
    created: clock.unixSeconds(),
    choices,
  };
  const usage = decodeUsage(body.usageMetadata);
  if (usage !== undefined) response.usage = usage;
  return response;
}

// ---------------------------------------------------------------------------------------------
// Stream

interface ChoiceState {
  toolCalls: number;
  finished: boolean;
}

/**
 * Each `alt=sse` frame is a whole GenerateContentResponse holding only the increment, except
 * `usageMetadata`, which is cumulative and repeated: only the last one counts, so usage waits for
 * the end of the body.
 */
class GeminiStreamDecoder implements StreamDecoder {
  private readonly parser = new SseParser((event) => {
    try {
      this.onFrame(event.data);
    } catch (err) {
      this.failed = true;
      throw err;
    }
  });
  private readonly choices = new Map<number, ChoiceState>();
  private started = false;
  private sawFinish = false;
  /** An error was reported; whatever else the body holds means nothing. */
  private failed = false;
  private usage: Usage | undefined;

  constructor(private readonly sink: EventSink) {}

  push(chunk: Uint8Array): void {
    if (!this.failed) this.parser.push(chunk);
  }

  end(): void {
    if (this.failed) return;
    this.parser.end();
    if (!this.sawFinish) throw protocolError('upstream stream ended early');
    if (this.usage !== undefined) this.sink({ type: 'usage', usage: this.usage });
  }

  private onFrame(data: string): void {
    if (this.failed) return;
    let frame: unknown;
    try {
      frame = JSON.parse(data);
    } catch {
      throw protocolError('Gemini stream frame is not JSON');
    }
    const error = upstreamErrorOf(frame, undefined);
    if (error !== undefined) {
      this.failed = true;
      this.sink({ type: 'error', error });
      return;
    }
    if (!isObject(frame)) throw protocolError('Gemini stream frame is not a JSON object');
    if (!this.started) {
      this.started = true;
      this.sink({
        type: 'start',
        id: typeof frame.responseId === 'string' ? frame.responseId : randomUUID(),
        model: typeof frame.modelVersion === 'string' ? frame.modelVersion : '',
        created: clock.unixSeconds(),
      });
    }
    if (Array.isArray(frame.candidates)) frame.candidates.forEach((c, i) => this.onCandidate(c, i));
    else if (hasBlockReason(frame)) this.finish(0, 'content_filter');
    this.usage = decodeUsage(frame.usageMetadata) ?? this.usage;
  }

  private onCandidate(raw: unknown, position: number): void {
    if (!isObject(raw)) throw protocolError('Gemini candidate is not an object');
    const choice = candidateIndex(raw, position);
    const state = this.state(choice);
    for (const piece of readParts(raw)) {
      if (piece.kind === 'call') {
        const index = state.toolCalls++;
        this.sink({ type: 'tool_call', choice, index, id: piece.id, name: piece.name });
        this.sink({ type: 'tool_args', choice, index, delta: piece.args });
      } else {
        this.sink({ type: piece.kind, choice, text: piece.text });
      }
    }
    const logprobs = decodeLogprobs(raw.logprobsResult);
    if (logprobs !== undefined) this.sink({ type: 'logprobs', choice, logprobs });
    // Calls and the STOP that ends their turn may come in different frames, hence the count so far.
    const reason = finishReasonOf(raw.finishReason, state.toolCalls > 0);
    if (reason !== null) this.finish(choice, reason);
  }

  private finish(choice: number, reason: FinishReason): void {
    const state = this.state(choice);
    if (state.finished) return;
    state.finished = true;
    this.sawFinish = true;
    this.sink({ type: 'finish', choice, reason });
  }

  private state(choice: number): ChoiceState {
    let state = this.choices.get(choice);
    if (state === undefined) {
      state = { toolCalls: 0, finished: false };
      this.choices.set(choice, state);
    }
    return state;
  }
}

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * Google's `{error: {code, message, status}}`, which some endpoints wrap in a one-element array, as
 * a GatewayError; undefined when `body` is not that shape. `status` is the HTTP status when there is
 * one; inside a stream only the body's `code` says what went wrong.
 */
function upstreamErrorOf(body: unknown, status: number | undefined, raw?: Uint8Array): GatewayError | undefined {
  const wrapper: unknown = Array.isArray(body) ? body[0] : body;
  if (!isObject(wrapper) || !isObject(wrapper.error)) return undefined;
  const { code, message } = wrapper.error;
  const httpStatus = status ?? (typeof code === 'number' && code >= 400 ? code : 502);
  const text = typeof message === 'string' && message !== '' ? message : `upstream error (HTTP ${httpStatus})`;
  return new GatewayError('upstream_error', text, {
    status: httpStatus,
    kind: kindForStatus(httpStatus),
    upstreamBody: raw,
  });
}

function decodeError(status: number, body: Uint8Array): GatewayError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch {
    parsed = undefined;
  }
  return (
    upstreamErrorOf(parsed, status, body) ??
    new GatewayError('upstream_error', `upstream error (HTTP ${status})`, {
      status,
      kind: kindForStatus(status),
      upstreamBody: body,
    })
  );
}

export const geminiCodec: OutboundCodec = {
  protocol: 'gemini',
  encodeRequest: (request) => encodeRequest(request),
  decodeResponse,
  createStreamDecoder: (sink) => new GeminiStreamDecoder(sink),
  decodeError,
};
