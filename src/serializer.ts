import { SessionValueError } from './errors.js';

/** The key under which a Date is tagged in stored JSON; chosen so that no ordinary data uses it. */
const DATE_TAG = '$keepsake:date';

export type SessionValue =
  | null
  | boolean
  | number
  | string
  | Date
  | readonly SessionValue[]
  | { readonly [key: string]: SessionValue };

/** Throws SessionValueError when `value` cannot survive a store round trip unchanged. */
export function assertStorable(key: string, value: unknown): void {
  check(key, value, '', new Set());
}

function check(key: string, value: unknown, path: string, ancestors: Set<object>): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value))
        throw new SessionValueError(key, path, `${value} (not a finite number)`);
      return;
    case 'undefined':
      if (path === '') return;
      throw new SessionValueError(key, path, 'undefined (use null)');
    case 'bigint':
      throw new SessionValueError(key, path, 'a BigInt (store it as a string)');
    case 'function':
      throw new SessionValueError(key, path, 'a function');
    case 'symbol':
      throw new SessionValueError(key, path, 'a symbol');
  }
  if (value === null) return;
  const object = value as object;
  if (object instanceof Date) {
    if (Number.isNaN(object.getTime())) throw new SessionValueError(key, path, 'an invalid Date');
    return;
  }
  if (ancestors.has(object)) throw new SessionValueError(key, path, 'a cyclic reference');
  ancestors.add(object);
  if (Array.isArray(object)) {
    for (const [index, item] of object.entries()) check(key, item, `${path}[${index}]`, ancestors);
  } else {
    const prototype = Object.getPrototypeOf(object);
    if (prototype !== Object.prototype && prototype !== null) {
      const kind = (object.constructor as { name?: string } | undefined)?.name ?? 'class';
      throw new SessionValueError(
        key,
        path,
        `a ${kind} instance (only plain objects, arrays and Dates round-trip)`,
      );
    }
    if (Object.hasOwn(object, DATE_TAG))
      throw new SessionValueError(key, path, `an object using the reserved key "${DATE_TAG}"`);
    if (Object.getOwnPropertySymbols(object).length > 0)
      throw new SessionValueError(key, path, 'an object with symbol keys (JSON drops them)');
    for (const [name, child] of Object.entries(object)) {
      check(key, child, path === '' ? name : `${path}.${name}`, ancestors);
    }
  }
  ancestors.delete(object);
}

/** Session data as stored: JSON with Dates tagged so they come back as Dates. */
export function serialize(data: ReadonlyMap<string, unknown>): string {
  // fromEntries defines own properties, so even a key named `__proto__` is kept.
  const record: Record<string, unknown> = Object.fromEntries(data);
  return JSON.stringify(record, function replacer(this: Record<string, unknown>, key, value) {
    // A Date reaches the replacer already turned into a string by its toJSON().
    if (typeof value !== 'string') return value;
    const original = this[key];
    return original instanceof Date ? { [DATE_TAG]: original.toISOString() } : value;
  });
}

/** Parses a stored payload; throws (SyntaxError or TypeError) when it is not a keepsake payload. */
export function deserialize(payload: string): Map<string, unknown> {
  // The reviver costs a call per value; only payloads that hold a Date need it.
  const parsed: unknown = payload.includes(DATE_TAG)
    ? JSON.parse(payload, reviveDate)
    : JSON.parse(payload);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TypeError('the payload is not a JSON object');
  }
  return new Map(Object.entries(parsed));
}

function reviveDate(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const tagged = (value as Record<string, unknown>)[DATE_TAG];
    if (typeof tagged === 'string' && Object.keys(value).length === 1) return new Date(tagged);
  }
  return value;
}
