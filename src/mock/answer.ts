/**
 * The mock's "model": a pure function from a conversation to an answer, shared by every wire format
 * so that the same conversation gets the same answer whichever protocol asked for it.
 *
 * - After a tool result: `Tool result: <content>`.
 * - With tools offered and either a forced tool_choice or a tool named in the last user text: calls
 *   to those tools (in the order they are mentioned), arguments built from their JSON schemas.
 * - Otherwise: `Echo: <last user text>`.
 * A token is a word plus the whitespace after it, so counts are easy to predict in tests.
 */

import { GatewayError } from '../errors.js';
import { isArray, isObject } from './json.js';

export interface AnswerMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  text: string;
  /** Tool calls an assistant message made; they number the ids of new calls. */
  toolCalls: number;
}

export interface AnswerTool {
  name: string;
  /** JSON Schema of the arguments object. */
  parameters: unknown;
}

export type AnswerToolChoice = 'auto' | 'none' | 'required' | { name: string };

export interface AnswerRequest {
  messages: readonly AnswerMessage[];
  tools: readonly AnswerTool[];
  toolChoice: AnswerToolChoice;
  parallelToolCalls: boolean;
  /** The client's cap on output tokens. */
  maxTokens: number | null;
  /** Fixed answer length from the mock options; null = the echo's own length. */
  outputTokens: number | null;
}

export interface MockToolCall {
  id: string;
  name: string;
  input: unknown;
  /** `input` as JSON text. */
  arguments: string;
  /** `arguments` cut into tokens for streaming; they concatenate back to it. */
  argumentTokens: string[];
}

export interface AnswerUsage {
  inputTokens: number;
  outputTokens: number;
}

export type Answer =
  | { kind: 'text'; tokens: string[]; truncated: boolean; usage: AnswerUsage }
  | { kind: 'tool_calls'; calls: MockToolCall[]; usage: AnswerUsage };

export function answer(req: AnswerRequest): Answer {
  const inputTokens = countInputTokens(req.messages);
  const last = req.messages[req.messages.length - 1];
  if (last !== undefined && last.role !== 'tool') {
    const calls = chooseTools(req);
    if (calls.length > 0) {
      let priorCalls = 0;
      for (const m of req.messages) priorCalls += m.toolCalls;
      const made = calls.map((tool, i) => toolCall(tool, priorCalls + i));
      let outputTokens = 0;
      for (const c of made) outputTokens += c.argumentTokens.length;
      return { kind: 'tool_calls', calls: made, usage: { inputTokens, outputTokens } };
    }
  }
  const text = last?.role === 'tool' ? 'Tool result: ' + trailingToolText(req.messages) : 'Echo: ' + lastUserText(req.messages);
  let tokens = stretch(wordTokens(text), req.outputTokens);
  const truncated = req.maxTokens !== null && tokens.length > req.maxTokens;
  if (truncated) tokens = tokens.slice(0, req.maxTokens ?? undefined);
  return { kind: 'text', tokens, truncated, usage: { inputTokens, outputTokens: tokens.length } };
}

/** Words with their following whitespace; they concatenate back to the text (less leading space). */
export function wordTokens(text: string): string[] {
  return text.match(/\S+\s*/g) ?? [];
}

export function countWords(text: string): number {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const space = c === 32 || (c >= 9 && c <= 13) || c === 160;
    if (!space && !inWord) n++;
    inWord = !space;
  }
  return n;
}

/**
 * A plausible value for a JSON schema: required properties only; string → "mock", number → 1,
 * boolean → true, enum → its first value, array → [].
 */
export function valueFromSchema(schema: unknown, depth = 0): unknown {
  if (!isObject(schema) || depth > 32) return 'mock';
  if (isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  if ('const' in schema) return schema.const;
  for (const key of ['anyOf', 'oneOf', 'allOf']) {
    const options = schema[key];
    if (isArray(options) && options.length > 0) return valueFromSchema(options[0], depth + 1);
  }
  let type = schema.type;
  if (isArray(type)) type = type.find((t) => t !== 'null') ?? 'null';
  switch (type) {
    case 'string':
      return 'mock';
    case 'number':
    case 'integer':
      return 1;
    case 'boolean':
      return true;
    case 'array':
      return [];
    case 'null':
      return null;
    case 'object':
      return objectFromSchema(schema, depth);
    default:
      return isObject(schema.properties) ? objectFromSchema(schema, depth) : 'mock';
  }
}

function objectFromSchema(schema: { readonly [key: string]: unknown }, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const props = isObject(schema.properties) ? schema.properties : {};
  const required = isArray(schema.required) ? schema.required : [];
  for (const name of required) {
    if (typeof name === 'string') out[name] = valueFromSchema(props[name], depth + 1);
  }
  return out;
}

function chooseTools(req: AnswerRequest): AnswerTool[] {
  if (req.tools.length === 0 || req.toolChoice === 'none') return [];
  const choice = req.toolChoice;
  if (typeof choice === 'object') {
    const named = req.tools.find((t) => t.name === choice.name);
    if (named === undefined) {
      throw new GatewayError('invalid_request', `tool_choice names an unknown tool: ${choice.name}`, { param: 'tool_choice' });
    }
    return [named];
  }
  const mentioned = mentionedTools(req.tools, lastUserText(req.messages));
  if (mentioned.length > 0) return req.parallelToolCalls ? mentioned : mentioned.slice(0, 1);
  return choice === 'required' ? req.tools.slice(0, 1) : [];
}

/** Tools whose name appears as a whole word in the text, in order of first appearance. */
function mentionedTools(tools: readonly AnswerTool[], text: string): AnswerTool[] {
  const found: { tool: AnswerTool; at: number }[] = [];
  for (const tool of tools) {
    const at = findWord(text, tool.name);
    if (at >= 0) found.push({ tool, at });
  }
  found.sort((a, b) => a.at - b.at);
  return found.map((f) => f.tool);
}

function findWord(text: string, word: string): number {
  if (word.length === 0) return -1;
  for (let at = text.indexOf(word); at >= 0; at = text.indexOf(word, at + 1)) {
    if (!isNameChar(text.charCodeAt(at - 1)) && !isNameChar(text.charCodeAt(at + word.length))) return at;
  }
  return -1;
}

function isNameChar(c: number): boolean {
  // NaN (outside the string) compares false everywhere: a boundary.
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45;
}

function toolCall(tool: AnswerTool, n: number): MockToolCall {
  const value = valueFromSchema(tool.parameters);
  // Tool arguments are always an object, whatever the schema claims.
  const input = isObject(value) ? value : {};
  const args = JSON.stringify(input);
  return { id: `call_mock_${n}`, name: tool.name, input, arguments: args, argumentTokens: jsonTokens(args) };
}

/** JSON text cut after each `,` and `:`, so a stream delivers keys and values in separate pieces. */
function jsonTokens(json: string): string[] {
  return json.match(/[^,:]*[,:]|[^,:]+$/g) ?? [json];
}

/** With a fixed length: the echo's tokens repeated (or cut) to exactly `length`. */
function stretch(tokens: string[], length: number | null): string[] {
  if (length === null || length === tokens.length) return tokens;
  if (length < tokens.length) return tokens.slice(0, length);
  const out: string[] = new Array<string>(length);
  for (let i = 0; i < length; i++) {
    let t = tokens[i % tokens.length] ?? 'mock ';
    // Keep words apart where the echo wraps around.
    if (i < length - 1 && !/\s$/.test(t)) t += ' ';
    out[i] = t;
  }
  return out;
}

function lastUserText(messages: readonly AnswerMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m !== undefined && m.role === 'user') return m.text;
  }
  return '';
}

/** Parallel tool calls end in several tool results: answer all of them. */
function trailingToolText(messages: readonly AnswerMessage[]): string {
  let first = messages.length;
  while (first > 0 && messages[first - 1]?.role === 'tool') first--;
  return messages
    .slice(first)
    .map((m) => m.text)
    .join(' ');
}

function countInputTokens(messages: readonly AnswerMessage[]): number {
  let n = 0;
  for (const m of messages) n += countWords(m.text);
  return n;
}
