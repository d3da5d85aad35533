/**
 * A raw HTTP client for what the SDKs hide: exact status lines, headers, body bytes, chunk arrival
 * times, chunked request bodies and SSE framing (comments included).
 */

import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect as netConnect } from 'node:net';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  /** Each body chunk with its arrival time (performance.now()). */
  chunks: { at: number; data: Buffer }[];
  /** performance.now() when the request was sent and when the body ended. */
  sentAt: number;
  endedAt: number;
}

export interface RawRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  /** A string or Buffer body; an array is sent as separate chunks with chunked encoding. */
  body?: string | Buffer | (string | Buffer)[];
  /** Fail the promise after this long (default 10 s). */
  timeoutMs?: number;
}

/** One request on a fresh connection (no keep-alive), the whole answer collected. */
export function raw(baseUrl: string, req: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const url = new URL(req.path, baseUrl);
    const headers: Record<string, string> = { connection: 'close', ...req.headers };
    const single = typeof req.body === 'string' || Buffer.isBuffer(req.body);
    if (single && headers['content-length'] === undefined) headers['content-length'] = String(Buffer.byteLength(req.body as string | Buffer));
    const sentAt = performance.now();
    // agent: false: a connection of its own. Node's keep-alive global agent would reuse a socket
    // after `connection: close`, which the server is free to close once it has answered.
    const r = httpRequest(url, { method: req.method ?? (req.body === undefined ? 'GET' : 'POST'), headers, agent: false }, (res) => {
      const chunks: { at: number; data: Buffer }[] = [];
      res.on('data', (d: Buffer) => chunks.push({ at: performance.now(), data: d }));
      res.on('end', () => {
        clearTimeout(timer);
        const body = Buffer.concat(chunks.map((c) => c.data));
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8'), chunks, sentAt, endedAt: performance.now() });
      });
      res.on('error', reject);
    });
    const timer = setTimeout(() => {
      r.destroy(new Error(`raw request to ${req.path} timed out`));
    }, req.timeoutMs ?? 10_000);
    r.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (Array.isArray(req.body)) {
      for (const part of req.body) r.write(part);
      r.end();
    } else {
      r.end(req.body);
    }
  });
}

/** POST JSON; `body` may be an object or exact text. */
export function postJson(baseUrl: string, path: string, body: unknown, headers: Record<string, string> = {}, timeoutMs?: number): Promise<RawResponse> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return raw(baseUrl, { method: 'POST', path, headers: { 'content-type': 'application/json', ...headers }, body: text, ...(timeoutMs ? { timeoutMs } : {}) });
}

/** A request whose response the caller reads (or abandons) itself. */
export function openStream(baseUrl: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ res: IncomingMessage; abort: () => void }> {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const r = httpRequest(
      new URL(path, baseUrl),
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), connection: 'close', ...headers },
      },
      (res) => resolve({ res, abort: () => r.destroy() }),
    );
    r.on('error', reject);
    r.end(text);
  });
}

export interface SseItem {
  /** '' for unnamed events; undefined for a comment line. */
  event?: string;
  data?: string;
  comment?: string;
}

/** SSE text into events and comments, in order (LF, CRLF or CR line ends). */
export function parseSse(text: string): SseItem[] {
  const items: SseItem[] = [];
  let event = '';
  let data: string[] = [];
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '') {
      if (data.length > 0) items.push({ event, data: data.join('\n') });
      event = '';
      data = [];
    } else if (line.startsWith(':')) {
      items.push({ comment: line.slice(1).trim() });
    } else {
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') event = value;
    }
  }
  if (data.length > 0) items.push({ event, data: data.join('\n') });
  return items;
}

/** The JSON payloads of the data events (not `[DONE]`). */
export function sseJson(text: string): Record<string, unknown>[] {
  return parseSse(text)
    .filter((i) => i.data !== undefined && i.data !== '[DONE]')
    .map((i) => JSON.parse(i.data!) as Record<string, unknown>);
}

/** No stack-trace frames ("    at fn (file:line:col)") and no file paths of this machine. */
export function assertNoStackTrace(text: string, what = 'text'): void {
  if (/\n\s+at\s+\S+.*:\d+:\d+/.test(text) || /\bat (?:async )?\S+ \((?:file:\/\/|\/)[^)]*:\d+:\d+\)/.test(text)) {
    throw new Error(`${what} contains a stack trace:\n${text.slice(0, 2000)}`);
  }
  if (text.includes('/dist/src/') || text.includes('node:internal')) {
    throw new Error(`${what} contains source paths:\n${text.slice(0, 2000)}`);
  }
}

/** Decodes an HTTP/1.1 chunked body. */
export function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) throw new Error('chunked body cut off (no size line)');
    const size = parseInt(body.subarray(at, eol).toString('latin1').split(';')[0]!, 16);
    if (!Number.isFinite(size)) throw new Error('bad chunk size');
    if (size === 0) return Buffer.concat(parts);
    const start = eol + 2;
    if (start + size > body.length) throw new Error('chunked body cut off (short chunk)');
    parts.push(body.subarray(start, start + size));
    at = start + size + 2;
  }
}

export interface SlowReadResult {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Socket reads it took. */
  reads: number;
}

/**
 * A deliberately slow reader on a raw TCP socket: sends one POST, keeps the socket paused for
 * `initialPauseMs` (so the server's writes back up), then reads one chunk at a time with
 * `perReadDelayMs` pauses in between. Returns the de-chunked body.
 */
export function slowRead(
  baseUrl: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  opts: { initialPauseMs?: number; perReadDelayMs?: number; timeoutMs?: number } = {},
): Promise<SlowReadResult> {
  const url = new URL(path, baseUrl);
  const text = JSON.stringify(body);
  const head =
    `POST ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\n` +
    `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n` +
    Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') +
    '\r\n';
  return new Promise((resolve, reject) => {
    const socket = netConnect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    let reads = 0;
    const timer = setTimeout(() => socket.destroy(new Error('slow read timed out')), opts.timeoutMs ?? 30_000);
    socket.on('connect', () => {
      socket.write(head + text);
      socket.pause();
      setTimeout(() => socket.resume(), opts.initialPauseMs ?? 300);
    });
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      reads++;
      socket.pause();
      setTimeout(() => socket.resume(), opts.perReadDelayMs ?? 2);
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      socket.destroy();
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      const lines = all.subarray(0, split).toString('latin1').split('\r\n');
      const status = Number(lines[0]!.split(' ')[1]);
      const hs: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const c = line.indexOf(':');
        hs[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
      }
      const rest = all.subarray(split + 4);
      try {
        const bodyBytes = /chunked/i.test(hs['transfer-encoding'] ?? '') ? dechunk(rest) : rest;
        resolve({ status, headers: hs, body: bodyBytes.toString('utf8'), reads });
      } catch (err) {
        reject(err);
      }
    });
  });
}
