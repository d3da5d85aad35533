/**
 * Chat requests as the multi-process tests make them: a one-message body, the answer's text, a
 * stream read as it arrives (with the time of each piece), and "is this model served by every
 * worker" over many fresh connections.
 */

import type { IncomingMessage } from 'node:http';
import { openStream, parseSse, postJson, type RawResponse } from './http.js';

export interface ChatBody {
  model: string;
  stream?: boolean;
  messages: { role: string; content: string }[];
}

export function chatBody(content: string, model = 'mock', stream = false): ChatBody {
  return { model, ...(stream ? { stream: true } : {}), messages: [{ role: 'user', content }] };
}

/** `choices[0].message.content` of a non-streamed answer, or undefined. */
export function answerContent(text: string): string | undefined {
  try {
    const json = JSON.parse(text) as { choices?: { message?: { content?: unknown } }[] };
    const c = json.choices?.[0]?.message?.content;
    return typeof c === 'string' ? c : undefined;
  } catch {
    return undefined;
  }
}

export interface StreamSummary {
  /** The content deltas in order (empty ones left out). */
  deltas: string[];
  finishReason: string | null;
  /** The last data event was `[DONE]`. */
  done: boolean;
}

/** What an OpenAI chat stream carried. */
export function summarizeStream(text: string): StreamSummary {
  const data = parseSse(text)
    .map((i) => i.data)
    .filter((d): d is string => d !== undefined);
  const deltas: string[] = [];
  let finishReason: string | null = null;
  for (const d of data) {
    if (d === '[DONE]') continue;
    const chunk = JSON.parse(d) as { choices?: { delta?: { content?: string }; finish_reason?: string | null }[] };
    const choice = chunk.choices?.[0];
    if (choice?.delta?.content) deltas.push(choice.delta.content);
    if (choice?.finish_reason) finishReason = choice.finish_reason;
  }
  return { deltas, finishReason, done: data[data.length - 1] === '[DONE]' };
}

export interface LiveStream {
  status: number;
  /** Resolves with the time (performance.now()) the first body bytes arrived. */
  firstData: Promise<number>;
  /**
   * Resolves when the response ends or its connection breaks: the text so far, when that happened,
   * and `cut` when the connection broke before the body was complete.
   */
  ended: Promise<{ text: string; at: number; cut: boolean }>;
}

/** POST a chat stream on a fresh connection and watch it arrive. */
export async function startStream(baseUrl: string, body: ChatBody, headers: Record<string, string> = {}): Promise<LiveStream> {
  const { res } = await openStream(baseUrl, '/v1/chat/completions', { ...body, stream: true }, headers);
  return watch(res);
}

function watch(res: IncomingMessage): LiveStream {
  let text = '';
  let resolveFirst: (at: number) => void = () => undefined;
  const firstData = new Promise<number>((r) => (resolveFirst = r));
  const ended = new Promise<{ text: string; at: number; cut: boolean }>((resolve) => {
    let settled = false;
    const finish = (cut: boolean): void => {
      if (settled) return;
      settled = true;
      resolve({ text, at: performance.now(), cut });
    };
    res.setEncoding('utf8');
    res.on('data', (s: string) => {
      if (text === '') resolveFirst(performance.now());
      text += s;
    });
    res.on('end', () => finish(!res.complete));
    // A connection reset mid-body: 'aborted'/'error', then 'close' without 'end'.
    res.on('error', () => finish(true));
    res.on('close', () => finish(!res.complete));
  });
  return { status: res.statusCode ?? 0, firstData, ended };
}

/**
 * `n` requests for `model` at once, each on its own connection: with n = 24 they land on every
 * worker of a 2-worker gateway (SO_REUSEPORT hashes each connection; the chance that one worker
 * gets them all is 2·2⁻²⁴). Returns the answers in order.
 */
export function onFreshConnections(baseUrl: string, model: string, n = 24, headers: Record<string, string> = {}): Promise<RawResponse[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => postJson(baseUrl, '/v1/chat/completions', chatBody(`fresh ${i}`, model), headers)));
}

/** Status and `x-sluice-model` of each answer, for one deepEqual against the expected pair. */
export function statusAndModel(answers: readonly RawResponse[]): [number, string | undefined][] {
  return answers.map((r) => [r.status, r.headers['x-sluice-model'] as string | undefined]);
}
