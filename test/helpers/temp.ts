/**
 * Temporary files under os.tmpdir(): one directory per test process, removed by `removeTempDir()`
 * (and, as a fallback, when the process exits).
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let dir: string | undefined;
let counter = 0;

export function tempDir(): string {
  if (dir === undefined) {
    dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-'));
    const created = dir;
    process.once('exit', () => rmSync(created, { recursive: true, force: true }));
  }
  return dir;
}

/** Write a file in the temp directory; returns its path. */
export function writeTempFile(name: string, content: string): string {
  const path = join(tempDir(), name);
  writeFileSync(path, content);
  return path;
}

/**
 * A config file: an object is written as JSON (which the YAML loader reads), a string as it is.
 * Returns the path.
 */
export function writeTempConfig(config: object | string, name?: string): string {
  const text = typeof config === 'string' ? config : JSON.stringify(config, null, 2);
  const file = name ?? `config-${++counter}.${typeof config === 'string' ? 'yaml' : 'json'}`;
  return writeTempFile(file, text);
}

export function removeTempDir(): void {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
}
