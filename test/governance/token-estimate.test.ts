import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Tiktoken, type TiktokenBPE } from 'js-tiktoken/lite';

import type { ChatRequest, Message } from '../../src/protocol/canonical.js';
import {
  approximateTextTokens,
  completionReservation,
  countTextTokens,
  DEFAULT_COMPLETION_TOKENS,
  estimatePromptTokens,
  reserveTokens,
  tokenMarginFor,
  warmUpTokenEstimator,
} from '../../src/governance/token-estimate.js';

let reference: Tiktoken;
const ref = (text: string): number => reference.encode(text, [], []).length;

before(() => {
  const require = createRequire(import.meta.url);
  reference = new Tiktoken(require('js-tiktoken/ranks/o200k_base') as TiktokenBPE);
  warmUpTokenEstimator();
});

const repoFile = (path: string): string => readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');

const ENGLISH =
  'The gateway reserves tokens before it sends a request upstream, and gives back what the answer did ' +
  "not use once the stream ends. It's a simple idea; the hard part is being close without being low.";
const CHINESE = '网关在发送请求之前预留令牌，并在响应结束后归还未使用的部分。这样，并发请求就不会超出预算。';
const JAPANESE = 'ゲートウェイはリクエストを送る前にトークンを予約し、応答が終わったら使わなかった分を返します。';
const RUSSIAN = 'Шлюз резервирует токены до отправки запроса и возвращает неиспользованные после ответа.';

const text = (t: string) => [{ type: 'text' as const, text: t }];
const chat = (messages: Message[], extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'gpt-4o', stream: false, messages, ...extra });

describe('countTextTokens', () => {
  it('agrees with js-tiktoken o200k_base exactly', () => {
    const samples = [
      '',
      'hello world',
      'Hello, world!  How are you?\n\n\tFine.\r\n',
      ENGLISH,
      CHINESE,
      JAPANESE,
      RUSSIAN,
      "It's 2025; we'll see 12345678 items — naïve café, emoji 😀👍🏽🚀.",
      'text that spells <|endoftext|> and <|im_start|> is plain text',
      repoFile('src/clock.ts'),
      repoFile('package.json'),
      repoFile('docs/routing.md').slice(0, 12_000),
      randomBytes(3000).toString('base64'),
      randomBytes(2000).toString('hex'),
      '='.repeat(250) + 'x'.repeat(250) + '─'.repeat(80),
      '你好'.repeat(40),
    ];
    for (const s of samples) assert.equal(countTextTokens(s), ref(s), JSON.stringify(s.slice(0, 40)));
  });

  it('counts pieces longer than 256 bytes in chunks: a little high, never low', () => {
    // Random hex (digits made letters) is one long piece; about one in ten used to come out one low.
    const random = Array.from({ length: 60 }, () => randomBytes(600).toString('hex').replace(/[0-9]/g, 'q'));
    for (const s of ['='.repeat(700), 'x'.repeat(1000), '─'.repeat(300), '你好'.repeat(200), ...random]) {
      const mine = countTextTokens(s);
      const exact = ref(s);
      assert.ok(mine >= exact && mine <= exact * 1.35 + 2, `${mine} vs ${exact} for ${s.slice(0, 10)}…`);
    }
  });

  it('knows a few counts by heart', () => {
    assert.equal(countTextTokens('hello world'), 2);
    assert.equal(countTextTokens('Hello, world!'), 4);
    assert.equal(countTextTokens(' 123456'), 3);
  });

  it('gives the same count when a text is seen again (remembered)', () => {
    const long = repoFile('docs/cache.md');
    const first = countTextTokens(long);
    assert.equal(countTextTokens(long), first);
    assert.equal(countTextTokens(long.slice(0)), first);
  });
});

describe('approximateTextTokens', () => {
  it('stays within 0.9–1.6× of o200k on prose in several scripts, code, JSON and numbers', () => {
    const samples: Record<string, string> = {
      english: repoFile('docs/routing.md'),
      code: repoFile('src/routing/retry-policy.ts'),
      json: JSON.stringify(JSON.parse(repoFile('package.json'))),
      chinese: CHINESE.repeat(20),
      japanese: JAPANESE.repeat(20),
      russian: RUSSIAN.repeat(20),
      numbers: Array.from({ length: 500 }, (_, i) => String((i * 7919) % 100_000)).join(', '),
      uuids: JSON.stringify(Array.from({ length: 50 }, (_, i) => ({ id: `${(i * 2654435761).toString(16)}-4a1b-9c2d-${i}e3f`, n: i }))),
    };
    for (const [name, s] of Object.entries(samples)) {
      const ratio = approximateTextTokens(s) / ref(s);
      assert.ok(ratio >= 0.9 && ratio <= 1.6, `${name}: ${ratio.toFixed(2)}`);
    }
  });

  it('a plain chars/4 rule would be far too low on JSON and CJK (why the rule has classes)', () => {
    const json = JSON.stringify(JSON.parse(repoFile('package.json')));
    assert.ok(json.length / 4 / ref(json) < 0.8);
    assert.ok(CHINESE.length / 4 / ref(CHINESE) < 0.5);
  });
});

describe('estimatePromptTokens', () => {
  /** OpenAI's chat framing: 3 per message, the role, the content; 3 to prime the reply. */
  const framed = (messages: [string, string][]): number => messages.reduce((n, [role, t]) => n + 3 + ref(role) + ref(t), 0) + 3;

  it('matches the OpenAI chat framing exactly for plain chats on o200k models', () => {
    const cases: [string, string][][] = [
      [['user', 'Hello']],
      [
        ['system', 'You are a terse assistant.'],
        ['user', ENGLISH],
      ],
      [
        ['system', 'Answer in the language of the question.'],
        ['user', CHINESE],
        ['assistant', JAPANESE],
        ['user', RUSSIAN],
      ],
    ];
    for (const c of cases) {
      const req = chat(c.map(([role, t]) => ({ role, content: text(t) }) as Message));
      assert.deepEqual(estimatePromptTokens(req), { tokens: framed(c), tokenized: true });
    }
    // A single "Hello": 3 + 1 (user) + 1 + 3.
    assert.equal(estimatePromptTokens(chat([{ role: 'user', content: text('Hello') }])).tokens, 8);
  });

  it('counts names, tool calls, tool results, tool definitions and schemas, never below their text', () => {
    const tools = [
      {
        name: 'get_weather',
        description: 'Current weather for a city',
        parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city'] },
      },
    ];
    const args = '{"city":"Paris","unit":"c"}';
    const req = chat(
      [
        { role: 'user', name: 'ana', content: text('Weather in Paris?') },
        { role: 'assistant', content: [], toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: args }] },
        { role: 'tool', toolCallId: 'call_1', content: text('{"temp": 21, "sky": "clear"}') },
      ],
      { tools, responseFormat: { type: 'json_schema', name: 'answer', schema: { type: 'object', properties: { text: { type: 'string' } } } } },
    );
    const { tokens } = estimatePromptTokens(req);
    const floor =
      framed([
        ['user', 'Weather in Paris?'],
        ['assistant', ''],
        ['tool', '{"temp": 21, "sky": "clear"}'],
      ]) +
      ref('ana') +
      ref('get_weather') +
      ref(args) +
      ref(JSON.stringify(tools[0]));
    assert.ok(tokens >= floor, `${tokens} ≥ ${floor}`);
    assert.ok(tokens <= floor + 80, `${tokens} close to ${floor}`);
  });

  it('reserves for images by detail', () => {
    const img = (detail?: 'low' | 'high') => chat([{ role: 'user', content: [{ type: 'image', source: { kind: 'url', url: 'https://x/y.png' }, ...(detail ? { detail } : {}) }] }]);
    assert.equal(estimatePromptTokens(img('low')).tokens, 3 + 1 + 85 + 3);
    assert.equal(estimatePromptTokens(img()).tokens, 3 + 1 + 1600 + 3);
  });

  it('applies a margin for models with other tokenizers', () => {
    const req = chat([{ role: 'user', content: text(ENGLISH) }]);
    const base = estimatePromptTokens(req).tokens;
    assert.equal(estimatePromptTokens(req, { model: 'claude-sonnet-4-5' }).tokens, Math.ceil(base * 1.25));
    assert.equal(estimatePromptTokens(req, { model: 'llama-3.3-70b-versatile' }).tokens, Math.ceil(base * 1.15));
    assert.equal(estimatePromptTokens(req, { margin: 2 }).tokens, base * 2);
    assert.equal(tokenMarginFor('gpt-4o-mini-2024-07-18'), 1);
    assert.equal(tokenMarginFor('o3-mini'), 1);
    assert.equal(tokenMarginFor('openai/gpt-oss-120b'), 1);
    assert.equal(tokenMarginFor('anthropic/claude-3-5-haiku'), 1.25);
    assert.equal(tokenMarginFor('gemini-2.5-pro'), 1.1);
    assert.equal(tokenMarginFor('gpt-4'), 1.15);
  });

  it('estimates by characters past the budget, and never counts a remembered text against it', () => {
    const long = repoFile('docs/plugins.md');
    const req = chat([{ role: 'user', content: text(long) }]);
    const approx = estimatePromptTokens(req, { exactCharBudget: 100 });
    assert.equal(approx.tokenized, false);
    assert.equal(approx.tokens, 3 + 1 + approximateTextTokens(long) + 3);
    assert.ok(approx.tokens >= 3 + 1 + ref(long) + 3, 'the character rule errs high on prose');
    // Once tokenized (within budget), the text is remembered and exact even with no budget left.
    const exact = estimatePromptTokens(req, { exactCharBudget: long.length });
    assert.equal(exact.tokenized, true);
    assert.deepEqual(estimatePromptTokens(req, { exactCharBudget: 0 }), exact);
  });
});

describe('completion reservation', () => {
  it('is max_tokens × n, or the default plus any reasoning budget', () => {
    const base = chat([{ role: 'user', content: text('hi') }]);
    assert.equal(completionReservation(base), DEFAULT_COMPLETION_TOKENS);
    assert.equal(completionReservation(base, 1000), 1000);
    assert.equal(completionReservation({ ...base, maxTokens: 256 }), 256);
    assert.equal(completionReservation({ ...base, maxTokens: 256, n: 3 }), 768);
    assert.equal(completionReservation({ ...base, reasoningBudget: 2000 }, 1000), 3000);
  });

  it('reserveTokens adds both', () => {
    const r = reserveTokens(chat([{ role: 'user', content: text('Hello') }], { maxTokens: 100 }));
    assert.deepEqual(r, { promptTokens: 8, completionTokens: 100, total: 108, tokenized: true });
  });
});
