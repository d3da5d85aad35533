/**
 * Upstreams for end-to-end tests, all on port 0 and all remembered so `closeUpstreams()` in an
 * `after` releases every port:
 * - `startMock`: the standalone mock model server (src/mock/server.ts);
 * - `startRecorder`: a tiny node:http server that records each request (headers, body, when its
 *   connection closed) and either answers itself or forwards to another server (e.g. the mock),
 *   streaming the answer back untouched;
 * - `closedPort`: a port nothing listens on.
 */

import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { startMockServer, type MockServer, type MockServerOptions } from '../../src/mock/server.js';

type Closer = () => Promise<void>;
const closers = new Set<Closer>();

/** Close every upstream started by these helpers (and the fake Gemini, which registers here too). */
export async function closeUpstreams(): Promise<void> {
  const all = [...closers];
  closers.clear();
  await Promise.allSettled(all.map((c) => c()));
}

/** Remember something to close in `closeUpstreams()`. */
export function registerCloser(close: Closer): void {
  closers.add(close);
}

export function openUpstreams(): number {
  return closers.size;
}

export async function startMock(opts: Omit<MockServerOptions, 'port'> = {}): Promise<MockServer & { url: string }> {
  const server = await startMockServer({ port: 0, ...opts });
  registerCloser(() => server.close());
  return Object.assign(server, { url: `http://127.0.0.1:${server.port}` });
}

/** A node:http server that also destroys its open sockets on close (keep-alive ones included). */
export async function listenHttp(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; port: number; url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer(handler);
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
    return closed;
  };
  registerCloser(close);
  return { server, port, url: `http://127.0.0.1:${port}`, close };
}

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  receivedAt: number;
  /** When the response's connection closed or the response finished (performance.now()). */
  closedAt: number | undefined;
  /** True when the response was closed before it was completely written (the peer went away). */
  abortedEarly: boolean | undefined;
  /** Resolves once closedAt is set. */
  closed: Promise<void>;
}

export interface Recorder {
  port: number;
  url: string;
  requests: RecordedRequest[];
  /** Resolves with the n-th request (0-based) once it has arrived. */
  nth(n: number): Promise<RecordedRequest>;
  close(): Promise<void>;
}

export type RecorderResponder = (req: RecordedRequest, res: ServerResponse) => void;

/**
 * Records every request. Answers with `respond`, or forwards to `forwardTo` (an origin such as the
 * mock's `http://127.0.0.1:PORT`), piping status, headers and body back as they come.
 */
export async function startRecorder(opts: { forwardTo?: string; respond?: RecorderResponder }): Promise<Recorder> {
  const requests: RecordedRequest[] = [];
  const waiters: { n: number; resolve: (r: RecordedRequest) => void }[] = [];
  const { port, url, close } = await listenHttp((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let markClosed!: () => void;
      const rec: RecordedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
        receivedAt: performance.now(),
        closedAt: undefined,
        abortedEarly: undefined,
        closed: new Promise<void>((resolve) => (markClosed = resolve)),
      };
      res.once('close', () => {
        rec.closedAt = performance.now();
        rec.abortedEarly = !res.writableFinished;
        markClosed();
      });
      requests.push(rec);
      for (const w of waiters.filter((w) => w.n < requests.length)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(requests[w.n]!);
      }
      if (opts.respond) opts.respond(rec, res);
      else if (opts.forwardTo) forward(opts.forwardTo, rec, res);
      else res.writeHead(204).end();
    });
  });
  return {
    port,
    url,
    requests,
    nth: (n) =>
      n < requests.length ? Promise.resolve(requests[n]!) : new Promise((resolve) => waiters.push({ n, resolve })),
    close,
  };
}

function forward(origin: string, rec: RecordedRequest, res: ServerResponse): void {
  const target = new URL(rec.url, origin);
  const headers = { ...rec.headers, host: target.host };
  const up = httpRequest(target, { method: rec.method, headers }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.headers);
    upRes.pipe(res);
    upRes.on('error', () => res.destroy());
  });
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' }).end('{"error":{"message":"recorder: upstream failed"}}');
    else res.destroy();
  });
  // The gateway went away: so does our request to the real upstream.
  res.once('close', () => {
    if (!res.writableFinished) up.destroy();
  });
  up.end(rec.body);
}

/** A TCP port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
