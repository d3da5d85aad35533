/**
 * The codec contract. One codec per wire format; translation between two formats is the client's
 * codec decoding into the canonical model and the upstream's codec encoding out of it (and the
 * reverse for responses). Streams are translated event by event, never buffered.
 */

import type { GatewayError } from '../errors.js';
import type { ChatRequest, ChatResponse, StreamEvent } from './canonical.js';

export type WireProtocol = 'openai-chat' | 'anthropic-messages' | 'gemini';

export type JsonObject = Record<string, unknown>;

/** Receives canonical events as a decoder finds them. */
export type EventSink = (event: StreamEvent) => void;

/** Turns an upstream's streamed body into canonical events. */
export interface StreamDecoder {
  /** Feed raw bytes as they arrive; complete events go to the sink at once. */
  push(chunk: Uint8Array): void;
  /** The upstream body ended. Throws `upstream_protocol_error` if the stream stopped mid-event. */
  end(): void;
}

export interface StreamInit {
  /** Response id to use when the upstream gives none. */
  id: string;
  /** Model name to report when the upstream gives none. */
  model: string;
  /** Unix seconds. */
  created: number;
  /** The client asked for a usage chunk (OpenAI `stream_options.include_usage`). */
  includeUsage: boolean;
}

/** Turns canonical events into the client's wire format (already framed, e.g. SSE). */
export interface StreamEncoder {
  /** Bytes to write for this event ('' when nothing is due yet). */
  encode(event: StreamEvent): string;
  /** Bytes that close a stream that ended normally (e.g. `data: [DONE]`). */
  end(): string;
}

/** The client-facing half: what a client sends and what it must get back. */
export interface InboundCodec {
  readonly protocol: WireProtocol;
  /** Validate and decode a parsed request body. Throws a 400 GatewayError naming the field. */
  decodeRequest(body: JsonObject): ChatRequest;
  encodeResponse(response: ChatResponse): JsonObject;
  createStreamEncoder(init: StreamInit): StreamEncoder;
  /** The JSON body of an error reply in this protocol. */
  encodeError(error: GatewayError): JsonObject;
}

/** The upstream-facing half: what we send a provider and how to read its answers. */
export interface OutboundCodec {
  readonly protocol: WireProtocol;
  /** The upstream request body for `model` (the provider's model name). */
  encodeRequest(request: ChatRequest, model: string): JsonObject;
  /** Decode a complete (non-streamed) upstream answer. Throws `upstream_protocol_error`. */
  decodeResponse(body: unknown): ChatResponse;
  createStreamDecoder(sink: EventSink): StreamDecoder;
  /**
   * An upstream error reply (status >= 400) as a GatewayError keeping the upstream's status and
   * message, so it can be relayed faithfully in another protocol.
   */
  decodeError(status: number, body: Uint8Array): GatewayError;
}
