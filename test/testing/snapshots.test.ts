/**
 * create(), inspect() and the reading of a response's Set-Cookie headers; any driver object; the
 * typing by the app's data; and that the helpers need nothing of node:test.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FakeClock } from '../../src/clock.js';
import { file } from '../../src/drivers/file.js';
import { SessionValueError } from '../../src/errors.js';
import { assertSessionHas, assertSessionMissing } from '../../src/testing/assertions.js';
import { sessionCookieChange, setCookieValues } from '../../src/testing/set-cookie.js';
import { testSessions } from '../../src/testing/test-sessions.js';

const ID = 'a'.repeat(32);
const OTHER_ID = 'b'.repeat(32);

describe('create() and inspect()', () => {
  it('create() stores the session and answers its Cookie header; inspect() reads it back', async () => {
    const sessions = testSessions();
    const cookie = await sessions.create(
      { user: { id: 7 }, since: new Date('2026-01-01T00:00:00Z') },
      { flash: { notice: 'Saved' } },
    );
    assert.match(cookie, /^ci_session=[0-9a-f]{32}$/);
    const state = await sessions.inspect(cookie);
    assert.equal(state.exists, true);
    assert.equal(state.cookie, cookie);
    assert.deepEqual(state.data, {
      user: { id: 7 },
      since: new Date('2026-01-01T00:00:00Z'),
      notice: 'Saved',
    });
    assert.deepEqual(state.flash, { notice: 'Saved' });
    assert.deepEqual(state.temp, {});
    const byId = await sessions.inspect(state.id ?? '');
    assert.deepEqual(byId.data, state.data);
  });

  it('create() without data still stores a session', async () => {
    const sessions = testSessions();
    const state = await sessions.inspect(await sessions.create());
    assert.equal(state.exists, true);
    assert.deepEqual(state.data, {});
  });

  it('tempdata lives for tempTtl seconds, per key when given per key (FakeClock)', async () => {
    const clock = new FakeClock();
    const sessions = testSessions({ clock });
    const cookie = await sessions.create(
      { user: 'ada' },
      { temp: { coupon: 'SAVE10', banner: 'sale' }, tempTtl: { coupon: 60 } },
    );
    assert.deepEqual((await sessions.inspect(cookie)).temp, { coupon: 'SAVE10', banner: 'sale' });
    clock.advance(61);
    const later = await sessions.inspect(cookie);
    assert.deepEqual(later.temp, { banner: 'sale' }, 'banner keeps the default 300 s');
    assertSessionMissing(later, 'coupon');
    clock.advance(240);
    assert.deepEqual((await sessions.inspect(cookie)).data, { user: 'ada' });
  });

  it('a value that cannot be stored, or null flashdata, is refused and leaves no session locked', async () => {
    const sessions = testSessions();
    await assert.rejects(sessions.create({ when: () => 1 }), SessionValueError);
    await assert.rejects(sessions.create({}, { flash: { notice: null } }), {
      name: 'TypeError',
      message: /flashdata cannot be null \(notice\)/,
    });
    assert.equal((await sessions.inspect(await sessions.create({ ok: true }))).exists, true);
  });

  it('inspect() of nothing: no cookie, junk, an unknown ID', async () => {
    const sessions = testSessions();
    for (const cookie of [undefined, 'ci_session=junk', `ci_session=${ID}`, 'other=1']) {
      const state = await sessions.inspect(cookie);
      assert.equal(state.exists, false, String(cookie));
      assert.deepEqual(state.data, {});
    }
    assert.equal((await sessions.inspect(`ci_session=${ID}`)).id, ID);
  });

  it('uses the app’s cookie name', async () => {
    const sessions = testSessions({ cookieName: 'sid' });
    assert.equal(sessions.config.cookieName, 'sid');
    const cookie = await sessions.create({ a: 1 });
    assert.match(cookie, /^sid=[0-9a-f]{32}$/);
    const state = await sessions.after([`sid=${OTHER_ID}; Path=/`], cookie);
    assert.equal(state.id, OTHER_ID);
    assert.equal(state.cookie, `sid=${OTHER_ID}`);
    const ignored = await sessions.after([`ci_session=${OTHER_ID}; Path=/`], cookie);
    assert.equal(ignored.id, ignored.previousId);
  });

  it('works under matchIP with the client IP the app sees', async () => {
    const sessions = testSessions({ matchIP: true, ip: '::ffff:10.0.0.7' });
    const session = await sessions.start({ user: 'ada' });
    session.set('visits', 1);
    const state = await sessions.finish(session);
    assert.deepEqual(state.data, { user: 'ada', visits: 1 });
  });

  it('any driver object: the file driver', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'keepsake-test-sessions-'));
    try {
      const sessions = testSessions({ driver: file({ directory }) });
      const session = await sessions.start({ cart: ['apple'] });
      session.push('cart', ['pear']);
      const state = await sessions.finish(session);
      assertSessionHas(state, 'cart', ['apple', 'pear']);
      const stored = await readFile(join(directory, `ci_session${state.id}`), 'utf8');
      assert.match(stored, /"cart":\["apple","pear"\]/);
      await sessions.close();
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('is typed by the app’s session data', async () => {
    const sessions = testSessions<{ visits: number; user: { name: string } }>();
    const cookie = await sessions.create({ visits: 1 });
    const state = await sessions.inspect(cookie);
    const visits: number | undefined = state.data.visits;
    assert.equal(visits, 1);
    assertSessionHas(state, 'visits', 1);
    // Only compiled (tsc -p tsconfig.check.json checks that each line is an error), never run.
    const compileOnly = () => {
      // @ts-expect-error visits is a number
      void sessions.create({ visits: 'x' });
      // @ts-expect-error flashdata is typed too
      void sessions.create({}, { flash: { visits: 'x' } });
      // @ts-expect-error the expected value of visits is a number
      assertSessionHas(state, 'visits', '1');
    };
    assert.equal(typeof compileOnly, 'function');
  });
});

describe('reading the session cookie off a response', () => {
  const deletion =
    'ci_session=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly';
  const set = (id: string) =>
    `ci_session=${id}; Max-Age=7200; Expires=Thu, 01 Jan 2026 02:00:00 GMT; Path=/; HttpOnly; SameSite=Lax`;

  it('from a Response, Headers, node-style headers, a list or a joined string', () => {
    const headers = new Headers();
    headers.append('Set-Cookie', 'theme=dark; Path=/');
    headers.append('Set-Cookie', set(ID));
    const expected = ['theme=dark; Path=/', set(ID)];
    assert.deepEqual(setCookieValues(new Response(null, { headers })), expected);
    assert.deepEqual(setCookieValues(headers), expected);
    assert.deepEqual(setCookieValues({ headers: { 'set-cookie': expected } }), expected);
    assert.deepEqual(setCookieValues({ headers: { 'Set-Cookie': set(ID) } }), [set(ID)]);
    assert.deepEqual(setCookieValues(expected), expected);
    assert.deepEqual(setCookieValues(headers.get('set-cookie') ?? ''), expected);
    assert.deepEqual(setCookieValues(undefined), []);
    assert.deepEqual(setCookieValues({ headers: {} }), []);
  });

  it('the last Set-Cookie of the session cookie wins; a deletion is "cleared"; others are ignored', () => {
    const now = Date.UTC(2026, 0, 1);
    assert.equal(sessionCookieChange(['theme=dark'], 'ci_session', now), undefined);
    assert.deepEqual(sessionCookieChange([set(ID)], 'ci_session', now), { kind: 'set', value: ID });
    assert.deepEqual(sessionCookieChange([deletion], 'ci_session', now), { kind: 'cleared' });
    assert.deepEqual(sessionCookieChange([set(ID), deletion], 'ci_session', now), {
      kind: 'cleared',
    });
    assert.deepEqual(sessionCookieChange([deletion, set(OTHER_ID)], 'ci_session', now), {
      kind: 'set',
      value: OTHER_ID,
    });
    assert.deepEqual(
      sessionCookieChange(
        [`ci_session=${ID}; Expires=Wed, 31 Dec 2025 00:00:00 GMT`],
        'ci_session',
        now,
      ),
      { kind: 'cleared' },
    );
    assert.deepEqual(
      sessionCookieChange(
        [`ci_session=${ID}; Max-Age=60; Expires=Wed, 31 Dec 2025 00:00:00 GMT`],
        'ci_session',
        now,
      ),
      { kind: 'set', value: ID },
      'Max-Age wins over Expires',
    );
    assert.deepEqual(sessionCookieChange([`ci_session="${ID}"`], 'ci_session', now), {
      kind: 'set',
      value: ID,
    });
  });
});

describe('runner independence', () => {
  it('the helpers import nothing of node:test, so vitest and jest load them as they are', async () => {
    const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
    const seen = new Set<string>();
    const external = new Set<string>();
    const visit = async (path: string): Promise<void> => {
      if (seen.has(path)) return;
      seen.add(path);
      const source = await readFile(path, 'utf8');
      for (const [, specifier = ''] of source.matchAll(
        /^(?:import|export)\s[^;]*?from\s+'([^']+)'/gms,
      )) {
        if (specifier.startsWith('.'))
          await visit(resolve(dirname(path), specifier.replace(/\.js$/, '.ts')));
        else external.add(specifier);
      }
    };
    await visit(join(root, 'testing/test-sessions.ts'));
    await visit(join(root, 'testing/assertions.ts'));
    assert.ok(seen.has(join(root, 'manager.ts')), 'the walk follows relative imports');
    assert.ok(external.has('node:assert'));
    assert.equal(external.has('node:test'), false, [...external].join(', '));
  });
});
