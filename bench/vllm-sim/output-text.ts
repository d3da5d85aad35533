/**
 * What the simulated model says: a deterministic stream of words chosen by a seed (derived from
 * the prompt), one token each. Every word is a single cl100k token and is its own pre-token piece,
 * so the text of an answer encodes back to exactly the ids generated: when a client returns the
 * answer in the next turn, prompt-blocks renders the same tokens and the answer's KV blocks hit.
 */

import { encodeText } from '../../src/routing/prompt-blocks.js';

export interface OutputToken {
  readonly id: number;
  readonly text: string;
}

const OPENERS = ['The', 'This', 'A', 'Each', 'Every', 'Our', 'Some', 'Most'];
const WORDS = [
  'model', 'token', 'cache', 'block', 'request', 'answer', 'prefix', 'batch', 'replica', 'server',
  'gateway', 'route', 'queue', 'stream', 'prompt', 'latency', 'memory', 'kernel', 'step', 'value',
  'simple', 'quick', 'steady', 'warm', 'cold', 'large', 'small', 'first', 'next', 'last',
  'keeps', 'finds', 'sends', 'reads', 'writes', 'holds', 'takes', 'gives', 'makes', 'waits',
  'and', 'with', 'from', 'into', 'over', 'after', 'before', 'when', 'while', 'then',
];
/** A sentence ends after this many words. */
const SENTENCE = 12;

function single(text: string): OutputToken {
  const ids = encodeText(text);
  if (ids.length !== 1) throw new Error(`simulator word "${text}" is ${ids.length} tokens, expected 1`);
  return { id: ids[0]!, text };
}

let vocabulary: { openers: OutputToken[]; spacedOpeners: OutputToken[]; words: OutputToken[]; stop: OutputToken } | undefined;

function getVocabulary(): NonNullable<typeof vocabulary> {
  vocabulary ??= {
    openers: OPENERS.map((w) => single(w)),
    spacedOpeners: OPENERS.map((w) => single(' ' + w)),
    words: WORDS.map((w) => single(' ' + w)),
    stop: single('.'),
  };
  return vocabulary;
}

/** A 32-bit mix of seed and position, so neighbouring seeds give unrelated answers. */
function pick(seed: number, position: number, n: number): number {
  let h = Math.imul(seed ^ Math.imul(position + 1, 0x9e3779b9), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % n;
}

/** Token `position` (0-based) of the answer with this seed. */
export function outputToken(seed: number, position: number): OutputToken {
  const v = getVocabulary();
  if (position === 0) return v.openers[pick(seed, 0, v.openers.length)]!;
  const inSentence = position % (SENTENCE + 1);
  if (inSentence === SENTENCE) return v.stop;
  if (inSentence === 0) return v.spacedOpeners[pick(seed, position, v.spacedOpeners.length)]!;
  return v.words[pick(seed, position, v.words.length)]!;
}

/** A seed from prompt tokens: the same prompt always gets the same answer. */
export function outputSeed(tokens: readonly number[]): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < tokens.length; i++) h = Math.imul(h ^ tokens[i]!, 0x01000193);
  return h >>> 0;
}
