/**
 * Token usage from a stream the gateway passes through without decoding it. Only events that carry
 * a usage object are parsed (a substring test finds them); every other event stays untouched bytes.
 * For OpenAI streams the gateway may have asked for the usage chunk itself
 * (`stream_options.include_usage`); a client that did not ask never sees it.
 */

import type { Usage } from './canonical.js';
import type { WireProtocol } from './codec.js';
import { canonicalUsage, readUsage, type RawUsage } from './anthropic-messages.js';
import { decodeOpenAIUsage } from './openai-chat.js';

const USAGE_OBJECT = Buffer.from('"usage":{');
const DATA = 'data:';
/** Events end with a blank line, LF or CRLF. */
const LF2 = Buffer.from('\n\n');
const CRLF2 = Buffer.from('\r\n\r\n');

export class UsageScan {
  private found: Usage | undefined;
  private readonly anthropic: RawUsage = {};

  constructor(
    private readonly protocol: WireProtocol,
    /** Drop OpenAI's usage-only chunk (choices: []): the client did not ask for it. */
    private readonly hideUsageChunk: boolean,
  ) {}

  get usage(): Usage | undefined {
    return this.found;
  }

  /**
   * Reads the usage out of complete SSE events (`buf` ends on an event boundary); returns the bytes
   * to send on, which are `buf` itself unless a usage-only chunk was dropped.
   */
  scan(buf: Buffer): Buffer {
    let at = buf.indexOf(USAGE_OBJECT);
    if (at < 0) return buf;
    // Native searches only: a stream's flush can hold every event of a fast answer, and walking it
    // byte by byte in JavaScript cost more than relaying it.
    let out: Buffer[] | undefined;
    let kept = 0;
    while (at >= 0) {
      const start = eventStart(buf, at);
      const end = eventEnd(buf, at);
      if (this.read(buf.subarray(start, end))) {
        out ??= [];
        out.push(buf.subarray(kept, start));
        kept = end;
      }
      at = buf.indexOf(USAGE_OBJECT, end);
    }
    if (out === undefined) return buf;
    out.push(buf.subarray(kept));
    return Buffer.concat(out);
  }

  /** Takes the usage from one event; true when the event is to be dropped. */
  private read(event: Buffer): boolean {
    const json = dataOf(event.toString('utf8'));
    if (json === undefined) return false;
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(json) as Record<string, unknown>;
    } catch {
      return false;
    }
    if (this.protocol === 'anthropic-messages') {
      const message = data.message as Record<string, unknown> | undefined;
      readUsage(data.type === 'message_start' ? message?.usage : data.usage, this.anthropic);
      this.found = canonicalUsage(this.anthropic);
      return false;
    }
    const usage = data.usage;
    if (usage === null || typeof usage !== 'object') return false;
    this.found = decodeOpenAIUsage(usage as Parameters<typeof decodeOpenAIUsage>[0]);
    return this.hideUsageChunk && Array.isArray(data.choices) && data.choices.length === 0;
  }
}

/**
 * Usage of a whole (non-streamed) answer relayed as bytes: only the `usage` object is parsed, found
 * from the end where every server puts it, so a long answer costs a backwards search, not a parse.
 */
export function usageOfBody(protocol: WireProtocol, body: Buffer): Usage | undefined {
  const at = body.lastIndexOf(USAGE_OBJECT);
  if (at < 0) return undefined;
  const open = at + USAGE_OBJECT.length - 1;
  let depth = 0;
  for (let i = open; i < body.length; i++) {
    const c = body[i];
    if (c === 0x7b) depth++;
    else if (c === 0x7d && --depth === 0) {
      let raw: unknown;
      try {
        raw = JSON.parse(body.toString('utf8', open, i + 1));
      } catch {
        return undefined;
      }
      if (protocol === 'anthropic-messages') {
        const counters: RawUsage = {};
        readUsage(raw, counters);
        return canonicalUsage(counters);
      }
      return raw !== null && typeof raw === 'object' ? decodeOpenAIUsage(raw as Parameters<typeof decodeOpenAIUsage>[0]) : undefined;
    }
  }
  return undefined;
}

/** Just past the blank line before `at`, or 0. */
function eventStart(buf: Buffer, at: number): number {
  const lf = buf.lastIndexOf(LF2, at);
  const crlf = buf.lastIndexOf(CRLF2, at);
  return Math.max(lf < 0 ? 0 : lf + 2, crlf < 0 ? 0 : crlf + 4);
}

/** Just past the blank line after `at`, or the buffer's end. */
function eventEnd(buf: Buffer, at: number): number {
  const lf = buf.indexOf(LF2, at);
  const crlf = buf.indexOf(CRLF2, at);
  return Math.min(lf < 0 ? buf.length : lf + 2, crlf < 0 ? buf.length : crlf + 4);
}

/** The event's data lines joined, as SSE defines them. */
function dataOf(text: string): string | undefined {
  let data: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith(DATA)) continue;
    const value = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
    data = data === undefined ? value : `${data}\n${value}`;
  }
  return data;
}
