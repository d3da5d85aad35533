/**
 * `performance.now()` reads the same clock (uv_hrtime) from this process's start: adding this
 * process's offset to it gives CLOCK_MONOTONIC ms without the two BigInts per call of
 * `hrtime.bigint() / 1e6n` (this runs several times per request, on limits and endpoint picks).
 * The offset is read once; its error is the microsecond between its two reads.
 */
const monotonicOrigin = Number(process.hrtime.bigint()) / 1e6 - performance.now();

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
  return Math.floor(performance.now() + monotonicOrigin);
}
