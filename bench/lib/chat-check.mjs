/**
 * One-request correctness checks of an OpenAI-compatible chat endpoint, run before loading a target:
 * a fast wrong answer must not pass for a fast right one.
 */

import { Client } from 'undici';

/**
 * POSTs `body` to origin+path and reads the whole answer.
 * @returns {Promise<{ status: number, contentType: string, text: string }>}
 */
async function post(origin, path, headers, body) {
  const client = new Client(origin);
  try {
    const res = await client.request({ path, method: 'POST', headers, body, headersTimeout: 10_000, bodyTimeout: 10_000 });
    const text = await res.body.text();
    return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), text };
  } finally {
    await client.close().catch(() => undefined);
  }
}

const short = (text) => (text.length > 200 ? `${text.slice(0, 200)}…` : text);

/**
 * A non-streamed chat completion: HTTP 200, JSON, object "chat.completion", an assistant message
 * with text.
 * @returns {Promise<{ ok: boolean, problem: string | null, status: number, bytes: number, usage: object | null }>}
 */
export async function checkChatCompletion(origin, path, headers, body) {
  const r = await post(origin, path, headers, body);
  const out = { ok: false, problem: null, status: r.status, bytes: Buffer.byteLength(r.text), usage: null };
  if (r.status !== 200) return { ...out, problem: `HTTP ${r.status}: ${short(r.text)}` };
  let json;
  try {
    json = JSON.parse(r.text);
  } catch {
    return { ...out, problem: `body is not JSON: ${short(r.text)}` };
  }
  const message = json?.choices?.[0]?.message;
  if (json?.object !== 'chat.completion') return { ...out, problem: `object is ${JSON.stringify(json?.object)}, not "chat.completion"` };
  if (message?.role !== 'assistant' || typeof message.content !== 'string' || message.content.length === 0) {
    return { ...out, problem: 'choices[0].message is not an assistant message with text' };
  }
  return { ...out, ok: true, usage: json.usage ?? null };
}

/**
 * A streamed chat completion: HTTP 200, text/event-stream, every `data:` event a JSON
 * "chat.completion.chunk", ending with `data: [DONE]`.
 * @returns {Promise<{ ok: boolean, problem: string | null, status: number, events: number, contentEvents: number, done: boolean }>}
 */
export async function checkChatStream(origin, path, headers, body) {
  const r = await post(origin, path, headers, body);
  const out = { ok: false, problem: null, status: r.status, events: 0, contentEvents: 0, done: false };
  if (r.status !== 200) return { ...out, problem: `HTTP ${r.status}: ${short(r.text)}` };
  if (!r.contentType.includes('text/event-stream')) out.problem = `content-type is "${r.contentType}", not text/event-stream`;
  for (const raw of r.text.split('\n')) {
    const line = raw.trimEnd();
    if (!line.startsWith('data:')) continue;
    const data = line.slice(5).trim();
    if (data === '[DONE]') {
      out.done = true;
      continue;
    }
    if (out.done) return { ...out, problem: 'event after data: [DONE]' };
    out.events++;
    let chunk;
    try {
      chunk = JSON.parse(data);
    } catch {
      return { ...out, problem: `event is not JSON: ${short(data)}` };
    }
    if (chunk?.object !== 'chat.completion.chunk') return { ...out, problem: `event object is ${JSON.stringify(chunk?.object)}` };
    if (typeof chunk.choices?.[0]?.delta?.content === 'string' && chunk.choices[0].delta.content.length > 0) out.contentEvents++;
  }
  if (!out.done) return { ...out, problem: 'stream did not end with data: [DONE]' };
  if (out.contentEvents === 0) return { ...out, problem: 'no event carried content' };
  return { ...out, ok: out.problem === null };
}
