/**
 * A prompt as the model server sees it, cut into KV-cache blocks and hashed as a chain: the shared
 * vocabulary of the prefix-cache-aware balancer and the vLLM simulator (bench/vllm-sim/).
 *
 * vLLM's automatic prefix caching keys each full block of 16 tokens by a hash of the block's tokens
 * and of the previous block's hash, so equal hashes at position i mean equal prompts up to the end of
 * block i. Two requests share cached KV exactly as far as their leading hashes agree, which is what a
 * router needs to know; it never needs the tokens themselves.
 *
 * - Rendering: a fixed ChatML-like template (tools first, then each message with role markers, then
 *   the generation prompt). It is not any real model's template: the balancer cannot know that, and
 *   only stability matters for affinity. Markers are the special ids of tiktoken's `cl100k_im`
 *   extension, so no message text can spell them.
 * - Tokenizing: js-tiktoken's cl100k_base, built on first use (~300 ms, ~50 MB), never at import.
 *   Each segment (a message's text, a tool call, the tool list) is encoded on its own, so the same
 *   text gives the same tokens wherever it sits. That is also what lets the simulator's generated
 *   tokens reappear unchanged when the client sends the answer back in the next turn.
 * - Hashes: 53-bit integers (exact in a double) in a Float64Array: one comparison per block, and
 *   splittable into two 32-bit words for shared memory.
 */

import { createRequire } from 'node:module';
import { Tiktoken, type TiktokenBPE } from 'js-tiktoken/lite';

/** vLLM's default KV block size in tokens. */
export const DEFAULT_BLOCK_SIZE = 16;

/** `<|im_start|>` and `<|im_end|>` in tiktoken's cl100k_im extension: outside what text encodes to. */
export const IM_START = 100264;
export const IM_END = 100265;

/** The chat fields that reach the rendered prompt; everything else is ignored. */
export interface ChatPromptInput {
  readonly messages?: unknown;
  readonly tools?: unknown;
}

export interface BlockHashOptions {
  /** Tokens per block (default 16). Only full blocks are hashed. */
  readonly blockSize?: number;
  /**
   * Starts the chain from a different root, so the same tokens under another salt share nothing
   * (vLLM's `cache_salt`; a router may salt by model). Default: no salt.
   */
  readonly salt?: string;
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

/** Pre-token pieces memoised; words repeat so much that the memo turns BPE into a map lookup. */
const MAX_PIECES = 1 << 16;
/** Segments shorter than this are cheaper to encode than to hash as a memo key. */
const MIN_MEMO_SEGMENT_CHARS = 256;
/** Tokens held by the segment memo (about 4 bytes each plus the key text). */
const MAX_MEMO_SEGMENT_TOKENS = 1 << 20;

class SegmentTokenizer {
  private readonly encoder: Tiktoken;
  /** cl100k's pre-tokenizer; tiktoken encodes every match on its own, so we may too. */
  private readonly splitter: RegExp;
  private readonly pieces = new Map<string, readonly number[]>();
  /** Insertion order is recency order: a hit is deleted and re-set. */
  private readonly segments = new Map<string, Uint32Array>();
  private segmentTokens = 0;

  constructor(ranks: TiktokenBPE) {
    this.encoder = new Tiktoken(ranks);
    this.splitter = new RegExp(ranks.pat_str, 'gu');
  }

  /** Appends the tokens of `text` to `out`. */
  encodeInto(text: string, out: number[]): void {
    if (text.length < MIN_MEMO_SEGMENT_CHARS) {
      this.encodePieces(text, out);
      return;
    }
    const memo = this.segments.get(text);
    if (memo !== undefined) {
      this.segments.delete(text);
      this.segments.set(text, memo);
      for (let i = 0; i < memo.length; i++) out.push(memo[i]!);
      return;
    }
    const start = out.length;
    this.encodePieces(text, out);
    this.remember(text, Uint32Array.from(out.slice(start)));
  }

  private encodePieces(text: string, out: number[]): void {
    const splitter = this.splitter;
    splitter.lastIndex = 0;
    let match: RegExpExecArray | null;
    while ((match = splitter.exec(text)) !== null) {
      const piece = match[0];
      let ids = this.pieces.get(piece);
      if (ids === undefined) {
        // No special tokens allowed or refused: text that spells one is plain text, never an error.
        ids = this.encoder.encode(piece, [], []);
        if (this.pieces.size >= MAX_PIECES) this.pieces.clear();
        this.pieces.set(piece, ids);
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
    }
  }

  private remember(text: string, tokens: Uint32Array): void {
    if (tokens.length > MAX_MEMO_SEGMENT_TOKENS / 4) return;
    this.segments.set(text, tokens);
    this.segmentTokens += tokens.length;
    for (const [oldest, old] of this.segments) {
      if (this.segmentTokens <= MAX_MEMO_SEGMENT_TOKENS) break;
      this.segments.delete(oldest);
      this.segmentTokens -= old.length;
    }
  }
}

let tokenizer: SegmentTokenizer | undefined;

/** Built on first use: loading the ranks costs ~300 ms, which importers that never hash must not pay. */
function getTokenizer(): SegmentTokenizer {
  if (tokenizer === undefined) {
    // require() keeps this synchronous: the ranks file is a plain module in js-tiktoken's exports.
    const require = createRequire(import.meta.url);
    tokenizer = new SegmentTokenizer(require('js-tiktoken/ranks/cl100k_base') as TiktokenBPE);
  }
  return tokenizer;
}

/** The tokens of a text segment, as the rendered prompts encode it. */
export function encodeText(text: string): number[] {
  const out: number[] = [];
  getTokenizer().encodeInto(text, out);
  return out;
}

/** Loads the tokenizer now rather than on the first request (servers call this at start-up). */
export function warmUpTokenizer(): void {
  getTokenizer();
}

// ---------------------------------------------------------------------------------------------
// Rendering

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** FNV-1a over UTF-16 units: stands in for media, whose bytes must not be tokenized. */
function digest(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0') + ':' + text.length.toString(36);
}

function mediaMarker(kind: string, source: unknown): string {
  return `<${kind}:${digest(typeof source === 'string' ? source : JSON.stringify(source) ?? '')}>`;
}

/** One content part as text: text as is, media as a marker naming a digest of its source. */
function partText(part: unknown): string {
  if (typeof part === 'string') return part;
  if (!isRecord(part)) return '';
  switch (part.type) {
    case 'text':
    case 'input_text':
      return typeof part.text === 'string' ? part.text : '';
    case 'image_url': {
      const image = part.image_url;
      return mediaMarker('image', isRecord(image) ? image.url : image);
    }
    case 'input_audio': {
      const audio = part.input_audio;
      return mediaMarker('audio', isRecord(audio) ? audio.data : audio);
    }
    case 'file': {
      const file = part.file;
      return mediaMarker('file', isRecord(file) ? (file.file_data ?? file.file_id) : file);
    }
    default:
      return mediaMarker(typeof part.type === 'string' ? part.type : 'part', part);
  }
}

function renderContent(content: unknown, tok: SegmentTokenizer, out: number[]): void {
  if (typeof content === 'string') {
    tok.encodeInto(content, out);
  } else if (Array.isArray(content)) {
    // Part by part: a large part (a document) keeps its tokens whatever parts surround it.
    for (const part of content) {
      const text = partText(part);
      if (text !== '') tok.encodeInto(text, out);
    }
  }
}

function renderToolCalls(calls: unknown, tok: SegmentTokenizer, out: number[]): void {
  if (!Array.isArray(calls)) return;
  for (const call of calls) {
    if (!isRecord(call)) continue;
    const fn = isRecord(call.function) ? call.function : call;
    const name = typeof fn.name === 'string' ? fn.name : '';
    // Arguments are the model's JSON text; re-serializing could reorder keys and break the prefix.
    const args = typeof fn.arguments === 'string' ? fn.arguments : (JSON.stringify(fn.arguments) ?? '{}');
    tok.encodeInto(`\n<tool_call>\n{"name": ${JSON.stringify(name)}, "arguments": `, out);
    tok.encodeInto(args, out);
    tok.encodeInto('}\n</tool_call>', out);
  }
}

function openTurn(role: string, tok: SegmentTokenizer, out: number[]): void {
  out.push(IM_START);
  tok.encodeInto(role + '\n', out);
}

function closeTurn(tok: SegmentTokenizer, out: number[]): void {
  out.push(IM_END);
  tok.encodeInto('\n', out);
}

/**
 * The token ids of a chat request as the template renders it: a `tools` turn when tools are
 * offered, each message (content, then any tool calls), and the assistant's generation prompt.
 * Malformed parts are skipped rather than refused: the caller validates, this only describes.
 */
export function chatPromptTokens(request: ChatPromptInput): number[] {
  const tok = getTokenizer();
  const out: number[] = [];
  if (Array.isArray(request.tools) && request.tools.length > 0) {
    openTurn('tools', tok, out);
    tok.encodeInto(JSON.stringify(request.tools), out);
    closeTurn(tok, out);
  }
  if (Array.isArray(request.messages)) {
    for (const message of request.messages) {
      if (!isRecord(message)) continue;
      openTurn(typeof message.role === 'string' ? message.role : 'user', tok, out);
      renderContent(message.content, tok, out);
      renderToolCalls(message.tool_calls, tok, out);
      closeTurn(tok, out);
    }
  }
  openTurn('assistant', tok, out);
  return out;
}

/** The token ids of a completions prompt: its text encoded, or the token ids it already is. */
export function completionPromptTokens(prompt: string | readonly number[]): number[] {
  return typeof prompt === 'string' ? encodeText(prompt) : prompt.slice();
}

// ---------------------------------------------------------------------------------------------
// Hashing

const TWO_32 = 4294967296;
/** Lane B keeps 21 bits so the combined hash stays an exact integer below 2^53. */
const HIGH_MASK = 0x1fffff;

/** One murmur3 round: folds a 32-bit word into a running lane. */
function fold(h: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** murmur3's finalizer: every input bit reaches every output bit. */
function avalanche(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function checkBlockSize(blockSize: number): number {
  if (!(Number.isInteger(blockSize) && blockSize > 0)) throw new RangeError(`block size ${blockSize} is not a positive integer`);
  return blockSize;
}

/** The parent of a chain's first block: a constant, or derived from a salt. */
export function rootHash(salt?: string): number {
  if (salt === undefined || salt === '') return 0x5eed_0000_cafe;
  let a = 0x243f6a88;
  let b = 0x85a308d3;
  for (let i = 0; i < salt.length; i++) {
    const c = salt.charCodeAt(i);
    a = fold(a, c);
    b = fold(b, c ^ 0x5bd1e995);
  }
  return (avalanche(b ^ salt.length) & HIGH_MASK) * TWO_32 + avalanche(a ^ salt.length);
}

/**
 * The hash of the block `tokens[start, start + blockSize)` whose predecessor hashed to `parent`.
 * Two independently seeded 32-bit lanes give 53 bits: at a million cached blocks a 32-bit hash
 * would already expect a collision (a false cache hit), 53 bits would not.
 */
export function hashBlock(parent: number, tokens: ArrayLike<number>, start: number, blockSize: number): number {
  const parentLow = parent >>> 0;
  const parentHigh = Math.floor(parent / TWO_32);
  let a = fold(parentLow ^ 0x9747b28c, parentHigh);
  let b = fold(parentHigh ^ 0x3c6ef372, parentLow);
  const end = start + blockSize;
  for (let i = start; i < end; i++) {
    const token = tokens[i]!;
    a = fold(a, token);
    b = fold(b, token ^ 0xa54ff53a);
  }
  return (avalanche(b ^ blockSize) & HIGH_MASK) * TWO_32 + avalanche(a ^ blockSize);
}

/**
 * The chained hashes of every full block of `tokens`: element i covers tokens [0, (i+1)·blockSize).
 * A trailing partial block is not hashed, as vLLM caches only full blocks.
 */
export function blockHashes(tokens: ArrayLike<number>, options: BlockHashOptions = {}): Float64Array {
  const blockSize = checkBlockSize(options.blockSize ?? DEFAULT_BLOCK_SIZE);
  const hashes = new Float64Array(Math.floor(tokens.length / blockSize));
  let parent = rootHash(options.salt);
  for (let i = 0; i < hashes.length; i++) {
    parent = hashBlock(parent, tokens, i * blockSize, blockSize);
    hashes[i] = parent;
  }
  return hashes;
}

/** Render, tokenize and hash a chat request in one call. */
export function chatPromptBlocks(request: ChatPromptInput, options?: BlockHashOptions): Float64Array {
  return blockHashes(chatPromptTokens(request), options);
}

/** Tokenize and hash a completions prompt in one call. */
export function completionPromptBlocks(prompt: string | readonly number[], options?: BlockHashOptions): Float64Array {
  return blockHashes(completionPromptTokens(prompt), options);
}

/** How many leading blocks two chains share: the cached prefix one prompt would find from the other. */
export function sharedPrefixBlocks(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
