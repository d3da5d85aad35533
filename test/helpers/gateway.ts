/**
 * The real gateway as a child process: `node bin/sluice.js start --config FILE --port 0`, the port
 * read from its banner, stdout and stderr collected for assertions, and a stop that escalates from
 * SIGTERM to SIGKILL. Every process started here is remembered, so a suite's last `after` can prove
 * none outlived it (`assertNoLiveChildren`).
 *
 * Also `runSluice` for one-shot CLI commands (`--version`, `validate`, …).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isWorkerAlive, waitFor, workerChildren } from './processes.js';
import { writeTempConfig } from './temp.js';

/** The repository root (this file runs from dist/test/helpers/). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const SLUICE_BIN = fileURLToPath(new URL('../../../bin/sluice.js', import.meta.url));

/** `sluice 0.1.0 listening on http://127.0.0.1:41234` */
const BANNER = /^sluice (\S+) listening on http:\/\/(\[[^\]]+\]|[^\s:/]+):(\d+)\b.*$/m;

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A clean environment: no provider keys from the machine running the tests (they would add
 * providers), and no NODE_TEST_CONTEXT (a child that inherits it talks the test runner's protocol
 * on stdout instead of printing its banner).
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'SYSTEMROOT']) {
    const v = process.env[name];
    if (v !== undefined) env[name] = v;
  }
  return { ...env, ...extra };
}

const children = new Set<ChildProcess>();
const gateways = new Set<GatewayProcess>();
/**
 * Every worker pid seen under a gateway started here. Workers are grandchildren: if their supervisor
 * dies without draining them (SIGKILL), they are re-parented and only this list still knows them.
 */
const seenWorkers = new Set<number>();

/** Stop every gateway started by `startGateway` that is still running, and any worker left behind. */
export async function stopAllGateways(): Promise<void> {
  await Promise.all([...gateways].map((g) => g.stop()));
  await reapWorkers(seenWorkers);
}

function track(child: ChildProcess): Promise<ExitInfo> {
  children.add(child);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
}

/** Child processes started by these helpers, and gateway workers seen under them, that have not exited. */
export function liveChildren(): number[] {
  return [...[...children].map((c) => c.pid ?? -1), ...[...seenWorkers].filter(isWorkerAlive)];
}

/** For a suite's final `after`: every child started here, and every worker they forked, has exited. */
export function assertNoLiveChildren(): void {
  const live = liveChildren();
  if (live.length > 0) throw new Error(`child processes still running: ${live.join(', ')}`);
}

export interface GatewayProcess {
  readonly port: number;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** `http://127.0.0.1:ADMINPORT` */
  readonly adminUrl: string;
  readonly version: string;
  readonly pid: number;
  readonly configPath: string | undefined;
  /** The supervisor's live worker processes, read from /proc (also remembered for the final check). */
  workerPids(): number[];
  stdout(): string;
  stderr(): string;
  /** Resolves when the process exits, however it ends. */
  readonly exited: Promise<ExitInfo>;
  hasExited(): boolean;
  /**
   * SIGTERM, then SIGKILL after `graceMs`; then every worker seen under it must be gone too (one
   * that outlived a killed supervisor is killed by pid). Safe to call more than once.
   */
  stop(graceMs?: number): Promise<ExitInfo>;
}

export interface StartGatewayOptions {
  /** A config object (written as JSON, which YAML reads) or YAML text; written to a temp file. */
  config?: object | string;
  /** An existing config file instead of `config`. */
  configPath?: string;
  /** Extra arguments after `start` (default: `--port 0`). */
  args?: string[];
  /** Added to the clean environment. */
  env?: Record<string, string>;
  /** How long to wait for the banner. */
  startTimeoutMs?: number;
}

export async function startGateway(opts: StartGatewayOptions = {}): Promise<GatewayProcess> {
  const configPath = opts.configPath ?? (opts.config !== undefined ? writeTempConfig(opts.config) : undefined);
  const args = [SLUICE_BIN, 'start'];
  if (configPath !== undefined) args.push('--config', configPath);
  args.push(...(opts.args ?? ['--port', '0']));
  // Parallel test files each run a gateway: let each admin API pick a free port too.
  if (!args.includes('--admin-port')) args.push('--admin-port', '0');
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: cleanEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = track(child);
  let out = '';
  let err = '';
  let done = false;
  void exited.then(() => {
    done = true;
  });
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    err += s;
  });

  const banner = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway printed no banner within ${opts.startTimeoutMs ?? 10_000} ms\nstdout:\n${out}\nstderr:\n${err}`));
    }, opts.startTimeoutMs ?? 10_000);
    child.stdout!.on('data', (s: string) => {
      out += s;
      const m = BANNER.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    void exited.then((info) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited before listening (code ${info.code}, signal ${info.signal})\nstdout:\n${out}\nstderr:\n${err}`));
    });
  });

  const host = banner[2]!;
  const port = Number(banner[3]);
  const admin = /admin API: (http:\/\/[^/\s]+)\/admin/.exec(out);
  const pid = child.pid!;
  const mine = new Set<number>();
  const workerPids = (): number[] => {
    const pids = workerChildren(pid);
    for (const p of pids) {
      mine.add(p);
      seenWorkers.add(p);
    }
    return pids;
  };
  // The banner comes once every worker serves: they are all there to be remembered now.
  workerPids();
  const gateway: GatewayProcess = {
    port,
    url: `http://${host}:${port}`,
    adminUrl: admin?.[1] ?? '',
    version: banner[1]!,
    pid,
    configPath,
    workerPids,
    stdout: () => out,
    stderr: () => err,
    exited,
    hasExited: () => done,
    stop: async (graceMs = 3_000) => {
      if (!done) workerPids();
      const info = await stopChild(child, exited, graceMs);
      await reapWorkers(mine);
      return info;
    },
  };
  gateways.add(gateway);
  void exited.then(() => gateways.delete(gateway));
  return gateway;
}

async function stopChild(child: ChildProcess, exited: Promise<ExitInfo>, graceMs: number): Promise<ExitInfo> {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      resolve();
    }, graceMs);
  });
  await Promise.race([exited, killed]);
  clearTimeout(timer);
  return exited;
}

/**
 * After a supervisor exited: its workers have normally exited before it (drain). Ones left behind
 * (the supervisor was killed) drain on their own when the IPC channel closes; give them a moment,
 * then kill them by pid.
 */
async function reapWorkers(pids: ReadonlySet<number>): Promise<void> {
  const left = (): number[] => [...pids].filter(isWorkerAlive);
  if (left().length === 0) return;
  await waitFor('orphaned workers to exit', () => left().length === 0, { timeoutMs: 1_000 }).catch(() => undefined);
  for (const p of left()) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // exited in between
    }
  }
  await waitFor('killed workers to be gone', () => left().length === 0, { timeoutMs: 2_000 }).catch(() => undefined);
}

export interface RunResult extends ExitInfo {
  stdout: string;
  stderr: string;
}

/** One CLI invocation to completion (killed after `timeoutMs`). */
export function runSluice(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  const child = spawn(process.execPath, [SLUICE_BIN, ...args], {
    cwd: REPO_ROOT,
    env: cleanEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = track(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 10_000);
  // 'close' rather than 'exit': all output has been read by then.
  return new Promise((resolve) => {
    child.once('close', () => {
      clearTimeout(timer);
      void exited.then((info) => resolve({ ...info, stdout, stderr }));
    });
  });
}
