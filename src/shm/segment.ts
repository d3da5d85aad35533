/**
 * Shared-memory segments: loading the native addon, naming, creating, opening, removing, and
 * removing stale segments left by a supervisor that died without cleaning up.
 *
 * The addon (native/shm.cc) only maps bytes. Everything that decides something lives here or in
 * layout.ts, so it can be read and tested in TypeScript.
 */

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** What native/shm.cc exports. */
interface NativeShm {
  create(name: string, bytes: number): ArrayBuffer;
  open(name: string): ArrayBuffer;
  unlink(name: string): boolean;
  list(prefix: string): string[];
  windowsAttach(buffer: ArrayBuffer, byteOffset: number, byteLength: number, out: Float64Array): NativeWindowsHandle;
  windowsCharge(handle: NativeWindowsHandle, head: number, highBits: number, buckets: number, epoch: number, cost: number, limit: number): number;
  windowsRefund(handle: NativeWindowsHandle, head: number, highBits: number, buckets: number, epoch: number, charged: number, amount: number): number;
}

/** An opaque handle from windowsAttach (a Node-API External). */
export type NativeWindowsHandle = { readonly __nativeWindows: unique symbol };

/** The limiter's window charges (native/limit-windows.cc); see limit-windows.ts. */
export type NativeWindows = Pick<NativeShm, 'windowsAttach' | 'windowsCharge' | 'windowsRefund'>;

/** Every Sluice segment name starts with this (after the leading slash POSIX requires). */
export const SEGMENT_PREFIX = '/sluice-';

/**
 * The compiled addon, relative to this file: dist/src/shm/segment.js → <repo>/build/Release. node-gyp
 * writes it there when `npm install` / `npm ci` runs the root package's implicit `node-gyp rebuild`.
 */
const ADDON_URL = new URL('../../../build/Release/shm.node', import.meta.url);

let native: NativeShm | undefined;

function isNativeShm(value: unknown): value is NativeShm {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.create === 'function' &&
    typeof v.open === 'function' &&
    typeof v.unlink === 'function' &&
    typeof v.list === 'function' &&
    typeof v.windowsAttach === 'function' &&
    typeof v.windowsCharge === 'function' &&
    typeof v.windowsRefund === 'function'
  );
}

/**
 * Loads the addon on first use rather than at import, so commands that never touch shared memory (the
 * mock server, config checks) keep working on a machine where the addon was not built.
 */
function addon(): NativeShm {
  if (native !== undefined) return native;
  const path = fileURLToPath(ADDON_URL);
  if (!existsSync(path)) {
    throw new Error(
      `Sluice's shared-memory addon is not built (expected ${path}). Run \`npm install\` in the Sluice ` +
        'directory (it runs node-gyp; a C++17 compiler, make and python3 are needed), or rebuild it ' +
        'alone with `npm run build:native`.',
    );
  }
  const loaded: unknown = createRequire(import.meta.url)(path);
  if (!isNativeShm(loaded)) {
    throw new Error(`${path} is not Sluice's shared-memory addon, or an older build of it (create/open/unlink/list/windows* missing); rebuild it with \`npm run build:native\``);
  }
  native = loaded;
  return native;
}

/** The addon's window functions (loaded on first use, like the rest). */
export function nativeWindows(): NativeWindows {
  return addon();
}

/** Creates a new zero-filled segment of `bytes` bytes. Throws (code EEXIST) when the name is taken. */
export function createSegment(name: string, bytes: number): ArrayBuffer {
  return addon().create(name, bytes);
}

/** Maps an existing segment; its size is the segment's own. Throws (code ENOENT) when absent. */
export function openSegment(name: string): ArrayBuffer {
  return addon().open(name);
}

/**
 * Removes the name. Processes that already mapped the segment keep their mapping until they exit;
 * only new opens fail. Returns false when the name did not exist.
 */
export function unlinkSegment(name: string): boolean {
  return addon().unlink(name);
}

/** Names of existing segments that start with `prefix` (with leading slash), e.g. "/sluice-". */
export function listSegments(prefix: string = SEGMENT_PREFIX): string[] {
  return addon().list(prefix);
}

const LABEL = /^[A-Za-z0-9._]{1,64}$/;

/**
 * The segment name for one gateway: `/sluice-<label>-<supervisorPid>`. The label is usually the
 * listening port, so two gateways on one machine never share a segment; the pid makes a segment left
 * by a dead supervisor recognisable as stale (see removeStaleSegments).
 */
export function segmentName(label: string | number, ownerPid: number = process.pid): string {
  const text = String(label);
  if (!LABEL.test(text)) {
    throw new Error(`shared-memory segment label "${text}" must be 1-64 characters of [A-Za-z0-9._] (no "-": it separates the pid)`);
  }
  if (!Number.isSafeInteger(ownerPid) || ownerPid <= 0) throw new Error(`invalid owner pid ${ownerPid}`);
  return `${SEGMENT_PREFIX}${text}-${ownerPid}`;
}

const NAME = /^\/sluice-[A-Za-z0-9._]{1,64}-([1-9][0-9]{0,9})$/;

/** The owner pid encoded in a Sluice segment name, or undefined when the name is not one of ours. */
export function segmentOwnerPid(name: string): number | undefined {
  const match = NAME.exec(name);
  if (match === null) return undefined;
  const pid = Number(match[1]);
  return Number.isSafeInteger(pid) ? pid : undefined;
}

/**
 * Whether a process with this pid exists. Signal 0 checks without delivering anything: ESRCH means
 * no such process; EPERM means it exists but belongs to another user, which still counts as alive.
 */
export function pidIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Unlinks every Sluice segment under `prefix` whose owner pid (from its name) is no longer alive, and
 * returns the names removed. Names that do not parse are left alone: they are not ours to judge.
 *
 * A supervisor calls this before creating its own segment, so segments leaked by a SIGKILLed
 * supervisor do not accumulate in /dev/shm (tmpfs: they hold RAM until removed). The check is by pid
 * alone: if the dead supervisor's pid has been reused by an unrelated process, its segment is kept
 * until that process exits, a bounded leak, never the removal of a live gateway's segment.
 */
export function removeStaleSegments(
  prefix: string = SEGMENT_PREFIX,
  isAlive: (pid: number) => boolean = pidIsAlive,
): string[] {
  if (!prefix.startsWith(SEGMENT_PREFIX)) {
    throw new Error(`stale-segment cleanup only looks under ${SEGMENT_PREFIX}, not "${prefix}"`);
  }
  const removed: string[] = [];
  for (const name of listSegments(prefix)) {
    const pid = segmentOwnerPid(name);
    if (pid === undefined || isAlive(pid)) continue;
    if (unlinkSegment(name)) removed.push(name);
  }
  return removed;
}
