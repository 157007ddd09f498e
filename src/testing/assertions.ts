import { AssertionError } from 'node:assert';
import { inspect, isDeepStrictEqual } from 'node:util';
import { searchDotted } from '../dot.js';
import type { SessionData } from '../session.js';
import type { SessionSnapshot } from './test-sessions.js';

type Key<Data> = keyof Data & string;

type Lookup = { readonly found: true; readonly value: unknown } | { readonly found: false };

/** A key of the stored data, or a dotted path into it (`user.name`) as `session.get()` reads one. */
function lookup(data: SessionData, key: string): Lookup {
  if (Object.hasOwn(data, key)) return { found: true, value: data[key] };
  if (key.includes('.')) {
    const value = searchDotted(key, new Map(Object.entries(data)));
    if (value !== null && value !== undefined) return { found: true, value };
  }
  return { found: false };
}

const show = (value: unknown): string =>
  inspect(value, { depth: 6, breakLength: Number.POSITIVE_INFINITY, sorted: true });

function describeStored(snapshot: SessionSnapshot<SessionData>): string {
  if (!snapshot.exists) {
    if (snapshot.destroyed) return 'the request destroyed the session, so nothing is stored';
    return snapshot.id === null
      ? 'the client holds no session'
      : `no session is stored under the client's ID ${snapshot.id}`;
  }
  const keys = Object.keys(snapshot.data);
  return keys.length === 0
    ? 'the stored session holds no keys'
    : `the stored session holds ${keys.map((key) => JSON.stringify(key)).join(', ')}`;
}

/**
 * Asserts that the stored session holds `key` (a dotted path reads into objects, as `get()` does)
 * and, when `expected` is given, that its value deep-equals it (strictly: `1` is not `'1'`).
 * Throws an `AssertionError` naming the key, what is stored, and both values. CodeIgniter's
 * `assertSessionHas()`.
 */
export function assertSessionHas<Data extends SessionData, K extends Key<Data>>(
  snapshot: SessionSnapshot<Data>,
  key: K,
  ...expected: [] | [value: Data[K]]
): void {
  const stored: SessionSnapshot<SessionData> = snapshot;
  const found = lookup(stored.data, key);
  if (!found.found) {
    throw new AssertionError({
      message: `assertSessionHas: expected the session to hold ${JSON.stringify(key)}, but ${describeStored(stored)}.`,
      operator: 'assertSessionHas',
      stackStartFn: assertSessionHas,
    });
  }
  if (expected.length === 0) return;
  const [value] = expected;
  if (isDeepStrictEqual(found.value, value)) return;
  throw new AssertionError({
    message: `assertSessionHas: the session's ${JSON.stringify(key)} is ${show(found.value)}, expected ${show(value)}.`,
    actual: found.value,
    expected: value,
    operator: 'deepStrictEqual',
    stackStartFn: assertSessionHas,
  });
}

/**
 * Asserts that the stored session does not hold `key` (a dotted path reads into objects); a
 * session that is not stored at all holds nothing. Throws an `AssertionError` naming the key and
 * its value. CodeIgniter's `assertSessionMissing()`.
 */
export function assertSessionMissing<Data extends SessionData>(
  snapshot: SessionSnapshot<Data>,
  key: Key<Data>,
): void {
  const stored: SessionSnapshot<SessionData> = snapshot;
  const found = lookup(stored.data, key);
  if (!found.found) return;
  throw new AssertionError({
    message: `assertSessionMissing: expected the session not to hold ${JSON.stringify(key)}, but it holds ${show(found.value)}.`,
    actual: found.value,
    expected: undefined,
    operator: 'assertSessionMissing',
    stackStartFn: assertSessionMissing,
  });
}
