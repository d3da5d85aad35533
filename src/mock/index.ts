/** The deterministic fake model server: in-process transport, standalone server, shared responder. */

export {
  DEFAULT_MOCK_OPTIONS,
  MOCK_HEADERS,
  mockOptionsFromHeaders,
  resolveMockOptions,
  type MockHeaderName,
  type MockHeaders,
  type MockOptions,
  type MockRequestOptions,
} from './options.js';
export {
  answer,
  valueFromSchema,
  wordTokens,
  type Answer,
  type AnswerMessage,
  type AnswerRequest,
  type AnswerTool,
  type AnswerToolChoice,
  type MockToolCall,
} from './answer.js';
export { embed } from './embedding.js';
export type { MockReply } from './reply.js';
export { MockResponder, type MockRequest } from './responder.js';
export { MockTransport } from './transport.js';
export { startMockServer, type MockServer, type MockServerOptions } from './server.js';
