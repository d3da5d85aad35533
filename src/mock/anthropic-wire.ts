/**
 * Anthropic's Messages wire format, written out independently of the gateway's codecs, so that
 * translation to and from Anthropic can be tested against a real-format upstream.
 *
 * It is as strict as the real API where a translation bug would otherwise slip through: `max_tokens`
 * is required and `messages` may hold only user and assistant turns.
 */

import { GatewayError, type ErrorKind } from '../errors.js';
import type { Answer, AnswerMessage, AnswerRequest, AnswerTool, AnswerToolChoice } from './answer.js';
import { isArray, isObject, optionalBoolean, optionalPositiveInteger, requireString, type JsonObject } from './json.js';
import { generationDelayMs, groups, jsonReply, sseEvent, sseReply, type MockReply, type Pacing, type ReplyIdentity } from './reply.js';

export interface AnthropicCall {
  model: string;
  stream: boolean;
  answer: AnswerRequest;
}

export function parseMessagesRequest(body: JsonObject, outputTokens: number | null): AnthropicCall {
  const model = requireString(body, 'model');
  const maxTokens = optionalPositiveInteger(body, 'max_tokens');
  if (maxTokens === undefined) {
    throw new GatewayError('invalid_request', 'max_tokens: Field required', { param: 'max_tokens' });
  }
  if (!isArray(body.messages) || body.messages.length === 0) {
    throw new GatewayError('invalid_request', 'messages: a non-empty array is required', { param: 'messages' });
  }
  const messages: AnswerMessage[] = [];
  const system = blocksText(body.system);
  if (system.length > 0) messages.push({ role: 'system', text: system, toolCalls: 0 });
  body.messages.forEach((m, i) => pushMessage(messages, m, i));

  const tools: AnswerTool[] = [];
  if (isArray(body.tools)) {
    for (const t of body.tools) {
      // Server tools (web search and the like) have no input schema and are run by the API itself.
      if (isObject(t) && typeof t.name === 'string' && isObject(t.input_schema)) {
        tools.push({ name: t.name, parameters: t.input_schema });
      }
    }
  }
  const choice = isObject(body.tool_choice) ? body.tool_choice : {};
  return {
    model,
    stream: optionalBoolean(body, 'stream') ?? false,
    answer: {
      messages,
      tools,
      toolChoice: toolChoice(choice),
      parallelToolCalls: choice.disable_parallel_tool_use !== true,
      maxTokens,
      outputTokens,
    },
  };
}

export function renderMessages(call: AnthropicCall, ans: Answer, ident: ReplyIdentity, pacing: Pacing): MockReply {
  const stopReason = ans.kind === 'tool_calls' ? 'tool_use' : ans.truncated ? 'max_tokens' : 'end_turn';
  const usage = ans.usage;
  if (!call.stream) {
    const content =
      ans.kind === 'text'
        ? [{ type: 'text', text: ans.tokens.join('') }]
        : ans.calls.map((c) => ({ type: 'tool_use', id: c.id, name: c.name, input: c.input }));
    const body = JSON.stringify({
      id: ident.id,
      type: 'message',
      role: 'assistant',
      model: call.model,
      content,
      stop_reason: stopReason,
      stop_sequence: null,
      usage: {
        input_tokens: usage.inputTokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        output_tokens: usage.outputTokens,
      },
    });
    return jsonReply(200, body, generationDelayMs(pacing, usage.outputTokens));
  }

  // The real API reports a token or so of output at message_start; the final count is in message_delta.
  let prelude = sseEvent(
    'message_start',
    JSON.stringify({
      type: 'message_start',
      message: {
        id: ident.id,
        type: 'message',
        role: 'assistant',
        model: call.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: usage.inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 },
      },
    }),
  );
  const steps: string[] = [];
  let epilogue = '';
  if (ans.kind === 'text') {
    prelude += blockStart(0, { type: 'text', text: '' }) + sseEvent('ping', '{"type":"ping"}');
    for (const g of groups(ans.tokens, pacing.chunkTokens)) steps.push(delta(0, { type: 'text_delta', text: g.join('') }));
    epilogue = blockStop(0);
  } else {
    prelude += sseEvent('ping', '{"type":"ping"}');
    ans.calls.forEach((c, index) => {
      const opening = blockStart(index, { type: 'tool_use', id: c.id, name: c.name, input: {} });
      const pieces = groups(c.argumentTokens, pacing.chunkTokens).map((g) => delta(index, { type: 'input_json_delta', partial_json: g.join('') }));
      // The real API opens every tool block with an empty partial_json.
      steps.push(opening + delta(index, { type: 'input_json_delta', partial_json: '' }));
      steps.push(...pieces);
      steps[steps.length - 1] += blockStop(index);
    });
  }
  epilogue +=
    sseEvent(
      'message_delta',
      `{"type":"message_delta","delta":{"stop_reason":"${stopReason}","stop_sequence":null},"usage":{"output_tokens":${usage.outputTokens}}}`,
    ) + sseEvent('message_stop', '{"type":"message_stop"}');
  return sseReply(prelude, steps, epilogue, pacing);
}

export function anthropicErrorBody(kind: ErrorKind, message: string): string {
  // Anthropic has no timeout kind of its own; a gateway timeout reads as an API error there.
  const type = kind === 'timeout_error' ? 'api_error' : kind;
  return JSON.stringify({ type: 'error', error: { type, message } });
}

function blockStart(index: number, block: object): string {
  return sseEvent('content_block_start', JSON.stringify({ type: 'content_block_start', index, content_block: block }));
}

function delta(index: number, d: object): string {
  return sseEvent('content_block_delta', JSON.stringify({ type: 'content_block_delta', index, delta: d }));
}

function blockStop(index: number): string {
  return sseEvent('content_block_stop', `{"type":"content_block_stop","index":${index}}`);
}

/**
 * One Anthropic turn becomes one or more answer messages: tool_result blocks become tool messages
 * (they come first in a user turn), any text after them a user message.
 */
function pushMessage(out: AnswerMessage[], m: unknown, i: number): void {
  if (!isObject(m) || (m.role !== 'user' && m.role !== 'assistant')) {
    throw new GatewayError('invalid_request', `messages.${i}.role: must be "user" or "assistant"`, { param: `messages.${i}.role` });
  }
  if (m.role === 'assistant') {
    let toolCalls = 0;
    if (isArray(m.content)) for (const b of m.content) if (isObject(b) && b.type === 'tool_use') toolCalls++;
    out.push({ role: 'assistant', text: blocksText(m.content), toolCalls });
    return;
  }
  let sawToolResult = false;
  if (isArray(m.content)) {
    for (const b of m.content) {
      if (isObject(b) && b.type === 'tool_result') {
        sawToolResult = true;
        out.push({ role: 'tool', text: blocksText(b.content), toolCalls: 0 });
      }
    }
  }
  const text = blocksText(m.content);
  if (!sawToolResult || text.length > 0) out.push({ role: 'user', text, toolCalls: 0 });
}

/** A string, or the text blocks of a block array joined by spaces. */
function blocksText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!isArray(content)) return '';
  const texts: string[] = [];
  for (const b of content) {
    if (isObject(b) && b.type === 'text' && typeof b.text === 'string') texts.push(b.text);
  }
  return texts.join(' ');
}

function toolChoice(choice: JsonObject): AnswerToolChoice {
  switch (choice.type) {
    case 'any':
      return 'required';
    case 'none':
      return 'none';
    case 'tool':
      if (typeof choice.name === 'string') return { name: choice.name };
      throw new GatewayError('invalid_request', 'tool_choice.name: a string is required', { param: 'tool_choice.name' });
    default:
      return 'auto';
  }
}
