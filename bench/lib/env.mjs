/**
 * Bench settings from the environment, checked: a typo fails loudly instead of running defaults.
 */

/** A number ≥ `min` from env var `name`, or `fallback` when unset/empty. */
export function envNumber(name, fallback, min = 0) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number ≥ ${min}, got "${raw}"`);
  return n;
}

/** A comma-separated list from env var `name`, or null when unset/empty. */
export function envList(name) {
  const raw = process.env[name];
  if (!raw) return null;
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  return list.length ? list : null;
}
