/**
 * The `sluice` command. Exit codes: 0 success, 1 runtime failure, 2 usage error, 78 invalid config
 * (EX_CONFIG). Messages say what to do next.
 */

import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile, validateConfig } from '../config/load.js';
import { configJsonSchema, type Config, type ConfigInput, type ProviderConfig } from '../config/schema.js';
import { describeError, log, setLogLevel } from '../observability/logger.js';
import { providersFromEnv } from '../providers/registry.js';
import { closeProviders, createProviders } from '../runtime/snapshot.js';
import { assertAdminExposure, startAdminServer, type AdminServer } from '../server/admin.js';
import { ModelRouter } from '../routing/model-router.js';
import { Supervisor } from '../supervisor/supervisor.js';
import { startMockServer } from '../mock/server.js';
import { mockCliOptions, MOCK_CLI_HELP } from './mock-options.js';
import { generateKey, hashKey } from '../governance/keys.js';
import { checkPlugins } from '../wasm/plugin-check.js';

export const EXIT = { ok: 0, failure: 1, usage: 2, config: 78 } as const;

const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

const HELP = `sluice ${VERSION} — an AI gateway: one OpenAI- and Anthropic-compatible API over many model providers

Usage:
  sluice start [--config FILE] [--host H] [--port N] [--workers N] [--admin-port N] [--upstream URL ...]
  sluice validate FILE
  sluice schema
  sluice mock [--port N] [mock options]      a standalone fake model server (for tests and benchmarks)
  sluice hash-key [KEY | -]                  the hash to list under consumers[].keys; without KEY a new
                                             key is made and printed with its hash; - reads KEY from stdin
  sluice --help | --version

start:
  --config FILE     YAML or JSON config (see examples/). Without one, providers come from the usual
                    environment variables (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, …) and
                    the built-in "mock" provider is always there.
  --host H          listen address (default from config, else 127.0.0.1)
  --port N          listen port (default from config, else 8080; 0 picks a free port)
  --workers N       worker processes sharing the port (default: one per CPU)
  --admin-port N    admin API port (default from config, else 8081; 0 picks a free port)
  --upstream URL    sidecar mode: serve every model of an OpenAI-compatible server (vLLM, SGLang,
                    Ollama, llama.cpp); repeat for several. Models are read from URL/v1/models.

Signals: SIGTERM/SIGINT drain in-flight requests and exit; SIGHUP reloads --config (so does
saving the file, and PUT /admin/config or POST /admin/reload on the admin API).
Exit codes: 0 ok, 1 failure, 2 usage error, 78 invalid configuration.
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(HELP);
        return command === undefined ? EXIT.usage : EXIT.ok;
      case '-v':
      case '--version':
        process.stdout.write(`${VERSION}\n`);
        return EXIT.ok;
      case 'start':
        return await start(rest);
      case 'validate':
        return await validate(rest);
      case 'schema':
        process.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n');
        return EXIT.ok;
      case 'mock':
        return await mock(rest);
      case 'hash-key':
        return await hashKeyCommand(rest);
      default:
        process.stderr.write(`sluice: unknown command "${command}". Run \`sluice --help\` for the commands.\n`);
        return EXIT.usage;
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`sluice: ${err.message}\nRun \`sluice --help\` for usage.\n`);
      return EXIT.usage;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      return EXIT.config;
    }
    process.stderr.write(`sluice: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.failure;
  }
}

class UsageError extends Error {}

/** Argument errors from parseArgs are usage errors (exit 2), not failures. */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function validate(args: string[]): Promise<number> {
  const { positionals } = usage(() => parseArgs({ args, options: {}, allowPositionals: true, strict: true }));
  if (positionals.length !== 1) throw new UsageError('validate takes exactly one FILE');
  const file = positionals[0] as string;
  const config = loadConfigFile(file, process.env);
  // A file `start` would refuse is not valid: build the providers too (no connection is opened).
  void closeProviders(createProviders(config.providers, { env: process.env }, file).values());
  // And the plugins: each is loaded and started once (off the main thread, time-limited).
  const issues = await checkPlugins(config.plugins, { baseDir: dirname(resolve(file)), upstreams: config.plugin_upstreams });
  if (issues.length > 0) throw new ConfigError(file, issues.map((i) => ({ path: `plugins[${i.index}]`, message: i.message })));
  process.stdout.write(`${file}: valid\n`);
  return EXIT.ok;
}

function parsePort(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--port must be an integer from 0 to 65535, got "${value}"`);
  return n;
}

/** Sidecar upstreams: `http://host:8000` and `http://host:8000/v1` both mean the server's /v1 API. */
export function upstreamProviders(urls: readonly string[]): ConfigInput['providers'] {
  return urls.map((raw, i) => {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new UsageError(`--upstream "${raw}" is not a URL (expected e.g. http://127.0.0.1:8000)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--upstream "${raw}" must be http(s)`);
    const path = url.pathname.replace(/\/+$/, '');
    url.pathname = path === '' ? '/v1' : path;
    return { name: urls.length === 1 ? 'upstream' : `upstream-${i + 1}`, type: 'openai-compatible', base_url: url.toString().replace(/\/$/, '') };
  });
}

/** With no config file: providers from the environment, plus the built-in mock. */
function defaultConfig(upstreams: string[]): Config {
  if (upstreams.length > 0) return validateConfig({ providers: upstreamProviders(upstreams) }, '--upstream');
  const fromEnv: ProviderConfig[] = providersFromEnv(process.env);
  return validateConfig({ providers: [...fromEnv, { name: 'mock', type: 'mock' }] }, 'environment');
}

async function start(args: string[]): Promise<number> {
  const { values } = usage(() =>
    parseArgs({
      args,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        host: { type: 'string' },
        port: { type: 'string', short: 'p' },
        upstream: { type: 'string', multiple: true },
        workers: { type: 'string', short: 'w' },
        'admin-port': { type: 'string' },
      },
    }),
  );
  const configPath = values.config;
  const upstreams = values.upstream ?? [];
  const load = (): Config => {
    if (!configPath) return defaultConfig(upstreams);
    const config = loadConfigFile(configPath, process.env);
    if (upstreams.length === 0) return config;
    return validateConfig({ ...config, providers: [...config.providers, ...(upstreamProviders(upstreams) ?? [])] }, `${configPath} + --upstream`);
  };
  const config = load();
  setLogLevel(config.log.level);
  // Fail on a provider that cannot be built before forking anything.
  void closeProviders(createProviders(config.providers, { env: process.env }, configPath ?? 'environment').values());

  const host = values.host ?? config.server.host;
  const workers = parseCount('--workers', values.workers) ?? config.server.workers ?? availableParallelism();
  const adminToken = config.admin.token ?? (process.env.SLUICE_ADMIN_TOKEN || undefined);
  // An admin API open to the network without a token is refused before any worker is forked.
  assertAdminExposure(config.admin.host, adminToken);
  const supervisor = await Supervisor.start({
    config,
    workers,
    host,
    port: parsePort(values.port) ?? config.server.port,
    reloadSource: configPath ? load : undefined,
    watchFile: configPath,
    env: process.env,
    // Relative plugin paths in the config (at start and in every reload) are the file's neighbours.
    baseDir: configPath ? dirname(resolve(configPath)) : process.cwd(),
  });
  let admin: AdminServer;
  try {
    admin = await startAdminServer(
      {
        get generation() {
          return supervisor.currentGeneration;
        },
        get config() {
          return supervisor.currentConfig;
        },
        workers: () => supervisor.workers(),
        apply: (next, reason) => supervisor.apply(next, reason),
        reload: (reason) => supervisor.reloadFromSource(reason),
        keys: supervisor.keyStore,
        metrics: () => supervisor.metricsText(),
        quotas: supervisor.quotas,
      },
      {
        host: config.admin.host,
        port: parsePort(values['admin-port']) ?? config.admin.port,
        token: adminToken,
        env: process.env,
      },
    );
  } catch (err) {
    await supervisor.drain(0);
    throw err;
  }
  printBanner(config, host, supervisor.boundPort, workers, config.admin.host, admin.port);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('draining', { signal, grace_ms: supervisor.currentConfig.server.drain_grace_ms });
    Promise.all([admin.close(), supervisor.drain(supervisor.currentConfig.server.drain_grace_ms)]).then(
      () => process.exit(EXIT.ok),
      (err) => {
        log.error('shutdown failed', describeError(err));
        process.exit(EXIT.failure);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    supervisor
      .reloadFromSource('SIGHUP')
      .catch((err) => log.error('reload failed; keeping the running config', { reason: (err as Error).message }));
  });
  // Never reached while serving: the process lives until a signal.
  return await new Promise<number>(() => undefined);
}

function parseCount(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new UsageError(`${flag} must be an integer from 1 to 256, got "${value}"`);
  return n;
}

function printBanner(config: Config, host: string, port: number, workers: number, adminHost: string, adminPort: number): void {
  const base = `http://${displayHost(host)}:${port}`;
  // The workers hold the live router (with discovered models); the banner lists what config names.
  const providers = createProviders(config.providers, { env: process.env });
  const models = new ModelRouter(config.models, providers).listModels().map((m) => m.id);
  void closeProviders(providers.values());
  const example = models.includes('mock') ? 'mock' : (models[0] ?? 'MODEL');
  process.stdout.write(
    `sluice ${VERSION} listening on ${base} (${workers} worker${workers === 1 ? '' : 's'})\n` +
      `  admin API: http://${displayHost(adminHost)}:${adminPort}/admin/workers\n` +
      `  providers: ${config.providers.map((p) => `${p.name} (${p.type})`).join(', ') || 'none'}\n` +
      `  models:    ${models.length ? models.slice(0, 10).join(', ') + (models.length > 10 ? ', …' : '') : '(patterns only)'}\n\n` +
      `Try it:\n` +
      `  curl ${base}/v1/chat/completions -H 'content-type: application/json' \\\n` +
      `    -d '{"model":"${example}","messages":[{"role":"user","content":"Hello, Sluice!"}]}'\n\n`,
  );
}

function displayHost(host: string): string {
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return shown.includes(':') ? `[${shown}]` : shown;
}

/** Consumer keys: config files hold only their hashes. */
async function hashKeyCommand(args: string[]): Promise<number> {
  if (args.length > 1) throw new UsageError('hash-key takes at most one KEY (or - to read it from stdin)');
  const arg = args[0];
  if (arg === undefined) {
    const key = generateKey();
    process.stdout.write(`key:  ${key}\nhash: ${hashKey(key)}\n\nGive the key to the consumer; put only the hash in consumers[].keys.\n`);
    return EXIT.ok;
  }
  let key = arg;
  if (arg === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    key = Buffer.concat(chunks).toString('utf8').trim();
  }
  if (key === '') throw new UsageError('the key is empty');
  process.stdout.write(`${hashKey(key)}\n`);
  return EXIT.ok;
}

async function mock(args: string[]): Promise<number> {
  const { values } = usage(() =>
    parseArgs({
      args,
      strict: true,
      options: {
        host: { type: 'string' },
        port: { type: 'string', short: 'p' },
        'ttft-ms': { type: 'string' },
        tps: { type: 'string' },
        'output-tokens': { type: 'string' },
        'chunk-tokens': { type: 'string' },
        'error-status': { type: 'string' },
        'error-every': { type: 'string' },
        models: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(MOCK_CLI_HELP);
    return EXIT.ok;
  }
  let options;
  try {
    options = mockCliOptions(values);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const server = await startMockServer({ ...options, host: values.host ?? '127.0.0.1', port: parsePort(values.port) ?? 9000 });
  process.stdout.write(`sluice mock listening on http://${values.host ?? '127.0.0.1'}:${server.port}\n`);
  const stop = () => {
    server.close().then(() => process.exit(EXIT.ok));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return await new Promise<number>(() => undefined);
}
