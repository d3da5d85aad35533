/**
 * The semantic layer's vector index: one `hnswlib-node` HNSW graph per namespace (scope + provider +
 * model), holding the embeddings of cached questions.
 *
 * - Within a namespace, a question only matches questions asked in the same context (the rest of
 *   the conversation and every answer-changing parameter, hashed into `contextKey`): the search is
 *   filtered to that context, and a context with few entries is scanned exactly rather than walked.
 * - Capacity is bounded per namespace and in namespaces; a full index evicts its least recently used
 *   entry, marks it deleted and gives its label (and graph slot) to the newcomer, so the graph never
 *   grows past its bound and never has to be rebuilt.
 * - Entries expire (TTL): expired labels are skipped by searches and freed as they are met.
 * - An index records the embedder and dimension that built it and refuses vectors from any other:
 *   distances between two embedders' vectors mean nothing.
 *
 * This class is synchronous and CPU-bound; the gateway runs it in the cache pool's index thread
 * (workers/cache-index.ts), never on a request thread.
 */

import { createRequire } from 'node:module';
import type { HierarchicalNSW as HnswType } from 'hnswlib-node';
import { clock } from '../clock.js';
import type { QuestionFeatures } from './question.js';
import type { QuestionVerifier, Verdict } from './verifier.js';

const require = createRequire(import.meta.url);
// hnswlib-node is CommonJS; a static ESM import of its named export is not portable across loaders.
const { HierarchicalNSW } = require('hnswlib-node') as typeof import('hnswlib-node');

export interface IndexSpec {
  /** Names the embedder (model and its version) whose vectors this index holds. */
  embedderId: string;
  dimensions: number;
  /** Entries per namespace. */
  maxEntries: number;
  /** Graph slots allocated when a namespace is created; doubled as needed up to `maxEntries`. */
  initialCapacity: number;
  /** HNSW: links per node. */
  m: number;
  /** HNSW: candidate list size while inserting. */
  efConstruction: number;
  /** HNSW: candidate list size while searching. */
  efSearch: number;
  /** A context with at most this many entries is scanned exactly instead of walking the graph. */
  exactScanBelow: number;
}

export const DEFAULT_INDEX_SPEC: Omit<IndexSpec, 'embedderId' | 'dimensions'> = {
  maxEntries: 10_000,
  initialCapacity: 256,
  m: 16,
  efConstruction: 100,
  efSearch: 64,
  exactScanBelow: 64,
};

/** A vector from another embedder or of another size than the index was built with. */
export class IndexMismatchError extends Error {
  readonly code = 'index_mismatch';
  constructor(message: string) {
    super(message);
    this.name = 'IndexMismatchError';
  }
}

export interface IndexItem {
  /** The exact-layer key of the cached answer this question leads to. */
  entryKey: string;
  /** Hash of everything that must match exactly for this question to be a candidate. */
  contextKey: string;
  /** The question text, kept for the verifier. */
  text: string;
  vector: ArrayLike<number>;
  /** Wall-clock ms after which the entry is dead. */
  expiresAtMs: number;
}

export interface VectorSource {
  embedderId: string;
  dimensions: number;
}

export interface SearchQuery {
  vector: ArrayLike<number>;
  contextKey: string;
  /** The question text; needed when a verifier is set. */
  text: string;
  /** Candidates to examine, best first. */
  k: number;
  /** Cosine similarity below which a candidate is not considered. */
  minScore: number;
  nowMs: number;
  /** The query's analysis, when the caller already has it. */
  features?: QuestionFeatures;
}

export interface Candidate {
  entryKey: string;
  /** Cosine similarity, 0..1. */
  score: number;
  /** The verifier's verdict; absent when no verifier is set. */
  verdict?: Verdict;
}

export interface SearchResult {
  /** The best candidate at or above `minScore` that the verifier accepted (or the best, without a verifier). */
  hit: Candidate | undefined;
  /** Every candidate at or above `minScore`, best first, with its verdict. */
  candidates: Candidate[];
  /** The best score seen, whether or not it passed: for metrics ("how close was the miss"). */
  bestScore: number;
}

const EMPTY_RESULT: SearchResult = { hit: undefined, candidates: [], bestScore: 0 };

function toArray(v: ArrayLike<number>): number[] {
  return Array.isArray(v) ? (v as number[]) : Array.from(v);
}

function norm(v: readonly number[]): number {
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s);
}

/** The index of one namespace. */
export class NamespaceIndex {
  private readonly hnsw: HnswType;
  private capacity: number;
  /** Next never-used label; labels below it are live or in `free`. */
  private nextLabel = 0;
  private readonly free: number[] = [];
  private readonly entryKeys: (string | undefined)[] = [];
  private readonly contextKeys: (string | undefined)[] = [];
  private readonly expires: number[] = [];
  private readonly features: (QuestionFeatures | undefined)[] = [];
  private readonly byEntry = new Map<string, number>();
  private readonly byContext = new Map<string, Set<number>>();
  /** Live labels, least recently used first (a Map keeps insertion order). */
  private readonly recency = new Map<number, true>();

  constructor(
    private readonly spec: IndexSpec,
    private readonly verifier: QuestionVerifier | undefined,
  ) {
    this.hnsw = new HierarchicalNSW('cosine', spec.dimensions);
    this.capacity = Math.max(1, Math.min(spec.initialCapacity, spec.maxEntries));
    this.hnsw.initIndex({ maxElements: this.capacity, m: spec.m, efConstruction: spec.efConstruction, randomSeed: 100 });
    this.hnsw.setEf(spec.efSearch);
  }

  get size(): number {
    return this.recency.size;
  }

  /** Graph slots allocated. */
  get allocated(): number {
    return this.capacity;
  }

  /** Labels freed by deletion and waiting for reuse. */
  get reusable(): number {
    return this.free.length;
  }

  labelOf(entryKey: string): number | undefined {
    return this.byEntry.get(entryKey);
  }

  /** Adds (or replaces) an entry; returns its label. */
  add(item: IndexItem, nowMs: number = clock.wallMs()): number {
    if (item.vector.length !== this.spec.dimensions) {
      throw new IndexMismatchError(`vector has ${item.vector.length} dimensions, the index ${this.spec.dimensions}`);
    }
    const vector = toArray(item.vector);
    if (!(norm(vector) > 0)) throw new IndexMismatchError('vector has zero length');
    const existing = this.byEntry.get(item.entryKey);
    if (existing !== undefined) this.removeLabel(existing);
    const label = this.takeLabel(nowMs);
    // A reused label is still in the graph, marked deleted: addPoint updates it in place and
    // unmarks it, which re-links its neighbours to the new vector.
    this.hnsw.addPoint(vector, label);
    this.entryKeys[label] = item.entryKey;
    this.contextKeys[label] = item.contextKey;
    this.expires[label] = item.expiresAtMs;
    this.features[label] = this.verifier?.analyze(item.text);
    this.byEntry.set(item.entryKey, label);
    let group = this.byContext.get(item.contextKey);
    if (group === undefined) this.byContext.set(item.contextKey, (group = new Set()));
    group.add(label);
    this.recency.set(label, true);
    return label;
  }

  remove(entryKey: string): boolean {
    const label = this.byEntry.get(entryKey);
    if (label === undefined) return false;
    this.removeLabel(label);
    return true;
  }

  /** Frees every expired entry; returns how many. */
  purgeExpired(nowMs: number): number {
    let n = 0;
    for (const label of [...this.recency.keys()]) {
      if (this.expires[label]! <= nowMs) {
        this.removeLabel(label);
        n++;
      }
    }
    return n;
  }

  search(q: SearchQuery): SearchResult {
    if (q.vector.length !== this.spec.dimensions) {
      throw new IndexMismatchError(`query has ${q.vector.length} dimensions, the index ${this.spec.dimensions}`);
    }
    const group = this.byContext.get(q.contextKey);
    if (group === undefined || group.size === 0) return EMPTY_RESULT;
    const query = toArray(q.vector);
    const scored = group.size <= this.spec.exactScanBelow ? this.scan(query, group) : this.walk(query, q.contextKey, group, q.k);
    scored.sort((x, y) => y.score - x.score);

    const candidates: Candidate[] = [];
    let hit: Candidate | undefined;
    let bestScore = 0;
    let queryFeatures = q.features;
    for (const { label, score } of scored) {
      if (this.expires[label]! <= q.nowMs) {
        this.removeLabel(label);
        continue;
      }
      if (score > bestScore) bestScore = score;
      if (score < q.minScore || candidates.length >= q.k) continue;
      const candidate: Candidate = { entryKey: this.entryKeys[label]!, score };
      if (this.verifier !== undefined) {
        queryFeatures ??= this.verifier.analyze(q.text);
        candidate.verdict = this.verifier.compare(queryFeatures, this.features[label]!);
        if (candidate.verdict.ok && hit === undefined) hit = candidate;
      } else hit ??= candidate;
      candidates.push(candidate);
    }
    if (hit !== undefined) {
      const label = this.byEntry.get(hit.entryKey)!;
      this.recency.delete(label);
      this.recency.set(label, true);
    }
    return { hit, candidates, bestScore };
  }

  /** Exact cosine against each entry of a small context. */
  private scan(query: number[], group: ReadonlySet<number>): { label: number; score: number }[] {
    const qn = norm(query);
    const out: { label: number; score: number }[] = [];
    for (const label of group) {
      // Stored points are normalised (cosine space), so one norm is enough.
      const p = this.hnsw.getPoint(label);
      let dot = 0;
      for (let i = 0; i < p.length; i++) dot += p[i]! * query[i]!;
      out.push({ label, score: dot / qn });
    }
    return out;
  }

  private walk(query: number[], contextKey: string, group: ReadonlySet<number>, k: number): { label: number; score: number }[] {
    const n = Math.min(k, group.size);
    const filter = group.size === this.recency.size ? undefined : (label: number) => this.contextKeys[label] === contextKey;
    const { distances, neighbors } = filter ? this.hnsw.searchKnn(query, n, filter) : this.hnsw.searchKnn(query, n);
    return neighbors.map((label, i) => ({ label, score: 1 - distances[i]! }));
  }

  private takeLabel(nowMs: number): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.nextLabel < this.capacity) return this.nextLabel++;
    if (this.capacity < this.spec.maxEntries) {
      this.capacity = Math.min(this.capacity * 2, this.spec.maxEntries);
      this.hnsw.resizeIndex(this.capacity);
      return this.nextLabel++;
    }
    // Full: the dead go first, then the least recently used.
    if (this.purgeExpired(nowMs) === 0) this.removeLabel(this.recency.keys().next().value!);
    return this.free.pop()!;
  }

  private removeLabel(label: number): void {
    const entryKey = this.entryKeys[label];
    if (entryKey === undefined) return;
    this.hnsw.markDelete(label);
    this.byEntry.delete(entryKey);
    const contextKey = this.contextKeys[label]!;
    const group = this.byContext.get(contextKey);
    group?.delete(label);
    if (group?.size === 0) this.byContext.delete(contextKey);
    this.entryKeys[label] = undefined;
    this.contextKeys[label] = undefined;
    this.features[label] = undefined;
    this.recency.delete(label);
    this.free.push(label);
  }
}

export interface IndexSetStats {
  namespaces: number;
  entries: number;
  allocated: number;
}

/** Every namespace's index, bounded in namespaces (least recently used dropped first). */
export class SemanticIndexSet {
  private readonly indexes = new Map<string, NamespaceIndex>();

  constructor(
    readonly spec: IndexSpec,
    private readonly maxNamespaces: number,
    private readonly verifier: QuestionVerifier | undefined,
  ) {}

  /** Throws unless vectors from `source` may go into (or be searched against) these indexes. */
  check(source: VectorSource): void {
    if (source.embedderId !== this.spec.embedderId || source.dimensions !== this.spec.dimensions) {
      throw new IndexMismatchError(
        `index built by ${this.spec.embedderId} (${this.spec.dimensions} dimensions) refuses vectors from ${source.embedderId} (${source.dimensions})`,
      );
    }
  }

  add(namespace: string, source: VectorSource, item: IndexItem, nowMs: number = clock.wallMs()): number {
    this.check(source);
    let index = this.indexes.get(namespace);
    if (index === undefined) {
      index = new NamespaceIndex(this.spec, this.verifier);
      this.indexes.set(namespace, index);
      if (this.indexes.size > this.maxNamespaces) this.indexes.delete(this.indexes.keys().next().value!);
    } else this.touch(namespace, index);
    return index.add(item, nowMs);
  }

  remove(namespace: string, entryKey: string): boolean {
    return this.indexes.get(namespace)?.remove(entryKey) ?? false;
  }

  search(namespace: string, source: VectorSource, query: SearchQuery): SearchResult {
    this.check(source);
    const index = this.indexes.get(namespace);
    if (index === undefined) return EMPTY_RESULT;
    this.touch(namespace, index);
    return index.search(query);
  }

  namespace(namespace: string): NamespaceIndex | undefined {
    return this.indexes.get(namespace);
  }

  purgeExpired(nowMs: number): number {
    let n = 0;
    for (const index of this.indexes.values()) n += index.purgeExpired(nowMs);
    return n;
  }

  clear(): void {
    this.indexes.clear();
  }

  stats(): IndexSetStats {
    let entries = 0;
    let allocated = 0;
    for (const index of this.indexes.values()) {
      entries += index.size;
      allocated += index.allocated;
    }
    return { namespaces: this.indexes.size, entries, allocated };
  }

  private touch(namespace: string, index: NamespaceIndex): void {
    this.indexes.delete(namespace);
    this.indexes.set(namespace, index);
  }
}
