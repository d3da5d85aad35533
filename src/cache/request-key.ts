/**
 * From a canonical request to the cache's keys.
 *
 * A cached answer may only be served for a request that would have produced the same answer, so
 * the key covers everything that can change the answer and nothing that cannot:
 *
 * | in the key | why |
 * |---|---|
 * | namespace: scope (consumer / tenant / `shared`), provider, upstream model | another tenant's answer is not yours to see; another model answers differently |
 * | messages: role, every content part (text, images, reasoning), names, tool calls and ids | the prompt itself |
 * | max_tokens, temperature, top_p, top_k, stop, n, seed, presence/frequency penalty | sampling and truncation change the text |
 * | tools, tool_choice, parallel_tool_calls | what the model may call, and whether |
 * | response_format, logprobs, top_logprobs | the shape of the answer |
 * | reasoning budget and effort | how much the model thinks changes what it says |
 * | unknown fields (`extra`), minus `ignore_fields` | a field we do not know may change the answer (vLLM's `chat_template_kwargs`) |
 * | end-user id, only with `partition_by_end_user` | |
 *
 * Not in the key: the model name the client typed (the resolved provider/model is: two aliases of
 * one model share answers), `stream` and `stream_options` (replay serves both), and the fields in
 * `ignore_fields` (metadata, service tier, store, …). An absent parameter and an explicit default
 * are different keys: the provider's default may not be the value the client wrote.
 *
 * The semantic layer splits the same request in two: the text that identifies the question (the
 * last user turn by default) is embedded; everything else is hashed into a context key that must
 * match exactly.
 */

import { createHash } from 'node:crypto';
import type { ChatRequest, ContentPart, Message } from '../protocol/canonical.js';

/** Bumped when the normalisation changes, so old entries (in Redis) can never match new keys. */
export const KEY_VERSION = 'sluice-cache/1';

export interface Namespace {
  /** `consumer:<id>`, `tenant:<id>` or `shared`. */
  scope: string;
  /** Provider name of the target whose answers this namespace holds. */
  provider: string;
  /** The provider's model name. */
  model: string;
}

export interface KeyOptions {
  /** Unknown top-level fields left out of the key. */
  ignoreFields: readonly string[];
  /** Put the end-user id in the key. */
  partitionByEndUser: boolean;
}

export type KeyText = 'last_user_turn' | 'conversation';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** JSON with object keys sorted at every depth, so equal values hash equally. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): Json | undefined {
  if (value === null || typeof value !== 'object') {
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return undefined;
    if (typeof value === 'bigint') return value.toString();
    return value as Json;
  }
  if (Array.isArray(value)) return value.map((v) => sortKeys(v) ?? null);
  const out: { [k: string]: Json } = {};
  for (const k of Object.keys(value).sort()) {
    const v = sortKeys((value as Record<string, unknown>)[k]);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function sha256(...parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) {
    h.update(p);
    h.update('\u0000');
  }
  return h.digest('hex');
}

export function namespaceKey(ns: Namespace): string {
  return sha256(KEY_VERSION, 'ns', ns.scope, ns.provider, ns.model);
}

function part(p: ContentPart): Json {
  switch (p.type) {
    case 'text':
      return ['t', p.text];
    case 'image':
      return ['i', p.source.kind === 'url' ? ['u', p.source.url] : ['b', p.source.mediaType, p.source.data], p.detail ?? null];
    case 'reasoning':
      return ['r', p.text, p.signature ?? null];
  }
}

function message(m: Message): Json {
  const content = m.content.map(part);
  switch (m.role) {
    case 'system':
      return { role: 'system', content };
    case 'user':
      return m.name === undefined ? { role: 'user', content } : { role: 'user', content, name: m.name };
    case 'assistant':
      return m.toolCalls === undefined
        ? { role: 'assistant', content }
        : { role: 'assistant', content, toolCalls: m.toolCalls.map((c) => [c.id, c.name, c.arguments]) };
    case 'tool':
      return { role: 'tool', content, toolCallId: m.toolCallId, isError: m.isError ?? false };
  }
}

/** Everything in a request that can change the answer, except the messages. */
function parameters(req: ChatRequest, opts: KeyOptions): Record<string, unknown> {
  let extra: Record<string, unknown> | undefined;
  if (req.extra !== undefined) {
    for (const [k, v] of Object.entries(req.extra)) {
      if (opts.ignoreFields.includes(k) || k === 'stream_options') continue;
      (extra ??= {})[k] = v;
    }
  }
  return {
    maxTokens: req.maxTokens,
    temperature: req.temperature,
    topP: req.topP,
    topK: req.topK,
    stop: req.stop,
    n: req.n,
    seed: req.seed,
    presencePenalty: req.presencePenalty,
    frequencyPenalty: req.frequencyPenalty,
    tools: req.tools,
    toolChoice: req.toolChoice,
    parallelToolCalls: req.parallelToolCalls,
    responseFormat: req.responseFormat,
    logprobs: req.logprobs,
    topLogprobs: req.topLogprobs,
    reasoningBudget: req.reasoningBudget,
    reasoningEffort: req.reasoningEffort,
    user: opts.partitionByEndUser ? (req.user ?? '') : undefined,
    extra,
  };
}

/** The exact layer's key: namespace and the whole normalised request. */
export function exactKey(nsKey: string, req: ChatRequest, opts: KeyOptions): string {
  return sha256(KEY_VERSION, 'exact', nsKey, stableStringify({ messages: req.messages.map(message), ...parameters(req, opts) }));
}

export interface SemanticParts {
  /** The text that is embedded and verified. */
  text: string;
  /** Hash of the rest of the request: candidates must have the same. */
  contextKey: string;
}

/**
 * Splits a request for the semantic layer, or returns undefined when it has no question text to
 * embed (the last turn is not a user's, or carries images or tool results).
 */
export function semanticParts(nsKey: string, req: ChatRequest, opts: KeyOptions, keyText: KeyText): SemanticParts | undefined {
  const msgs = req.messages;
  const last = msgs[msgs.length - 1];
  if (last === undefined || last.role !== 'user' || !last.content.every((p) => p.type === 'text')) return undefined;
  const params = parameters(req, opts);

  if (keyText === 'last_user_turn') {
    const text = textOnly(last.content);
    if (text === undefined) return undefined;
    // The question's place is kept (and its author's name): only its words may differ.
    const context = [...msgs.slice(0, -1).map(message), { role: 'user', question: true, name: last.name ?? null }];
    return { text, contextKey: sha256(KEY_VERSION, 'context', keyText, nsKey, stableStringify({ messages: context, ...params })) };
  }

  const lines: string[] = [];
  const system: Json[] = [];
  for (const m of msgs) {
    if (m.role === 'system') {
      system.push(message(m));
      continue;
    }
    if (m.role === 'tool' || (m.role === 'assistant' && m.toolCalls !== undefined)) return undefined;
    const text = textOnly(m.content);
    if (text === undefined) return undefined;
    lines.push(`${m.role}: ${text}`);
  }
  const text = lines.join('\n');
  if (text.length === 0) return undefined;
  return { text, contextKey: sha256(KEY_VERSION, 'context', keyText, nsKey, stableStringify({ system, turns: lines.length, ...params })) };
}

function textOnly(parts: readonly ContentPart[]): string | undefined {
  const texts: string[] = [];
  for (const p of parts) {
    if (p.type !== 'text') return undefined;
    texts.push(p.text);
  }
  const text = texts.join('\n').trim();
  return text.length > 0 ? text : undefined;
}
