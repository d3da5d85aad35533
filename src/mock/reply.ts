/**
 * A rendered answer and when to send each piece of it. The wire renderers produce one; the two front
 * ends (in-process transport, uWS server) only play it back, so both send the very same bytes.
 */

export interface MockReply {
  readonly status: number;
  /** Lower-case names. No content-length: each front end frames the body its own way. */
  readonly headers: Readonly<Record<string, string>>;
  /** Body pieces, sent in order; a non-streamed body is a single piece. */
  readonly parts: readonly string[];
  /** True for an SSE stream (sent chunked); false for one JSON body. */
  readonly streamed: boolean;
  /** Before the head and the first part: time to first token, or the whole generation time. */
  readonly firstDelayMs: number;
  /** Between two consecutive parts. */
  readonly intervalMs: number;
  /** Send this many parts, then reset the connection instead of ending (0 = before the head). */
  readonly resetAfter: number | null;
  /** Never answer. */
  readonly hang: boolean;
}

/** What makes one reply's envelope its own. */
export interface ReplyIdentity {
  id: string;
  /** Unix seconds. */
  created: number;
}

export interface Pacing {
  ttftMs: number;
  tokensPerSecond: number;
  chunkTokens: number;
}

const JSON_HEADERS: Readonly<Record<string, string>> = Object.freeze({ 'content-type': 'application/json' });

const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
});

export const HANG_REPLY: MockReply = Object.freeze({
  status: 0,
  headers: JSON_HEADERS,
  parts: Object.freeze([]),
  streamed: false,
  firstDelayMs: 0,
  intervalMs: 0,
  resetAfter: null,
  hang: true,
});

export function jsonReply(
  status: number,
  body: string,
  delayMs = 0,
  headers: Readonly<Record<string, string>> = JSON_HEADERS,
): MockReply {
  return { status, headers, parts: [body], streamed: false, firstDelayMs: delayMs, intervalMs: 0, resetAfter: null, hang: false };
}

export function jsonHeadersWith(extra: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  return { ...JSON_HEADERS, ...extra };
}

/**
 * An SSE reply. `steps` are the events between the opening and the closing ones, one part each,
 * paced at `chunkTokens` tokens per part; the opening rides with the first step and the closing with
 * the last, as a real server flushes them together.
 */
export function sseReply(prelude: string, steps: readonly string[], epilogue: string, pacing: Pacing): MockReply {
  let parts: string[];
  if (steps.length === 0) {
    parts = [prelude + epilogue];
  } else {
    parts = steps.slice();
    parts[0] = prelude + parts[0];
    parts[parts.length - 1] += epilogue;
  }
  const intervalMs = pacing.tokensPerSecond > 0 ? (pacing.chunkTokens * 1000) / pacing.tokensPerSecond : 0;
  return {
    status: 200,
    headers: SSE_HEADERS,
    parts,
    streamed: true,
    firstDelayMs: pacing.ttftMs,
    intervalMs,
    resetAfter: null,
    hang: false,
  };
}

/** A non-streamed answer arrives once the whole answer would have been generated. */
export function generationDelayMs(pacing: Pacing, outputTokens: number): number {
  return pacing.ttftMs + (pacing.tokensPerSecond > 0 ? (outputTokens * 1000) / pacing.tokensPerSecond : 0);
}

/** `items` in consecutive groups of `size`. */
export function groups<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** One SSE event without a name, as OpenAI sends them. */
export function sseData(json: string): string {
  return 'data: ' + json + '\n\n';
}

/** One named SSE event, as Anthropic sends them. */
export function sseEvent(event: string, json: string): string {
  return 'event: ' + event + '\ndata: ' + json + '\n\n';
}
