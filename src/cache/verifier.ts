/**
 * The semantic layer's second stage: given two questions whose embeddings are close, decide whether
 * they ask the same thing. Embeddings score one swapped word ("404" → "403", "soft" → "hard",
 * "string to integer" → "integer to string") higher than many true paraphrases, so a threshold
 * alone serves wrong answers; this stage rejects a candidate whenever a meaning-bearing part differs.
 *
 * It is deliberately one-sided: every check can only reject. A pair passes when nothing differs
 * that the lexicon cannot explain (a synonym, a typo, a reordering of whole phrases). Pure and
 * synchronous; about 10–30 µs per pair with the candidate analysed in advance.
 */

import { type LexiconExtension, Lexicon, type QuestionFeatures, analyzeQuestion } from './question.js';

export type RejectReason =
  | 'numbers'
  | 'negation'
  | 'question_word'
  | 'entities'
  | 'antonym'
  | 'substitution'
  | 'added_term'
  | 'order';

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly reason: RejectReason; readonly detail: string };

/** Which checks run; all on by default. */
export interface VerifierChecks {
  /** Numbers must be the same (404 ≠ 403, 2 eggs ≠ 3 eggs, "two" = 2). */
  numbers: boolean;
  /** The same count of negations (not, never, without, unsafe …). */
  negation: boolean;
  /** The same kind of question where both say (why ≠ when ≠ where ≠ who ≠ how ≠ how many). */
  questionWords: boolean;
  /** Named things (capitalised words, acronyms, product-like tokens) of each must appear in the other. */
  entities: boolean;
  /** No word replaced by its opposite (maximum/minimum, upload/download, in/out). */
  antonyms: boolean;
  /** No content word replaced, added or dropped, unless a synonym or a typo of the other. */
  substitution: boolean;
  /** Shared key terms in the same order, up to moving one whole phrase ("in Python, …"). */
  order: boolean;
}

export const ALL_CHECKS: VerifierChecks = {
  numbers: true,
  negation: true,
  questionWords: true,
  entities: true,
  antonyms: true,
  substitution: true,
  order: true,
};

const OK: Verdict = { ok: true };

function reject(reason: RejectReason, detail: string): Verdict {
  return { ok: false, reason, detail };
}

/** One-edit typo (a letter dropped, added, or two swapped) between long words; never a letter replaced. */
export function isTypoOf(a: string, b: string): boolean {
  if (a.length < 7 || b.length < 7 || a === b) return false;
  if (Math.abs(a.length - b.length) > 1) return false;
  if (a.length === b.length) {
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    return i < a.length - 1 && a[i] === b[i + 1] && a[i + 1] === b[i] && a.slice(i + 2) === b.slice(i + 2);
  }
  const [long, short] = a.length > b.length ? [a, b] : [b, a];
  let i = 0;
  while (i < short.length && long[i] === short[i]) i++;
  return long.slice(i + 1) === short.slice(i);
}

/** Keeps, in order, the first min(countA, countB) occurrences of each key term. */
function sharedSequence(seq: readonly string[], other: readonly string[]): string[] {
  const budget = new Map<string, number>();
  for (const t of other) budget.set(t, (budget.get(t) ?? 0) + 1);
  const mine = new Map<string, number>();
  for (const t of seq) mine.set(t, (mine.get(t) ?? 0) + 1);
  const out: string[] = [];
  const used = new Map<string, number>();
  for (const t of seq) {
    const limit = Math.min(budget.get(t) ?? 0, mine.get(t) ?? 0);
    const n = used.get(t) ?? 0;
    if (n < limit) {
      out.push(t);
      used.set(t, n + 1);
    }
  }
  return out;
}

/**
 * True when `b` is `a` with at most one contiguous block moved: after the common prefix and
 * suffix, one middle must be a rotation of the other. "reverse list in python" → "in python
 * reverse list" is one move; "string to integer" → "integer to string" is not.
 */
export function isOneBlockMove(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  let start = 0;
  while (start < a.length && a[start] === b[start]) start++;
  if (start === a.length) return true;
  let end = a.length;
  while (end > start && a[end - 1] === b[end - 1]) end--;
  const ma = a.slice(start, end);
  const mb = b.slice(start, end);
  const n = ma.length;
  for (let k = 1; k < n; k++) {
    let same = true;
    for (let i = 0; i < n && same; i++) if (ma[(i + k) % n] !== mb[i]) same = false;
    if (same) return true;
  }
  return false;
}

export interface VerifierOptions {
  checks?: Partial<VerifierChecks>;
  lexicon?: LexiconExtension;
}

export class QuestionVerifier {
  readonly checks: VerifierChecks;
  private readonly lexicon: Lexicon;

  constructor(options: VerifierOptions = {}) {
    this.checks = { ...ALL_CHECKS, ...options.checks };
    this.lexicon = new Lexicon(options.lexicon);
  }

  analyze(text: string): QuestionFeatures {
    return analyzeQuestion(text, this.lexicon);
  }

  verify(query: string, candidate: string): Verdict {
    return this.compare(this.analyze(query), this.analyze(candidate));
  }

  compare(a: QuestionFeatures, b: QuestionFeatures): Verdict {
    const c = this.checks;
    if (c.numbers && a.numbers.join(' ') !== b.numbers.join(' ')) {
      return reject('numbers', `[${a.numbers.join(', ')}] vs [${b.numbers.join(', ')}]`);
    }
    if (c.negation && a.negations !== b.negations) return reject('negation', `${a.negations} vs ${b.negations}`);
    if (c.questionWords && a.questionClass !== undefined && b.questionClass !== undefined && a.questionClass !== b.questionClass) {
      return reject('question_word', `${a.questionClass} vs ${b.questionClass}`);
    }
    if (c.entities) {
      const missing = missingEntity(a, b) ?? missingEntity(b, a);
      if (missing !== undefined) return reject('entities', missing);
    }
    if (c.antonyms) {
      const ba = bases(a);
      const bb = bases(b);
      for (const [x, y] of this.lexicon.antonyms) {
        if ((only(ba, bb, x) && only(bb, ba, y)) || (only(ba, bb, y) && only(bb, ba, x))) return reject('antonym', `${x} / ${y}`);
      }
    }
    if (c.substitution) {
      const verdict = compareTerms(a, b);
      if (!verdict.ok) return verdict;
    }
    if (c.order) {
      const sa = sharedSequence(a.keyTerms, b.keyTerms);
      const sb = sharedSequence(b.keyTerms, a.keyTerms);
      if (!isOneBlockMove(sa, sb)) return reject('order', `${sa.join(' ')} | ${sb.join(' ')}`);
      // Two terms swapped around a question word that changed from subject to object: "what does
      // a lion hunt" / "what hunts a lion" is one block move, but asks the reverse.
      if (
        a.subjectQuestion !== undefined &&
        b.subjectQuestion !== undefined &&
        a.subjectQuestion !== b.subjectQuestion &&
        sa.join(' ') !== sb.join(' ')
      ) {
        return reject('order', `subject/object: ${sa.join(' ')} | ${sb.join(' ')}`);
      }
    }
    return OK;
  }
}

function missingEntity(a: QuestionFeatures, b: QuestionFeatures): string | undefined {
  for (const e of a.entities) {
    for (const part of e.split(' ')) if (!b.tokens.has(part)) return e;
  }
  return undefined;
}

const basesCache = new WeakMap<QuestionFeatures, Set<string>>();

/** Content terms without degree marks, plus every token: what antonym pairs are looked up in. */
function bases(f: QuestionFeatures): Set<string> {
  let s = basesCache.get(f);
  if (s === undefined) {
    s = new Set(f.tokens);
    for (const t of f.terms) {
      const tilde = t.indexOf('~');
      s.add(tilde < 0 ? t : t.slice(0, tilde));
    }
    basesCache.set(f, s);
  }
  return s;
}

function only(mine: ReadonlySet<string>, theirs: ReadonlySet<string>, word: string): boolean {
  return mine.has(word) && !theirs.has(word);
}

function compareTerms(a: QuestionFeatures, b: QuestionFeatures): Verdict {
  const setB = new Set(b.terms);
  const setA = new Set(a.terms);
  const onlyA: number[] = [];
  const onlyB: number[] = [];
  a.terms.forEach((t, i) => {
    if (!setB.has(t) && !onlyA.some((j) => a.terms[j] === t)) onlyA.push(i);
  });
  b.terms.forEach((t, i) => {
    if (!setA.has(t) && !onlyB.some((j) => b.terms[j] === t)) onlyB.push(i);
  });
  // A typo on one side explains one difference on each side.
  for (let x = onlyA.length - 1; x >= 0; x--) {
    const wa = a.words[onlyA[x]!]!;
    const y = onlyB.findIndex((j) => isTypoOf(wa, b.words[j]!));
    if (y >= 0) {
      onlyA.splice(x, 1);
      onlyB.splice(y, 1);
    }
  }
  if (onlyA.length > 0 && onlyB.length > 0) return reject('substitution', `${a.words[onlyA[0]!]} → ${b.words[onlyB[0]!]}`);
  if (onlyA.length > 0) return reject('added_term', a.words[onlyA[0]!]!);
  if (onlyB.length > 0) return reject('added_term', b.words[onlyB[0]!]!);
  return OK;
}
