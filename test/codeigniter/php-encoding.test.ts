/**
 * PHP's session encoding (session.serialize_handler = php), which keepsake reads and writes to share
 * sessions with CodeIgniter: every mapping rule by example, then property-based round trips against
 * the real `php` binary (session_encode / session_decode / serialize / unserialize).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodePhpSession,
  encodePhpSession,
  formatPhpFloat,
  isPhpIntegerKey,
  PhpSessionDecodeError,
  serializePhpValue,
  unserializePhpValue,
} from '../../src/codeigniter/php-session-encoding.js';
import { SessionValueError } from '../../src/errors.js';
import { type PhpProcess, phpSkip, startPhpProcess } from './php-process.js';

const BRIEF_EXAMPLE =
  '__ci_last_regenerate|i:1796173352;n|i:4;str|s:10:"a"b;c|d é";list|a:2:{i:0;i:1;i:1;s:3:"two";}' +
  '__ci_vars|a:1:{s:6:"coupon";i:1796173652;}';

const session = (record: Record<string, unknown>) => new Map(Object.entries(record));

/** Asserts that decoding throws PhpSessionDecodeError whose message names `found` and whose offset is `offset`. */
function assertDecodeError(payload: string | Uint8Array, found: RegExp, offset: number) {
  assert.throws(
    () => decodePhpSession(payload),
    (error: unknown) => {
      assert.ok(error instanceof PhpSessionDecodeError, String(error));
      assert.match(error.message, found);
      assert.match(error.message, new RegExp(`at byte ${offset}:`));
      assert.equal(error.offset, offset);
      return true;
    },
  );
}

/** Asserts that encoding throws SessionValueError naming the key, the path and the problem. */
function assertValueError(data: Map<string, unknown>, key: string, path: string, what: RegExp) {
  assert.throws(
    () => encodePhpSession(data),
    (error: unknown) => {
      assert.ok(error instanceof SessionValueError, String(error));
      assert.equal(error.code, 'KEEPSAKE_VALUE');
      assert.match(error.message, new RegExp(`session key "${escapeRegExp(key)}"`));
      if (path !== '') assert.match(error.message, new RegExp(`${escapeRegExp(path)} is`));
      assert.match(error.message, what);
      return true;
    },
  );
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('PHP session encoding: the format', () => {
  it('decodes a CodeIgniter payload and re-encodes it byte for byte', () => {
    const data = decodePhpSession(BRIEF_EXAMPLE);
    assert.deepEqual(
      [...data],
      [
        ['__ci_last_regenerate', 1796173352],
        ['n', 4],
        ['str', 'a"b;c|d é'],
        ['list', [1, 'two']],
        ['__ci_vars', { coupon: 1796173652 }],
      ],
    );
    assert.equal(encodePhpSession(data), BRIEF_EXAMPLE);
  });

  it('reads the same payload given as bytes', () => {
    assert.deepEqual(decodePhpSession(Buffer.from(BRIEF_EXAMPLE)), decodePhpSession(BRIEF_EXAMPLE));
    const bytes = new Uint8Array(Buffer.from(`xx${BRIEF_EXAMPLE}`)).subarray(2);
    assert.deepEqual(decodePhpSession(bytes), decodePhpSession(BRIEF_EXAMPLE));
  });

  it('maps the empty payload to an empty session and back', () => {
    assert.equal(decodePhpSession('').size, 0);
    assert.equal(encodePhpSession(new Map()), '');
  });

  it('keeps the session key order', () => {
    const data = session({ z: 1, a: 2, m: 3 });
    assert.equal(encodePhpSession(data), 'z|i:1;a|i:2;m|i:3;');
    assert.deepEqual([...decodePhpSession('z|i:1;a|i:2;m|i:3;').keys()], ['z', 'a', 'm']);
  });

  it('allows the empty session key and keys PHP writes verbatim ("!x", "a b", "é")', () => {
    const data = session({ '': 1, '!x': 2, 'a b': 3, é: 4 });
    const payload = '|i:1;!x|i:2;a b|i:3;é|i:4;';
    assert.equal(encodePhpSession(data), payload);
    assert.deepEqual(decodePhpSession(payload), data);
  });

  it('skips the `!name|` marker of PHP < 7 only when no value follows it', () => {
    assert.deepEqual(decodePhpSession('!gone|kept|i:1;'), session({ kept: 1 }));
    assert.deepEqual(decodePhpSession('kept|i:1;!gone|'), session({ kept: 1 }));
    assert.deepEqual(decodePhpSession('!x|i:3;'), session({ '!x': 3 }));
    assert.deepEqual(decodePhpSession('!x|N;'), session({ '!x': null }));
  });

  it('keeps a key named __proto__ as an own key, at the top and inside arrays', () => {
    const data = decodePhpSession('__proto__|a:1:{s:9:"__proto__";a:1:{s:1:"p";b:1;}}');
    const value = data.get('__proto__') as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(value), Object.prototype);
    assert.ok(Object.hasOwn(value, '__proto__'));
    assert.deepEqual(Object.getOwnPropertyDescriptor(value, '__proto__')?.value, { p: true });
    assert.equal((value as { p?: unknown }).p, undefined);
    assert.equal(encodePhpSession(data), '__proto__|a:1:{s:9:"__proto__";a:1:{s:1:"p";b:1;}}');
  });
});

describe('PHP session encoding: null, booleans and integers', () => {
  it('maps null to N; and booleans to b:0; / b:1;', () => {
    const data = session({ none: null, no: false, yes: true });
    assert.equal(encodePhpSession(data), 'none|N;no|b:0;yes|b:1;');
    assert.deepEqual(decodePhpSession('none|N;no|b:0;yes|b:1;'), data);
  });

  it('maps safe integers to i:, up to ±(2^53 − 1)', () => {
    const data = session({
      zero: 0,
      negative: -42,
      max: Number.MAX_SAFE_INTEGER,
      min: Number.MIN_SAFE_INTEGER,
    });
    const payload = 'zero|i:0;negative|i:-42;max|i:9007199254740991;min|i:-9007199254740991;';
    assert.equal(encodePhpSession(data), payload);
    assert.deepEqual(decodePhpSession(payload), data);
  });

  it('writes -0 as i:0; (PHP ints have no sign of zero)', () => {
    assert.equal(encodePhpSession(session({ z: -0 })), 'z|i:0;');
  });

  it('refuses PHP ints outside the safe range instead of losing precision', () => {
    assertDecodeError('big|i:9007199254740992;', /integer 9007199254740992.*safe integer range/, 4);
    assertDecodeError('big|i:-9223372036854775808;', /integer -9223372036854775808/, 4);
    assertDecodeError('ok|i:1;big|a:1:{i:0;i:9223372036854775807;}', /9223372036854775807/, 20);
  });

  it('reads what unserialize() also accepts: a leading + or zeros', () => {
    assert.deepEqual(decodePhpSession('a|i:+5;b|i:007;'), session({ a: 5, b: 7 }));
  });

  it('refuses malformed integers and booleans', () => {
    assertDecodeError('a|i:;', /malformed i: value/, 4);
    assertDecodeError('a|i:12', /malformed i: value/, 4);
    assertDecodeError('a|i:1x;', /malformed i: value/, 4);
    assertDecodeError('a|i1;', /malformed i: value/, 3);
    assertDecodeError('a|b:2;', /malformed b: value/, 4);
    assertDecodeError('a|b:1', /malformed b: value/, 4);
    assertDecodeError('a|N', /malformed N: value/, 3);
  });
});

describe('PHP session encoding: floats', () => {
  // Each right-hand side is what PHP 8.2's serialize() wrote for the same double.
  const written: [number, string][] = [
    [0.1, '0.1'],
    [-2.5, '-2.5'],
    [0.0001, '0.0001'],
    [0.00012, '0.00012'],
    [1e-5, '1.0E-5'],
    [-1e-7, '-1.0E-7'],
    [1.2345e-7, '1.2345E-7'],
    [1e15 + 0.5, '1000000000000000.5'],
    [1e16, '10000000000000000'],
    [1e17, '1.0E+17'],
    [1.5e17, '1.5E+17'],
    [123456789012345680, '1.2345678901234568E+17'],
    [2 ** 63, '9.223372036854776E+18'],
    [12345678901234567000, '1.2345678901234567E+19'],
    [1e25, '1.0E+25'],
    [1e100, '1.0E+100'],
    [5e-324, '5.0E-324'],
    [Number.MAX_VALUE, '1.7976931348623157E+308'],
  ];

  it("writes PHP's shortest round-trip form (serialize_precision = -1)", () => {
    for (const [value, text] of written) {
      assert.equal(formatPhpFloat(value), text, String(value));
      assert.equal(serializePhpValue(value), `d:${text};`);
      assert.equal(unserializePhpValue(`d:${text};`), value);
    }
  });

  it('writes integers beyond the safe range (and beyond int64) as d:', () => {
    assert.equal(serializePhpValue(2 ** 53), 'd:9007199254740992;');
    assert.equal(serializePhpValue(-(2 ** 60)), 'd:-1.152921504606847E+18;');
    assert.equal(serializePhpValue(1e30), 'd:1.0E+30;');
  });

  it('reads integral floats as numbers (so they come back as i: when safe), and -0 as -0', () => {
    assert.deepEqual(decodePhpSession('f|d:5;'), session({ f: 5 }));
    assert.equal(encodePhpSession(decodePhpSession('f|d:5;')), 'f|i:5;');
    assert.ok(Object.is(unserializePhpValue('d:-0;'), -0));
  });

  it('reads the float spellings unserialize() accepts', () => {
    assert.equal(unserializePhpValue('d:.5;'), 0.5);
    assert.equal(unserializePhpValue('d:5.;'), 5);
    assert.equal(unserializePhpValue('d:1e3;'), 1000);
    assert.equal(unserializePhpValue('d:+1.5E-2;'), 0.015);
  });

  it('refuses NAN, INF and -INF from PHP', () => {
    assertDecodeError('f|d:NAN;', /float NAN/, 2);
    assertDecodeError('f|d:INF;', /float INF/, 2);
    assertDecodeError('f|d:-INF;', /float -INF/, 2);
  });

  it('refuses malformed floats (text Number() would read: "", hex, Infinity)', () => {
    for (const text of ['', '0x10', 'Infinity', '1e', '.', '1.2.3', ' 1', '1_0']) {
      assertDecodeError(`f|d:${text};`, /malformed d: value/, 4);
    }
    assertDecodeError('f|d:1.5', /malformed d: value/, 4);
  });

  it('refuses NaN and ±Infinity on encode', () => {
    assertValueError(session({ n: Number.NaN }), 'n', '', /NaN \(not a finite number\)/);
    assertValueError(session({ n: { deep: [Infinity] } }), 'n', 'deep[0]', /Infinity/);
    assertValueError(session({ n: -Infinity }), 'n', '', /-Infinity/);
  });
});

describe('PHP session encoding: strings', () => {
  it('writes UTF-8 byte lengths', () => {
    assert.equal(serializePhpValue(''), 's:0:"";');
    assert.equal(serializePhpValue('é'), 's:2:"é";');
    assert.equal(serializePhpValue('✓'), 's:3:"✓";');
    assert.equal(serializePhpValue('😀'), 's:4:"😀";');
    assert.equal(serializePhpValue('a"b;c|d}'), 's:8:"a"b;c|d}";');
    assert.equal(serializePhpValue('nul\0byte'), 's:8:"nul\0byte";');
  });

  it('reads strings by byte length, whatever they hold', () => {
    const tricky = 'x";i:1;}|y|s:3:"é😀\n\r\0';
    const payload = encodePhpSession(session({ tricky, after: 1 }));
    assert.deepEqual(decodePhpSession(payload), session({ tricky, after: 1 }));
    assert.deepEqual(decodePhpSession(Buffer.from(payload)), session({ tricky, after: 1 }));
  });

  it('refuses a length that does not match the quotes', () => {
    assertDecodeError('s|s:3:"ab";', /byte length 3 does not match its quotes/, 2);
    assertDecodeError('s|s:1:"é";', /byte length 1 does not match/, 2);
    assertDecodeError('s|s:2:"ab"', /byte length 2 does not match/, 2);
    assertDecodeError('s|s:99:"ab";', /byte length 99 does not match/, 2);
    assertDecodeError('s|s:-1:"";', /malformed s: value/, 4);
  });

  it('refuses invalid UTF-8 from PHP, naming where the string starts', () => {
    const payload = Buffer.concat([
      Buffer.from('ok|s:1:"a";bad|s:2:"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('";'),
    ]);
    assertDecodeError(payload, /not valid UTF-8/, 20);
    const key = Buffer.concat([Buffer.from([0xff]), Buffer.from('|i:1;')]);
    assertDecodeError(key, /not valid UTF-8/, 0);
    const inArray = Buffer.concat([
      Buffer.from('a|a:1:{s:1:"'),
      Buffer.from([0x80]),
      Buffer.from('";i:1;}'),
    ]);
    assertDecodeError(inArray, /not valid UTF-8/, 12);
  });

  it('refuses strings with an unpaired surrogate on encode (no UTF-8 form)', () => {
    assertValueError(session({ s: 'a\ud800b' }), 's', '', /unpaired UTF-16 surrogate/);
    assertValueError(session({ s: { '\udc00': 1 } }), 's', '\udc00', /unpaired/);
    assertValueError(session({ '\ud800': 1 }), '\ud800', '', /unpaired/);
  });
});

describe('PHP session encoding: arrays', () => {
  it('maps JS arrays to PHP lists and back, nested', () => {
    const data = session({ list: [1, 'two', [3, [null]], { four: 4 }], empty: [] });
    const payload =
      'list|a:4:{i:0;i:1;i:1;s:3:"two";i:2;a:2:{i:0;i:3;i:1;a:1:{i:0;N;}}i:3;a:1:{s:4:"four";i:4;}}' +
      'empty|a:0:{}';
    assert.equal(encodePhpSession(data), payload);
    assert.deepEqual(decodePhpSession(payload), data);
  });

  it('writes object keys PHP treats as integers as i:, like PHP', () => {
    assert.equal(
      serializePhpValue({ name: 'a', 5: 'five', '-7': 'minus seven' }),
      'a:3:{i:5;s:4:"five";s:4:"name";s:1:"a";i:-7;s:11:"minus seven";}',
    );
    assert.equal(
      serializePhpValue({ '9223372036854775807': 1, '9223372036854775808': 2 }),
      'a:2:{i:9223372036854775807;i:1;s:19:"9223372036854775808";i:2;}',
    );
    assert.equal(
      serializePhpValue({ '07': 1, '-0': 2, '+1': 3, ' 1': 4, '1.5': 5 }),
      'a:5:{s:2:"07";i:1;s:2:"-0";i:2;s:2:"+1";i:3;s:2:" 1";i:4;s:3:"1.5";i:5;}',
    );
  });

  it('tells which keys PHP turns into integers', () => {
    for (const key of ['0', '5', '-5', '123', '9223372036854775807', '-9223372036854775808']) {
      assert.equal(isPhpIntegerKey(key), true, key);
    }
    for (const key of ['', '-', '-0', '05', '+5', '5 ', '1e3', '9223372036854775808', 'a1']) {
      assert.equal(isPhpIntegerKey(key), false, key);
    }
    assert.equal(isPhpIntegerKey('-9223372036854775809'), false);
  });

  it('reads a PHP array that is not a 0..n-1 list as an object with string keys', () => {
    assert.deepEqual(unserializePhpValue('a:2:{i:1;s:1:"a";i:2;s:1:"b";}'), { 1: 'a', 2: 'b' });
    assert.deepEqual(unserializePhpValue('a:2:{i:1;s:1:"b";i:0;s:1:"a";}'), { 0: 'a', 1: 'b' });
    assert.deepEqual(unserializePhpValue('a:2:{i:0;s:1:"a";s:1:"x";i:1;}'), { 0: 'a', x: 1 });
    assert.deepEqual(unserializePhpValue('a:1:{i:-3;b:1;}'), { '-3': true });
    assert.deepEqual(unserializePhpValue('a:1:{i:9223372036854775807;b:1;}'), {
      '9223372036854775807': true,
    });
    const decoded = unserializePhpValue('a:2:{s:1:"b";i:1;i:2;i:2;}');
    assert.deepEqual(Object.keys(decoded as object), ['2', 'b']);
  });

  it('reads the empty PHP array and a {"0": …} object as JS arrays (PHP cannot tell them apart)', () => {
    assert.deepEqual(unserializePhpValue(serializePhpValue({})), []);
    assert.deepEqual(unserializePhpValue(serializePhpValue({ 0: 'a', 1: 'b' })), ['a', 'b']);
  });

  it('normalises integer keys unserialize() accepts (+5, 007) to PHP’s spelling', () => {
    assert.deepEqual(unserializePhpValue('a:2:{i:+5;b:1;i:007;b:0;}'), { 5: true, 7: false });
    assert.throws(
      () => unserializePhpValue('a:1:{i:9223372036854775808;b:1;}'),
      /outside PHP's int64/,
    );
  });

  it('writes shared (non-cyclic) objects twice, as PHP copies arrays', () => {
    const shared = { x: 1 };
    assert.equal(
      serializePhpValue([shared, shared]),
      'a:2:{i:0;a:1:{s:1:"x";i:1;}i:1;a:1:{s:1:"x";i:1;}}',
    );
  });

  it('accepts objects without a prototype', () => {
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1 });
    assert.equal(serializePhpValue(bare), 'a:1:{s:1:"a";i:1;}');
  });

  it('refuses malformed arrays', () => {
    assertDecodeError('a|a:1:{i:0;i:1;', /element count 1 does not match its '}'/, 15);
    assertDecodeError('a|a:1:{i:0;i:1;i:1;i:2;}', /element count 1 does not match/, 15);
    assertDecodeError('a|a:2:{i:0;i:1;}', /array key that is neither/, 15);
    assertDecodeError('a|a:1:{N;i:1;}', /array key that is neither/, 7);
    assertDecodeError('a|a:1:{d:1.5;i:1;}', /array key that is neither/, 7);
    assertDecodeError('a|a:1:[i:0;i:1;]', /malformed a: value/, 4);
    assertDecodeError('a|a:2:{i:0;i:1;i:0;i:2;}', /array key "0" twice/, 15);
    assertDecodeError('a|a:2:{s:1:"x";i:1;s:1:"x";i:2;}', /array key "x" twice/, 19);
  });

  it('refuses arrays nested deeper than 1024 with a clear error, not a stack overflow', () => {
    const nested = (depth: number) => `a|${'a:1:{i:0;'.repeat(depth)}N;${'}'.repeat(depth)}`;
    assertDecodeError(nested(1025), /nested deeper than 1024/, 2 + 1024 * 9);
    assertDecodeError(nested(100_000), /nested deeper than 1024/, 2 + 1024 * 9);
    assert.equal(decodePhpSession(nested(1024)).size, 1);
  });
});

describe('PHP session encoding: what it refuses to encode', () => {
  it("refuses a session key containing '|'", () => {
    assertValueError(session({ 'a|b': 1 }), 'a|b', '', /containing '\|'/);
  });

  it('refuses numeric session keys (PHP makes them integers and skips them)', () => {
    assertValueError(session({ 5: 1 }), '5', '', /numeric key/);
    assertValueError(new Map([['-1', 1]]), '-1', '', /numeric key/);
    assert.equal(encodePhpSession(new Map([['05', 1]])), '05|i:1;');
  });

  it('refuses Dates, with advice', () => {
    assertValueError(session({ when: new Date(0) }), 'when', '', /a Date.*toISOString/);
    assertValueError(session({ log: [{ at: new Date(0) }] }), 'log', '[0].at', /a Date/);
  });

  it('refuses undefined, functions, symbols and BigInt, at any depth', () => {
    assertValueError(session({ u: undefined }), 'u', '', /undefined \(use null\)/);
    assertValueError(session({ u: { a: [1, undefined] } }), 'u', 'a[1]', /undefined/);
    // biome-ignore lint/suspicious/noSparseArray: a hole is what is being tested
    assertValueError(session({ u: [, 1] }), 'u', '[0]', /undefined/);
    assertValueError(session({ f: () => 1 }), 'f', '', /a function/);
    assertValueError(session({ s: Symbol('x') }), 's', '', /a symbol/);
    assertValueError(session({ b: { n: 10n } }), 'b', 'n', /a BigInt/);
  });

  it('refuses class instances (Map, Set, RegExp, Buffer, own classes)', () => {
    class Cart {
      items = [];
    }
    assertValueError(session({ m: new Map() }), 'm', '', /a Map instance/);
    assertValueError(session({ m: new Set() }), 'm', '', /a Set instance/);
    assertValueError(session({ m: /x/ }), 'm', '', /a RegExp instance/);
    assertValueError(session({ m: Buffer.from('x') }), 'm', '', /a Buffer instance/);
    assertValueError(session({ m: { cart: new Cart() } }), 'm', 'cart', /a Cart instance/);
  });

  it('refuses cycles', () => {
    const loop: Record<string, unknown> = { a: 1 };
    loop.self = loop;
    assertValueError(session({ loop }), 'loop', 'self', /cyclic reference/);
    const list: unknown[] = [];
    list.push([list]);
    assertValueError(session({ list }), 'list', '[0][0]', /cyclic reference/);
  });

  it('refuses objects with symbol keys', () => {
    assertValueError(session({ o: { [Symbol('s')]: 1 } }), 'o', '', /symbol keys/);
  });
});

describe('PHP session encoding: what it refuses to decode', () => {
  it('refuses PHP objects, enums and references, naming them', () => {
    assertDecodeError('o|O:8:"stdClass":0:{}', /a PHP object \(O:\)/, 2);
    assertDecodeError(
      'o|C:11:"ArrayObject":21:{x:i:0;a:0:{};m:a:0:{}}',
      /custom serialization \(C:\)/,
      2,
    );
    assertDecodeError('ok|N;o|a:1:{i:0;E:11:"Suit:Hearts";}', /enum case \(E:\)/, 16);
    assertDecodeError('x|a:0:{}y|R:2;', /variable reference \(R:\)/, 10);
    assertDecodeError('x|a:0:{}y|r:2;', /object reference \(r:\)/, 10);
    assertDecodeError('s|S:1:"\\61";', /escaped string \(S:\)/, 2);
  });

  it('refuses unknown types, cut data and trailing bytes', () => {
    assertDecodeError('a|x:1;', /expected a value but found 'x'/, 2);
    assertDecodeError('a|', /expected a value but the data ended/, 2);
    assertDecodeError('a|i:1;trailing', /session key without the '\|'/, 6);
    assertDecodeError('a|i:1;b|i:2', /malformed i: value/, 10);
    assertDecodeError('a|i:1;a|i:2;', /session key "a" twice/, 6);
    assertDecodeError('{"json":true}', /session key without the '\|'/, 0);
    assert.throws(() => unserializePhpValue('i:1;i:2;'), /bytes after the end of the value/);
  });
});

const skip = await phpSkip();

describe('PHP session encoding against the real php binary', { skip }, () => {
  let php: PhpProcess;
  before(() => {
    php = startPhpProcess();
  });
  after(async () => {
    await php?.close();
  });

  const wellFormed = (text: string) =>
    (text as unknown as { isWellFormed(): boolean }).isWellFormed();
  const text = fc.oneof(
    fc.string(),
    fc.string({ unit: 'grapheme', maxLength: 12 }),
    fc.string({ unit: 'binary', maxLength: 12 }).filter(wellFormed),
    fc.constantFrom('', '|', '"', '";', 'a|b:"c";}', 'é', '✓', '😀', '\0', 'N;', 'i:1;'),
  );
  const float = fc
    .double({ noNaN: true, noDefaultInfinity: true })
    .filter((value) => !Object.is(value, -0));
  const scalar = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    float,
    fc.constantFrom(0.1, 1e-5, 1e16, 1e17, 2 ** 53, 2 ** 63, 1e25, 5e-324, Number.MAX_VALUE),
    text,
  );
  const objectKey = fc.oneof(
    text,
    fc.integer().map(String),
    fc.constantFrom('0', '1', '-1', '07', '-0', '9223372036854775807', '9223372036854775808'),
    fc.constantFrom('-9223372036854775808', '-9223372036854775809', '__proto__', ''),
  );
  /** PHP reads an object whose keys are 0..n-1 (or none) as a list: those cannot round-trip. */
  const isListLike = (record: object) => Object.keys(record).every((key, i) => key === String(i));
  const { value } = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: 'small' }, scalar, tie('list'), tie('record')),
    list: fc.array(tie('value'), { maxLength: 5 }),
    record: fc
      .dictionary(objectKey, tie('value'), { minKeys: 1, maxKeys: 5, noNullPrototype: true })
      .filter((record) => !isListLike(record)),
  }));
  const sessionKey = text.filter((key) => !key.includes('|') && !isPhpIntegerKey(key));
  const sessionData = fc
    .uniqueArray(fc.tuple(sessionKey, value), { maxLength: 6, selector: ([key]) => key })
    .map((entries) => new Map(entries));

  it('session_encode() writes exactly what encodePhpSession() writes', async () => {
    await fc.assert(
      fc.asyncProperty(sessionData, async (data) => {
        const answer = await php.sessionEncode(data);
        assert.deepEqual(answer.warnings, []);
        assert.equal(answer.payload?.toString('utf8'), encodePhpSession(data));
      }),
      { numRuns: 1500 },
    );
  });

  it('session_decode() of encodePhpSession() gives PHP the same data (===, types and order)', async () => {
    await fc.assert(
      fc.asyncProperty(sessionData, async (data) => {
        const answer = await php.sessionDecode(Buffer.from(encodePhpSession(data)), data);
        assert.equal(answer.accepted, true, answer.warnings.join('; '));
        assert.equal(answer.identical, true, JSON.stringify(answer.decoded));
      }),
      { numRuns: 1500 },
    );
  });

  it('decodePhpSession() of session_encode() gives back the data', async () => {
    await fc.assert(
      fc.asyncProperty(sessionData, async (data) => {
        const answer = await php.sessionEncode(data);
        assert.ok(answer.payload);
        assert.deepStrictEqual(decodePhpSession(answer.payload), data);
      }),
      { numRuns: 1500 },
    );
  });

  it('serialize() and unserialize() of single values agree both ways', async () => {
    await fc.assert(
      fc.asyncProperty(value, async (item) => {
        const ours = serializePhpValue(item);
        const theirs = await php.serialize(item);
        assert.equal(theirs.payload?.toString('utf8'), ours);
        assert.ok(theirs.payload);
        assert.deepStrictEqual(unserializePhpValue(theirs.payload), item);
        const back = await php.unserialize(Buffer.from(ours), item);
        assert.equal(back.accepted, true);
        assert.equal(back.identical, true, JSON.stringify(back.decoded));
      }),
      { numRuns: 1500 },
    );
  });

  it('writes every double as PHP does', async () => {
    await fc.assert(
      fc.asyncProperty(float, async (double) => {
        const theirs = await php.serialize(double);
        assert.equal(theirs.payload?.toString('latin1'), serializePhpValue(double));
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses what PHP writes for objects, enums, references and non-finite floats', async () => {
    const cases: [string, RegExp][] = [
      ['$_SESSION = ["o" => new stdClass]; return session_encode();', /a PHP object \(O:\)/],
      [
        '$_SESSION = ["o" => new ArrayObject([1])]; return session_encode();',
        /a PHP object \(O:\)/,
      ],
      [
        'enum KeepsakeSuit { case Hearts; } $_SESSION = ["e" => KeepsakeSuit::Hearts]; return session_encode();',
        /enum case \(E:\)/,
      ],
      [
        '$list = [1]; $_SESSION = ["a" => &$list, "b" => &$list]; return session_encode();',
        /variable reference \(R:\)/,
      ],
      [
        '$o = new stdClass; $_SESSION = ["a" => [$o, $o]]; return session_encode();',
        /a PHP object \(O:\)/,
      ],
      ['$_SESSION = ["f" => NAN]; return session_encode();', /float NAN/],
      ['$_SESSION = ["f" => -INF]; return session_encode();', /float -INF/],
      ['$_SESSION = ["i" => PHP_INT_MAX]; return session_encode();', /9223372036854775807/],
      ['$_SESSION = ["i" => 2 ** 53]; return session_encode();', /9007199254740992/],
      ['$_SESSION = ["s" => "\\xff"]; return session_encode();', /not valid UTF-8/],
    ];
    for (const [code, found] of cases) {
      const payload = await php.evaluate(code);
      assert.throws(() => decodePhpSession(payload), found, code);
      assert.throws(() => decodePhpSession(payload), PhpSessionDecodeError);
    }
  });

  it('agrees with PHP on the keys PHP cannot store', async () => {
    const withBar = await php.evaluate(
      '$_SESSION = ["a|b" => 1]; return var_export(session_encode(), true);',
    );
    assert.equal(withBar.toString(), 'false');
    const numeric = await php.sessionEncode(new Map([['5', 1]]));
    assert.equal(numeric.payload, null);
    assert.match(numeric.warnings.join(), /Skipping numeric key 5/);
  });

  it('agrees with PHP on integral floats and on the empty array', async () => {
    assert.equal((await php.evaluate('return serialize(5.0);')).toString(), 'd:5;');
    assert.equal(unserializePhpValue(await php.evaluate('return serialize(5.0);')), 5);
    assert.equal((await php.evaluate('return serialize(-0.0);')).toString(), 'd:-0;');
    assert.equal((await php.evaluate('return serialize([]);')).toString(), serializePhpValue({}));
  });
});
