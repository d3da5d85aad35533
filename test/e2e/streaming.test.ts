/**
 * Streaming behaviour of the real gateway process, seen by raw HTTP clients: SSE keep-alive comments
 * during silences, events flushed as they arrive, an upstream request aborted when the client goes
 * away, and no loss or reordering under backpressure.
 */

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  cleanupE2E,
  openStream,
  parseSse,
  postJson,
  slowRead,
  sseJson,
  startGateway,
  startMock,
  startRecorder,
  type GatewayProcess,
  type Recorder,
} from '../helpers/index.js';

let gw: GatewayProcess;
let recorder: Recorder;

before(async () => {
  const mock = await startMock();
  // Forwards to the mock and records when the gateway's upstream connection closes.
  recorder = await startRecorder({ forwardTo: `http://127.0.0.1:${mock.port}` });
  // Ignores `stream` and always answers one JSON completion.
  const jsonOnly = await startRecorder({
    respond: (req, res) => {
      const body = JSON.parse(req.body.toString());
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          id: 'chatcmpl-json',
          object: 'chat.completion',
          created: 1,
          model: body.model,
          choices: [{ index: 0, message: { role: 'assistant', content: 'whole answer' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
        }),
      );
    },
  });
  // Answers 429 only after 600 ms: long after a 200 ms keep-alive has committed the stream's head.
  const late = await startRecorder({
    respond: (_req, res) => {
      const timer = setTimeout(() => {
        res.writeHead(429, { 'content-type': 'application/json' }).end('{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":null}}');
      }, 600);
      res.once('close', () => clearTimeout(timer));
    },
  });
  gw = await startGateway({
    config: {
      server: { sse_keepalive_ms: 200 },
      log: { level: 'warn' },
      providers: [
        { name: 'mk', type: 'mock' },
        { name: 'mk-anth', type: 'mock', mock: { protocol: 'anthropic' } },
        { name: 'rec', type: 'openai', base_url: `${recorder.url}/v1`, api_key: 'k' },
        { name: 'rec-anth', type: 'anthropic', base_url: recorder.url, api_key: 'k' },
        { name: 'json-only', type: 'openai', base_url: `${jsonOnly.url}/v1`, api_key: 'k' },
        { name: 'late', type: 'openai', base_url: `${late.url}/v1`, api_key: 'k' },
        { name: 'hang', type: 'openai', base_url: `http://127.0.0.1:${mock.port}/v1`, api_key: 'k', timeouts: { first_byte_ms: 600 } },
      ],
      models: [
        { name: 'mock', targets: [{ provider: 'mk' }] },
        { name: 'mock-anthropic', targets: [{ provider: 'mk-anth', model: 'mock' }] },
        { name: 'recorded', targets: [{ provider: 'rec', model: 'mock' }] },
        { name: 'recorded-anthropic', targets: [{ provider: 'rec-anth', model: 'mock' }] },
        { name: 'json-only', targets: [{ provider: 'json-only', model: 'm' }] },
        { name: 'late-429', targets: [{ provider: 'late', model: 'm' }] },
        { name: 'hang', targets: [{ provider: 'hang', model: 'mock' }] },
      ],
      filters: [
        // Slow upstream streams for the recorded models: 20 tokens per second.
        { type: 'headers', match: { models: ['recorded', 'recorded-anthropic'] }, request: { set: { 'x-mock-tps': '20' } } },
        { type: 'headers', match: { models: ['hang'] }, request: { set: { 'x-mock-hang': '1' } }, response: { set: { 'x-filtered': 'yes' } } },
      ],
    },
  });
});

after(async () => {
  await cleanupE2E();
  assert.equal(gw.hasExited(), true);
});

const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`).join(' ');

describe('SSE keep-alive', () => {
  it('comments arrive during a long time-to-first-token, before the first data event', async () => {
    const res = await postJson(
      gw.url,
      '/v1/chat/completions',
      { model: 'mock', stream: true, messages: [{ role: 'user', content: 'hi' }] },
      { 'x-mock-ttft-ms': '1000' },
    );
    assert.equal(res.status, 200);
    const items = parseSse(res.text);
    const firstData = items.findIndex((i) => i.data !== undefined);
    const keepAlives = items.slice(0, firstData).filter((i) => i.comment === 'keep-alive');
    assert.ok(keepAlives.length >= 2, `keep-alive comments before the first data event: ${keepAlives.length}\n${res.text.slice(0, 300)}`);
    assert.equal(sseJson(res.text).map((c) => ((c.choices as { delta: { content?: string } }[])[0]?.delta.content ?? '')).join(''), 'Echo: hi');
  });

  it('after keep-alives committed the head, a late upstream error status becomes an error event', async () => {
    const res = await postJson(gw.url, '/v1/chat/completions', { model: 'late-429', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(res.status, 200, 'the head went out with the first keep-alive');
    const items = parseSse(res.text);
    assert.equal(items[0]?.comment, 'keep-alive');
    const data = items.filter((i) => i.data !== undefined);
    assert.equal(data.length, 1, res.text);
    assert.deepEqual(JSON.parse(data[0]!.data!).error.message, 'slow down');
    assert.equal(JSON.parse(data[0]!.data!).error.type, 'rate_limit_error');
  });

  it('after keep-alives committed the head, an upstream timeout becomes an error event (both protocols)', async () => {
    const oa = await postJson(gw.url, '/v1/chat/completions', { model: 'hang', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(oa.status, 200);
    assert.match(oa.headers['content-type'] ?? '', /^text\/event-stream/);
    assert.equal(oa.headers['x-filtered'], 'yes', 'response header filters applied to the early head');
    assert.equal(oa.headers['x-sluice-provider'], 'hang');
    const events = parseSse(oa.text).filter((i) => i.data !== undefined);
    assert.equal(events.length, 1, oa.text);
    assert.equal(JSON.parse(events[0]!.data!).error.code, 'upstream_timeout');
    const an = await postJson(gw.url, '/v1/messages', { model: 'hang', max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(an.status, 200);
    const anEvents = parseSse(an.text).filter((i) => i.data !== undefined);
    assert.equal(anEvents[anEvents.length - 1]!.event, 'error');
    assert.equal(JSON.parse(anEvents[anEvents.length - 1]!.data!).error.type, 'timeout_error');
  });

  it('a request that is not streamed gets no keep-alive and keeps its error status', async () => {
    const res = await postJson(gw.url, '/v1/chat/completions', { model: 'late-429', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(res.status, 429);
    assert.equal(JSON.parse(res.text).error.message, 'slow down');
  });

  it('comments arrive during silences between chunks, only between events (Anthropic pass-through)', async () => {
    const res = await postJson(
      gw.url,
      '/v1/messages',
      { model: 'mock-anthropic', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'a b' }] },
      { 'x-mock-tps': '2' },
    );
    assert.equal(res.status, 200);
    const items = parseSse(res.text);
    assert.ok(items.some((i) => i.comment === 'keep-alive'), 'a keep-alive comment');
    // Framing survived: every data line still parses and the sequence is complete.
    const events = items.filter((i) => i.data !== undefined).map((i) => JSON.parse(i.data!).type);
    assert.equal(events[0], 'message_start');
    assert.equal(events[events.length - 1], 'message_stop');
  });

  it('the OpenAI SDK ignores the comments', async () => {
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const stream = await openai.chat.completions.create(
      { model: 'mock', stream: true, messages: [{ role: 'user', content: 'one two' }] },
      { headers: { 'x-mock-tps': '4' } },
    );
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    assert.equal(text, 'Echo: one two');
  });
});

describe('flushing', () => {
  for (const [label, path, body] of [
    ['OpenAI pass-through', '/v1/chat/completions', { model: 'mock', stream: true, messages: [{ role: 'user', content: words(9) }] }],
    ['Anthropic client, translated', '/v1/messages', { model: 'mock', max_tokens: 100, stream: true, messages: [{ role: 'user', content: words(9) }] }],
  ] as const) {
    it(`${label}: each event reaches the client as the upstream produces it`, async () => {
      // 10 tokens at 10 per second: about a second from first to last.
      const res = await postJson(gw.url, path, body, { 'x-mock-tps': '10' });
      assert.equal(res.status, 200);
      const dataChunks = res.chunks.filter((c) => c.data.toString().includes('data:'));
      assert.ok(dataChunks.length >= 8, `arrived in ${dataChunks.length} network chunks`);
      const first = dataChunks[0]!.at - res.sentAt;
      const total = res.endedAt - res.sentAt;
      assert.ok(total >= 800, `stream lasted ${total} ms`);
      assert.ok(first < total / 3, `first content after ${first} ms of ${total} ms`);
      // Arrival times spread over the stream instead of bunching at the end.
      const mid = dataChunks[Math.floor(dataChunks.length / 2)]!.at - res.sentAt;
      assert.ok(mid > total * 0.25 && mid < total * 0.85, `middle chunk at ${mid} of ${total} ms`);
    });
  }
});

describe('upstream that ignores stream: true', () => {
  it('its JSON answer is replayed as the stream each client asked for', async () => {
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'k', maxRetries: 0 });
    const stream = await openai.chat.completions.create({
      model: 'json-only',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'hi' }],
    });
    let text = '';
    let finish: string | null = null;
    let usage = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage.total_tokens;
    }
    assert.deepEqual([text, finish, usage], ['whole answer', 'stop', 5]);
    const anth = await postJson(gw.url, '/v1/messages', { model: 'json-only', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] });
    assert.match(anth.headers['content-type'] ?? '', /^text\/event-stream/);
    const events = sseJson(anth.text) as { type: string; delta?: { text?: string } }[];
    assert.equal(events.map((e) => e.delta?.text ?? '').join(''), 'whole answer');
    assert.equal(events[events.length - 1]!.type, 'message_stop');
  });
});

describe('concurrency', () => {
  it('40 interleaved streams (both protocols, paced) each get their own answer', async () => {
    const runs = Array.from({ length: 40 }, async (_, i) => {
      const anthropicClient = i % 2 === 1;
      const content = `client ${i} says ${words(5)}`;
      const res = anthropicClient
        ? await postJson(gw.url, '/v1/messages', { model: 'mock', max_tokens: 50, stream: true, messages: [{ role: 'user', content }] }, { 'x-mock-tps': '100' })
        : await postJson(gw.url, '/v1/chat/completions', { model: 'mock', stream: true, messages: [{ role: 'user', content }] }, { 'x-mock-tps': '100' });
      assert.equal(res.status, 200);
      const text = anthropicClient
        ? (sseJson(res.text) as { delta?: { text?: string } }[]).map((e) => e.delta?.text ?? '').join('')
        : (sseJson(res.text) as { choices: { delta: { content?: string } }[] }[]).map((c) => c.choices[0]?.delta.content ?? '').join('');
      assert.equal(text, `Echo: ${content}`);
    });
    await Promise.all(runs);
  });
});

describe('client disconnect', () => {
  for (const [label, path, model] of [
    ['OpenAI pass-through', '/v1/chat/completions', 'recorded'],
    ['Anthropic client, OpenAI upstream (translated)', '/v1/messages', 'recorded'],
    ['Anthropic pass-through', '/v1/messages', 'recorded-anthropic'],
  ] as const) {
    it(`${label}: aborting mid-stream closes the upstream request within a second`, async () => {
      const before = recorder.requests.length;
      const { res, abort } = await openStream(gw.url, path, {
        model,
        max_tokens: 500,
        stream: true,
        messages: [{ role: 'user', content: words(200) }],
      });
      assert.equal(res.statusCode, 200);
      // Wait for some content, then go away.
      await new Promise<void>((resolve) => {
        let seen = 0;
        res.on('data', (d: Buffer) => {
          seen += (d.toString().match(/data:/g) ?? []).length;
          if (seen >= 3) resolve();
        });
      });
      const upstream = recorder.requests.slice(before).find((r) => r.method === 'POST');
      assert.ok(upstream, 'the upstream got the request');
      assert.equal(upstream.closedAt, undefined, 'upstream still streaming before the abort');
      const abortedAt = performance.now();
      abort();
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 2000).unref());
      const outcome = await Promise.race([upstream.closed.then(() => 'closed' as const), timeout]);
      assert.equal(outcome, 'closed', 'the upstream connection closed');
      const lag = upstream.closedAt! - abortedAt;
      assert.ok(lag < 1000, `upstream closed ${lag} ms after the client left`);
      assert.equal(upstream.abortedEarly, true, 'closed before the upstream finished its answer');
    });
  }

  it('the gateway keeps serving after clients went away', async () => {
    const res = await postJson(gw.url, '/v1/chat/completions', { model: 'recorded', messages: [{ role: 'user', content: 'still there' }] });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.text).choices[0].message.content, 'Echo: still there');
  });
});

/** What the mock answers with `x-mock-output-tokens: n` to `Echo: <prompt>`: its tokens, cycled. */
function stretched(text: string, n: number): string {
  const tokens = text.match(/\S+\s*/g) ?? [];
  let out = '';
  for (let i = 0; i < n; i++) {
    let t = tokens[i % tokens.length]!;
    if (i < n - 1 && !/\s$/.test(t)) t += ' ';
    out += t;
  }
  return out;
}

describe('backpressure', () => {
  // The raw client keeps its socket paused for a second while the in-process mock produces as fast
  // as it can, then reads slowly: megabytes beyond what the kernel buffers, so uWS reports
  // backpressure and the gateway must pause its upstream and resume it without losing a byte.
  // (Checked once by instrumenting ResponseRelay.write: both cases below hit backpressure.)
  const prompt = Array.from({ length: 100 }, (_, i) => `p${i}`).join(' ');
  const slow = { initialPauseMs: 1000, perReadDelayMs: 2 };

  it('OpenAI pass-through: a slow reader gets every event, in order (~10 MB)', async () => {
    const n = 40_000;
    const res = await slowRead(gw.url, '/v1/chat/completions', { model: 'mock', stream: true, messages: [{ role: 'user', content: prompt }] }, { 'x-mock-output-tokens': String(n) }, slow);
    assert.equal(res.status, 200);
    assert.ok(res.body.length > 8_000_000, `${res.body.length} bytes`);
    const chunks = sseJson(res.body) as { choices: { delta: { content?: string } }[] }[];
    const content = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    assert.equal(content, stretched('Echo: ' + prompt, n));
    assert.ok(res.body.endsWith('data: [DONE]\n\n'));
  });

  it('Anthropic client, translated: a slow reader gets every event, in order (~7 MB)', async () => {
    const n = 60_000;
    const res = await slowRead(
      gw.url,
      '/v1/messages',
      { model: 'mock', max_tokens: n + 10, stream: true, messages: [{ role: 'user', content: prompt }] },
      { 'x-mock-output-tokens': String(n) },
      slow,
    );
    assert.equal(res.status, 200);
    const events = sseJson(res.body) as { type: string; index?: number; delta?: { text?: string } }[];
    const deltas = events.filter((e) => e.type === 'content_block_delta');
    assert.equal(deltas.length, n);
    assert.equal(deltas.map((e) => e.delta?.text ?? '').join(''), stretched('Echo: ' + prompt, n));
    assert.deepEqual(
      events.map((e) => e.type).filter((t) => t !== 'content_block_delta'),
      ['message_start', 'ping', 'content_block_start', 'content_block_stop', 'message_delta', 'message_stop'],
    );
  });
});
