/**
 * A local ONNX model through @huggingface/transformers. That package is optional and not a
 * dependency of Sluice (it is large); it is imported only when this embedder is configured, and its
 * absence is reported as what to install. Remote downloads are disabled: the model must be on disk.
 */

import { basename, dirname, resolve } from 'node:path';
import type { EmbedderConfig } from '../config.js';
import { type Embedder, EmbedderUnavailableError } from '../embedder.js';

type TransformersConfig = Extract<EmbedderConfig, { type: 'transformers' }>;

interface Tensor {
  dims: number[];
  data: ArrayLike<number>;
}
type Extractor = (texts: string[], options: { pooling: string; normalize: boolean }) => Promise<Tensor>;
interface TransformersModule {
  env: { allowRemoteModels: boolean; allowLocalModels: boolean; localModelPath: string };
  pipeline(task: string, model: string, options: Record<string, unknown>): Promise<Extractor>;
}

/** The package name, in a variable so TypeScript does not try to resolve an uninstalled module. */
const PACKAGE = '@huggingface/transformers';

export async function importTransformers(specifier: string = PACKAGE): Promise<TransformersModule> {
  try {
    return (await import(specifier)) as TransformersModule;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new EmbedderUnavailableError(
        `embedder type "transformers" needs the optional package ${specifier}, which is not installed: run \`npm install ${specifier}\` next to Sluice, or use embedder type "use-lite" or "openai"`,
        { cause: err },
      );
    }
    throw new EmbedderUnavailableError(`${specifier} failed to load: ${(err as Error).message}`, { cause: err });
  }
}

export class TransformersEmbedder implements Embedder {
  readonly id: string;
  private dims = 0;
  private extractor: Extractor | undefined;

  constructor(private readonly config: TransformersConfig) {
    this.id = config.id ?? `transformers:${basename(resolve(config.model_path))}:${config.pooling}`;
  }

  get dimensions(): number {
    return this.dims;
  }

  async init(): Promise<void> {
    if (this.extractor) return;
    const mod = await importTransformers();
    const path = resolve(this.config.model_path);
    mod.env.allowRemoteModels = false;
    mod.env.allowLocalModels = true;
    mod.env.localModelPath = dirname(path) + '/';
    try {
      this.extractor = await mod.pipeline('feature-extraction', basename(path), { local_files_only: true });
    } catch (err) {
      throw new EmbedderUnavailableError(`could not load the ONNX model at ${path}: ${(err as Error).message}`, { cause: err });
    }
    const [probe] = await this.embed(['dimension probe']);
    this.dims = probe!.length;
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    if (!this.extractor) throw new EmbedderUnavailableError('transformers embedder used before init()');
    if (texts.length === 0) return [];
    const t = await this.extractor([...texts], { pooling: this.config.pooling, normalize: this.config.normalize });
    const width = t.dims[t.dims.length - 1]!;
    const out: Float32Array[] = [];
    const data = t.data;
    for (let i = 0; i < texts.length; i++) out.push(Float32Array.from({ length: width }, (_, j) => data[i * width + j]!));
    return out;
  }

  async close(): Promise<void> {
    this.extractor = undefined;
  }
}
