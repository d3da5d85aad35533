/**
 * Consumer API keys: how they are made, presented and stored. Keys are random tokens with 190 bits of
 * entropy, so an unsalted SHA-256 is the right store (as for GitHub or Stripe tokens): nothing to
 * brute-force, and a lookup is one hash. Only the hash is ever kept, in config, Redis or memory.
 */

import { hash, randomBytes } from 'node:crypto';

export const KEY_PREFIX = 'sk-sluice-';
const HASH_PREFIX = 'sha256:';
const HASH_PATTERN = /^sha256:[0-9a-f]{64}$/;

/** A new key: `sk-sluice-` and 32 base62 characters. */
export function generateKey(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  // Rejection sampling keeps every character uniform (256 is not a multiple of 62).
  let out = '';
  while (out.length < 32) {
    for (const b of randomBytes(48)) {
      if (b < 248 && out.length < 32) out += alphabet[b % 62];
    }
  }
  return KEY_PREFIX + out;
}

/**
 * `sha256:<hex>`: what config files, Redis and the admin API store. One-shot `crypto.hash` (no Hash
 * object per call): this runs on every authenticated request.
 */
export function hashKey(key: string): string {
  return HASH_PREFIX + hash('sha256', key, 'hex');
}

export function isKeyHash(value: string): boolean {
  return HASH_PATTERN.test(value);
}

/** The last characters of a key, so people can tell their keys apart in listings. */
export function keyHint(key: string): string {
  return `…${key.slice(-4)}`;
}

/**
 * The key a client presented: `Authorization: Bearer KEY` (OpenAI SDKs) or `x-api-key: KEY`
 * (Anthropic SDKs). Undefined when neither carries one.
 */
export function presentedKey(headers: Readonly<Record<string, string>>): string | undefined {
  const auth = headers.authorization;
  if (auth !== undefined) {
    const token = bearerToken(auth);
    if (token !== undefined) return token;
  }
  const key = headers['x-api-key']?.trim();
  return key ? key : undefined;
}

/** What /^Bearer\s+(\S+)\s*$/i would capture, without the match array (this runs per request). */
function bearerToken(auth: string): string | undefined {
  const n = auth.length;
  if (n < 8) return undefined;
  // 'bearer' in any case: OR 0x20 lower-cases ASCII letters and leaves no other character equal.
  for (let i = 0; i < 6; i++) if ((auth.charCodeAt(i) | 0x20) !== BEARER.charCodeAt(i)) return undefined;
  if (!isSpace(auth.charCodeAt(6))) return undefined;
  let start = 7;
  while (start < n && isSpace(auth.charCodeAt(start))) start++;
  let end = start;
  while (end < n && !isSpace(auth.charCodeAt(end))) end++;
  if (end === start) return undefined;
  for (let i = end; i < n; i++) if (!isSpace(auth.charCodeAt(i))) return undefined;
  return auth.slice(start, end);
}

const BEARER = 'bearer';

/** JavaScript's \s. */
function isSpace(c: number): boolean {
  if (c < 0x80) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  return (
    c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff
  );
}
