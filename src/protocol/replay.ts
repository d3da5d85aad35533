/**
 * A complete answer as the stream of events that would have produced it, so a stored or non-streamed
 * answer can be sent to a client that asked for a stream (cache hits, upstreams that ignore `stream`).
 * Text is cut into word-sized pieces so clients see a real stream, not one blob.
 */

import type { ChatResponse, StreamEvent } from './canonical.js';

const PIECE = /\S+\s*|\s+/g;

export function responseToEvents(response: ChatResponse): StreamEvent[] {
  const events: StreamEvent[] = [{ type: 'start', id: response.id, model: response.model, created: response.created }];
  for (const c of response.choices) {
    const choice = c.index;
    if (c.reasoning) events.push({ type: 'reasoning', choice, text: c.reasoning });
    if (c.reasoningSignature) events.push({ type: 'reasoning_signature', choice, signature: c.reasoningSignature });
    if (c.text) for (const piece of c.text.match(PIECE) ?? []) events.push({ type: 'text', choice, text: piece });
    c.toolCalls?.forEach((call, index) => {
      events.push({ type: 'tool_call', choice, index, id: call.id, name: call.name });
      if (call.arguments) events.push({ type: 'tool_args', choice, index, delta: call.arguments });
    });
    if (c.logprobs !== undefined && c.logprobs !== null) events.push({ type: 'logprobs', choice, logprobs: c.logprobs });
    const finish: StreamEvent = { type: 'finish', choice, reason: c.finishReason ?? 'stop' };
    if (c.stopSequence !== undefined) finish.stopSequence = c.stopSequence;
    events.push(finish);
  }
  if (response.usage) events.push({ type: 'usage', usage: response.usage });
  return events;
}
