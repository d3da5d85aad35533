#!/usr/bin/env node
// Builds the example plugins into plugins/dist/. Toolchains, all from the repo's npm dependencies:
// AssemblyScript (asc) for plugins/src/*.ts, Binaryen (installed with AssemblyScript) for the
// hand-written plugins/wat/*.wat. Optional, when present on the machine: clang with a wasm32-wasi
// sysroot for plugins/c/*.c. A plugin whose output is newer than all its inputs is not rebuilt.
//
//   node plugins/build.mjs           build what is out of date
//   node plugins/build.mjs --force   rebuild everything

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const force = process.argv.includes('--force');
mkdirSync(dist, { recursive: true });

const newest = (files) => Math.max(...files.map((f) => statSync(f).mtimeMs));
const list = (dir, ext) =>
  existsSync(join(here, dir)) ? readdirSync(join(here, dir)).filter((f) => f.endsWith(ext)).map((f) => join(here, dir, f)) : [];
const upToDate = (out, inputs) => !force && existsSync(out) && statSync(out).mtimeMs >= newest(inputs);

// Outputs are written beside their final name and renamed into place, so a test (or a second build
// running at the same time) never reads a half-written module.
const temp = (out) => `${out}.${process.pid}.tmp`;

let built = 0;
let skipped = 0;

// AssemblyScript: every plugin depends on the SDK too.
const sdk = list('sdk', '.ts');
const asSources = list('src', '.ts');
if (asSources.length > 0) {
  const { default: asc } = await import('assemblyscript/asc');
  for (const src of asSources) {
    const name = basename(src, '.ts');
    const out = join(dist, `${name}.wasm`);
    if (upToDate(out, [src, ...sdk])) {
      skipped++;
      continue;
    }
    let errors = '';
    const { error } = await asc.main(
      [src, '--outFile', temp(out), '--optimize', '--runtime', 'incremental', '--exportStart', '_initialize', '--noColors'],
      { stderr: { write: (s) => ((errors += s), true) }, stdout: { write: () => true } },
    );
    if (error) {
      process.stderr.write(errors);
      throw new Error(`asc failed for ${name}: ${error.message}`);
    }
    renameSync(temp(out), out);
    built++;
  }
}

// WebAssembly text, assembled with Binaryen.
const watSources = list('wat', '.wat');
if (watSources.length > 0) {
  const { default: binaryen } = await import('binaryen');
  const { readFileSync } = await import('node:fs');
  for (const src of watSources) {
    const name = basename(src, '.wat');
    const out = join(dist, `${name}.wasm`);
    if (upToDate(out, [src])) {
      skipped++;
      continue;
    }
    const mod = binaryen.parseText(readFileSync(src, 'utf8'));
    if (!mod.validate()) throw new Error(`${name}.wat does not validate`);
    writeFileSync(temp(out), mod.emitBinary());
    renameSync(temp(out), out);
    mod.dispose();
    built++;
  }
}

// C, only when clang can target wasm32-wasi here (Debian: clang, lld, wasi-libc, libclang-rt-dev-wasm32).
const cSources = list('c', '.c');
if (cSources.length > 0) {
  // Debian installs versioned names (clang-14 …) unless the `clang` package adds the plain one.
  const clang = ['clang', 'clang-19', 'clang-18', 'clang-17', 'clang-16', 'clang-15', 'clang-14'].find((cmd) => {
    try {
      execFileSync(cmd, ['--target=wasm32-wasi', '-print-resource-dir'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
  for (const src of cSources) {
    const name = basename(src, '.c');
    const out = join(dist, `${name}.wasm`);
    if (!clang) {
      process.stdout.write(`plugins: skipped ${name}.c (no clang with a wasm32-wasi target)\n`);
      continue;
    }
    if (upToDate(out, [src, ...list('c', '.h')])) {
      skipped++;
      continue;
    }
    try {
      execFileSync(
        clang,
        ['--target=wasm32-wasi', '-O2', '-mexec-model=reactor', '-Wl,--export-dynamic', '-Wl,--strip-all', '-o', temp(out), src],
        { stdio: ['ignore', 'inherit', 'inherit'] },
      );
      renameSync(temp(out), out);
      built++;
    } catch {
      process.stdout.write(`plugins: skipped ${name}.c (clang could not link for wasm32-wasi; is wasi-libc installed?)\n`);
    }
  }
}

process.stdout.write(`plugins: ${built} built, ${skipped} up to date → ${dist}\n`);
