/**
 * What the verifier needs to know about a question, computed once per text: its content terms in
 * order, numbers, named things, negations, the kind of answer it asks for. A cached question is
 * analysed when it is stored, so a lookup analyses only the incoming one.
 */

import {
  ALIASES,
  ANTONYMS,
  CONNECTORS,
  GRADABLE_ADJECTIVES,
  HOW_QUANTITY,
  IRREGULAR_DEGREES,
  IRREGULAR_FORMS,
  NEGATIONS,
  NUMBER_MULTIPLIERS,
  NUMBER_WORDS,
  PREFIX_NEGATIONS,
  QUESTION_CLASSES,
  STOPWORDS,
  SYNONYMS,
} from './lexicon.js';
import { stem } from './stem.js';

export interface QuestionFeatures {
  /** Content terms in order: stemmed, synonyms folded, `~cmp`/`~sup` marking degree. */
  readonly terms: readonly string[];
  /** The raw lower-case word behind each term (for typo tolerance). */
  readonly words: readonly string[];
  /** Content terms, numbers (`#404`) and connectors (`>to`) in order: the key-term sequence. */
  readonly keyTerms: readonly string[];
  /** Numbers, normalised ("1,000" → "1000", "two" → "2"), sorted. */
  readonly numbers: readonly string[];
  /** Named things (capitalised, acronyms, product-like tokens), as keys of `tokens`. */
  readonly entities: readonly string[];
  /** Every token, stemmed, stopwords and particles included. */
  readonly tokens: ReadonlySet<string>;
  /** Words that negate. */
  readonly negations: number;
  /** The first question word that fixes the kind of answer: why, when, where, who, how, how-much. */
  readonly questionClass: string | undefined;
  /**
   * After the first what/who/which: true when a content word follows at once ("what eats spiders",
   * the question word is the subject), false when an auxiliary does ("what do spiders eat");
   * undefined without such a word or in a passive ("… by whom").
   */
  readonly subjectQuestion: boolean | undefined;
}

/** Extra words from config, merged into the built-in lists. */
export interface LexiconExtension {
  synonyms?: readonly (readonly string[])[];
  antonyms?: readonly (readonly [string, string])[];
}

// ---------------------------------------------------------------------------------------------
// Rewrites applied to the text before tokenising: contractions and question frames that say the
// same thing in different words ("what's the best way to" = "how do I" = "how to").

type Rewrite = readonly [RegExp, string];

const REWRITES: readonly Rewrite[] = [
  [/[‘’´`]/g, "'"],
  [/[“”]/g, '"'],
  [/\bcan'?t\b/gi, 'can not'],
  [/\bcannot\b/gi, 'can not'],
  [/\bwon'?t\b/gi, 'will not'],
  [/\bshan't\b/gi, 'shall not'],
  [/\b(\w+)n't\b/gi, '$1 not'],
  [/\b(do|does|did|is|are|was|were|could|should|would|have|has|had)nt\b/gi, '$1 not'],
  [/\b(what|where|who|how|when|why|it|that|there|here|he|she)'s\b/gi, '$1 is'],
  [/\blet's\b/gi, 'let us'],
  [/\bi'm\b/gi, 'i am'],
  [/\b(\w+)'re\b/gi, '$1 are'],
  [/\b(\w+)'ve\b/gi, '$1 have'],
  [/\b(\w+)'ll\b/gi, '$1 will'],
  [/\b(\w+)'d\b/gi, '$1 would'],
  [/(\w)'s\b/g, '$1'],
  [/(\w)s'(?=\s|$|[,.?!])/g, '$1s'],
  [/\bwhats\b/gi, 'what is'],
  // Phrasal verbs whose particle carries the meaning.
  [/\bget rid of\b/gi, 'remove'],
  [/\b(?:turn|switch) on\b/gi, 'enable'],
  [/\b(?:turn|switch) off\b/gi, 'disable'],
  [/\b(?:log|sign) ?(?:in|into|on)\b/gi, 'login'],
  [/\b(?:log|sign) ?(?:out|off)\b/gi, 'logout'],
  [/\bsign ?up\b/gi, 'register'],
  [/\bset ?up\b/gi, 'setup'],
  [/\be-mail\b/gi, 'email'],
  [/\bper ?cent\b/gi, 'percent'],
  [/\bsquared\b/gi, '^2'],
  [/\bcubed\b/gi, '^3'],
  [/\bhow come\b/gi, 'why'],
  [/\bwhat (?:time|year|date)\b(?! zone)/gi, 'when'],
  // Question frames.
  [
    /\b(?:what|which) (?:is|are|was|were) (?:the |a |an |some )?(?:best |easiest |simplest |right |proper |correct |recommended |preferred |standard |usual |good |simple |easy |normal )?(?:way|ways|method|methods|steps|procedure) (?:to|for|of)\b/gi,
    'how to',
  ],
  [/\bis there (?:a|any) (?:simple |easy |good |quick |proper )?(?:way|method) (?:to|for|of)\b/gi, 'how to'],
  [/\bhow (?:do|can|could|should|would|might|must|may|will|shall) (?:i|you|we|one)\b/gi, 'how to'],
  [/\bwhat (?:do|can|should|could|would|must) (?:i|you|we|one) do to\b/gi, 'how to'],
  [/\bhow to to\b/gi, 'how to'],
  // Politeness and preambles.
  [/\b(?:can|could|would|will) you (?:please )?(?:tell|show|explain to|let) me\b/gi, ''],
  [/\b(?:can|could|would|will) you (?:please )?(?:explain|describe|define)\b/gi, ''],
  [/\bi (?:would |am |do )?(?:like|want|need|wish) to know\b/gi, ''],
  [/\bi (?:was|am) wondering\b/gi, ''],
  [/\bjust curious\b/gi, ''],
  [/\bquick question\b/gi, ''],
  [/\bthanks? (?:you )?in advance\b/gi, ''],
  [/\bhi there\b/gi, ''],
  // Imperatives that open a question ("Explain recursion." = "What is recursion?").
  [/(^|[.!?:;]\s+)(?:please\s+)?(?:explain|describe|define|summarize|summarise|list|name|give me|tell me(?: about)?|show me|teach me)\b/gi, '$1'],
];

// ---------------------------------------------------------------------------------------------
// Word tables, built once.

const STOP = new Set(STOPWORDS);
const CONNECTOR = new Set(CONNECTORS);
const NEGATION = new Set(NEGATIONS);

/** Comparative/superlative → [base, degree]. */
const DEGREES = new Map<string, readonly [string, 'cmp' | 'sup']>();
for (const adj of GRADABLE_ADJECTIVES) {
  let cmp: string;
  let sup: string;
  if (adj.endsWith('e')) {
    cmp = adj + 'r';
    sup = adj + 'st';
  } else if (/[^aeiou]y$/.test(adj)) {
    cmp = adj.slice(0, -1) + 'ier';
    sup = adj.slice(0, -1) + 'iest';
  } else if (adj.length <= 4 && /[^aeiou][aeiou][^aeiouwxy]$/.test(adj)) {
    cmp = adj + adj.at(-1) + 'er';
    sup = adj + adj.at(-1) + 'est';
  } else {
    cmp = adj + 'er';
    sup = adj + 'est';
  }
  if (!(cmp in IRREGULAR_FORMS)) DEGREES.set(cmp, [adj, 'cmp']);
  if (!(sup in IRREGULAR_FORMS)) DEGREES.set(sup, [adj, 'sup']);
}
for (const [form, value] of Object.entries(IRREGULAR_DEGREES)) DEGREES.set(form, value);

function baseForm(word: string): string {
  return IRREGULAR_FORMS[word] ?? word;
}

/** A lexicon: synonym map (stem → group name) and antonym pairs over group names. */
export class Lexicon {
  private readonly synonyms = new Map<string, string>();
  readonly antonyms: readonly (readonly [string, string])[];

  constructor(extension: LexiconExtension = {}) {
    for (const group of [...SYNONYMS, ...(extension.synonyms ?? [])]) {
      const head = this.plainTerm(group[0]!);
      for (const w of group) this.synonyms.set(stem(baseForm(w.toLowerCase())), head);
    }
    const pairs: (readonly [string, string])[] = [];
    for (const [a, b] of [...ANTONYMS, ...(extension.antonyms ?? [])]) pairs.push([this.base(a), this.base(b)]);
    this.antonyms = pairs;
  }

  private plainTerm(word: string): string {
    return stem(baseForm(word.toLowerCase()));
  }

  /** The canonical term of a content word (lower case, alias already applied). */
  term(word: string, literal = false): string {
    // An acronym keeps its letters: HTTPS is not the plural of HTTP.
    if (literal) return this.synonyms.get(word) ?? word;
    const degree = DEGREES.get(word);
    const base = degree ? degree[0] : baseForm(word);
    const s = stem(base);
    const canonical = this.synonyms.get(s) ?? s;
    return degree ? `${canonical}~${degree[1]}` : canonical;
  }

  /** A word's term without its degree mark: what antonym pairs compare. */
  base(word: string): string {
    const t = this.term(word.toLowerCase());
    const tilde = t.indexOf('~');
    return tilde < 0 ? t : t.slice(0, tilde);
  }
}

// ---------------------------------------------------------------------------------------------

interface RawToken {
  text: string;
  /** First token of a sentence (its capital says nothing). */
  initial: boolean;
}

const TOKEN = /[\p{L}\p{N}_]+(?:[.+#'][\p{L}\p{N}_]+)*[+#]*|%/gu;

function tokenize(text: string): RawToken[] {
  const out: RawToken[] = [];
  let sentenceStart = true;
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    if (/[.!?;:]/.test(text.slice(last, m.index))) sentenceStart = true;
    out.push({ text: m[0], initial: sentenceStart });
    sentenceStart = false;
    last = m.index + m[0].length;
  }
  return out;
}

function isNumeric(s: string): boolean {
  return /^\d[\d,]*(?:\.\d+)*$/.test(s);
}

function normalizeNumber(s: string): string {
  if (/^\d{1,3}(?:,\d{3})+$/.test(s)) return String(Number(s.replace(/,/g, '')));
  if (/^\d+(?:\.\d+)?$/.test(s)) return String(Number(s));
  return s;
}

function isAllCaps(s: string): boolean {
  return /^[\p{Lu}\p{N}]+$/u.test(s) && /\p{Lu}.*\p{Lu}/u.test(s);
}

function hasInnerCapital(s: string): boolean {
  return /\p{Ll}\p{Lu}/u.test(s);
}

export function analyzeQuestion(text: string, lexicon: Lexicon): QuestionFeatures {
  let t = text.normalize('NFKC');
  for (const [re, to] of REWRITES) t = t.replace(re, to);
  const raw = tokenize(t);

  // A text in capitals (or without any) says nothing through case.
  let alpha = 0;
  let caps = 0;
  for (const r of raw) {
    if (/\p{L}/u.test(r.text)) {
      alpha++;
      if (isAllCaps(r.text)) caps++;
    }
  }
  const shouting = alpha > 0 && caps / alpha >= 0.6;

  const terms: string[] = [];
  const words: string[] = [];
  const keyTerms: string[] = [];
  const numbers: string[] = [];
  const entities: string[] = [];
  const tokens = new Set<string>();
  let negations = 0;
  let questionClass: string | undefined;
  let subjectQuestion: boolean | undefined;
  let passive = false;

  // Number words combine ("two hundred fifty" = 250); `current`/`total` hold the one being read.
  let reading = false;
  let total = 0;
  let current = 0;
  const flushNumber = (): void => {
    if (!reading) return;
    const value = String(total + current);
    numbers.push(value);
    keyTerms.push(`#${value}`);
    reading = false;
    total = 0;
    current = 0;
  };
  const readNumberWord = (word: string): void => {
    const v = NUMBER_WORDS[word]!;
    if (NUMBER_MULTIPLIERS.has(word)) {
      current = (current || 1) * v;
      if (v >= 1000) {
        total += current;
        current = 0;
      }
      reading = true;
      return;
    }
    // "twenty five", "two hundred fifty": a smaller word continues the number.
    const continues = reading && ((current >= 20 && current % 10 === 0 && v < 10) || (current >= 100 && current % 100 === 0 && v < 100) || (current === 0 && total > 0));
    if (!continues) flushNumber();
    current += v;
    reading = true;
  };

  for (let i = 0; i < raw.length; i++) {
    const tok = raw[i]!;
    const lower = tok.text.toLowerCase();

    // Named things: by their case (unless the text is all capitals), or by their shape.
    const shaped = /[.+#_]/.test(tok.text) || (/\p{L}/u.test(tok.text) && /\p{N}/u.test(tok.text));
    const cased = !shouting && (hasInnerCapital(tok.text) || isAllCaps(tok.text) || (!tok.initial && /^\p{Lu}/u.test(tok.text) && tok.text !== 'I'));
    const aliased = ALIASES[lower] ?? lower;
    const parts = aliased.split(' ');
    const literal = !shouting && aliased === lower && isAllCaps(tok.text);
    const key = (w: string): string => (literal ? w : stem(baseForm(w)));
    if ((shaped || cased) && !STOP.has(lower)) entities.push(parts.map(key).join(' '));
    if (lower === 'by') passive = true;
    if (subjectQuestion === undefined && (lower === 'what' || lower === 'who' || lower === 'which')) {
      const next = raw[i + 1]?.text.toLowerCase();
      if (next !== undefined && /\p{L}/u.test(next)) subjectQuestion = !STOP.has(next) && !CONNECTOR.has(next) && !(next in NUMBER_WORDS);
    }

    for (const word of parts) {
      tokens.add(key(word));

      if (word in NUMBER_WORDS) {
        readNumberWord(word);
        continue;
      }
      if (isNumeric(word)) {
        flushNumber();
        // "5 million" = 5000000.
        const next = raw[i + 1]?.text.toLowerCase();
        const value = normalizeNumber(word);
        if (next !== undefined && NUMBER_MULTIPLIERS.has(next) && /^\d+(?:\.\d+)?$/.test(value)) {
          current = Number(value);
          reading = true;
          continue;
        }
        numbers.push(value);
        keyTerms.push(`#${value}`);
        continue;
      }
      flushNumber();

      // Digits inside a word are numbers too (utf8 vs utf16, ipv4 vs ipv6, 2fa).
      if (/\p{L}/u.test(word)) for (const d of word.match(/\d+/g) ?? []) numbers.push(normalizeNumber(d));

      if (word in QUESTION_CLASSES) {
        questionClass ??= QUESTION_CLASSES[word];
        continue;
      }
      if (word === 'how') {
        const next = raw[i + 1]?.text.toLowerCase();
        questionClass ??= next !== undefined && HOW_QUANTITY.has(next) ? 'how-much' : 'how';
        continue;
      }
      if (NEGATION.has(word)) {
        negations++;
        if (word === 'without') keyTerms.push('>with');
        continue;
      }
      let w = word;
      const negatedBase = PREFIX_NEGATIONS[w];
      if (negatedBase !== undefined) {
        negations++;
        w = negatedBase;
        tokens.add(stem(w));
      }
      if (CONNECTOR.has(w)) {
        keyTerms.push(`>${w}`);
        continue;
      }
      if (STOP.has(w)) continue;
      if (!/[\p{L}\p{N}]/u.test(w)) continue;
      const term = lexicon.term(w, literal && w === lower);
      terms.push(term);
      words.push(w);
      keyTerms.push(term);
    }
  }
  flushNumber();
  numbers.sort();
  return {
    terms,
    words,
    keyTerms,
    numbers,
    entities: [...new Set(entities)],
    tokens,
    negations,
    questionClass,
    subjectQuestion: passive ? undefined : subjectQuestion,
  };
}
