/**
 * Every file in examples/ is a working configuration: it loads and validates with a fake environment
 * that provides the variables it references, its providers can be built, and a whole snapshot
 * (router and filter chain) can be made from it. A new example is picked up without editing this file.
 */

import { SharedMemory } from '../../src/shm/shared-memory.js';
import { KeyRing } from '../../src/governance/consumers.js';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigFile } from '../../src/config/load.js';
import type { Provider } from '../../src/providers/provider.js';
import { buildSnapshot, closeProviders, createProviders } from '../../src/runtime/snapshot.js';
import { REPO_ROOT, runSluice } from '../helpers/index.js';
import { assertNoLiveChildren } from '../helpers/gateway.js';

const EXAMPLES = join(REPO_ROOT, 'examples');
const files = readdirSync(EXAMPLES)
  .filter((f) => /\.(ya?ml|json)$/.test(f))
  .sort();

const built: Provider[] = [];
after(async () => {
  await closeProviders(built);
  assertNoLiveChildren();
});

/** `${NAME}` and `${NAME:-default}` references → a fake value for each NAME. */
function fakeEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}/g)) env[m[1]!] = `test-${m[1]!.toLowerCase()}`;
  return env;
}

describe('examples/', () => {
  it('has examples to check', () => {
    assert.ok(files.length >= 5, `found ${files.join(', ')}`);
  });

  for (const file of files) {
    describe(file, () => {
      const path = join(EXAMPLES, file);
      const text = readFileSync(path, 'utf8');
      const env = fakeEnv(text);

      it('loads and validates with the variables it references', () => {
        const config = loadConfigFile(path, env);
        assert.ok(config.providers.length > 0, 'at least one provider');
        // Interpolation happened: no `${…}` is left in any string of the config.
        assert.doesNotMatch(JSON.stringify(config), /\$\{/);
      });

      it('builds its providers and a snapshot (router + filter chain)', () => {
        const config = loadConfigFile(path, env);
        const providers = createProviders(config.providers, { env });
        built.push(...providers.values());
        assert.deepEqual([...providers.keys()], config.providers.map((p) => p.name));
        const snapshot = buildSnapshot(config, 1, providers, new Map(), { shm: SharedMemory.private(), keys: new KeyRing() });
        for (const route of config.models) {
          if (!/[*?]/.test(route.name)) assert.ok(snapshot.router.resolve(route.name), `route ${route.name} resolves`);
        }
      });

      it('passes `sluice validate` with the same environment', async () => {
        const r = await runSluice(['validate', path], { env });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /: valid/);
      });

      const required = [...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]!);
      if (required.length > 0) {
        it(`names the missing variables (${required.join(', ')}) when the environment lacks them`, () => {
          assert.throws(() => loadConfigFile(path, {}), (err: Error) => {
            for (const name of required) assert.match(err.message, new RegExp(name));
            return true;
          });
        });
      }
    });
  }
});
