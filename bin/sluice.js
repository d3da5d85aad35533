#!/usr/bin/env node
// Thin launcher: the CLI lives in compiled TypeScript so the hot path never runs a transpiler.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('sluice: not built yet. Run `npm install` (or `npm run build`) in the sluice folder first.\n');
  process.exit(70);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
