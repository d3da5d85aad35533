/**
 * Workloads for the prefix-routing bench, a closed-loop streaming client that measures time to first
 * token, and the cache-hit rate of an oracle router that knows every replica's cache.
 *
 * Workloads (every text is made of pseudo-words from a seeded generator, so runs are repeatable and
 * prompts share exactly what the workload says they share):
 *   - chat: many users, each in a multi-turn conversation (a short system prompt common to all, then
 *     user messages and the model's answers, which are sent back in the next turn); after `turns`
 *     turns a user starts a new conversation;
 *   - shared: a few long system prompts (documents, agent instructions) picked with skewed
 *     popularity, each followed by a short, different question: agent- or RAG-like traffic;
 *   - unrelated: every prompt new text: nothing to reuse.
 */

import { Agent, request } from 'undici';

const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'to', 'vi', 'de', 'po', 'ga', 'shi', 'mu', 're', 'tan', 'bel', 'cor', 'dun', 'fel', 'hap'];

/** mulberry32 */
export function rng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` pseudo-words (about 2 tokens each with cl100k). */
export function words(random, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const k = 1 + Math.floor(random() * 3);
    let w = '';
    for (let j = 0; j < k; j++) w += SYLLABLES[Math.floor(random() * SYLLABLES.length)];
    out.push(w);
  }
  return out.join(' ');
}

const between = (random, lo, hi) => lo + Math.floor(random() * (hi - lo + 1));

/**
 * @typedef {{ next(): object, answered(text: string): void }} Session
 * @typedef {{ name: string, describe: string, session(user: number, random: () => number): Session }} Workload
 */

/** @returns {Workload} */
export function chatWorkload({ turns = 8, userWords = [60, 120], systemWords = 20 } = {}) {
  const system = `You are a helpful assistant. ${words(rng(42), systemWords)}`;
  return {
    name: 'chat',
    describe: `multi-turn chats: ${turns} turns per conversation, user messages of ${userWords[0]}-${userWords[1]} words, answers sent back`,
    session(user, random) {
      let messages = null;
      let turn = 0;
      return {
        next() {
          if (messages === null || turn >= turns) {
            messages = [{ role: 'system', content: system }];
            turn = 0;
          }
          turn++;
          messages.push({ role: 'user', content: `(${user}) ${words(random, between(random, userWords[0], userWords[1]))}` });
          return { messages: [...messages] };
        },
        answered(text) {
          messages.push({ role: 'assistant', content: text });
        },
      };
    },
  };
}

/** @returns {Workload} */
export function sharedPrefixWorkload({ prompts = 6, promptWords = 1800, questionWords = [15, 40], popularity = [0.3, 0.22, 0.16, 0.13, 0.1, 0.09] } = {}) {
  const systems = Array.from({ length: prompts }, (_, i) => `Document ${i}. Answer from it only.\n${words(rng(1000 + i), promptWords)}`);
  const weights = Array.from({ length: prompts }, (_, i) => popularity[i] ?? popularity[popularity.length - 1]);
  const total = weights.reduce((a, b) => a + b, 0);
  const pick = (random) => {
    let x = random() * total;
    for (let i = 0; i < prompts; i++) if ((x -= weights[i]) < 0) return i;
    return prompts - 1;
  };
  return {
    name: 'shared',
    describe: `${prompts} long system prompts (~${promptWords} words) of skewed popularity, each with a short new question`,
    session(user, random) {
      return {
        next: () => ({
          messages: [
            { role: 'system', content: systems[pick(random)] },
            { role: 'user', content: `(${user}) ${words(random, between(random, questionWords[0], questionWords[1]))}` },
          ],
        }),
        answered() {},
      };
    },
  };
}

/** @returns {Workload} */
export function unrelatedWorkload({ promptWords = [250, 550] } = {}) {
  return {
    name: 'unrelated',
    describe: `unrelated prompts of ${promptWords[0]}-${promptWords[1]} words, nothing shared`,
    session(user, random) {
      return {
        next: () => ({ messages: [{ role: 'user', content: `${user} ${words(random, between(random, promptWords[0], promptWords[1]))}` }] }),
        answered() {},
      };
    },
  };
}

/**
 * @typedef {{ user: number, sentAt: number, firstTokenAt: number, endAt: number, ok: boolean,
 *   promptTokens: number, cachedTokens: number, outputTokens: number, body: object, answer: string }} RequestRecord
 */

/**
 * `users` users, each sending its session's next request as soon as the previous one is answered
 * (after a think time), streamed, for `durationMs`. Times are ms since the run started.
 * @returns {Promise<RequestRecord[]>}
 */
export async function runClosedLoop({ url, model, workload, users, durationMs, maxTokens, thinkMs = [0, 0], seed = 1 }) {
  const dispatcher = new Agent({ connections: users * 2, keepAliveTimeout: 30_000, pipelining: 0 });
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const records = [];
  const deadline = durationMs;
  async function one(user) {
    const random = rng(seed * 100_003 + user);
    const session = workload.session(user, random);
    // Users start spread over the first second, not all at once.
    await sleep(random() * 1000);
    while (now() < deadline) {
      const body = { model, ...session.next(), max_tokens: maxTokens, stream: true, stream_options: { include_usage: true } };
      const rec = await send(url, body, dispatcher, now, user);
      records.push(rec);
      if (!rec.ok) {
        await sleep(100);
        continue;
      }
      session.answered(rec.answer);
      const think = thinkMs[0] + random() * (thinkMs[1] - thinkMs[0]);
      if (think > 0) await sleep(think);
    }
  }
  await Promise.all(Array.from({ length: users }, (_, u) => one(u)));
  await dispatcher.close();
  return records;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function send(url, body, dispatcher, now, user) {
  const rec = { user, sentAt: now(), firstTokenAt: NaN, endAt: NaN, ok: false, promptTokens: 0, cachedTokens: 0, outputTokens: 0, body, answer: '' };
  try {
    const res = await request(url, {
      method: 'POST',
      dispatcher,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      rec.endAt = now();
      return rec;
    }
    let buffer = '';
    let answer = '';
    for await (const chunk of res.body) {
      buffer += chunk.toString('utf8');
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
        const data = JSON.parse(event.slice(6));
        const delta = data.choices?.[0]?.delta?.content;
        if (typeof delta === 'string' && delta.length > 0) {
          if (Number.isNaN(rec.firstTokenAt)) rec.firstTokenAt = now();
          answer += delta;
        }
        if (data.usage) {
          rec.promptTokens = data.usage.prompt_tokens ?? 0;
          rec.outputTokens = data.usage.completion_tokens ?? 0;
          rec.cachedTokens = data.usage.prompt_tokens_details?.cached_tokens ?? 0;
        }
      }
    }
    rec.answer = answer;
    rec.ok = !Number.isNaN(rec.firstTokenAt);
  } catch {
    // counted as a failed request
  }
  rec.endAt = now();
  return rec;
}

/**
 * The prefix-cache hit rate of an oracle router on the same requests: it knows every replica's cache
 * and may put any prompt anywhere, so the replicas act as one cache of their summed size: an LRU of
 * `replicas × kvBlocks` blocks holding prompts and answers, each request hitting the longest prefix
 * anything before it left there (vLLM's rule: a lookup stops one token short of the prompt). Load is
 * ignored and no prefix ever has to be split between replicas, so no real router can do better:
 * an upper bound. Only requests sent at or after `measuredFrom` count; earlier ones warm the cache.
 */
export function oracleHitRate(records, { replicas, kvBlocks, blockSize, measuredFrom, promptTokens, encodeText, blockHashes }) {
  const capacity = replicas * kvBlocks;
  const cache = new Map();
  let hit = 0;
  let query = 0;
  const ordered = records.filter((r) => r.ok).sort((a, b) => a.sentAt - b.sentAt);
  for (const r of ordered) {
    const prompt = promptTokens(r.body);
    const blocks = blockHashes(prompt, { blockSize });
    const limit = Math.floor((prompt.length - 1) / blockSize);
    let m = 0;
    while (m < limit && cache.has(blocks[m])) m++;
    if (r.sentAt >= measuredFrom) {
      hit += m * blockSize;
      query += prompt.length;
    }
    for (const h of blockHashes([...prompt, ...encodeText(r.answer)], { blockSize })) {
      cache.delete(h);
      cache.set(h, true);
    }
    while (cache.size > capacity) cache.delete(cache.keys().next().value);
  }
  return query > 0 ? hit / query : NaN;
}
