/**
 * WASI preview1 for SDK runtimes (TinyGo, Rust's std, wasi-libc). node:wasi provides the functions,
 * with no preopened directories, no arguments and an empty environment, so a plugin cannot reach
 * files. The host overrides what must not touch the process: stdout/stderr go to the gateway's log
 * (as the spec asks: stdout at info, stderr at error), stdin reads nothing, proc_exit ends the
 * instance instead of the process.
 */

import type { WASI } from 'node:wasi';
import { WasiErrno } from '../abi-constants.js';
import { GuestExitError, type PluginVm } from '../plugin-vm.js';
import type { HostFunctions } from './types.js';

export function wasiImports(vm: PluginVm, wasi: WASI): HostFunctions {
  const base = (wasi as unknown as { wasiImport: HostFunctions }).wasiImport;
  const mem = vm.mem;
  const pending: Record<number, string> = { 1: '', 2: '' };

  return {
    ...base,
    fd_write(fd: number, iovs: number, iovsLen: number, retWritten: number): number {
      if (fd !== 1 && fd !== 2) return WasiErrno.Badf;
      let written = 0;
      let text = '';
      for (let i = 0; i < iovsLen >>> 0; i++) {
        const ptr = mem.readU32(iovs + i * 8);
        const len = mem.readU32(iovs + i * 8 + 4);
        if (ptr === undefined || len === undefined) return WasiErrno.Fault;
        const s = mem.string(ptr, len);
        if (s === undefined) return WasiErrno.Fault;
        text += s;
        written += len;
      }
      if (!mem.writeU32(retWritten, written)) return WasiErrno.Fault;
      // Guests write a line in pieces (TinyGo's fmt writes the newline separately): log whole lines.
      let buffered = pending[fd] + text;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        vm.deps.logger(vm.identity.name, fd === 1 ? 2 : 4, buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
      pending[fd] = buffered.length > 4096 ? '' : buffered;
      return WasiErrno.Success;
    },
    fd_read(): number {
      return WasiErrno.Badf;
    },
    proc_exit(code: number): void {
      throw new GuestExitError(code);
    },
  };
}
