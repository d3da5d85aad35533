/**
 * Rebuilds a complete `ChatResponse` from a streamed answer's canonical events, so a streamed answer
 * can be stored like a non-streamed one. An answer that did not end properly (an error event, a
 * choice without a finish, a stream cut short) yields nothing: only whole answers are cached.
 */

import type { ChatChoice, ChatResponse, StreamEvent, ToolCall, Usage } from '../protocol/canonical.js';

interface ChoiceState {
  text: string;
  reasoning: string;
  signature: string | undefined;
  tools: ToolCall[];
  logprobs: unknown[];
  logprobsUnmergeable: boolean;
  finish: ChatChoice['finishReason'];
  stopSequence: string | undefined;
}

export class ResponseCollector {
  private id = '';
  private model = '';
  private created = 0;
  private started = false;
  private failed = false;
  private usage: Usage | undefined;
  private readonly choices = new Map<number, ChoiceState>();
  private chars = 0;

  constructor(
    /** Answers longer than this (characters of text, reasoning and arguments) are given up on. */
    private readonly maxChars: number = Number.POSITIVE_INFINITY,
  ) {}

  private choice(index: number): ChoiceState {
    let c = this.choices.get(index);
    if (c === undefined) {
      c = { text: '', reasoning: '', signature: undefined, tools: [], logprobs: [], logprobsUnmergeable: false, finish: null, stopSequence: undefined };
      this.choices.set(index, c);
    }
    return c;
  }

  private grow(n: number): void {
    this.chars += n;
    if (this.chars > this.maxChars) this.failed = true;
  }

  push(event: StreamEvent): void {
    if (this.failed) return;
    switch (event.type) {
      case 'start':
        this.started = true;
        this.id = event.id;
        this.model = event.model;
        this.created = event.created;
        return;
      case 'text':
        this.choice(event.choice).text += event.text;
        this.grow(event.text.length);
        return;
      case 'reasoning':
        this.choice(event.choice).reasoning += event.text;
        this.grow(event.text.length);
        return;
      case 'reasoning_signature':
        this.choice(event.choice).signature = event.signature;
        return;
      case 'tool_call':
        this.choice(event.choice).tools[event.index] = { id: event.id, name: event.name, arguments: '' };
        return;
      case 'tool_args': {
        const call = this.choice(event.choice).tools[event.index];
        if (call === undefined) this.failed = true;
        else call.arguments += event.delta;
        this.grow(event.delta.length);
        return;
      }
      case 'logprobs': {
        // OpenAI chunks carry `{content: [...]}`: those concatenate. Any other shape cannot be
        // merged faithfully, and an answer with half its logprobs must not be stored.
        const c = this.choice(event.choice);
        const lp = event.logprobs as { content?: unknown } | null;
        if (lp !== null && typeof lp === 'object' && Array.isArray(lp.content)) c.logprobs.push(...lp.content);
        else c.logprobsUnmergeable = true;
        return;
      }
      case 'finish': {
        const c = this.choice(event.choice);
        c.finish = event.reason;
        c.stopSequence = event.stopSequence;
        return;
      }
      case 'usage':
        this.usage = event.usage;
        return;
      case 'error':
        this.failed = true;
        return;
    }
  }

  /** The whole answer, or undefined when it is not one. */
  result(): ChatResponse | undefined {
    if (this.failed || !this.started || this.choices.size === 0) return undefined;
    const choices: ChatChoice[] = [];
    for (const [index, c] of [...this.choices].sort((a, b) => a[0] - b[0])) {
      if (c.finish === null || c.logprobsUnmergeable) return undefined;
      if (c.tools.some((t) => t === undefined)) return undefined;
      const choice: ChatChoice = { index, text: c.text.length > 0 || c.tools.length === 0 ? c.text : null, finishReason: c.finish };
      if (c.reasoning) choice.reasoning = c.reasoning;
      if (c.signature !== undefined) choice.reasoningSignature = c.signature;
      if (c.tools.length > 0) choice.toolCalls = c.tools;
      if (c.logprobs.length > 0) choice.logprobs = { content: c.logprobs };
      if (c.stopSequence !== undefined) choice.stopSequence = c.stopSequence;
      choices.push(choice);
    }
    const response: ChatResponse = { id: this.id, model: this.model, created: this.created, choices };
    if (this.usage !== undefined) response.usage = this.usage;
    return response;
  }
}
