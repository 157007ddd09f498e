/**
 * PHP's session encoding (`session.serialize_handler = php`, PHP's default, which CodeIgniter 4
 * uses), both ways, so keepsake can share sessions with a CodeIgniter application.
 *
 * A payload is a run of `name|<serialize(value)>` entries, e.g.
 * `__ci_last_regenerate|i:1796173352;user|s:5:"alice";__ci_vars|a:1:{s:6:"coupon";i:1796173652;}`.
 * PHP strings are bytes: every `s:N:` length counts UTF-8 bytes, and decoding works on bytes.
 *
 * The mapping, JS ↔ PHP as written by PHP ≥ 7.1 (`serialize_precision = -1`):
 * - `null` ↔ `N;`; `false` / `true` ↔ `b:0;` / `b:1;`.
 * - a safe integer (`Number.isSafeInteger`, so `-0` too) ↔ `i:42;`.
 * - any other finite number ↔ `d:…;` in PHP's shortest round-trip form: plain notation for
 *   decimal exponents −4..16 (`d:0.1;`, `d:10000000000000000;`), else `d:1.0E+25;`, `d:1.0E-5;`.
 *   So integers beyond ±(2^53 − 1), including those beyond PHP's int64, are written as floats.
 * - a string ↔ `s:<UTF-8 byte length>:"…";`.
 * - an array ↔ a PHP list `a:N:{i:0;…i:1;…}`.
 * - a plain object (prototype Object.prototype or null) ↔ `a:N:{…}` with its own enumerable keys
 *   in `Object.keys` order; a key PHP turns into an integer (`"0"`, `"-7"`,
 *   `"9223372036854775807"`; not `"07"`, `"-0"` or `"+1"`) is written `i:<key>;` as PHP would.
 *
 * Decoding is the reverse, with what JS cannot tell apart:
 * - a PHP array whose keys are exactly 0..n-1 in order (the empty array too) becomes a JS array;
 *   any other becomes a plain object with string keys (`i:5` → `"5"`). So `{}` and `{"0": "a"}`
 *   come back as `[]` and `["a"]`, and since JS lists integer-like keys first, the PHP array
 *   `["b" => 1, 2 => 2]` comes back as `{2: 2, b: 1}` and is re-encoded in that order.
 * - a PHP int beyond ±(2^53 − 1) throws: JS cannot hold it exactly. A PHP float is a JS number,
 *   so an integral float in the safe range (`d:5;`, `d:-0;`) is re-encoded as an int (`i:5;`,
 *   `i:0;`). `d:NAN;`, `d:INF;`, `d:-INF;` and floats beyond the double range throw.
 * - strings must be valid UTF-8. Pass the stored bytes (Buffer / Uint8Array) to have invalid UTF-8
 *   detected; a JS string was decoded by its caller, which may have replaced bad bytes already.
 * - objects (`O:`, `C:`), enums (`E:`), references (`r:`, `R:`), escaped strings (`S:`), duplicate
 *   keys (PHP never writes them), arrays nested deeper than 1024 and anything malformed throw
 *   PhpSessionDecodeError, naming what was found and its byte offset.
 * - PHP < 7 marked registered-but-unset variables as `!name|` with no value; such an entry is
 *   skipped. PHP ≥ 7 has no marker and reads `!name|i:1;` as the key `"!name"`, so an entry is
 *   taken as a marker only when no value follows its `|`.
 *
 * Encoding throws SessionValueError for what PHP cannot store or keepsake could not read back:
 * undefined, functions, symbols, BigInt, Dates, Maps and other class instances, NaN and
 * ±Infinity, strings with an unpaired surrogate, cycles, objects with symbol keys, and session keys
 * that contain `|` (PHP's encoder then refuses the whole session) or that PHP turns into integers
 * (`"5"`: PHP's encoder skips them, and PHP code could not read them).
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { SessionValueError } from '../errors.js';

/** A stored PHP session payload (or serialize() value) that keepsake cannot read. */
export class PhpSessionDecodeError extends Error {
  /** Byte offset in the payload where the problem was found. */
  readonly offset: number;

  constructor(problem: string, offset: number) {
    super(`keepsake: cannot decode the PHP session data at byte ${offset}: ${problem}.`);
    this.name = 'PhpSessionDecodeError';
    this.offset = offset;
  }
}

/** Encodes session data as PHP's `session_encode()` does with the `php` serialize handler. */
export function encodePhpSession(data: ReadonlyMap<string, unknown>): string {
  const out: string[] = [];
  for (const [key, value] of data) {
    if (typeof key !== 'string') {
      throw new SessionValueError(String(key), '', 'stored under a key that is not a string');
    }
    if (key.includes('|')) {
      throw new SessionValueError(
        key,
        '',
        "stored under a key containing '|', which PHP's session encoding cannot hold",
      );
    }
    if (isPhpIntegerKey(key)) {
      throw new SessionValueError(
        key,
        '',
        'stored under a numeric key, which PHP turns into an integer that its session encoder skips',
      );
    }
    if (utf8Length(key) === -1) {
      throw new SessionValueError(key, '', 'stored under a key with an unpaired UTF-16 surrogate');
    }
    out.push(`${key}|`);
    writeValue(out, value, key, '', null);
  }
  return out.join('');
}

/** Decodes a PHP session payload into keepsake's session data, keys in stored order. */
export function decodePhpSession(payload: string | Uint8Array): Map<string, unknown> {
  const reader = new Reader(payload);
  const bytes = reader.bytes;
  const end = bytes.length;
  const data = new Map<string, unknown>();
  while (reader.offset < end) {
    const nameStart = reader.offset;
    const bar = bytes.indexOf('|', nameStart);
    if (bar === -1) {
      throw new PhpSessionDecodeError(
        "found a session key without the '|' that ends it (the data is cut or is not in PHP's session format)",
        nameStart,
      );
    }
    const name = reader.text(nameStart, bar);
    reader.offset = bar + 1;
    if (bytes.charCodeAt(nameStart) === BANG && !startsValue(bytes, bar + 1)) continue;
    if (data.has(name)) {
      throw new PhpSessionDecodeError(`found the session key "${name}" twice`, nameStart);
    }
    data.set(name, reader.value(0));
  }
  return data;
}

/** Encodes one value as PHP's `serialize()` does (the session's rules for values apply). */
export function serializePhpValue(value: unknown, key = ''): string {
  const out: string[] = [];
  writeValue(out, value, key, '', null);
  return out.join('');
}

/** Decodes one `serialize()` value; the whole payload must be that value. */
export function unserializePhpValue(payload: string | Uint8Array): unknown {
  const reader = new Reader(payload);
  const value = reader.value(0);
  if (reader.offset !== reader.bytes.length) {
    throw new PhpSessionDecodeError('found bytes after the end of the value', reader.offset);
  }
  return value;
}

/**
 * Does PHP turn this array key into an integer? (ZEND_HANDLE_NUMERIC_STR: an optional minus, no
 * leading zero, not "-0", within int64.)
 */
export function isPhpIntegerKey(key: string): boolean {
  const length = key.length;
  if (length === 0 || length > 20) return false;
  const firstDigit = key.charCodeAt(0) === MINUS ? 1 : 0;
  if (firstDigit === length) return false;
  if (key.charCodeAt(firstDigit) === DIGIT_0) return length === 1;
  for (let index = firstDigit; index < length; index++) {
    const code = key.charCodeAt(index);
    if (code < DIGIT_0 || code > DIGIT_9) return false;
  }
  if (length - firstDigit < 19) return true;
  const value = BigInt(key);
  return value >= INT64_MIN && value <= INT64_MAX;
}

/**
 * PHP's `serialize()` text of a finite double, with `serialize_precision = -1` (zend_gcvt in
 * mode 0): the shortest round-trip digits, which JS finds too, in plain notation for decimal
 * exponents −4..16 and as `d.dddE±x` otherwise.
 */
export function formatPhpFloat(value: number): string {
  const magnitude = value < 0 ? -value : value;
  // JS writes plain notation for exponents −7..20, with the same digits.
  if (magnitude >= 1e-4 && magnitude < 1e17) return String(value);
  const exponential = value.toExponential();
  const e = exponential.indexOf('e');
  const mantissa = exponential.slice(0, e);
  return `${mantissa.includes('.') ? mantissa : `${mantissa}.0`}E${exponential.slice(e + 1)}`;
}

const BANG = 0x21; // !
const QUOTE = 0x22;
const PLUS = 0x2b;
const MINUS = 0x2d;
const DOT = 0x2e;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const COLON = 0x3a;
const SEMICOLON = 0x3b;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * Deeper arrays are refused with a clear error rather than a stack overflow (PHP's own
 * `unserialize_max_depth` is 4096, deeper than a JS stack safely recurses here).
 */
const MAX_DEPTH = 1024;

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/** UTF-8 byte length of `text`, or -1 when it holds an unpaired surrogate (no UTF-8 form). */
function utf8Length(text: string): number {
  const units = text.length;
  let length = units;
  for (let index = 0; index < units; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x80) continue;
    if (code < 0x800) {
      length += 1;
    } else if (code < 0xd800 || code > 0xdfff) {
      length += 2;
    } else {
      const next = text.charCodeAt(index + 1);
      if (code > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return -1;
      length += 2;
      index++;
    }
  }
  return length;
}

/** Appends `s:N:"…";` for a string. */
function writeString(out: string[], text: string, key: string, path: string): void {
  const length = utf8Length(text);
  if (length === -1) {
    throw new SessionValueError(
      key,
      path,
      'a string with an unpaired UTF-16 surrogate (not representable in UTF-8)',
    );
  }
  out.push(`s:${length}:"${text}";`);
}

function writeValue(
  out: string[],
  value: unknown,
  key: string,
  path: string,
  ancestors: Set<object> | null,
): void {
  switch (typeof value) {
    case 'string':
      writeString(out, value, key, path);
      return;
    case 'number':
      if (Number.isSafeInteger(value)) {
        out.push(`i:${value};`);
      } else if (Number.isFinite(value)) {
        out.push(`d:${formatPhpFloat(value)};`);
      } else {
        throw new SessionValueError(key, path, `${value} (not a finite number)`);
      }
      return;
    case 'boolean':
      out.push(value ? 'b:1;' : 'b:0;');
      return;
    case 'undefined':
      throw new SessionValueError(key, path, 'undefined (use null)');
    case 'bigint':
      throw new SessionValueError(key, path, 'a BigInt (store it as a string)');
    case 'function':
      throw new SessionValueError(key, path, 'a function');
    case 'symbol':
      throw new SessionValueError(key, path, 'a symbol');
  }
  if (value === null) {
    out.push('N;');
    return;
  }
  const object = value as object;
  if (object instanceof Date) {
    throw new SessionValueError(
      key,
      path,
      "a Date, which PHP's session data has no type for (store date.toISOString() or a timestamp)",
    );
  }
  const seen = ancestors ?? new Set<object>();
  if (seen.has(object)) throw new SessionValueError(key, path, 'a cyclic reference');
  seen.add(object);
  if (Array.isArray(object)) {
    const length = object.length;
    out.push(`a:${length}:{`);
    for (let index = 0; index < length; index++) {
      out.push(`i:${index};`);
      writeValue(out, object[index], key, `${path}[${index}]`, seen);
    }
    out.push('}');
  } else {
    const prototype = Object.getPrototypeOf(object);
    if (prototype !== Object.prototype && prototype !== null) {
      const kind = (object.constructor as { name?: string } | undefined)?.name || 'class';
      throw new SessionValueError(
        key,
        path,
        `a ${kind} instance (only plain objects and arrays map to PHP arrays)`,
      );
    }
    if (Object.getOwnPropertySymbols(object).length > 0) {
      throw new SessionValueError(key, path, 'an object with symbol keys');
    }
    const record = object as Record<string, unknown>;
    const names = Object.keys(record);
    out.push(`a:${names.length}:{`);
    for (const name of names) {
      const childPath = path === '' ? name : `${path}.${name}`;
      if (isPhpIntegerKey(name)) out.push(`i:${name};`);
      else writeString(out, name, key, childPath);
      writeValue(out, record[name], key, childPath, seen);
    }
    out.push('}');
  }
  seen.delete(object);
}

/** Could a serialize() value start at `offset`? (A type letter and its ':' or ';'.) */
function startsValue(bytes: string, offset: number): boolean {
  const type = bytes.charCodeAt(offset);
  const next = bytes.charCodeAt(offset + 1);
  if (type === 0x4e /* N */) return next === SEMICOLON;
  return next === COLON && TYPE_LETTERS.has(type);
}

/** What each serialize() type letter keepsake refuses stands for. */
const UNSUPPORTED_TYPES = new Map<number, string>([
  [0x4f /* O */, 'a PHP object (O:)'],
  [0x43 /* C */, 'a PHP object with custom serialization (C:)'],
  [0x45 /* E */, 'a PHP enum case (E:)'],
  [0x72 /* r */, 'a PHP object reference (r:)'],
  [0x52 /* R */, 'a PHP variable reference (R:)'],
  [0x53 /* S */, 'a PHP escaped string (S:)'],
  [0x6f /* o */, 'a PHP 3 object (o:)'],
]);

const TYPE_LETTERS = new Set<number>([
  0x61 /* a */,
  0x62 /* b */,
  0x64 /* d */,
  0x69 /* i */,
  0x73 /* s */,
  ...UNSUPPORTED_TYPES.keys(),
]);

/** Reads serialize() values from the payload; `offset` moves past what was read. */
class Reader {
  /**
   * The payload's bytes as a string of char codes 0–255, so that parsing uses the engine's fast
   * charCodeAt/indexOf/slice, and a byte offset is a string index.
   */
  readonly bytes: string;
  offset = 0;
  /** The payload's bytes when some are ≥ 0x80: those strings are decoded from here as UTF-8. */
  private readonly buffer: Buffer | null;
  /** Set when the payload is not valid UTF-8 as a whole: then each non-ASCII string is checked. */
  private readonly checkEachString: boolean;

  constructor(payload: string | Uint8Array) {
    if (typeof payload === 'string') {
      this.checkEachString = false;
      // Equal lengths mean every char is ASCII: the string is its own bytes.
      if (Buffer.byteLength(payload, 'utf8') === payload.length) {
        this.bytes = payload;
        this.buffer = null;
      } else {
        this.buffer = Buffer.from(payload, 'utf8');
        this.bytes = this.buffer.toString('latin1');
      }
    } else {
      const buffer = Buffer.isBuffer(payload)
        ? payload
        : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      this.buffer = buffer;
      this.bytes = buffer.toString('latin1');
      this.checkEachString = !isUtf8(buffer);
    }
  }

  /**
   * The text of bytes start..end. Every slice taken here starts right after an ASCII delimiter
   * and ends right before one, so in a valid UTF-8 payload it never splits a character.
   */
  text(start: number, end: number): string {
    const bytes = this.bytes;
    const buffer = this.buffer;
    if (buffer !== null) {
      for (let index = start; index < end; index++) {
        if (bytes.charCodeAt(index) < 0x80) continue;
        if (this.checkEachString && !isUtf8(buffer.subarray(start, end))) {
          throw new PhpSessionDecodeError(
            'found a string that is not valid UTF-8 (keepsake strings are Unicode text)',
            start,
          );
        }
        return buffer.toString('utf8', start, end);
      }
    }
    return bytes.slice(start, end);
  }

  value(depth: number): unknown {
    const bytes = this.bytes;
    const start = this.offset;
    if (start >= bytes.length) {
      throw new PhpSessionDecodeError('expected a value but the data ended', start);
    }
    const type = bytes.charCodeAt(start);
    if (type === 0x4e /* N */) {
      if (bytes.charCodeAt(start + 1) !== SEMICOLON) this.malformed('N', start + 1);
      this.offset = start + 2;
      return null;
    }
    const unsupported = UNSUPPORTED_TYPES.get(type);
    if (unsupported !== undefined) {
      throw new PhpSessionDecodeError(
        `found ${unsupported}; keepsake reads only null, booleans, ints, floats, strings and arrays`,
        start,
      );
    }
    if (bytes.charCodeAt(start + 1) !== COLON) {
      if (TYPE_LETTERS.has(type)) this.malformed(bytes[start] ?? '', start + 1);
      this.unknownType(start);
    }
    this.offset = start + 2;
    switch (type) {
      case 0x69 /* i */:
        return this.integer(SEMICOLON, 'i');
      case 0x73 /* s */:
        return this.string();
      case 0x62 /* b */:
        {
          const flag = bytes.charCodeAt(start + 2);
          if (
            (flag !== DIGIT_0 && flag !== DIGIT_0 + 1) ||
            bytes.charCodeAt(start + 3) !== SEMICOLON
          ) {
            this.malformed('b', start + 2);
          }
          this.offset = start + 4;
          return flag === DIGIT_0 + 1;
        }
      case 0x64 /* d */:
        return this.float();
      case 0x61 /* a */:
        return this.array(depth);
    }
    return this.unknownType(start);
  }

  /** `s:N:"…";` after its `s:`. */
  private string(): string {
    const bytes = this.bytes;
    const lengthAt = this.offset;
    const length = this.integer(COLON, 's');
    if (length < 0) this.malformed('s', lengthAt);
    const start = this.offset + 1;
    const end = start + length;
    if (
      bytes.charCodeAt(this.offset) !== QUOTE ||
      bytes.charCodeAt(end) !== QUOTE ||
      bytes.charCodeAt(end + 1) !== SEMICOLON
    ) {
      throw new PhpSessionDecodeError(
        `found a string whose byte length ${length} does not match its quotes (s:${length}:"…"; expected)`,
        lengthAt - 2,
      );
    }
    this.offset = end + 2;
    return this.text(start, end);
  }

  /**
   * `d:…;` after its `d:`. Accepts what PHP's unserialize() does (`[+-]?`, digits with an
   * optional '.', an optional `[eE][+-]?digits`), so Number() never sees text it reads otherwise
   * ('' as 0, "0x1" as hex, "Infinity").
   */
  private float(): number {
    const bytes = this.bytes;
    const start = this.offset;
    let index = start;
    let code = bytes.charCodeAt(index);
    if (code === MINUS || code === PLUS) code = bytes.charCodeAt(++index);
    let digits = 0;
    while (code >= DIGIT_0 && code <= DIGIT_9) {
      digits++;
      code = bytes.charCodeAt(++index);
    }
    if (code === DOT) {
      code = bytes.charCodeAt(++index);
      while (code >= DIGIT_0 && code <= DIGIT_9) {
        digits++;
        code = bytes.charCodeAt(++index);
      }
    }
    if (digits > 0 && (code === 0x65 || code === 0x45) /* e or E */) {
      code = bytes.charCodeAt(++index);
      if (code === MINUS || code === PLUS) code = bytes.charCodeAt(++index);
      const exponentStart = index;
      while (code >= DIGIT_0 && code <= DIGIT_9) code = bytes.charCodeAt(++index);
      if (index === exponentStart) digits = 0;
    }
    if (digits === 0 || code !== SEMICOLON) {
      const semicolon = bytes.indexOf(';', start);
      const text = semicolon === -1 ? '' : bytes.slice(start, semicolon);
      if (text === 'NAN' || text === 'INF' || text === '-INF') {
        throw new PhpSessionDecodeError(
          `found the float ${text}, which keepsake cannot store (session numbers are finite)`,
          start - 2,
        );
      }
      this.malformed('d', start);
    }
    const value = Number(bytes.slice(start, index));
    if (!Number.isFinite(value)) {
      throw new PhpSessionDecodeError(
        `found the float ${bytes.slice(start, index)}, beyond the double range (PHP reads it as INF)`,
        start - 2,
      );
    }
    this.offset = index + 1;
    return value;
  }

  /** `a:N:{key value …}` after its `a:`; a 0..n-1 list becomes an array, any other an object. */
  private array(depth: number): unknown[] | Record<string, unknown> {
    const bytes = this.bytes;
    const countAt = this.offset;
    if (depth >= MAX_DEPTH) {
      throw new PhpSessionDecodeError(`found arrays nested deeper than ${MAX_DEPTH}`, countAt - 2);
    }
    const count = this.integer(COLON, 'a');
    if (count < 0 || bytes.charCodeAt(this.offset) !== OPEN_BRACE) this.malformed('a', countAt);
    this.offset++;
    const list: unknown[] = [];
    let record: Record<string, unknown> | null = null;
    for (let index = 0; index < count; index++) {
      const keyAt = this.offset;
      const keyType = bytes.charCodeAt(keyAt);
      if (bytes.charCodeAt(keyAt + 1) !== COLON || (keyType !== 0x69 && keyType !== 0x73)) {
        throw new PhpSessionDecodeError(
          'found an array key that is neither an integer (i:) nor a string (s:)',
          keyAt,
        );
      }
      this.offset = keyAt + 2;
      const name = keyType === 0x69 /* i */ ? this.integerKey() : this.string();
      if (record === null) {
        if (name === String(index)) {
          list.push(this.value(depth + 1));
          continue;
        }
        record = {};
        for (let position = 0; position < list.length; position++) {
          record[position] = list[position];
        }
      }
      if (Object.hasOwn(record, name)) {
        throw new PhpSessionDecodeError(`found the array key "${name}" twice`, keyAt);
      }
      const item = this.value(depth + 1);
      if (name === '__proto__') {
        Object.defineProperty(record, name, {
          value: item,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else {
        record[name] = item;
      }
    }
    if (bytes.charCodeAt(this.offset) !== CLOSE_BRACE) {
      throw new PhpSessionDecodeError(
        `found an array whose element count ${count} does not match its '}'`,
        this.offset,
      );
    }
    this.offset++;
    return record ?? list;
  }

  /** An `i:` array key after its `i:`, spelled as PHP prints that integer. */
  private integerKey(): string {
    const bytes = this.bytes;
    const start = this.offset;
    const end = bytes.indexOf(';', start);
    if (end === -1) this.malformed('i', start);
    const text = bytes.slice(start, end);
    this.offset = end + 1;
    if (isPhpIntegerKey(text)) return text;
    // unserialize() also reads "+5" and "007".
    if (!/^[+-]?[0-9]+$/.test(text)) this.malformed('i', start);
    const value = BigInt(text);
    if (value < INT64_MIN || value > INT64_MAX) {
      throw new PhpSessionDecodeError(`found the array key ${text}, outside PHP's int64`, start);
    }
    return value.toString();
  }

  /** Optionally signed digits up to `terminator`, as a safe integer; moves past the terminator. */
  private integer(terminator: number, type: string): number {
    const bytes = this.bytes;
    const start = this.offset;
    let index = start;
    let code = bytes.charCodeAt(index);
    const negative = code === MINUS;
    if (negative || code === PLUS) code = bytes.charCodeAt(++index);
    const digitsStart = index;
    let value = 0;
    while (code >= DIGIT_0 && code <= DIGIT_9) {
      value = value * 10 + (code - DIGIT_0);
      code = bytes.charCodeAt(++index);
    }
    if (index === digitsStart || code !== terminator) this.malformed(type, start);
    if (value > Number.MAX_SAFE_INTEGER) {
      throw new PhpSessionDecodeError(
        `found the integer ${bytes.slice(start, index)}, outside JavaScript's safe integer range (±9007199254740991), which keepsake cannot read without losing precision`,
        start - 2,
      );
    }
    this.offset = index + 1;
    return negative && value !== 0 ? -value : value;
  }

  private malformed(type: string, offset: number): never {
    throw new PhpSessionDecodeError(`found a malformed ${type}: value`, offset);
  }

  private unknownType(offset: number): never {
    const byte = this.bytes.charCodeAt(offset);
    const shown =
      byte >= 0x20 && byte < 0x7f
        ? `'${String.fromCharCode(byte)}'`
        : `0x${byte.toString(16).padStart(2, '0')}`;
    throw new PhpSessionDecodeError(
      `expected a value but found ${shown} (the data is cut or is not in PHP's serialize format)`,
      offset,
    );
  }
}
