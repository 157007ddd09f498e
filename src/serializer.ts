import { SessionValueError } from './errors.js';

/** The key under which a Date is tagged in stored JSON; chosen so that no ordinary data uses it. */
const DATE_TAG = '$keepsake:date';

/**
 * How deeply values may nest. Deeper data cannot be saved (JSON.stringify and the checks recurse,
 * and run out of stack near ten thousand levels), so set() refuses it and a stored payload that
 * deep counts as corrupt.
 */
export const MAX_NESTING = 200;

export type SessionValue =
  | null
  | boolean
  | number
  | string
  | Date
  | readonly SessionValue[]
  | { readonly [key: string]: SessionValue };

/**
 * Throws SessionValueError when `value` cannot survive a store round trip unchanged; answers whether
 * it holds a Date (only then does serialize() need its replacer).
 */
export function assertStorable(key: string, value: unknown): boolean {
  // Only objects need the cycle check's set; most session values are primitives.
  const isObject = typeof value === 'object' && value !== null;
  return check(key, value, '', isObject ? new Set() : NO_ANCESTORS, 0);
}

/** Never added to: check() adds only objects, and primitives never reach that line. */
const NO_ANCESTORS: ReadonlySet<object> = new Set();

/** Answers whether `value` is or holds a Date. */
function check(
  key: string,
  value: unknown,
  path: string,
  ancestors: ReadonlySet<object>,
  depth: number,
): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return false;
    case 'number':
      if (!Number.isFinite(value))
        throw new SessionValueError(key, path, `${value} (not a finite number)`);
      return false;
    case 'undefined':
      if (path === '') return false;
      throw new SessionValueError(key, path, 'undefined (use null)');
    case 'bigint':
      throw new SessionValueError(key, path, 'a BigInt (store it as a string)');
    case 'function':
      throw new SessionValueError(key, path, 'a function');
    case 'symbol':
      throw new SessionValueError(key, path, 'a symbol');
  }
  if (value === null) return false;
  const object = value as object;
  if (object instanceof Date) {
    if (Number.isNaN(object.getTime())) throw new SessionValueError(key, path, 'an invalid Date');
    return true;
  }
  if (ancestors.has(object)) throw new SessionValueError(key, path, 'a cyclic reference');
  if (depth >= MAX_NESTING)
    throw new SessionValueError(key, path, `nested deeper than ${MAX_NESTING} levels`);
  const seen = ancestors as Set<object>;
  seen.add(object);
  let holdsDate = false;
  if (Array.isArray(object)) {
    for (const [index, item] of object.entries()) {
      if (check(key, item, `${path}[${index}]`, seen, depth + 1)) holdsDate = true;
    }
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
      if (check(key, child, path === '' ? name : `${path}.${name}`, seen, depth + 1))
        holdsDate = true;
    }
  }
  seen.delete(object);
  return holdsDate;
}

/**
 * Session data as stored: JSON with Dates tagged so they come back as Dates. `holdsDates: false`
 * (what assertStorable() found) skips the replacer, which would cost a call per value.
 */
export function serialize(data: ReadonlyMap<string, unknown>, holdsDates = true): string {
  // fromEntries defines own properties, so even a key named `__proto__` is kept.
  const record: Record<string, unknown> = Object.fromEntries(data);
  if (!holdsDates) return JSON.stringify(record);
  return JSON.stringify(record, function replacer(this: Record<string, unknown>, key, value) {
    // A Date reaches the replacer already turned into a string by its toJSON().
    if (typeof value !== 'string') return value;
    const original = this[key];
    return original instanceof Date ? { [DATE_TAG]: original.toISOString() } : value;
  });
}

/** The message of a session over `maxPayloadBytes`: the size, the limit, and what to do. */
export function oversizeMessage(what: string, bytes: number, limit: number): string {
  return (
    `keepsake: ${what} is ${bytes} bytes, over the ${limit}-byte limit (maxPayloadBytes), so it was not saved and the stored session is unchanged. ` +
    'Store less in the session (large data belongs in a database, with its ID in the session), or raise maxPayloadBytes if the store can serve that size quickly.'
  );
}

/**
 * Throws SessionValueError when the entry `key: value` alone is bigger, as stored JSON, than
 * `limit` bytes: the session holding it could never be saved. Strings are measured without
 * serializing; other values by their JSON, which V8 cannot build past its string length limit
 * either (that, too, is a SessionValueError).
 */
export function assertEntryFits(
  key: string,
  value: unknown,
  holdsDates: boolean,
  limit: number,
): void {
  let bytes: number;
  if (typeof value === 'string') {
    // Each UTF-16 unit is at most 3 UTF-8 bytes: a short string cannot be too big.
    if ((value.length + key.length) * 3 + 8 <= limit) return;
    bytes = Buffer.byteLength(value) + Buffer.byteLength(key) + 5;
  } else if (typeof value === 'object' && value !== null) {
    bytes = Buffer.byteLength(serializeWithin(new Map([[key, value]]), holdsDates, 'the value'));
  } else {
    return;
  }
  if (bytes > limit) {
    throw new SessionValueError(oversizeMessage(`the session key "${key}"`, bytes, limit));
  }
}

/** serialize(), with V8's "Invalid string length" (a value of hundreds of megabytes) as SessionValueError. */
export function serializeWithin(
  data: ReadonlyMap<string, unknown>,
  holdsDates: boolean,
  what: string,
): string {
  try {
    return serialize(data, holdsDates);
  } catch (error) {
    if (error instanceof RangeError) {
      throw new SessionValueError(
        `keepsake: ${what} is too big to serialize (${error.message}); nothing was saved and the stored session is unchanged. Store less in the session (large data belongs in a database, with its ID in the session).`,
      );
    }
    throw error;
  }
}

/** Parses a stored payload; throws (SyntaxError or TypeError) when it is not a keepsake payload. */
export function deserialize(payload: string): Map<string, unknown> {
  // Only a payload with room for that many brackets can nest too deep; most are far smaller.
  // The record itself is one level more than the values set() accepted.
  if (payload.length > 2 * MAX_NESTING && nestsDeeperThan(payload, MAX_NESTING + 1)) {
    throw new TypeError(`the payload nests deeper than ${MAX_NESTING} levels`);
  }
  // The reviver costs a call per value; only payloads that hold a Date need it.
  const parsed: unknown = payload.includes(DATE_TAG)
    ? JSON.parse(payload, reviveDate)
    : JSON.parse(payload);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TypeError('the payload is not a JSON object');
  }
  const data = new Map<string, unknown>();
  // JSON.parse makes only own properties (even one named __proto__), so for…in sees just those.
  for (const key in parsed) data.set(key, (parsed as Record<string, unknown>)[key]);
  return data;
}

function reviveDate(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const tagged = (value as Record<string, unknown>)[DATE_TAG];
    if (typeof tagged === 'string' && Object.keys(value).length === 1) {
      const date = new Date(tagged);
      if (Number.isNaN(date.getTime())) throw new TypeError(`an invalid date tag (${tagged})`);
      return date;
    }
  }
  return value;
}

/** Whether JSON text opens more than `limit` arrays or objects inside each other (strings skipped). */
function nestsDeeperThan(json: string, limit: number): boolean {
  let depth = 0;
  for (let index = 0; index < json.length; index += 1) {
    const code = json.charCodeAt(index);
    if (code === QUOTE) {
      index = closingQuote(json, index);
      if (index === -1) return false;
    } else if (code === OPEN_BRACKET || code === OPEN_BRACE) {
      depth += 1;
      if (depth > limit) return true;
    } else if (code === CLOSE_BRACKET || code === CLOSE_BRACE) {
      depth -= 1;
    }
  }
  return false;
}

const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;
const OPEN_BRACE = 123;
const CLOSE_BRACE = 125;

/** The index of the quote that ends the string opened at `opening`, or -1. */
function closingQuote(json: string, opening: number): number {
  let candidate = json.indexOf('"', opening + 1);
  while (candidate !== -1) {
    let backslashes = 0;
    while (json.charCodeAt(candidate - 1 - backslashes) === BACKSLASH) backslashes += 1;
    if (backslashes % 2 === 0) return candidate;
    candidate = json.indexOf('"', candidate + 1);
  }
  return -1;
}
