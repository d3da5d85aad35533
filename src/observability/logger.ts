/**
 * Structured logs: one JSON object per line on stderr (stdout stays free for what a command prints).
 * Callers pass fields, never pre-formatted strings with secrets in them; values of fields whose name
 * says "key", "token", "authorization" or "secret" are redacted here as a last line of defence.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELD = /key|token|authorization|secret|password/i;

let threshold = RANK.info;
let sink: (line: string) => void = (line) => process.stderr.write(line + '\n');

export function setLogLevel(level: LogLevel): void {
  threshold = RANK[level];
}

/** Redirect log lines (tests). */
export function setLogSink(next: ((line: string) => void) | null): void {
  sink = next ?? ((line) => process.stderr.write(line + '\n'));
}

function emit(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
  if (RANK[level] < threshold) return;
  const rec: Record<string, unknown> = { time: new Date().toISOString(), level, pid: process.pid, msg };
  if (fields) {
    for (const [k, v] of Object.entries(fields)) rec[k] = SECRET_FIELD.test(k) ? '[redacted]' : v;
  }
  sink(JSON.stringify(rec));
}

export const log = {
  debug: (msg: string, fields?: Record<string, unknown>) => emit('debug', msg, fields),
  info: (msg: string, fields?: Record<string, unknown>) => emit('info', msg, fields),
  warn: (msg: string, fields?: Record<string, unknown>) => emit('warn', msg, fields),
  error: (msg: string, fields?: Record<string, unknown>) => emit('error', msg, fields),
  enabled: (level: LogLevel) => RANK[level] >= threshold,
};

/** A safe description of an unexpected error for logs: its class and code, never a stack to clients. */
export function describeError(err: unknown): Record<string, unknown> {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return { error: err.name, message: err.message, ...(code ? { code } : {}), stack: err.stack };
  }
  return { error: String(err) };
}
