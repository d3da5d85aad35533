import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Tiktoken, type TiktokenBPE } from 'js-tiktoken/lite';

import {
  blockHashes,
  chatPromptBlocks,
  chatPromptTokens,
  completionPromptBlocks,
  completionPromptTokens,
  DEFAULT_BLOCK_SIZE,
  encodeText,
  hashBlock,
  IM_END,
  IM_START,
  rootHash,
  sharedPrefixBlocks,
} from '../../src/routing/prompt-blocks.js';

/** A deterministic token array (no tokenizer needed). */
function tokens(n: number, seed = 1): number[] {
  const out: number[] = [];
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out.push(x % 100000);
  }
  return out;
}

const longText = (seed: number, words: number): string =>
  Array.from({ length: words }, (_, i) => ['routing', 'cache', 'block', 'prefix', 'token', 'the', 'a', 'of'][(i * 7 + seed) % 8]).join(' ');

describe('blockHashes', () => {
  it('hashes only full blocks', () => {
    assert.equal(blockHashes(tokens(15)).length, 0);
    assert.equal(blockHashes(tokens(16)).length, 1);
    assert.equal(blockHashes(tokens(47)).length, 2);
    assert.equal(blockHashes(tokens(48)).length, 3);
    assert.equal(blockHashes(tokens(10), { blockSize: 4 }).length, 2);
    assert.equal(DEFAULT_BLOCK_SIZE, 16);
  });

  it('is a chain: block i hashes block i with the hash of block i-1', () => {
    const t = tokens(64);
    const h = blockHashes(t);
    assert.equal(h[0], hashBlock(rootHash(), t, 0, 16));
    for (let i = 1; i < h.length; i++) assert.equal(h[i], hashBlock(h[i - 1]!, t, i * 16, 16));
  });

  it('gives the same leading hashes to prompts with the same prefix', () => {
    const shared = tokens(40, 7);
    const a = blockHashes([...shared, ...tokens(50, 8)]);
    const b = blockHashes([...shared, ...tokens(30, 9)]);
    // 40 shared tokens = 2 full blocks; block 3 mixes in the differing tail.
    assert.deepEqual([...a.subarray(0, 2)], [...b.subarray(0, 2)]);
    assert.notEqual(a[2], b[2]);
    assert.equal(sharedPrefixBlocks(a, b), 2);
  });

  it('changes every later hash when an earlier block differs, even if the later tokens are equal', () => {
    const t = tokens(160, 3);
    const u = t.slice();
    u[20] = (u[20]! + 1) % 100000; // inside block 1
    const a = blockHashes(t);
    const b = blockHashes(u);
    assert.equal(a[0], b[0]);
    for (let i = 1; i < a.length; i++) assert.notEqual(a[i], b[i], `block ${i}`);
    assert.equal(sharedPrefixBlocks(a, b), 1);
  });

  it('depends on the order of tokens inside a block and on the salt', () => {
    const t = tokens(16, 5);
    const swapped = [t[1]!, t[0]!, ...t.slice(2)];
    assert.notEqual(blockHashes(t)[0], blockHashes(swapped)[0]);
    assert.notEqual(blockHashes(t, { salt: 'tenant-a' })[0], blockHashes(t)[0]);
    assert.notEqual(blockHashes(t, { salt: 'tenant-a' })[0], blockHashes(t, { salt: 'tenant-b' })[0]);
    assert.equal(blockHashes(t, { salt: 'tenant-a' })[0], blockHashes(t, { salt: 'tenant-a' })[0]);
  });

  it('returns 53-bit non-negative integers, distinct over many blocks', () => {
    const h = blockHashes(tokens(16 * 20000, 11));
    const seen = new Set<number>();
    for (const x of h) {
      assert.ok(Number.isSafeInteger(x) && x >= 0, `${x} is a safe non-negative integer`);
      seen.add(x);
    }
    assert.equal(seen.size, h.length);
    assert.ok(h.some((x) => x >= 2 ** 32), 'uses more than 32 bits');
  });

  it('refuses a block size that is not a positive integer', () => {
    assert.throws(() => blockHashes(tokens(32), { blockSize: 0 }), RangeError);
    assert.throws(() => blockHashes(tokens(32), { blockSize: 2.5 }), RangeError);
  });
});

describe('encodeText', () => {
  it('matches js-tiktoken cl100k_base on varied text, including special-token spellings', () => {
    const require = createRequire(import.meta.url);
    const reference = new Tiktoken(require('js-tiktoken/ranks/cl100k_base') as TiktokenBPE);
    const samples = [
      'Hello, world!  How are you?\n\nFine.',
      "It's 2024; we'll see 12345 items — naïve café, 中文, emoji 😀.",
      '   leading spaces\tand\ttabs\r\nwindows lines\n\n\n',
      'text that spells <|endoftext|> and <|im_start|> is plain text',
      longText(3, 400),
    ];
    for (const s of samples) assert.deepEqual(encodeText(s), reference.encode(s, [], []), JSON.stringify(s.slice(0, 40)));
    // The segment memo must return the same tokens the second time.
    assert.deepEqual(encodeText(samples[4]!), reference.encode(samples[4]!, [], []));
  });
});

describe('chatPromptTokens', () => {
  const system = { role: 'system', content: longText(1, 300) };

  it('renders role markers, content in order and the generation prompt', () => {
    const t = chatPromptTokens({ messages: [{ role: 'user', content: 'Hi' }] });
    assert.deepEqual(t, [IM_START, ...encodeText('user\n'), ...encodeText('Hi'), IM_END, ...encodeText('\n'), IM_START, ...encodeText('assistant\n')]);
  });

  it('is deterministic and shares leading blocks between turns of one conversation', () => {
    const turn1 = { messages: [system, { role: 'user', content: 'What is a KV cache?' }] };
    const answer = 'A KV cache keeps the keys and values of earlier tokens.';
    const turn2 = { messages: [...turn1.messages, { role: 'assistant', content: answer }, { role: 'user', content: 'And prefix caching?' }] };
    const a = chatPromptBlocks(turn1);
    assert.deepEqual([...chatPromptBlocks(turn1)], [...a]);
    const b = chatPromptBlocks(turn2);
    // Turn 1's prompt (ending in the generation prompt) is a token prefix of turn 2's when the
    // answer is appended: every full block of turn 1 is shared.
    assert.equal(sharedPrefixBlocks(a, b), a.length);
    const t1 = chatPromptTokens(turn1);
    const t2 = chatPromptTokens(turn2);
    assert.deepEqual(t2.slice(0, t1.length + encodeText(answer).length), [...t1, ...encodeText(answer)]);
  });

  it('differs from the first block on when the system prompt differs', () => {
    const a = chatPromptBlocks({ messages: [system, { role: 'user', content: 'q' }] });
    const b = chatPromptBlocks({ messages: [{ role: 'system', content: 'Z' + system.content }, { role: 'user', content: 'q' }] });
    assert.ok(a.length > 10);
    assert.equal(sharedPrefixBlocks(a, b), 0);
  });

  it('includes tools, tool calls and tool results', () => {
    const base = { messages: [{ role: 'user', content: longText(2, 40) }] };
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }];
    assert.notDeepEqual(chatPromptTokens({ ...base, tools }), chatPromptTokens(base));

    const call = (args: string): unknown => ({
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: args } }],
    });
    const withCall = (args: string, result: string): number[] =>
      chatPromptTokens({ messages: [...base.messages, call(args), { role: 'tool', tool_call_id: 'call_1', content: result }] });
    const x = withCall('{"city":"Paris"}', '18 C');
    assert.notDeepEqual(x, withCall('{"city":"Rome"}', '18 C'));
    assert.notDeepEqual(x, withCall('{"city":"Paris"}', '19 C'));
    const text = encodeText('get_weather');
    assert.ok(x.join(',').includes(text.join(',')), 'the tool name is in the rendering');
  });

  it('renders content parts and media markers without tokenizing media bytes', () => {
    const parts = chatPromptTokens({ messages: [{ role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,' + 'A'.repeat(100000) } }] }] });
    assert.ok(parts.length < 40, `a 100 kB image is a short marker, got ${parts.length} tokens`);
    const other = chatPromptTokens({ messages: [{ role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,' + 'B'.repeat(100000) } }] }] });
    assert.notDeepEqual(parts, other);
  });

  it('tolerates malformed input instead of throwing', () => {
    assert.deepEqual(chatPromptTokens({ messages: 'nope' }), [IM_START, ...encodeText('assistant\n')]);
    assert.doesNotThrow(() => chatPromptTokens({ messages: [null, 3, { role: 5, content: { odd: true } }, { role: 'user', content: [null, 7, { type: 'text' }] }] }));
  });
});

describe('completion prompts', () => {
  it('encodes text without a template and keeps token arrays as they are', () => {
    assert.deepEqual(completionPromptTokens('Hello world'), encodeText('Hello world'));
    assert.deepEqual(completionPromptTokens([1, 2, 3]), [1, 2, 3]);
    const ids = tokens(40);
    assert.deepEqual([...completionPromptBlocks(ids)], [...blockHashes(ids)]);
  });
});
