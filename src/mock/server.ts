/**
 * The mock model server over real HTTP (uWebSockets.js): the upstream for benchmarks and for tests
 * that need sockets. It plays the responder's replies with real chunked streaming, backpressure and
 * real connection resets. Being the upstream in throughput benchmarks, it answers an undelayed
 * request inside the uWS callback that completed it: no timer, no promise, one corked write.
 */

import { STATUS_CODES } from 'node:http';
import uWS from '@trufflesuite/uws-js-unofficial';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from '@trufflesuite/uws-js-unofficial';
import { MOCK_HEADERS, type MockOptions } from './options.js';
import { Playback, type ReplySink } from './playback.js';
import type { MockReply } from './reply.js';
import { MockResponder } from './responder.js';

export interface MockServerOptions extends Partial<MockOptions> {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 = any free port (see `MockServer.port`). */
  port: number;
}

export interface MockServer {
  /** The bound port. */
  readonly port: number;
  readonly responder: MockResponder;
  /** Stops listening and drops every response still in flight (streams, hangs). */
  close(): Promise<void>;
}

/** Bodies beyond this are refused: the mock must not be a way to exhaust a test machine. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

const TOO_LARGE_BODY = JSON.stringify({
  error: { message: 'request body too large', type: 'request_too_large', param: null, code: null },
});

export async function startMockServer(opts: MockServerOptions): Promise<MockServer> {
  // The package falls back to a slow pure-JS shim when its native binary does not load; a benchmark
  // upstream running on that would measure the shim, so refuse instead.
  if (typeof uWS.SSLApp !== 'function') {
    throw new Error('uWebSockets.js native binary is not available on this platform; the mock server will not start');
  }
  const { host = '127.0.0.1', port, ...options } = opts;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError('port must be an integer from 0 to 65535');
  const responder = new MockResponder(options);
  const live = new Set<MockConnection>();

  const app = uWS.App();
  app.any('/*', (res, req) => accept(res, req, responder, live));

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (socket === false) reject(new Error(`mock server could not listen on ${host}:${port}`));
      else resolve(socket);
    });
  });
  const boundPort = uWS.us_socket_local_port(listenSocket);

  let closed = false;
  return {
    port: boundPort,
    responder,
    close(): Promise<void> {
      if (!closed) {
        closed = true;
        for (const conn of [...live]) conn.drop();
        // The native App has close() (it drops idle keep-alive sockets too, which would otherwise keep
        // the process alive until the client lets go) though the bundled typings omit it.
        const closable = app as TemplatedApp & { close?: () => void };
        if (typeof closable.close === 'function') closable.close();
        else uWS.us_listen_socket_close(listenSocket);
      }
      return Promise.resolve();
    },
  };
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

function accept(res: HttpResponse, req: HttpRequest, responder: MockResponder, live: Set<MockConnection>): void {
  // HttpRequest is valid only until this function returns: read everything now.
  const method = req.getMethod().toUpperCase();
  const path = req.getUrl();
  let found: Record<string, string> | null = null;
  for (const name of MOCK_HEADERS) {
    const value = req.getHeader(name);
    if (value !== '') (found ??= {})[name] = value;
  }
  const headers = found ?? NO_HEADERS;
  const conn = new MockConnection(res, live);
  res.onAborted(() => conn.aborted());
  if (method !== 'POST') {
    conn.play(responder.respond({ method, path, headers, body: '' }));
    return;
  }
  let chunks: Buffer[] | null = null;
  let size = 0;
  res.onData((chunk, isLast) => {
    if (conn.isFinished()) return;
    size += chunk.byteLength;
    if (size > MAX_BODY_BYTES) {
      conn.refuse(413, TOO_LARGE_BODY);
      return;
    }
    if (chunks === null && isLast) {
      // The common case, one chunk: decode straight from uWS's buffer, no copy.
      conn.play(responder.respond({ method, path, headers, body: Buffer.from(chunk).toString('utf8') }));
      return;
    }
    // uWS reuses the chunk's memory after this callback returns, so keep a copy.
    (chunks ??= []).push(Buffer.from(new Uint8Array(chunk)));
    if (isLast) conn.play(responder.respond({ method, path, headers, body: Buffer.concat(chunks).toString('utf8') }));
  });
}

const statusLines = new Map<number, string>();

function statusLine(status: number): string {
  let line = statusLines.get(status);
  if (line === undefined) {
    line = `${status} ${STATUS_CODES[status] ?? 'Unknown'}`;
    statusLines.set(status, line);
  }
  return line;
}

/** One request's response: the sink a Playback writes into. */
class MockConnection implements ReplySink {
  private playback: Playback | null = null;
  /** The response is gone (client left, reset, or closed by us): never touch `res` again. */
  private gone = false;
  /** `res.end()` was called. */
  private ended = false;
  /** A non-streamed body goes out with `end(body)`, so uWS sets content-length. */
  private whole = false;
  private watchingWritable = false;

  constructor(
    private readonly res: HttpResponse,
    private readonly live: Set<MockConnection>,
  ) {}

  isFinished(): boolean {
    return this.gone || this.ended;
  }

  play(reply: MockReply): void {
    this.live.add(this);
    this.playback = new Playback(reply, this);
    this.playback.start(false);
  }

  refuse(status: number, body: string): void {
    this.ended = true;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status)).writeHeader('content-type', 'application/json').end(body, true);
    });
  }

  aborted(): void {
    this.gone = true;
    this.playback?.stop();
    this.live.delete(this);
  }

  /** Server shutdown: cut the connection (this runs `aborted`). */
  drop(): void {
    if (this.gone) return;
    this.playback?.stop();
    this.gone = true;
    this.live.delete(this);
    this.res.close();
  }

  batch(writes: () => void): void {
    if (!this.gone) this.res.cork(writes);
  }

  head(reply: MockReply): void {
    const res = this.res;
    res.writeStatus(statusLine(reply.status));
    for (const name in reply.headers) {
      const value = reply.headers[name];
      if (value !== undefined) res.writeHeader(name, value);
    }
    this.whole = !reply.streamed && reply.resetAfter === null;
  }

  data(part: string): boolean {
    if (this.whole) {
      this.ended = true;
      this.res.end(part);
      return true;
    }
    if (this.res.write(part)) return true;
    if (!this.watchingWritable) {
      this.watchingWritable = true;
      this.res.onWritable(() => {
        this.playback?.resume();
        return true;
      });
    }
    return false;
  }

  end(): void {
    if (!this.ended) {
      this.ended = true;
      this.res.end();
    }
    this.live.delete(this);
  }

  reset(): void {
    this.live.delete(this);
    // Closing inside the cork would discard the parts just written, and the client must see them
    // arrive before the connection breaks: close once they are flushed.
    setImmediate(() => {
      if (this.gone) return;
      this.gone = true;
      this.res.close();
    });
  }
}
