/**
 * Plain-text tables and number formatting for bench reports.
 */

/**
 * @param {string[]} header column titles
 * @param {string[][]} rows cells, already formatted
 * @param {{ left?: number[] }} opts indexes of left-aligned columns (default: the first)
 */
export function formatTable(header, rows, { left = [0] } = {}) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells) =>
    cells
      .map((c, i) => (left.includes(i) ? (c ?? '').padEnd(widths[i]) : (c ?? '').padStart(widths[i])))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** A number with `digits` decimals, or "-" when missing. */
export function fixed(value, digits = 0) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '-';
}

/** Like `fixed`, with an explicit sign: "+0.123". */
export function signed(value, digits = 3) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '-';
  return `${value >= 0 ? '+' : ''}${value.toFixed(digits)}`;
}

/** 12345.6 → "12,346". */
export function grouped(value) {
  return typeof value === 'number' && Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '-';
}
