/** Reading untrusted request JSON without `any`. */

import { GatewayError } from '../errors.js';

export type JsonObject = { readonly [key: string]: unknown };

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Array.isArray narrows to `any[]`; this keeps the elements unknown. */
export function isArray(value: unknown): value is readonly unknown[] {
  return Array.isArray(value);
}

/** The request body as a JSON object, or a 400 in the wording a real API would use. */
export function parseBody(text: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new GatewayError('invalid_json', 'request body is not valid JSON');
  }
  if (!isObject(value)) throw new GatewayError('invalid_request', 'request body must be a JSON object');
  return value;
}

export function requireString(body: JsonObject, field: string): string {
  const v = body[field];
  if (typeof v !== 'string' || v.length === 0) {
    throw new GatewayError('invalid_request', `${field}: a non-empty string is required`, { param: field });
  }
  return v;
}

export function optionalBoolean(body: JsonObject, field: string): boolean | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new GatewayError('invalid_request', `${field}: must be a boolean`, { param: field });
  return v;
}

export function optionalPositiveInteger(body: JsonObject, field: string): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
    throw new GatewayError('invalid_request', `${field}: must be a positive integer`, { param: field });
  }
  return v;
}
