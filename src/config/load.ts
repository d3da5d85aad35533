/**
 * Loading a configuration: YAML or JSON text → `${ENV}` interpolation → schema validation → a frozen
 * Config. Interpolation runs on the parsed string values, not the raw text, so an environment value
 * can never inject YAML structure (a key with a `:` or a newline stays a string).
 */

import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { ConfigSchema, type Config } from './schema.js';

export interface ConfigIssue {
  /** Dotted path with indices, e.g. `providers[1].api_key`; '' for the whole file. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly issues: ConfigIssue[],
  ) {
    super(`invalid configuration (${source}):\n${issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export type Env = Readonly<Record<string, string | undefined>>;

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out.length === 0 ? String(part) : `.${String(part)}`;
  }
  return out;
}

const ENV_REF = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** `${NAME}` and `${NAME:-default}`; `$$` is a literal `$`. Unset NAME without default is an issue. */
export function interpolate(value: string, env: Env, path: string, issues: ConfigIssue[]): string {
  if (value.indexOf('$') === -1) return value;
  return value.replace(ENV_REF, (match: string, name: string | undefined, fallback: string | undefined) => {
    if (match === '$$') return '$';
    const v = env[name as string];
    if (v !== undefined && v !== '') return v;
    if (fallback !== undefined) return fallback;
    issues.push({ path, message: `environment variable ${name} is not set (write \${${name}:-default} to give a default)` });
    return '';
  });
}

function interpolateTree(node: unknown, env: Env, path: PropertyKey[], issues: ConfigIssue[]): unknown {
  if (typeof node === 'string') return interpolate(node, env, formatPath(path), issues);
  if (Array.isArray(node)) return node.map((v, i) => interpolateTree(v, env, [...path, i], issues));
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = interpolateTree(v, env, [...path, k], issues);
    return out;
  }
  return node;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Validate an already parsed value (after interpolation). */
export function validateConfig(raw: unknown, source: string): Config {
  const result = ConfigSchema.safeParse(raw ?? {});
  if (!result.success) {
    throw new ConfigError(
      source,
      result.error.issues.map((issue) => ({ path: formatPath(issue.path), message: describeIssue(issue) })),
    );
  }
  return deepFreeze(result.data);
}

interface IssueLike {
  code: string;
  message: string;
  keys?: readonly string[];
  options?: readonly unknown[];
}

function describeIssue(issue: IssueLike): string {
  if (issue.code === 'unrecognized_keys' && issue.keys) {
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  }
  if (issue.code === 'invalid_union' && issue.options) {
    return `${issue.message}; expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}`;
  }
  return issue.message.replace(/^Invalid input: /, '');
}

/** Parse YAML (a superset of JSON) text, interpolate the environment and validate. */
export function parseConfig(text: string, source: string, env: Env): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => ({ path: '', message: e.message.split('\n')[0] ?? 'YAML syntax error' })),
    );
  }
  const issues: ConfigIssue[] = [];
  const raw = interpolateTree(doc.toJS({ maxAliasCount: 100 }), env, [], issues);
  if (issues.length > 0) throw new ConfigError(source, issues);
  return validateConfig(raw, source);
}

export function loadConfigFile(path: string, env: Env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(path, [
      { path: '', message: code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? 'error'})` },
    ]);
  }
  return parseConfig(text, path, env);
}
