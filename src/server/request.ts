/** Reading what uWS gives us about a request, which is only valid during the route handler. */

import { randomBytes } from 'node:crypto';
import type { HttpRequest } from '@trufflesuite/uws-js-unofficial';

/** Header names arrive lower-cased from uWS. A repeated header keeps its values comma-joined. */
export function readHeaders(req: HttpRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  req.forEach((name, value) => {
    const prev = headers[name];
    headers[name] = prev === undefined ? value : `${prev}, ${value}`;
  });
  return headers;
}

// A per-process random prefix and a counter: unique across processes and restarts, and cheaper than
// a UUID per request.
const prefix = randomBytes(6).toString('hex');
let counter = 0;
const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The client's `x-request-id` when it is a sane token, else a new id. */
export function requestId(fromClient: string | undefined): string {
  if (fromClient !== undefined && CLIENT_ID.test(fromClient)) return fromClient;
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${prefix}${counter.toString(36)}`;
}
