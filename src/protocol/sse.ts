/**
 * Server-sent events framing (WHATWG HTML, "event stream interpretation"), incremental: bytes go in
 * as they arrive, whole events come out. Handles CRLF/LF/CR line ends, multi-line data, comments and
 * UTF-8 sequences split across chunks.
 */

export interface SseEvent {
  /** The `event:` field, or '' when absent (the spec's "message"). */
  event: string;
  data: string;
}

export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  private buffer = '';
  private eventName = '';
  private data = '';
  private hasData = false;
  /** The previous chunk ended in CR, so a LF at the start of the next one belongs to it. */
  private pendingCR = false;

  constructor(private readonly onEvent: (event: SseEvent) => void) {}

  push(chunk: Uint8Array): void {
    let text = this.decoder.decode(chunk, { stream: true });
    if (this.pendingCR) {
      if (text.charCodeAt(0) === 10) text = text.slice(1);
      this.pendingCR = false;
    }
    this.buffer = this.buffer.length === 0 ? text : this.buffer + text;
    this.drain();
  }

  /**
   * The stream ended. A last event whose closing blank line never came is still delivered (the spec
   * would drop it, but a gateway should not lose an upstream's final answer to a missing newline).
   * Returns false when that happened or a line was cut off, so callers can tell a clean end.
   */
  end(): boolean {
    this.buffer += this.decoder.decode();
    this.drain();
    const clean = this.buffer.length === 0 && !this.hasData && this.eventName === '';
    if (this.buffer.length > 0) this.line(this.buffer);
    this.buffer = '';
    if (this.hasData) this.line('');
    return clean;
  }

  private drain(): void {
    const buf = this.buffer;
    let start = 0;
    const n = buf.length;
    for (let i = 0; i < n; i++) {
      const c = buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(buf.slice(start, i));
      if (c === 13) {
        if (i + 1 < n) {
          if (buf.charCodeAt(i + 1) === 10) i++;
        } else {
          this.pendingCR = true;
        }
      }
      start = i + 1;
    }
    this.buffer = start === 0 ? buf : buf.slice(start);
  }

  private line(line: string): void {
    if (line.length === 0) {
      if (this.hasData) this.onEvent({ event: this.eventName, data: this.data });
      this.eventName = '';
      this.data = '';
      this.hasData = false;
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' comment */) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') {
      this.data = this.hasData ? this.data + '\n' + value : value;
      this.hasData = true;
    } else if (field === 'event') {
      this.eventName = value;
    }
    // `id` and `retry` carry nothing a model API uses.
  }
}

/** One SSE event, framed. `data` must not contain line breaks (JSON.stringify output never does). */
export function sseEvent(data: string, event?: string): string {
  return event === undefined ? `data: ${data}\n\n` : `event: ${event}\ndata: ${data}\n\n`;
}

/** An SSE comment line, which clients ignore; used to keep idle connections open. */
export const SSE_KEEPALIVE = ': keep-alive\n\n';
