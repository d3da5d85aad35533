/** A copy of a config safe to show: every secret replaced. Used by `GET /admin/config` and logs. */

const SECRET_KEYS = new Set(['api_key', 'api_keys', 'token', 'admin_token', 'password', 'secret']);
const SECRET_HEADERS = /^(authorization|proxy-authorization|x-api-key|api-key|x-goog-api-key|cookie)$/i;

export const REDACTED = '[redacted]';

export function redactConfig(node: unknown, key = ''): unknown {
  if (Array.isArray(node)) return node.map((v) => redactConfig(v, key));
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      if (SECRET_KEYS.has(k)) out[k] = Array.isArray(v) ? v.map(() => REDACTED) : REDACTED;
      else if (key === 'headers' || key === 'set') out[k] = SECRET_HEADERS.test(k) ? REDACTED : redactConfig(v, k);
      else out[k] = redactConfig(v, k);
    }
    return out;
  }
  return node;
}
