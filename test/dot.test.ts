/**
 * searchDotted: CodeIgniter 4's dot_array_search (ArrayHelper::dotSearch), which Session::get() falls
 * back to when a key is absent. Semantics per reference/codeigniter-semantics.md §2.3 "get".
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { searchDotted } from '../src/dot.js';

function dataOf(record: Record<string, unknown>): Map<string, unknown> {
  return new Map(Object.entries(record));
}

describe('searchDotted: paths', () => {
  const data = dataOf({
    user: { name: 'Ada', address: { city: 'London' }, tags: ['x', 'y', 'z'] },
    empty: {},
    scalar: 'text',
    nothing: null,
    zero: { value: 0, blank: '', no: false, none: null, list: [] },
  });

  it('walks nested objects', () => {
    assert.equal(searchDotted('user.name', data), 'Ada');
    assert.equal(searchDotted('user.address.city', data), 'London');
  });

  it('returns a whole sub-object when the path ends on one', () => {
    assert.deepEqual(searchDotted('user.address', data), { city: 'London' });
  });

  it('indexes arrays by position', () => {
    assert.equal(searchDotted('user.tags.1', data), 'y');
    assert.equal(searchDotted('user.tags.3', data), null);
  });

  it('returns falsy leaves as they are, null only for null', () => {
    assert.equal(searchDotted('zero.value', data), 0);
    assert.equal(searchDotted('zero.blank', data), '');
    assert.equal(searchDotted('zero.no', data), false);
    assert.deepEqual(searchDotted('zero.list', data), []);
    assert.equal(searchDotted('zero.none', data), null);
  });

  it('returns null for a missing segment anywhere along the path', () => {
    assert.equal(searchDotted('nobody.name', data), null);
    assert.equal(searchDotted('user.nobody', data), null);
    assert.equal(searchDotted('user.address.nowhere', data), null);
  });

  it('does not descend into scalars, null, empty objects or Dates', () => {
    assert.equal(searchDotted('scalar.length', data), null);
    assert.equal(searchDotted('nothing.x', data), null);
    assert.equal(searchDotted('empty.x', data), null);
    const withDate = dataOf({ when: new Date(0) });
    assert.equal(searchDotted('when.getTime', withDate), null);
  });

  it('never finds inherited properties', () => {
    assert.equal(searchDotted('user.constructor', data), null);
    assert.equal(searchDotted('toString', data), null);
    assert.equal(searchDotted('user.tags.length', data), null);
  });

  it('drops empty segments and trims trailing "*" and spaces (CodeIgniter rtrim(index, "* "))', () => {
    assert.equal(searchDotted('user..name', data), 'Ada');
    assert.equal(searchDotted('.user.name.', data), 'Ada');
    assert.equal(searchDotted('user.name  ', data), 'Ada');
    assert.deepEqual(searchDotted('user.address.*', data), { city: 'London' });
  });

  it('returns null for a path with no segments', () => {
    assert.equal(searchDotted('', data), null);
    assert.equal(searchDotted('.', data), null);
    assert.equal(searchDotted('*', data), null);
    assert.equal(searchDotted(' ', data), null);
  });
});

describe('searchDotted: "\\." escapes a dot', () => {
  it('reads a top-level key that contains a dot', () => {
    assert.equal(searchDotted('site\\.com', dataOf({ 'site.com': 1 })), 1);
  });

  it('reads a nested key that contains a dot', () => {
    const data = dataOf({ hosts: { 'example.org': { port: 443 } } });
    assert.equal(searchDotted('hosts.example\\.org.port', data), 443);
    // Unescaped, the same text means hosts → example → org.
    assert.equal(searchDotted('hosts.example.org.port', data), null);
  });
});

describe('searchDotted: "*" matches every child', () => {
  const data = dataOf({
    users: {
      a: { name: 'Ada', email: 'ada@example.org' },
      b: { name: 'Bob' },
      c: { name: 'Cy', email: null },
    },
    mixed: { a: { name: 'Ada' }, b: 'not a container' },
    list: [{ id: 1 }, { id: 2 }],
  });

  it('collects the matches of every child in order', () => {
    assert.deepEqual(searchDotted('users.*.name', data), ['Ada', 'Bob', 'Cy']);
    assert.deepEqual(searchDotted('list.*.id', data), [1, 2]);
  });

  it('unwraps a single match and skips children without one (or with null)', () => {
    assert.equal(searchDotted('users.*.email', data), 'ada@example.org');
  });

  it('returns null when no child matches', () => {
    assert.equal(searchDotted('users.*.phone', data), null);
  });

  it('returns null when any child is not an object or array', () => {
    assert.equal(searchDotted('mixed.*.name', data), null);
  });

  it('works at the top level and at several depths', () => {
    const nested = dataOf({
      groups: {
        g1: { members: { m1: { n: 1 } } },
        g2: { members: { m2: { n: 2 }, m3: { n: 3 } } },
      },
    });
    assert.deepEqual(searchDotted('groups.*.members.*.n', nested), [1, [2, 3]]);
    assert.deepEqual(searchDotted('*.g1.members.m1.n', nested), 1);
  });
});
