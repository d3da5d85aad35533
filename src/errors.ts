/**
 * Every error Sluice can answer with, declared in one place.
 *
 * A GatewayError carries an HTTP status, a stable machine code and a message that is safe to show a
 * client: never a stack trace, a key or an upstream URL with credentials. Codecs render it in the
 * client's protocol (OpenAI error JSON, Anthropic error JSON, an SSE error event).
 */

/** The kind of error, in the vocabulary both OpenAI and Anthropic clients understand. */
export type ErrorKind =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'overloaded_error'
  | 'timeout_error';

interface ErrorSpec {
  readonly status: number;
  readonly kind: ErrorKind;
}

/** Machine codes with their status and kind. Add a code here, never inline a status elsewhere. */
export const ERROR_CODES = {
  invalid_json: { status: 400, kind: 'invalid_request_error' },
  invalid_request: { status: 400, kind: 'invalid_request_error' },
  unsupported_operation: { status: 400, kind: 'invalid_request_error' },
  unauthorized: { status: 401, kind: 'authentication_error' },
  forbidden: { status: 403, kind: 'permission_error' },
  not_found: { status: 404, kind: 'not_found_error' },
  model_not_found: { status: 404, kind: 'not_found_error' },
  method_not_allowed: { status: 405, kind: 'invalid_request_error' },
  body_too_large: { status: 413, kind: 'request_too_large' },
  unsupported_media_type: { status: 415, kind: 'invalid_request_error' },
  rate_limited: { status: 429, kind: 'rate_limit_error' },
  internal_error: { status: 500, kind: 'api_error' },
  upstream_error: { status: 502, kind: 'api_error' },
  upstream_unreachable: { status: 502, kind: 'api_error' },
  upstream_protocol_error: { status: 502, kind: 'api_error' },
  overloaded: { status: 503, kind: 'overloaded_error' },
  upstream_unavailable: { status: 503, kind: 'overloaded_error' },
  upstream_timeout: { status: 504, kind: 'timeout_error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class GatewayError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  /** The request field at fault, when there is one (OpenAI's `param`). */
  readonly param: string | null;
  /**
   * The upstream's own error body, when the error came from one. Codecs render `message` in the
   * client's protocol; only the relay forwards these bytes as they are, and only when the client
   * speaks the upstream's protocol.
   */
  readonly upstreamBody: Uint8Array | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { status?: number; param?: string | null; kind?: ErrorKind; upstreamBody?: Uint8Array } = {},
  ) {
    super(message);
    const spec: ErrorSpec = ERROR_CODES[code];
    this.name = 'GatewayError';
    this.code = code;
    this.status = opts.status ?? spec.status;
    this.kind = opts.kind ?? spec.kind;
    this.param = opts.param ?? null;
    this.upstreamBody = opts.upstreamBody;
  }
}

/** The kind that matches an HTTP status, for errors relayed from an upstream. */
export function kindForStatus(status: number): ErrorKind {
  switch (status) {
    case 400:
    case 422:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 503:
    case 529:
      return 'overloaded_error';
    case 504:
      return 'timeout_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

/** Anything thrown becomes a GatewayError; unknown errors never leak their message to a client. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  return new GatewayError('internal_error', 'internal error');
}
