/** Codec lookup by wire protocol: the only place that lists them. */

import { anthropicMessagesCodec } from './anthropic-messages.js';
import type { InboundCodec, WireProtocol } from './codec.js';
import { openaiChatCodec } from './openai-chat.js';

const inbound: Partial<Record<WireProtocol, InboundCodec>> = {
  'openai-chat': openaiChatCodec,
  'anthropic-messages': anthropicMessagesCodec,
};

/** The codec that speaks to clients of `protocol`. */
export function inboundCodec(protocol: WireProtocol): InboundCodec {
  const codec = inbound[protocol];
  if (!codec) throw new Error(`no inbound codec for ${protocol}`);
  return codec;
}
