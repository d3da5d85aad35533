/**
 * Child processes for benchmarks: start a server, wait until it says (or shows) it is ready, and make
 * sure it dies with the bench, whatever way the bench ends.
 *
 * Every child is started in its own process group (`detached`), so stopping it also stops whatever
 * it forked (nginx workers, gateway workers). `installCleanup()` stops every live child on SIGINT,
 * SIGTERM, SIGHUP and normal exit.
 */

import { spawn } from 'node:child_process';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Children still running, stopped by `stopAll()`. */
const live = new Set();

/** How much of a child's output is kept for error messages. */
const OUTPUT_TAIL_CHARS = 16 * 1024;

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

export class ManagedProcess {
  /**
   * @param {string} name short label used in messages
   * @param {import('node:child_process').ChildProcess} child
   */
  constructor(name, child) {
    this.name = name;
    this.child = child;
    this.pid = child.pid;
    this.exitCode = null;
    this.exitSignal = null;
    this.exited = false;
    this.tail = '';
    /** @type {Array<() => void>} */
    this.outputListeners = [];
    this.exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code;
        this.exitSignal = signal;
        live.delete(this);
        resolve({ code, signal });
      });
    });
    // Always drain both pipes: a child that logs must never block on a full pipe.
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (text) => this.#append(text));
    }
    live.add(this);
  }

  #append(text) {
    this.tail = (this.tail + text.replace(ANSI, '')).slice(-OUTPUT_TAIL_CHARS);
    for (const listener of this.outputListeners) listener();
  }

  /** The last lines the child printed (stdout and stderr interleaved, colours removed). */
  output(maxChars = 2000) {
    return this.tail.slice(-maxChars).trim();
  }

  /** Sends `signal` to the child's whole process group (falls back to the child alone). */
  signal(signal) {
    if (this.exited) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      try {
        this.child.kill(signal);
      } catch {
        // already gone
      }
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
  async stop(graceMs = 3000) {
    if (this.exited) return;
    this.signal('SIGTERM');
    const timedOut = await Promise.race([this.exit.then(() => false), sleep(graceMs).then(() => true)]);
    if (timedOut) {
      this.signal('SIGKILL');
      await this.exit;
    }
    // The leader may exit before its children (nginx workers): make sure the group is gone.
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      // no such group: all gone
    }
  }
}

/**
 * Starts `command args` and resolves once it is ready:
 *  - `ready`: a RegExp matched against everything the child printed; the match is returned;
 *  - `probe`: an async function polled every 100 ms until it returns true (for servers that print
 *    nothing, like nginx with `daemon off`).
 * Rejects (after stopping the child) if it exits first or is not ready within `timeoutMs`; the error
 * message carries the child's last output.
 *
 * @returns {Promise<{ proc: ManagedProcess, match: RegExpMatchArray | null }>}
 */
export async function spawnReady(name, command, args, { cwd, env, ready, probe, timeoutMs = 20_000 } = {}) {
  const child = spawn(command, args, {
    cwd,
    env: env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const spawnError = new Promise((_, reject) => child.once('error', (err) => reject(err)));
  spawnError.catch(() => undefined);
  if (child.pid === undefined) {
    await spawnError;
    throw new Error(`${name}: could not start ${command}`);
  }
  const proc = new ManagedProcess(name, child);

  let settle;
  const readyPromise = new Promise((resolve) => (settle = resolve));
  if (ready) {
    const check = () => {
      const m = proc.tail.match(ready);
      if (m) settle(m);
    };
    proc.outputListeners.push(check);
    check();
  }
  let polling = probe !== undefined;
  if (probe) {
    (async () => {
      while (polling && !proc.exited) {
        if (await probe().catch(() => false)) {
          settle(null);
          return;
        }
        await sleep(100);
      }
    })();
  }

  const outcome = await Promise.race([
    readyPromise.then((match) => ({ kind: 'ready', match })),
    proc.exit.then(({ code, signal }) => ({ kind: 'exited', code, signal })),
    spawnError.catch((err) => ({ kind: 'error', err })),
    sleep(timeoutMs).then(() => ({ kind: 'timeout' })),
  ]);
  polling = false;
  proc.outputListeners.length = 0;

  if (outcome.kind === 'ready') return { proc, match: outcome.match };
  await proc.stop(1000);
  const why =
    outcome.kind === 'exited'
      ? `exited (${outcome.signal ?? `code ${outcome.code}`}) before it was ready`
      : outcome.kind === 'error'
        ? `failed to start: ${outcome.err.message}`
        : `not ready after ${timeoutMs} ms`;
  const out = proc.output();
  throw new Error(`${name} ${why}${out ? `; its last output:\n${indent(out)}` : ''}`);
}

/** True once something accepts TCP connections on host:port. */
export function portAcceptsConnections(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(500, () => done(false));
  });
}

/** Stops every child still running (in parallel). */
export async function stopAll(graceMs = 3000) {
  await Promise.all([...live].map((p) => p.stop(graceMs)));
}

let installed = false;

/**
 * Stop all children when the bench ends: on SIGINT/SIGTERM/SIGHUP (then exit 130/143/129), and,
 * as a last resort, SIGKILL their groups synchronously on process exit.
 * `onSignal` runs first (e.g. to print "interrupted").
 */
export function installCleanup(onSignal) {
  if (installed) return;
  installed = true;
  const codes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const [sig, code] of Object.entries(codes)) {
    process.once(sig, () => {
      try {
        onSignal?.(sig);
      } finally {
        stopAll(1000).finally(() => process.exit(code));
      }
    });
  }
  process.on('exit', () => {
    for (const p of live) p.signal('SIGKILL');
  });
}

function indent(text) {
  return text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}
