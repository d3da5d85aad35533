/**
 * Authentication of consumers: the first filter of the chain when consumers are configured. A key
 * comes as `Authorization: Bearer` or `x-api-key`; only its hash is looked up. Unknown or revoked
 * keys get 401 and a model the consumer may not use 403, each in the client's protocol.
 */

import { GatewayError } from '../errors.js';
import type { RequestContext } from '../pipeline/context.js';
import { localError, type Filter, type FilterResult } from '../pipeline/filter.js';
import type { ConsumerDirectory } from './consumers.js';
import { hashKey, presentedKey } from './keys.js';

export function authFilter(directory: ConsumerDirectory): Filter {
  return {
    name: 'auth',
    onRequestHeaders(ctx: RequestContext): FilterResult {
      const key = presentedKey(ctx.headers);
      if (key === undefined) {
        if (!directory.enforced) return undefined;
        return localError(new GatewayError('unauthorized', 'missing API key: send Authorization: Bearer KEY or x-api-key: KEY'));
      }
      const consumer = directory.byKeyHash(hashKey(key));
      if (consumer === undefined) {
        // Without enforcement a key may be meant for the upstream (sidecar use): let it pass unnamed.
        if (!directory.enforced) return undefined;
        return localError(new GatewayError('unauthorized', 'invalid or revoked API key'));
      }
      ctx.consumer = consumer.name;
      return undefined;
    },
    onRequestBody(ctx: RequestContext): FilterResult {
      if (ctx.consumer === undefined) return undefined;
      const consumer = directory.get(ctx.consumer);
      if (consumer !== undefined && !directory.mayUse(consumer, ctx.model)) {
        return localError(
          new GatewayError('forbidden', `this key may not use the model \`${ctx.model}\``, { param: 'model' }),
        );
      }
      return undefined;
    },
  };
}
