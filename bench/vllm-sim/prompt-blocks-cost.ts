/**
 * What prompt-blocks costs per request on this machine: `node dist/bench/vllm-sim/prompt-blocks-cost.js`.
 * The prefix balancer will run it on the request path, so the number that matters is the cost for a
 * parsed JSON body (flat strings, as JSON.parse makes them) of about 2,000 tokens.
 *
 * Cases: a conversation whose system prompt and history repeat across requests (the segment memo
 * serves them) with a new last message; a one-message prompt of all-new text; hashing alone.
 */

import { blockHashes, chatPromptBlocks, chatPromptTokens, warmUpTokenizer } from '../../src/routing/prompt-blocks.js';

const WORDS = 'the a gateway routes each request to the replica whose cache already holds its prefix while others wait in queue for tokens of 2048 or 4096 and {"json": true} values'.split(' ');

function text(chars: number, seed: number): string {
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < chars; i++) {
    const word = WORDS[(Math.imul(i + seed, 2654435761) >>> 0) % WORDS.length]!;
    parts.push(i % 17 === 16 ? `${word}.\n` : word);
    length += word.length + 1;
  }
  return parts.join(' ');
}

function measure(label: string, bodies: readonly string[], run: (request: { messages: unknown }) => unknown): void {
  // Parsing is outside the timing: the gateway has parsed the body already.
  const requests = bodies.map((b) => JSON.parse(b) as { messages: unknown });
  const warm = Math.min(200, requests.length >> 2);
  for (let i = 0; i < warm; i++) run(requests[i]!);
  const started = performance.now();
  for (let i = warm; i < requests.length; i++) run(requests[i]!);
  const perCall = ((performance.now() - started) / (requests.length - warm)) * 1000;
  const tokens = chatPromptTokens(requests[requests.length - 1]!).length;
  console.log(`${label.padEnd(58)} ${perCall.toFixed(1).padStart(7)} us/call  (${tokens} tokens)`);
}

const loadStarted = performance.now();
warmUpTokenizer();
console.log(`tokenizer load (once per process)${' '.repeat(25)}${(performance.now() - loadStarted).toFixed(0).padStart(7)} ms`);

const N = 3000;
const system = text(3600, 1);
const history = text(2400, 2);
const conversation = Array.from({ length: N }, (_, i) =>
  JSON.stringify({ messages: [{ role: 'system', content: system }, { role: 'user', content: history }, { role: 'assistant', content: 'noted' }, { role: 'user', content: text(1800, 100 + i) }] }),
);
const fresh = Array.from({ length: N }, (_, i) => JSON.stringify({ messages: [{ role: 'user', content: text(9000, 10_000 + i) }] }));

measure('chat, repeated system + history, new last message', conversation, (r) => chatPromptBlocks(r));
measure('chat, all-new text', fresh, (r) => chatPromptBlocks(r));

const tokens = chatPromptTokens(JSON.parse(fresh[0]!) as { messages: unknown });
const rounds = 20_000;
const started = performance.now();
for (let i = 0; i < rounds; i++) blockHashes(tokens);
console.log(`${'hashing alone (blockHashes)'.padEnd(58)} ${(((performance.now() - started) / rounds) * 1000).toFixed(1).padStart(7)} us/call  (${tokens.length} tokens)`);
