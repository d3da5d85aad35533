/**
 * The embedder contract and its factory. An embedder turns question texts into vectors; its `id`
 * names the vector space (model and version), and the semantic index refuses vectors whose id or
 * dimension differ from the ones it was built with.
 *
 * Embedders run inside the cache pool's threads (workers/cache-embed.ts): one instance per thread,
 * loaded once. Implementations are imported lazily so a gateway that uses the OpenAI endpoint never
 * loads TensorFlow, and one that uses USE-lite never needs @huggingface/transformers.
 */

import type { EmbedderConfig } from './config.js';

export interface Embedder {
  /** The vector space: vectors of two embedders are comparable only when their ids are equal. */
  readonly id: string;
  /** Vector length; known once `init()` resolved. */
  readonly dimensions: number;
  /** Loads the model (or probes the endpoint). Throws `EmbedderUnavailableError` when it cannot. */
  init(): Promise<void>;
  embed(texts: readonly string[]): Promise<Float32Array[]>;
  close(): Promise<void>;
}

/** The embedder cannot work here: a package is missing, a model path is wrong, an endpoint refuses. */
export class EmbedderUnavailableError extends Error {
  readonly code = 'embedder_unavailable';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EmbedderUnavailableError';
  }
}

export async function createEmbedder(config: EmbedderConfig): Promise<Embedder> {
  switch (config.type) {
    case 'use-lite': {
      const { UseLiteEmbedder } = await import('./embedders/use-lite.js');
      return new UseLiteEmbedder();
    }
    case 'openai': {
      const { OpenAIEmbedder } = await import('./embedders/openai.js');
      return new OpenAIEmbedder(config);
    }
    case 'transformers': {
      const { TransformersEmbedder } = await import('./embedders/transformers.js');
      return new TransformersEmbedder(config);
    }
  }
}
