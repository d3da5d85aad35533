/**
 * The one source of time. Durations use the monotonic clock; wall time is only for timestamps that
 * leave the process (the `created` field, logs). Tests may swap the implementation.
 */
export interface Clock {
  /** Monotonic milliseconds with sub-millisecond precision, for durations. */
  monotonicMs(): number;
  /** Wall-clock milliseconds since the epoch. */
  wallMs(): number;
}

const systemClock: Clock = {
  monotonicMs: () => performance.now(),
  wallMs: () => Date.now(),
};

let current: Clock = systemClock;

export const clock = {
  monotonicMs: (): number => current.monotonicMs(),
  wallMs: (): number => current.wallMs(),
  /** Unix seconds, as OpenAI's `created` field wants them. */
  unixSeconds: (): number => Math.floor(current.wallMs() / 1000),
};

export function setClock(next: Clock | null): void {
  current = next ?? systemClock;
}
