/**
 * CodeIgniter's dot_array_search: `a.b.c` walks nested objects, `\.` is a literal dot, `*` matches
 * every child (one result is unwrapped, several come back as a list, none is null).
 */
export function searchDotted(path: string, data: ReadonlyMap<string, unknown>): unknown {
  const trimmed = path.replace(/[* ]+$/, '');
  const segments = trimmed
    .split(/(?<!\\)\./)
    .map((segment) => segment.replaceAll('\\.', '.'))
    .filter((segment) => segment !== '');
  if (segments.length === 0) return null;
  return search(segments, Object.fromEntries(data));
}

function children(value: unknown): Record<string, unknown> | undefined {
  if (typeof value !== 'object' || value === null || value instanceof Date) return undefined;
  return value as Record<string, unknown>;
}

function search(segments: readonly string[], container: Record<string, unknown>): unknown {
  const [segment, ...rest] = segments;
  if (segment === undefined) return null;
  if (segment === '*') {
    const found: unknown[] = [];
    for (const child of Object.values(container)) {
      const childContainer = children(child);
      if (childContainer === undefined) return null;
      const result = search(rest, childContainer);
      if (result !== null && result !== undefined) found.push(result);
    }
    if (found.length === 0) return null;
    return found.length === 1 ? found[0] : found;
  }
  // Own enumerable keys only, i.e. the stored data: not inherited members, not an array's `length`.
  const value = Object.prototype.propertyIsEnumerable.call(container, segment)
    ? container[segment]
    : undefined;
  if (value === undefined || value === null) return null;
  if (rest.length === 0) return value;
  const next = children(value);
  if (next === undefined || Object.keys(next).length === 0) return null;
  return search(rest, next);
}
