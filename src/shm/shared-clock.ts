/**
 * The clock for times stored in shared memory (ejected-until, heartbeats): milliseconds of
 * CLOCK_MONOTONIC.
 *
 * A time written by one process and compared by another needs a clock both read the same way.
 * - `performance.now()` will not do: it counts from each process's own start (timeOrigin), so the
 *   same instant reads differently in every worker.
 * - `Date.now()` agrees across processes but jumps when the wall clock is stepped (NTP, an operator),
 *   which would end an ejection early or stretch it.
 * - `process.hrtime.bigint()` is libuv's uv_hrtime, CLOCK_MONOTONIC on Linux: counted from boot, one
 *   clock for every process on the machine (in one time namespace, which forked workers share with
 *   their supervisor), never stepped. That is what this returns, as whole milliseconds.
 *
 * The values mean nothing across machines or reboots, and shared memory lives on neither, so that is
 * fine. Functions that compare against these times take `nowMs` as a parameter defaulting to this
 * clock, so tests pass their own.
 */
export function sharedClockMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}
