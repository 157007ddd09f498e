import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveConfig } from '../src/config.js';
import { deletionCookie, readCookie, sessionCookie } from '../src/cookie.js';
import { createSessionId, isValidSessionId } from '../src/id.js';

describe('readCookie', () => {
  it('returns the first cookie of that name, trimmed and unquoted, from one or many headers', () => {
    assert.equal(readCookie('a=1; ci_session=abc; ci_session=def', 'ci_session'), 'abc');
    assert.equal(readCookie(['x=1', ' ci_session = "abc" '], 'ci_session'), 'abc');
    assert.equal(readCookie('ci_session_x=1; xci_session=2', 'ci_session'), undefined);
    assert.equal(readCookie(undefined, 'ci_session'), undefined);
    assert.equal(readCookie('ci_session', 'ci_session'), undefined);
  });

  it('does not percent-decode, so encoded junk cannot turn into a valid ID', () => {
    assert.equal(readCookie('ci_session=%61%62', 'ci_session'), '%61%62');
  });
});

describe('session IDs', () => {
  it('are 32 lowercase hex characters from 128 random bits', () => {
    const ids = new Set(Array.from({ length: 1000 }, createSessionId));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.ok(isValidSessionId(id));
  });

  it('reject anything else', () => {
    for (const bad of [
      'A'.repeat(32),
      'a'.repeat(31),
      'a'.repeat(33),
      `../${'a'.repeat(29)}`,
      42,
      null,
    ]) {
      assert.equal(isValidSessionId(bad), false, String(bad));
    }
  });
});

describe('Set-Cookie values', () => {
  const defaults = { ...resolveConfig({ driver: 'array' }).cookie, secure: false };

  it('carry Max-Age and Expires, Path, HttpOnly and SameSite', () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0, 500);
    assert.equal(
      sessionCookie('ci_session', 'f'.repeat(32), 7200, now, defaults),
      `ci_session=${'f'.repeat(32)}; Max-Age=7200; Expires=Thu, 01 Jan 2026 14:00:00 GMT; Path=/; HttpOnly; SameSite=Lax`,
    );
  });

  it('is a browser-session cookie when expiration is 0', () => {
    assert.equal(
      sessionCookie('s', 'f'.repeat(32), 0, 0, defaults),
      `s=${'f'.repeat(32)}; Path=/; HttpOnly; SameSite=Lax`,
    );
  });

  it('adds Domain and Secure when configured, and deletion cookies keep the attributes', () => {
    const cookie = resolveConfig({
      driver: 'array',
      cookie: { domain: 'example.com', secure: true, sameSite: 'none', path: '/app' },
    }).cookie;
    assert.equal(cookie.secure, true);
    assert.equal(
      deletionCookie('s', { ...cookie, secure: true }),
      's=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/app; Domain=example.com; Secure; HttpOnly; SameSite=None',
    );
  });
});
