/**
 * A programmable OpenAI-compatible upstream for routing tests: every request is recorded (key,
 * model, time) and answered by a behaviour the test can swap at any moment: a normal answer
 * (streamed or not), a status with headers, a hang, a slow first byte, a stall or a connection reset
 * in the middle of a stream. `/health` answers 200 unless `healthy` is false.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { listenHttp } from './upstreams.js';

export type Behaviour =
  | { kind: 'ok'; delayMs?: number; chunks?: number; chunkDelayMs?: number }
  | { kind: 'status'; status: number; headers?: Record<string, string>; delayMs?: number }
  | { kind: 'hang' }
  | { kind: 'reset-mid-stream'; after?: number }
  | { kind: 'stall-mid-stream'; after?: number };

export interface SeenRequest {
  readonly key: string | undefined;
  readonly model: string | undefined;
  readonly stream: boolean;
  readonly atMs: number;
}

export interface FakeOpenAI {
  readonly url: string;
  readonly name: string;
  readonly seen: SeenRequest[];
  inFlight: number;
  maxInFlight: number;
  healthy: boolean;
  healthProbes: number;
  /** Behaviour per request: a fixed one, or a function of the request's index and key. */
  behave(b: Behaviour | ((index: number, key: string | undefined) => Behaviour)): void;
  close(): Promise<void>;
}

export async function startFakeOpenAI(name: string, initial: Behaviour = { kind: 'ok' }): Promise<FakeOpenAI> {
  let behaviour: Behaviour | ((index: number, key: string | undefined) => Behaviour) = initial;
  const fake: FakeOpenAI = {
    url: '',
    name,
    seen: [],
    inFlight: 0,
    maxInFlight: 0,
    healthy: true,
    healthProbes: 0,
    behave(b) {
      behaviour = b;
    },
    close: async () => undefined,
  };
  const server = await listenHttp((req, res) => {
    if (req.method === 'GET' && req.url === '/health') {
      fake.healthProbes++;
      res.writeHead(fake.healthy ? 200 : 503).end(fake.healthy ? 'ok' : 'down');
      return;
    }
    if (req.method === 'GET' && req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ id: 'm', object: 'model' }] }));
      return;
    }
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const parsed = safeJson(body);
      const auth = req.headers.authorization;
      const key = typeof auth === 'string' ? auth.replace(/^Bearer /, '') : undefined;
      const index = fake.seen.length;
      const stream = parsed?.stream === true;
      fake.seen.push({ key, model: typeof parsed?.model === 'string' ? parsed.model : undefined, stream, atMs: Date.now() });
      const b = typeof behaviour === 'function' ? behaviour(index, key) : behaviour;
      fake.inFlight++;
      fake.maxInFlight = Math.max(fake.maxInFlight, fake.inFlight);
      let counted = true;
      const done = (): void => {
        if (!counted) return;
        counted = false;
        fake.inFlight--;
      };
      res.once('close', done);
      answer(req, res, b, name, stream, String(parsed?.model ?? ''));
    });
  });
  (fake as { url: string }).url = server.url;
  fake.close = server.close;
  return fake;
}

function answer(req: IncomingMessage, res: ServerResponse, b: Behaviour, name: string, stream: boolean, model: string): void {
  const later = (ms: number | undefined, fn: () => void): void => {
    if (!ms) fn();
    else setTimeout(fn, ms);
  };
  switch (b.kind) {
    case 'hang':
      return;
    case 'status':
      later(b.delayMs, () => {
        res.writeHead(b.status, { 'content-type': 'application/json', ...(b.headers ?? {}) });
        res.end(JSON.stringify({ error: { message: `${name} says ${b.status}`, type: 'server_error', code: null } }));
      });
      return;
    case 'ok':
      later(b.delayMs, () => {
        if (!stream) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(completion(name, model)));
          return;
        }
        const n = b.chunks ?? 3;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        let i = 0;
        const tick = (): void => {
          if (res.destroyed) return;
          if (i < n) {
            res.write(`data: ${JSON.stringify(chunk(name, model, `${name}-${i}`))}\n\n`);
            i++;
            later(b.chunkDelayMs, tick);
            return;
          }
          res.write(`data: ${JSON.stringify(finalChunk(model))}\n\n`);
          res.end('data: [DONE]\n\n');
        };
        tick();
      });
      return;
    case 'reset-mid-stream':
    case 'stall-mid-stream': {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const after = b.after ?? 2;
      for (let i = 0; i < after; i++) res.write(`data: ${JSON.stringify(chunk(name, model, `${name}-${i}`))}\n\n`);
      if (b.kind === 'reset-mid-stream') setTimeout(() => req.socket.destroy(), 20);
      return;
    }
  }
}

function completion(name: string, model: string): object {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: 0,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: `answer from ${name}` }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 },
  };
}

function chunk(name: string, model: string, text: string): object {
  void name;
  return { id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 0, model, choices: [{ index: 0, delta: { content: text }, finish_reason: null }] };
}

function finalChunk(model: string): object {
  return { id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 0, model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] };
}

function safeJson(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
