import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { DEFAULT_INDEX_SPEC, IndexMismatchError, type IndexSpec, NamespaceIndex, SemanticIndexSet } from '../../src/cache/semantic-index.js';
import { QuestionVerifier } from '../../src/cache/verifier.js';
import { unitVector } from './helpers.js';

const DIM = 16;
const spec = (over: Partial<IndexSpec> = {}): IndexSpec => ({ ...DEFAULT_INDEX_SPEC, embedderId: 'test-embedder', dimensions: DIM, ...over });
const source = { embedderId: 'test-embedder', dimensions: DIM };
const FAR = Number.MAX_SAFE_INTEGER;

function item(key: string, axis: number, contextKey = 'ctx', text = key, expiresAtMs = FAR) {
  return { entryKey: key, contextKey, text, vector: unitVector(DIM, axis), expiresAtMs };
}

function query(axis: number, contextKey = 'ctx', extra: { text?: string; minScore?: number; k?: number; nowMs?: number; wobble?: number } = {}) {
  return { vector: unitVector(DIM, axis, extra.wobble ?? 0.05), contextKey, text: extra.text ?? '', k: extra.k ?? 4, minScore: extra.minScore ?? 0.9, nowMs: extra.nowMs ?? 0 };
}

describe('NamespaceIndex', () => {
  it('finds the nearest question of the same context, above the threshold', () => {
    const idx = new NamespaceIndex(spec(), undefined);
    idx.add(item('a', 0));
    idx.add(item('b', 3));
    idx.add(item('c', 0, 'other-context'));
    const r = idx.search(query(0));
    assert.equal(r.hit?.entryKey, 'a');
    assert.ok(r.hit!.score > 0.99);
    assert.deepEqual(r.candidates.map((c) => c.entryKey), ['a'], 'the other context is never a candidate');
    assert.equal(idx.search(query(7)).hit, undefined, 'nothing near enough');
    assert.equal(idx.search(query(0, 'unknown')).hit, undefined);
  });

  it('filters by context on the HNSW walk too (contexts larger than the exact-scan bound)', () => {
    const idx = new NamespaceIndex(spec({ exactScanBelow: 2, maxEntries: 64, initialCapacity: 8 }), undefined);
    for (let i = 0; i < 12; i++) idx.add(item(`x${i}`, i % DIM, 'x'));
    for (let i = 0; i < 12; i++) idx.add(item(`y${i}`, i % DIM, 'y'));
    const r = idx.search(query(5, 'y'));
    assert.equal(r.hit?.entryKey, 'y5');
    assert.ok(r.candidates.every((c) => c.entryKey.startsWith('y')));
    assert.ok(idx.allocated >= 24, 'grew by resizing');
  });

  it('runs the verifier on each candidate and serves the first that passes', () => {
    const idx = new NamespaceIndex(spec(), new QuestionVerifier());
    idx.add(item('403', 0, 'ctx', 'What does HTTP status code 403 mean?'));
    idx.add({ ...item('404', 0, 'ctx', 'What does HTTP status code 404 mean?'), vector: unitVector(DIM, 0, 0.2) });
    const r = idx.search(query(0, 'ctx', { text: 'What does HTTP status code 404 mean?', minScore: 0.8 }));
    assert.equal(r.candidates[0]!.entryKey, '403', 'the nearer vector is the wrong question');
    assert.equal(r.candidates[0]!.verdict?.ok, false);
    assert.equal(r.hit?.entryKey, '404');
  });

  it('at capacity: evicts the least recently used, marks it deleted and reuses its label', () => {
    const idx = new NamespaceIndex(spec({ maxEntries: 4, initialCapacity: 4 }), undefined);
    const labels = ['a', 'b', 'c', 'd'].map((k, i) => idx.add(item(k, i)));
    assert.deepEqual(labels, [0, 1, 2, 3]);
    assert.equal(idx.search(query(0)).hit?.entryKey, 'a', 'a used: b is now the least recent');
    const label = idx.add(item('e', 5));
    assert.equal(label, labels[1], "e takes b's label");
    assert.equal(idx.size, 4);
    assert.equal(idx.allocated, 4, 'the graph did not grow');
    assert.equal(idx.labelOf('b'), undefined);
    assert.equal(idx.search(query(1)).hit, undefined, 'b is gone');
    assert.equal(idx.search(query(5)).hit?.entryKey, 'e');
  });

  it('removed entries free their label for the next insert', () => {
    const idx = new NamespaceIndex(spec({ maxEntries: 8, initialCapacity: 8 }), undefined);
    idx.add(item('a', 0));
    const b = idx.add(item('b', 1));
    assert.ok(idx.remove('b'));
    assert.equal(idx.reusable, 1);
    assert.equal(idx.add(item('c', 2)), b);
    assert.equal(idx.reusable, 0);
    assert.equal(idx.search(query(1)).hit, undefined);
    assert.equal(idx.search(query(2)).hit?.entryKey, 'c');
  });

  it('re-adding an entry key replaces it', () => {
    const idx = new NamespaceIndex(spec(), undefined);
    idx.add(item('a', 0));
    idx.add(item('a', 4));
    assert.equal(idx.size, 1);
    assert.equal(idx.search(query(0)).hit, undefined);
    assert.equal(idx.search(query(4)).hit?.entryKey, 'a');
  });

  it('skips and frees expired entries (TTL)', () => {
    const idx = new NamespaceIndex(spec(), undefined);
    idx.add(item('old', 0, 'ctx', 'old', 1_000));
    idx.add(item('new', 3, 'ctx', 'new', 10_000));
    assert.equal(idx.search(query(0, 'ctx', { nowMs: 999 })).hit?.entryKey, 'old');
    assert.equal(idx.search(query(0, 'ctx', { nowMs: 1_000 })).hit, undefined);
    assert.equal(idx.size, 1);
    assert.equal(idx.purgeExpired(20_000), 1);
    assert.equal(idx.size, 0);
  });

  it('refuses vectors of another dimension', () => {
    const idx = new NamespaceIndex(spec(), undefined);
    assert.throws(() => idx.add({ ...item('a', 0), vector: new Float32Array(DIM + 1).fill(1) }), IndexMismatchError);
    assert.throws(() => idx.add({ ...item('a', 0), vector: new Float32Array(DIM) }), IndexMismatchError);
    assert.throws(() => idx.search({ ...query(0), vector: new Float32Array(8).fill(1) }), IndexMismatchError);
  });
});

describe('SemanticIndexSet', () => {
  it('keeps namespaces apart', () => {
    const set = new SemanticIndexSet(spec(), 10, undefined);
    set.add('alice', source, item('a', 0));
    assert.equal(set.search('alice', source, query(0)).hit?.entryKey, 'a');
    assert.equal(set.search('bob', source, query(0)).hit, undefined);
  });

  it('refuses vectors from another embedder or of another dimension', () => {
    const set = new SemanticIndexSet(spec(), 10, undefined);
    assert.throws(() => set.add('ns', { embedderId: 'openai:text-embedding-3-small', dimensions: DIM }, item('a', 0)), IndexMismatchError);
    assert.throws(() => set.add('ns', { embedderId: 'test-embedder', dimensions: 384 }, item('a', 0)), IndexMismatchError);
    assert.throws(() => set.search('ns', { embedderId: 'other', dimensions: DIM }, query(0)), /refuses vectors from other/);
    assert.equal(set.stats().entries, 0);
  });

  it('drops the least recently used namespace beyond its bound', () => {
    const set = new SemanticIndexSet(spec(), 2, undefined);
    set.add('n1', source, item('a', 0));
    set.add('n2', source, item('b', 1));
    set.search('n1', source, query(0));
    set.add('n3', source, item('c', 2));
    assert.equal(set.namespace('n2'), undefined);
    assert.ok(set.namespace('n1'));
    assert.deepEqual(set.stats(), { namespaces: 2, entries: 2, allocated: 2 * DEFAULT_INDEX_SPEC.initialCapacity });
  });
});
