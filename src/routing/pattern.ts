/**
 * Model-name patterns: an exact name, or a glob where `*` matches any run of characters and `?` one
 * character (`gpt-4o*`, `claude-*-sonnet-*`, `*`). Compiled once per config snapshot.
 */

export interface ModelPattern {
  readonly source: string;
  readonly exact: boolean;
  matches(name: string): boolean;
}

export function isGlob(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?');
}

export function compilePattern(source: string): ModelPattern {
  if (!isGlob(source)) return { source, exact: true, matches: (name) => name === source };
  if (source === '*') return { source, exact: false, matches: () => true };
  const star = source.indexOf('*');
  // A lone trailing star is the common case (`gpt-4o*`): a prefix test beats a regular expression.
  if (star === source.length - 1 && !source.includes('?')) {
    const prefix = source.slice(0, -1);
    return { source, exact: false, matches: (name) => name.startsWith(prefix) };
  }
  const re = new RegExp(
    '^' +
      source
        .split('')
        .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
        .join('') +
      '$',
    's',
  );
  return { source, exact: false, matches: (name) => re.test(name) };
}

export function matchesAny(patterns: readonly ModelPattern[], name: string): boolean {
  for (const p of patterns) if (p.matches(name)) return true;
  return false;
}
