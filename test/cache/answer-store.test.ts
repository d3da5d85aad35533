import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { AnswerStore, type EvictionCause } from '../../src/cache/answer-store.js';
import { type CacheEntry, entryBytes, fromRecord, InvalidRecordError, toRecord } from '../../src/cache/cache-entry.js';
import { answer } from './helpers.js';

function entry(key: string, bytes = 1000, expiresAtMs = 1_000_000): CacheEntry {
  return { key, namespace: 'ns', response: answer(`answer ${key}`), createdAtMs: 0, expiresAtMs, bytes };
}

function store(maxEntries: number, maxBytes: number, maxEntryBytes = maxBytes) {
  const evictions: [string, EvictionCause][] = [];
  const s = new AnswerStore({ maxEntries, maxBytes, maxEntryBytes }, (e, cause) => evictions.push([e.key, cause]));
  return { s, evictions };
}

describe('AnswerStore', () => {
  it('bounds entries, evicting the least recently used', () => {
    const { s, evictions } = store(3, 1e9);
    for (const k of ['a', 'b', 'c']) s.set(entry(k), 0);
    assert.ok(s.get('a', 0), 'a is used, so b is now the oldest');
    s.set(entry('d'), 0);
    assert.equal(s.size, 3);
    assert.equal(s.peek('b'), undefined);
    assert.deepEqual(evictions, [['b', 'capacity']]);
  });

  it('bounds bytes', () => {
    const { s } = store(100, 3500);
    for (const k of ['a', 'b', 'c', 'd']) s.set(entry(k, 1000), 0);
    assert.equal(s.size, 3);
    assert.equal(s.bytes, 3000);
    s.set(entry('big', 2600), 0);
    assert.ok(s.bytes <= 3500);
    assert.ok(s.peek('big'));
  });

  it('refuses entries larger than the per-entry bound or already expired', () => {
    const { s } = store(100, 1e6, 500);
    assert.equal(s.set(entry('huge', 501), 0), false);
    assert.equal(s.set(entry('dead', 10, 5), 10), false);
    assert.equal(s.size, 0);
  });

  it('expires entries after their TTL, on sight and by sweep', () => {
    const { s, evictions } = store(100, 1e9);
    s.set(entry('a', 10, 100), 0);
    s.set(entry('b', 10, 200), 0);
    assert.ok(s.get('a', 99));
    assert.equal(s.get('a', 100), undefined);
    assert.equal(s.purgeExpired(250), 1);
    assert.equal(s.size, 0);
    assert.equal(s.bytes, 0);
    assert.deepEqual(evictions, [['a', 'expired'], ['b', 'expired']]);
  });

  it('replacing a key keeps the byte count exact', () => {
    const { s, evictions } = store(100, 1e9);
    s.set(entry('a', 100), 0);
    s.set(entry('a', 300), 0);
    assert.equal(s.size, 1);
    assert.equal(s.bytes, 300);
    assert.deepEqual(evictions, [['a', 'replaced']]);
  });
});

describe('cache records (IPC and Redis form)', () => {
  it('round-trips an entry with its vector bit for bit', () => {
    const vector = Float32Array.from([0.1, -0.2, 0.3, Math.PI]);
    const e: CacheEntry = { ...entry('k'), contextKey: 'ctx', text: 'Why is the sky blue?', vector, embedderId: 'use-lite@0.2.0' };
    const back = fromRecord(JSON.parse(JSON.stringify(toRecord(e))));
    assert.equal(back.key, 'k');
    assert.equal(back.text, 'Why is the sky blue?');
    assert.equal(back.embedderId, 'use-lite@0.2.0');
    assert.deepEqual([...back.vector!], [...vector]);
    assert.deepEqual(back.response, e.response);
  });

  it('refuses malformed records', () => {
    const good = toRecord(entry('k'));
    for (const bad of [null, 'x', { ...good, v: 2 }, { ...good, key: '' }, { ...good, response: { choices: 'no' } }, { ...good, vector: 'AAAA' }, { ...good, vector: 'AAA', embedderId: 'e' }]) {
      assert.throws(() => fromRecord(bad), InvalidRecordError);
    }
  });

  it('estimates bytes from the answer, the question and the vector', () => {
    const small = entryBytes(answer('hi'), undefined, undefined);
    const withAll = entryBytes(answer('hi'), 'question', new Float32Array(512));
    assert.equal(withAll - small, 'question'.length + 2048);
    assert.ok(entryBytes(answer('ж'.repeat(100)), undefined, undefined) > entryBytes(answer('e'.repeat(100)), undefined, undefined));
  });
});
