/**
 * Deterministic embeddings: a unit vector drawn from a generator seeded by the input's SHA-256.
 * Equal inputs get equal vectors and different inputs near-orthogonal ones, which is all a cache or
 * a router test needs. Values are float32 so the `float` and `base64` encodings agree exactly.
 */

import { hash } from 'node:crypto';

export function embed(input: string, dimensions: number): Float32Array {
  const seed = hash('sha256', input, 'buffer');
  // xoshiro128**: tiny, fast and good enough; seeded from 128 bits of the digest.
  let a = seed.readUInt32LE(0);
  let b = seed.readUInt32LE(4);
  let c = seed.readUInt32LE(8);
  let d = seed.readUInt32LE(12);
  if ((a | b | c | d) === 0) a = 1;
  const raw = new Float64Array(dimensions);
  let sumSquares = 0;
  for (let i = 0; i < dimensions; i++) {
    const r = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    const v = r / 2147483648 - 1;
    raw[i] = v;
    sumSquares += v * v;
  }
  const norm = Math.sqrt(sumSquares) || 1;
  const out = new Float32Array(dimensions);
  for (let i = 0; i < dimensions; i++) out[i] = (raw[i] ?? 0) / norm;
  return out;
}

/** Little-endian float32 bytes in base64, OpenAI's `encoding_format: "base64"`. */
export function float32Base64(vector: Float32Array): string {
  const bytes = Buffer.alloc(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i] ?? 0, i * 4);
  return bytes.toString('base64');
}

/** JSON array text of the float32 values (each printed as the double it widens to). */
export function float32Json(vector: Float32Array): string {
  return '[' + vector.join(',') + ']';
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
