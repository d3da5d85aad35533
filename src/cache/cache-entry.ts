/**
 * One cached answer, and its wire form for sharing between worker processes (Node IPC) and nodes
 * (Redis). The answer is stored as the canonical `ChatResponse`, so a hit can be replayed in any
 * client protocol, streamed or not; the question's text and embedding travel with it, so a
 * receiving worker indexes it without embedding it again.
 */

import type { ChatResponse } from '../protocol/canonical.js';

export interface CacheEntry {
  /** Exact-layer key. */
  readonly key: string;
  /** Namespace key (scope, provider, model). */
  readonly namespace: string;
  /** Semantic context key; absent when the request had no question text to embed. */
  readonly contextKey?: string;
  /** The question text (semantic layer). */
  readonly text?: string;
  /** Its embedding, once computed. */
  vector?: Float32Array;
  /** Embedder that produced `vector`. */
  embedderId?: string;
  readonly response: ChatResponse;
  /** Wall-clock ms. */
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  /** Estimated memory held by this entry. */
  readonly bytes: number;
}

/** Fixed cost of an entry beyond its strings and vector: object headers, map slots, keys. */
const ENTRY_OVERHEAD = 400;

/** An estimate of what an entry holds in memory; `responseJson` when the caller has it. */
export function entryBytes(response: ChatResponse, text: string | undefined, vector: Float32Array | undefined, responseJson?: string): number {
  const json = responseJson ?? JSON.stringify(response);
  // Strings are one byte per character when Latin-1, two otherwise; assume the worse for non-ASCII.
  const textBytes = (s: string): number => (/^[\x00-\xff]*$/.test(s) ? s.length : s.length * 2);
  return ENTRY_OVERHEAD + textBytes(json) + (text ? textBytes(text) : 0) + (vector ? vector.byteLength : 0);
}

/** The JSON form of an entry: what goes over IPC and into Redis. */
export interface CacheRecord {
  v: 1;
  key: string;
  namespace: string;
  contextKey?: string;
  text?: string;
  /** Float32 little-endian, base64. */
  vector?: string;
  embedderId?: string;
  response: ChatResponse;
  createdAtMs: number;
  expiresAtMs: number;
}

export function toRecord(entry: CacheEntry): CacheRecord {
  const r: CacheRecord = {
    v: 1,
    key: entry.key,
    namespace: entry.namespace,
    response: entry.response,
    createdAtMs: entry.createdAtMs,
    expiresAtMs: entry.expiresAtMs,
  };
  if (entry.contextKey !== undefined) r.contextKey = entry.contextKey;
  if (entry.text !== undefined) r.text = entry.text;
  if (entry.vector !== undefined && entry.embedderId !== undefined) {
    r.vector = Buffer.from(entry.vector.buffer, entry.vector.byteOffset, entry.vector.byteLength).toString('base64');
    r.embedderId = entry.embedderId;
  }
  return r;
}

export class InvalidRecordError extends Error {
  readonly code = 'invalid_cache_record';
}

const isString = (x: unknown): x is string => typeof x === 'string' && x.length > 0;
const isNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/**
 * Checks a record from another process or node and turns it into an entry. Anything malformed is
 * refused: a peer on another version must not plant answers this one would misread.
 */
export function fromRecord(raw: unknown): CacheEntry {
  if (raw === null || typeof raw !== 'object') throw new InvalidRecordError('cache record is not an object');
  const r = raw as Partial<CacheRecord>;
  if (r.v !== 1) throw new InvalidRecordError(`cache record version ${String(r.v)} is not 1`);
  if (!isString(r.key) || !isString(r.namespace)) throw new InvalidRecordError('cache record without key or namespace');
  if (!isNumber(r.createdAtMs) || !isNumber(r.expiresAtMs)) throw new InvalidRecordError('cache record without times');
  const res = r.response;
  if (res === null || typeof res !== 'object' || !Array.isArray(res.choices) || typeof res.id !== 'string' || typeof res.model !== 'string') {
    throw new InvalidRecordError('cache record without a valid response');
  }
  if (r.contextKey !== undefined && !isString(r.contextKey)) throw new InvalidRecordError('cache record with an invalid context key');
  if (r.text !== undefined && typeof r.text !== 'string') throw new InvalidRecordError('cache record with an invalid text');
  let vector: Float32Array | undefined;
  if (r.vector !== undefined) {
    if (!isString(r.vector) || !isString(r.embedderId)) throw new InvalidRecordError('cache record with a vector but no embedder');
    const bytes = Buffer.from(r.vector, 'base64');
    if (bytes.byteLength === 0 || bytes.byteLength % 4 !== 0) throw new InvalidRecordError('cache record with a malformed vector');
    // Copy into an aligned buffer: Buffer's pool may start at any offset.
    vector = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(vector.buffer).set(bytes);
  }
  const entry: CacheEntry = {
    key: r.key,
    namespace: r.namespace,
    ...(r.contextKey !== undefined ? { contextKey: r.contextKey } : {}),
    ...(r.text !== undefined ? { text: r.text } : {}),
    response: res,
    createdAtMs: r.createdAtMs,
    expiresAtMs: r.expiresAtMs,
    bytes: entryBytes(res, r.text, vector),
  };
  if (vector !== undefined) {
    entry.vector = vector;
    entry.embedderId = r.embedderId!;
  }
  return entry;
}
