/**
 * balancer: prefix through the real gateway (2 workers) in front of simulated vLLM replicas
 * (bench/vllm-sim): every turn of a conversation lands where its history is cached, whichever worker
 * takes it and whichever protocol the client speaks; a hot system prompt spreads over replicas once
 * one is busy; the supervisor scrapes each replica's /metrics into shared memory (learning its KV
 * size), and a replica whose metrics cannot be read is balanced on in-flight counts.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { startVllmSim, type VllmSim } from '../../bench/vllm-sim/server.js';
import { endpointSlotIdentity } from '../../src/routing/balancer.js';
import { segmentName, SharedMemory } from '../../src/shm/index.js';
import { startFakeOpenAI } from '../helpers/fake-openai.js';
import { cleanupE2E, postJson, startGateway, type GatewayProcess } from '../helpers/index.js';

const sims: VllmSim[] = [];
const opened: SharedMemory[] = [];
let redisServer: ChildProcess | undefined;
after(async () => {
  await Promise.all(sims.map((s) => s.close()));
  await cleanupE2E();
  redisServer?.kill('SIGTERM');
});

function hasRedis(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A private redis-server on a free port, stopped in `after`. */
async function startRedis(): Promise<string> {
  const port = await new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  redisServer = child;
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('Ready to accept connections')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
  });
  return `redis://127.0.0.1:${port}`;
}

async function fleet(n: number, options: Parameters<typeof startVllmSim>[0] = {}): Promise<VllmSim[]> {
  const started = await Promise.all(
    Array.from({ length: n }, () => startVllmSim({ port: 0, kvBlocks: 4096, decodeMs: 1, decodeMsPerSeq: 0, prefillUsPerToken: 5, quiet: true, ...options })),
  );
  sims.push(...started);
  return started;
}

function prefixGateway(replicas: { url: string }[], prefix: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<GatewayProcess> {
  return startGateway({
    config: {
      ...extra,
      log: { level: 'warn' },
      providers: [
        {
          name: 'fleet',
          type: 'vllm',
          endpoints: replicas.map((r) => ({ url: `${r.url}/v1` })),
          balancer: 'prefix',
          prefix: { metrics: { interval_ms: 200 }, ...prefix },
        },
      ],
      models: [{ name: 'chat', targets: [{ provider: 'fleet', model: 'sim-model' }] }],
    },
    args: ['--port', '0', '--workers', '2'],
    startTimeoutMs: 20_000,
  });
}

/** A user's words: long enough that every turn adds several 16-token blocks. */
function question(user: number, turn: number): string {
  return `User ${user} asks question number ${turn}: ` + Array.from({ length: 60 }, (_, i) => `w${(user * 31 + turn * 7 + i) % 997}`).join(' ');
}

interface Usage {
  prompt_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function hits(replicas: VllmSim[]): { hit: number; query: number } {
  return replicas.reduce((a, s) => ({ hit: a.hit + s.stats().prefixHitTokens, query: a.query + s.stats().prefixQueryTokens }), { hit: 0, query: 0 });
}

describe('prefix balancer', () => {
  it('sends every turn of a conversation to the replica holding it, through both workers', async () => {
    const replicas = await fleet(3);
    const gw = await prefixGateway(replicas);
    const users = 9;
    const turns = 4;
    // Distinct from the first block on: new conversations share nothing cached, so they spread by
    // load and cache pressure (a shared system prompt would rightly pull them to one replica).
    const histories = Array.from({ length: users }, (_, user) => [{ role: 'system', content: `Assistant ${user}: be patient.` }] as { role: string; content: string }[]);
    const lastPrompt = new Array<number>(users).fill(0);
    const uncached: number[] = [];
    for (let turn = 0; turn < turns; turn++) {
      await Promise.all(
        histories.map(async (messages, user) => {
          messages.push({ role: 'user', content: question(user, turn) });
          const r = await postJson(gw.url, '/v1/chat/completions', { model: 'chat', messages, max_tokens: 12 });
          assert.equal(r.status, 200, r.text);
          const body = JSON.parse(r.text) as { choices: { message: { content: string } }[]; usage: Usage };
          messages.push({ role: 'assistant', content: body.choices[0]!.message.content });
          // Everything the previous turn sent is cached, up to the last partial block.
          if (turn > 0) uncached.push(lastPrompt[user]! - (body.usage.prompt_tokens_details?.cached_tokens ?? 0));
          lastPrompt[user] = body.usage.prompt_tokens;
        }),
      );
    }
    // A later turn's prompt is the previous turn's prompt and answer plus one question.
    const misses = uncached.filter((n) => n >= 16);
    assert.equal(misses.length, 0, `turns that missed their history: ${misses.length} of ${uncached.length} (uncached tokens ${uncached.join(' ')})`);
    const served = replicas.map((s) => s.stats().requestsFinished);
    // Whole conversations: each replica served a multiple of `turns` requests, and every replica some.
    assert.ok(served.every((n) => n > 0 && n % turns === 0), `conversations per replica × turns: ${served.join('/')}`);
  });

  it('an Anthropic client continues its conversation on the same replica too', async () => {
    const replicas = await fleet(3);
    const gw = await prefixGateway(replicas);
    const messages: { role: string; content: string }[] = [];
    for (let turn = 0; turn < 4; turn++) {
      messages.push({ role: 'user', content: question(77, turn) });
      const before = hits(replicas).hit;
      const r = await postJson(gw.url, '/v1/messages', { model: 'chat', system: 'Be brief.', messages, max_tokens: 12 });
      assert.equal(r.status, 200, r.text);
      const body = JSON.parse(r.text) as { content: { type: string; text: string }[]; usage: { input_tokens: number } };
      messages.push({ role: 'assistant', content: body.content.map((c) => c.text).join('') });
      if (turn > 0) assert.ok(hits(replicas).hit - before > 100, `turn ${turn} found its history cached`);
    }
    assert.equal(replicas.filter((s) => s.stats().requestsFinished > 0).length, 1, 'one conversation, one replica');
  });

  it('spreads a hot system prompt once its replica is busy, and every replica it reaches keeps hitting', async () => {
    // Slow prefill so requests overlap: the first replica fills up and the prompt must spread.
    const replicas = await fleet(3, { prefillUsPerToken: 400, decodeMs: 4 });
    const gw = await prefixGateway(replicas, { balance: { abs_threshold: 2, rel_threshold: 1.5 } });
    const system = 'You answer questions about the handbook. ' + Array.from({ length: 600 }, (_, i) => `rule${i}`).join(' ');
    const ask = (q: number) =>
      postJson(gw.url, '/v1/chat/completions', {
        model: 'chat',
        max_tokens: 8,
        messages: [
          { role: 'system', content: system },
          { role: 'user', content: `Question ${q}: what does rule ${q * 13} say about ${q}?` },
        ],
      });
    assert.equal((await ask(0)).status, 200);
    const answers = await Promise.all(Array.from({ length: 30 }, (_, q) => ask(q + 1)));
    assert.ok(answers.every((r) => r.status === 200));
    const served = replicas.map((s) => s.stats().requestsFinished);
    assert.ok(served.filter((n) => n > 0).length >= 2, `the hot prompt spread: ${served.join('/')}`);
    const { hit, query } = hits(replicas);
    // Each replica that got the prompt misses it once; everything after hits.
    assert.ok(hit / query > 0.7, `hit rate ${(hit / query).toFixed(2)}`);
  });

  it("scrapes every replica's /metrics into shared memory; a replica without them is balanced on in-flight counts", async () => {
    const [sim] = await fleet(1, { kvBlocks: 3000 });
    const plain = await startFakeOpenAI('no-metrics', { kind: 'ok', delayMs: 5 });
    const gw = await prefixGateway([sim!, plain]);
    const shm = SharedMemory.open(segmentName(gw.port, gw.pid));
    opened.push(shm);
    const simSlot = shm.slots.find(endpointSlotIdentity('fleet', `${sim!.url}/v1`));
    const plainSlot = shm.slots.find(endpointSlotIdentity('fleet', `${plain.url}/v1`));
    assert.ok(simSlot >= 0 && plainSlot >= 0);
    const deadline = Date.now() + 5000;
    while ((shm.replicaMetrics.scrapedAt(simSlot) === 0 || shm.replicaMetrics.scrapeFailures(plainSlot) === 0) && Date.now() < deadline) await sleep(50);
    assert.ok(shm.replicaMetrics.scrapedAt(simSlot) > 0, 'the simulator was scraped');
    assert.equal(shm.replicaMetrics.kvTokens(simSlot), 3000 * 16);
    assert.equal(shm.prefixIndex.capacity(simSlot), 3000, "the index models the replica's reported KV size");
    assert.ok(shm.replicaMetrics.scrapeFailures(plainSlot) > 0, 'the plain upstream has no /metrics');
    assert.equal(shm.replicaMetrics.scrapedAt(plainSlot), 0);
    // Unrelated prompts: no prefix anywhere, so in-flight counts decide and both endpoints serve.
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        postJson(gw.url, '/v1/chat/completions', { model: 'chat', max_tokens: 4, messages: [{ role: 'user', content: question(1000 + i, 0) }] }),
      ),
    );
    assert.ok(answers.every((r) => r.status === 200));
    assert.ok(plain.seen.length >= 5 && sim!.stats().requestsFinished >= 5, `split ${plain.seen.length}/${sim!.stats().requestsFinished}`);
  });

  it('two gateway nodes sharing the index through Redis continue each other\'s conversations', { skip: hasRedis() ? false : 'redis-server is not installed' }, async () => {
    const replicas = await fleet(4);
    const redis = { url: await startRedis(), key_prefix: 'e2e-prefix:' };
    const share = { share: { enabled: true, interval_ms: 50 } };
    const a = await prefixGateway(replicas, share, { redis });
    const b = await prefixGateway(replicas, share, { redis });
    const histories = Array.from({ length: 8 }, () => [] as { role: string; content: string }[]);
    const lastPrompt = new Array<number>(histories.length).fill(0);
    const uncached: number[] = [];
    for (let turn = 0; turn < 4; turn++) {
      // Even turns through node a, odd turns through node b: each node must know where the other sent them.
      const node = turn % 2 === 0 ? a : b;
      for (const [user, messages] of histories.entries()) {
        messages.push({ role: 'user', content: question(500 + user, turn) });
        const r = await postJson(node.url, '/v1/chat/completions', { model: 'chat', messages, max_tokens: 12 });
        assert.equal(r.status, 200, r.text);
        const body = JSON.parse(r.text) as { choices: { message: { content: string } }[]; usage: Usage };
        messages.push({ role: 'assistant', content: body.choices[0]!.message.content });
        if (turn > 0) uncached.push(lastPrompt[user]! - (body.usage.prompt_tokens_details?.cached_tokens ?? 0));
        lastPrompt[user] = body.usage.prompt_tokens;
      }
      // Twenty share rounds (interval 50 ms): on a loaded box (CI with other jobs) 300 ms was not
      // always enough for the other node to have read what this turn published.
      await sleep(1000);
    }
    // Every later turn found the previous turn's prompt cached (up to its last partial block).
    assert.ok(uncached.every((n) => n < 16), `previous-prompt tokens not cached, per later turn: ${uncached.join(' ')}`);
  });
});
