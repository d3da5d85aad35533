/**
 * The client side of one exchange, over a uWS HttpResponse. uWS responses must not be touched after
 * the client aborts, and writes outside a uWS callback must be corked; this class owns both rules so
 * nothing else has to remember them.
 *
 * Backpressure: `write` returns false when uWS had to buffer; the caller pauses its source and
 * `onWritable` tells it when to resume (the data written so far is never lost: uWS keeps it).
 */

import { STATUS_CODES } from 'node:http';
import type { HttpResponse } from '@trufflesuite/uws-js-unofficial';
import { clock } from '../clock.js';

const statusLines = new Map<number, string>();
function statusLine(status: number): string {
  let line = statusLines.get(status);
  if (line === undefined) {
    line = `${status} ${STATUS_CODES[status] ?? 'Status'}`;
    statusLines.set(status, line);
  }
  return line;
}

export type Headers = Readonly<Record<string, string>>;

export class ClientResponse {
  aborted = false;
  headersSent = false;
  ended = false;
  /** Monotonic ms of the last write, for SSE keep-alive. */
  lastWriteMs = 0;
  private abortHandler: (() => void) | undefined;
  /** A head recorded by startStream, written with the first chunk so both leave in one packet. */
  private pendingStatus = 0;
  private pendingHeaders: Headers | undefined;

  constructor(private readonly res: HttpResponse) {
    res.onAborted(() => {
      this.aborted = true;
      const h = this.abortHandler;
      this.abortHandler = undefined;
      h?.();
    });
  }

  /** Called once if the client goes away before the response ended. */
  onAbort(handler: () => void): void {
    this.abortHandler = handler;
  }

  get done(): boolean {
    return this.aborted || this.ended;
  }

  /** A whole response in one corked write. */
  send(status: number, headers: Headers, body: string | Uint8Array): void {
    if (this.done) return;
    this.res.cork(() => {
      this.writeHead(status, headers);
      this.res.end(body);
    });
    this.ended = true;
  }

  /**
   * Status and headers of a streamed response. Nothing is sent until the first write, so until then
   * the exchange can still turn into a plain error reply (or, later, a retry elsewhere).
   */
  startStream(status: number, headers: Headers): void {
    if (this.done || this.headersSent) return;
    this.pendingStatus = status;
    this.pendingHeaders = headers;
  }

  /** True once anything (head or body) went to the client. */
  get committed(): boolean {
    return this.headersSent;
  }

  /** A chunk, preceded by the pending head if any, in one corked write. False under backpressure. */
  write(chunk: string | Uint8Array): boolean {
    if (this.done) return true;
    this.lastWriteMs = clock.monotonicMs();
    let ok = true;
    this.res.cork(() => {
      this.flushHead();
      ok = this.res.write(chunk);
    });
    return ok;
  }

  end(chunk?: string | Uint8Array): void {
    if (this.done) return;
    this.ended = true;
    this.abortHandler = undefined;
    this.res.cork(() => {
      this.flushHead();
      this.res.end(chunk);
    });
  }

  /** Calls `resume` once, when uWS has drained what it buffered. */
  onWritable(resume: () => void): void {
    if (this.done) return;
    this.res.onWritable(() => {
      resume();
      return true;
    });
  }

  /** Drop the connection without a proper end (the response cannot be completed honestly). */
  close(): void {
    if (this.done) return;
    this.ended = true;
    this.abortHandler = undefined;
    this.res.close();
  }

  private flushHead(): void {
    if (this.pendingHeaders === undefined) return;
    const headers = this.pendingHeaders;
    this.pendingHeaders = undefined;
    this.writeHead(this.pendingStatus, headers);
  }

  private writeHead(status: number, headers: Headers): void {
    this.headersSent = true;
    this.res.writeStatus(statusLine(status));
    for (const name in headers) this.res.writeHeader(name, headers[name] as string);
  }
}
