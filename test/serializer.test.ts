/**
 * The stored form of session data (SPEC §3.1 "Values"): anything JSON can hold plus Date, which
 * round-trips as a Date; anything else is refused by assertStorable before it reaches the store.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SessionError, SessionValueError } from '../src/errors.js';
import { assertStorable, deserialize, serialize } from '../src/serializer.js';

function roundTrip(record: Record<string, unknown>): Map<string, unknown> {
  return deserialize(serialize(new Map(Object.entries(record))));
}

describe('serialize / deserialize', () => {
  it('round-trips every JSON kind, nested, with key order kept', () => {
    const record = {
      text: 'héllo ✓ "quoted" \\ back',
      number: -12.5,
      zero: 0,
      yes: true,
      no: false,
      nothing: null,
      list: [1, 'two', [3], { four: 4 }, null],
      nested: { a: { b: { c: [] } }, empty: {} },
      __ci_vars: { flash: 'new', temp: 1767225900 },
    };
    const back = roundTrip(record);
    assert.deepEqual([...back.keys()], Object.keys(record));
    assert.deepEqual(Object.fromEntries(back), record);
  });

  it('round-trips a top-level Date as a Date with the same instant', () => {
    const when = new Date('2026-01-01T12:34:56.789Z');
    const back = roundTrip({ when }).get('when');
    assert.ok(back instanceof Date);
    assert.equal(back.getTime(), when.getTime());
  });

  it('round-trips Dates inside objects and arrays', () => {
    const first = new Date(0);
    const second = new Date('1999-12-31T23:59:59.000Z');
    const back = roundTrip({ log: { at: first, history: [second, 'text'] } });
    const log = back.get('log') as { at: unknown; history: unknown[] };
    assert.ok(log.at instanceof Date);
    assert.equal(log.at.getTime(), first.getTime());
    assert.ok(log.history[0] instanceof Date);
    assert.equal((log.history[0] as Date).getTime(), second.getTime());
    assert.equal(log.history[1], 'text');
  });

  it('keeps an ISO-looking string a string', () => {
    const iso = '2026-01-01T00:00:00.000Z';
    assert.equal(roundTrip({ iso }).get('iso'), iso);
    assert.equal(roundTrip({ iso, when: new Date(iso) }).get('iso'), iso);
  });

  it('keeps a top-level key named __proto__ (as its own key, not as a prototype)', () => {
    const data = new Map<string, unknown>([['__proto__', { polluted: true }]]);
    const back = deserialize(serialize(data));
    assert.deepEqual(back.get('__proto__'), { polluted: true });
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('serializes equal data to the same payload (so unchanged sessions are only touched)', () => {
    const build = () =>
      new Map<string, unknown>([
        ['a', { x: 1, when: new Date(5) }],
        ['b', [1, 2]],
      ]);
    assert.equal(serialize(build()), serialize(build()));
    assert.equal(serialize(deserialize(serialize(build()))), serialize(build()));
  });

  it('serializes an empty session to an empty object', () => {
    assert.equal(serialize(new Map()), '{}');
    assert.equal(deserialize('{}').size, 0);
  });

  it('refuses payloads that are not a JSON object', () => {
    for (const payload of ['[]', 'null', '1', '"text"', 'true']) {
      assert.throws(() => deserialize(payload), TypeError, payload);
    }
    for (const payload of ['', '{', 'a:1;', '{"a":}']) {
      assert.throws(() => deserialize(payload), SyntaxError, payload);
    }
  });
});

describe('assertStorable accepts what round-trips', () => {
  const accepted: [string, unknown][] = [
    ['null', null],
    ['a string', ''],
    ['a boolean', false],
    ['zero', 0],
    ['a negative float', -1.25],
    ['the largest safe integer', Number.MAX_SAFE_INTEGER],
    ['a Date', new Date()],
    ['an empty array', []],
    ['an empty object', {}],
    ['a null-prototype object', Object.assign(Object.create(null), { a: 1 })],
    ['a nested structure', { a: [{ b: { c: [1, 'x', null, new Date(0)] } }] }],
    ['a top-level undefined (stored as null)', undefined],
  ];
  for (const [name, value] of accepted) {
    it(`accepts ${name}`, () => {
      assert.doesNotThrow(() => assertStorable('key', value));
    });
  }

  it('answers whether the value holds a Date, however deep', () => {
    assert.equal(assertStorable('key', new Date(0)), true);
    assert.equal(assertStorable('key', { a: [{ b: { c: [1, new Date(0)] } }] }), true);
    assert.equal(
      assertStorable('key', { a: [{ b: { c: [1, '1970-01-01T00:00:00.000Z'] } }] }),
      false,
    );
    assert.equal(assertStorable('key', 42), false);
    assert.equal(assertStorable('key', null), false);
  });

  it('serializes without the Date replacer to the same payload when no Date is held', () => {
    const data = new Map<string, unknown>([
      ['count', 3],
      ['user', { name: 'Ada', tags: ['a', { deep: null }] }],
      ['when', '2026-12-01T00:00:00.000Z'],
    ]);
    assert.equal(serialize(data, false), serialize(data));
    assert.deepEqual(deserialize(serialize(data, false)), data);
  });

  it('accepts the same object twice in one value (shared, not cyclic)', () => {
    const shared = { n: 1 };
    const value = { a: shared, b: shared, list: [shared, shared] };
    assert.doesNotThrow(() => assertStorable('key', value));
    const back = roundTrip({ value }).get('value');
    assert.deepEqual(back, { a: { n: 1 }, b: { n: 1 }, list: [{ n: 1 }, { n: 1 }] });
  });
});

describe('assertStorable rejects what would not round-trip', () => {
  class Point {
    x = 1;
  }
  const cyclic: Record<string, unknown> = { name: 'loop' };
  cyclic.self = cyclic;
  const cyclicList: unknown[] = [1];
  cyclicList.push(cyclicList);

  const rejected: [string, unknown, string, RegExp][] = [
    ['a function', () => 1, '', /the value is a function/],
    ['a BigInt', 10n, '', /the value is a BigInt/],
    ['a symbol', Symbol('s'), '', /the value is a symbol/],
    ['NaN', Number.NaN, '', /NaN \(not a finite number\)/],
    ['Infinity', Number.POSITIVE_INFINITY, '', /Infinity \(not a finite number\)/],
    ['-Infinity', Number.NEGATIVE_INFINITY, '', /-Infinity \(not a finite number\)/],
    ['an invalid Date', new Date('nope'), '', /an invalid Date/],
    ['a class instance', new Point(), '', /a Point instance/],
    ['a Map', new Map([[1, 2]]), '', /a Map instance/],
    ['a Set', new Set([1]), '', /a Set instance/],
    ['a RegExp', /x/, '', /a RegExp instance/],
    ['a Buffer', Buffer.from('x'), '', /a Buffer instance/],
    ['an Error', new Error('x'), '', /an? Error instance/],
    ['a cyclic object', cyclic, 'self', /self is a cyclic reference/],
    ['a cyclic array', cyclicList, '[1]', /\[1\] is a cyclic reference/],
    ['a nested undefined', { a: { b: undefined } }, 'a.b', /a\.b is undefined \(use null\)/],
    ['an undefined array item', [1, undefined], '[1]', /\[1\] is undefined/],
    // biome-ignore lint/suspicious/noSparseArray: the hole is what this case tests
    ['a sparse array hole', [1, , 3], '[1]', /\[1\] is undefined/],
    ['a nested function', { user: { tags: ['a', 'b', () => 0] } }, 'user.tags[2]', /function/],
    ['a nested BigInt', { n: [{ big: 1n }] }, 'n[0].big', /BigInt/],
    ['a nested class instance', { at: { where: new Point() } }, 'at.where', /Point instance/],
    ['the reserved Date tag key', { '$keepsake:date': '2026-01-01' }, '', /reserved key/],
    ['symbol keys', { [Symbol('hidden')]: 1 }, '', /symbol keys/],
  ];

  for (const [name, value, path, detail] of rejected) {
    it(`rejects ${name}, naming the key${path ? ` and the path ${path}` : ''}`, () => {
      assert.throws(
        () => assertStorable('profile', value),
        (error: unknown) => {
          assert.ok(error instanceof SessionValueError);
          assert.ok(error instanceof SessionError);
          assert.equal(error.code, 'KEEPSAKE_VALUE');
          assert.match(error.message, /session key "profile"/);
          if (path !== '') assert.ok(error.message.includes(`${path} is`), error.message);
          assert.match(error.message, detail);
          assert.match(error.message, /JSON data/);
          return true;
        },
      );
    });
  }
});
