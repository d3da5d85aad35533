/** The shape of one area's host functions, keyed by import name. */
// Host functions take i32 as number and i64 as bigint, so the table is loosely typed on purpose.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type HostFunctions = Record<string, (...args: any[]) => number | void>;
