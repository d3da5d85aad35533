// A plugin that does nothing: every callback continues. The benchmark's baseline for the host's
// own per-request cost.

export * from "../sdk/exports";
