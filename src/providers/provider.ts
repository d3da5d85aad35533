/**
 * The provider contract. A provider knows where its upstream lives, how to authenticate, which
 * codec its chat endpoint speaks and its own quirks; shared code never names a provider.
 */

import type { ProviderConfig } from '../config/schema.js';
import type { JsonObject, OutboundCodec, WireProtocol } from '../protocol/codec.js';
import type { Transport, UpstreamRequest, UpstreamTimeouts } from './transport.js';

/** What a client asked for. Chat covers both inbound protocols; the others are OpenAI-only. */
export type Operation = 'chat' | 'completions' | 'embeddings' | 'models';

export interface UpstreamCall {
  op: Operation;
  /** The provider's model name (after mapping). */
  model: string;
  stream: boolean;
  /** The encoded body, in the provider's protocol; null for GET. */
  body: string | Uint8Array | null;
  /** The client's request headers (lower-case), for the few a provider forwards by design. */
  clientHeaders: Readonly<Record<string, string>>;
  /** The protocol the client spoke, for quirks that depend on it. */
  inbound: WireProtocol;
  /** Index into `Provider.endpoints` chosen by the balancer; default 0. */
  endpoint?: number;
  /** Index of the API key chosen by the key pool; default: keys take turns. */
  key?: number;
}

/** One replica of a provider (see providers/common.ts endpointsFrom). */
export interface EndpointInfo {
  /** Origin + path prefix; identifies the endpoint in shared counters and logs. */
  readonly url: string;
  readonly origin: string;
  readonly weight: number;
}

export interface Provider {
  /** The configured name. */
  readonly name: string;
  /** The family or catalogue entry it was built from. */
  readonly type: string;
  /** The protocol of its chat endpoint. */
  readonly protocol: WireProtocol;
  readonly codec: OutboundCodec;
  readonly transport: Transport;
  /** Client-facing model names or patterns this provider serves when no explicit route matches. */
  readonly modelPatterns: readonly string[];
  readonly timeouts: UpstreamTimeouts;
  /**
   * Self-hosted servers (vLLM, SGLang, Ollama, …) list what they serve at `/v1/models`; the gateway
   * asks them at start and reload instead of making users repeat model names in config.
   */
  readonly discoverModels: boolean;
  /** Where requests may go: one entry per replica, at least one. */
  readonly endpoints: readonly EndpointInfo[];
  /** API keys the provider holds (0 for keyless servers); routing picks one per attempt. */
  readonly keyCount: number;
  supports(op: Operation): boolean;
  /** The upstream request for a call. Auth headers are added here and nowhere else. */
  buildRequest(call: UpstreamCall): UpstreamRequest;
  /**
   * A provider's quirks in a body the gateway translated for it (the codec's output, before it is
   * serialised), e.g. a field some of its models name differently. Bodies a client sent in the
   * provider's own protocol are forwarded as the client wrote them.
   */
  adaptTranslatedBody?(body: JsonObject, model: string): void;
}

/** Things a provider factory may need besides its own config. */
export interface ProviderDeps {
  /** Environment, for keys not given in config. */
  env: Readonly<Record<string, string | undefined>>;
}

export type ProviderFactory = (config: ProviderConfig, deps: ProviderDeps) => Provider;

/** Defaults of the upstream timeouts, used when neither the provider nor its config sets them. */
export const DEFAULT_TIMEOUTS: UpstreamTimeouts = { connectMs: 10_000, firstByteMs: 300_000, idleMs: 300_000 };
