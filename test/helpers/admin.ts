/**
 * The admin API of a running gateway, as a test reads it: status, the generation header, the JSON
 * body; and the worker table (`GET /admin/workers`).
 */

import type { IncomingHttpHeaders } from 'node:http';
import { raw } from './http.js';

export interface AdminAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The parsed body; every admin answer is a JSON object with `generation`. */
  json: Record<string, unknown> & { generation: number };
}

export interface AdminCall {
  method?: string;
  /** e.g. `/admin/workers` */
  path: string;
  /** A config as an object (sent as JSON) or as YAML/JSON text. */
  body?: object | string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  headers?: Record<string, string>;
}

export async function admin(adminUrl: string, call: AdminCall): Promise<AdminAnswer> {
  const headers: Record<string, string> = { ...call.headers };
  if (call.token !== undefined) headers.authorization = `Bearer ${call.token}`;
  let body: string | undefined;
  if (call.body !== undefined) {
    body = typeof call.body === 'string' ? call.body : JSON.stringify(call.body);
    headers['content-type'] ??= typeof call.body === 'string' ? 'application/yaml' : 'application/json';
  }
  const res = await raw(adminUrl, { method: call.method ?? (body === undefined ? 'GET' : 'PUT'), path: call.path, headers, ...(body !== undefined ? { body } : {}) });
  let json: AdminAnswer['json'];
  try {
    json = JSON.parse(res.text) as AdminAnswer['json'];
  } catch {
    throw new Error(`admin ${call.path} answered ${res.status} with a body that is not JSON: ${res.text.slice(0, 300)}`);
  }
  return { status: res.status, headers: res.headers, text: res.text, json };
}

/** One row of `GET /admin/workers`. */
export interface WorkerRow {
  index: number;
  pid: number | undefined;
  uptimeMs: number;
  restarts: number;
  inFlight: number | null;
  state: 'starting' | 'ready' | 'restarting' | 'draining';
}

export async function listWorkers(adminUrl: string, token?: string): Promise<WorkerRow[]> {
  const res = await admin(adminUrl, { path: '/admin/workers', ...(token !== undefined ? { token } : {}) });
  if (res.status !== 200) throw new Error(`GET /admin/workers answered ${res.status}: ${res.text.slice(0, 300)}`);
  return res.json.workers as WorkerRow[];
}

/** The generation the supervisor reports (body and header must agree). */
export async function configGeneration(adminUrl: string, token?: string): Promise<number> {
  const res = await admin(adminUrl, { path: '/admin/workers', ...(token !== undefined ? { token } : {}) });
  const header = Number(res.headers['x-sluice-config-generation']);
  if (header !== res.json.generation) throw new Error(`generation header ${header} != body ${res.json.generation}`);
  return res.json.generation;
}
