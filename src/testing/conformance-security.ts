import assert from 'node:assert/strict';
import { FakeClock } from '../clock.js';
import { SessionValueError } from '../errors.js';
import { PayloadCipher } from '../payload-cipher.js';
import { StorageIds } from '../storage-key.js';
import type { ConformanceTarget, TestFunctions } from './conformance.js';
import { managerFor, visit } from './conformance-lifecycle.js';
import { newToken } from './conformance-store.js';
import type { FaultyStore } from './faulty-store.js';
import { requestFor } from './request-for.js';

const LIMIT = 4_096;

/** The Max-Age of a Set-Cookie value, or undefined when it has none (a browser-session cookie). */
function maxAgeOf(cookie: string | undefined): number | undefined {
  assert.ok(cookie !== undefined, 'a cookie was sent');
  const match = /; Max-Age=(\d+)/.exec(cookie);
  return match === null ? undefined : Number(match[1]);
}

/** Whether `error` is the size limit's SessionValueError, naming `bytes` (when given) and the limit. */
function isOversize(error: unknown, bytes?: number): boolean {
  assert.ok(error instanceof SessionValueError, `a SessionValueError, got ${String(error)}`);
  assert.match(error.message, new RegExp(`${LIMIT}-byte limit \\(maxPayloadBytes\\)`));
  if (bytes !== undefined) assert.match(error.message, new RegExp(` ${bytes} bytes`));
  return true;
}

const KEY_1 = Buffer.alloc(32, 1);
const KEY_2 = Buffer.alloc(32, 2).toString('base64');
const KEY_3 = Buffer.alloc(32, 3).toString('hex');
const HASH_SECRET = 'a secret of at least thirty-two bytes, for the tests';

/** Replaces what is stored under store key `id` by `payload`, as someone with access to the store could. */
async function overwrite(store: FaultyStore, id: string, payload: string): Promise<void> {
  const key = { id, ip: null };
  const token = newToken();
  const attempt = await store.inner.lockAndRead(key, token);
  assert.ok(attempt.locked, `the lock of ${id} is free`);
  assert.ok(await store.inner.writeAndUnlock(key, token, payload, 60));
}

/** The session-lifetime and data-protection guarantees, checked through a real session manager. */
export function securityGuarantees(target: ConformanceTarget, test: TestFunctions): void {
  const { describe, it } = test;

  describe('session size, lifetime and protection at rest', () => {
    it('set() refuses a value bigger than maxPayloadBytes, naming its size and the limit, and keeps the session', () =>
      managerFor(target, { maxPayloadBytes: LIMIT }, async ({ manager, store }) => {
        const { id } = await visit(manager, undefined, (s) => s.set('user', 'ada'));
        await visit(manager, id, (session) => {
          // "note":"…": 2 bytes per é, the key, and 5 bytes of JSON punctuation.
          const big = 'é'.repeat(LIMIT / 2);
          assert.throws(
            () => session.set('note', big),
            (error) => isOversize(error, LIMIT + 9),
          );
          assert.throws(
            () => session.set({ small: 1, list: ['x'.repeat(LIMIT)] }),
            (error) => isOversize(error),
          );
          assert.equal(session.get('small'), null, 'a refused set() changes nothing');
          session.set('note', 'short');
        });
        const after = await visit(manager, id);
        assert.equal(after.get('user'), 'ada');
        assert.equal(after.get('note'), 'short');
        assert.match((await store().inner.peek({ id, ip: null })) ?? '', /"note":"short"/);
      }));

    it('a session grown past maxPayloadBytes by reference fails at commit with the store unchanged', () =>
      managerFor(target, { maxPayloadBytes: LIMIT }, async ({ manager, store }) => {
        const { id } = await visit(manager, undefined, (s) => s.set('cart', { items: ['a'] }));
        const before = await store().inner.peek({ id, ip: null });
        await assert.rejects(
          visit(manager, id, (session) => {
            const cart = session.get('cart') as { items: string[] };
            for (let item = 0; item < LIMIT / 8; item += 1) cart.items.push(`item-${item}`);
          }),
          (error) => isOversize(error),
        );
        assert.equal(await store().inner.peek({ id, ip: null }), before, 'nothing half-written');
        const after = await visit(manager, id);
        assert.deepEqual(after.get('cart'), { items: ['a'] }, 'the lock was released');
      }));

    const clock = new FakeClock(Date.now());
    it('absoluteLifetime ends a session however active, across regenerations: a new ID, the old data deleted (fake clock)', () =>
      managerFor(
        target,
        // The core decides absolute expiry by its clock on every store, even one whose records
        // expire by the store's own real-time TTL.
        {
          absoluteLifetime: 100,
          expiration: 60,
          timeToUpdate: 30,
          regenerateGrace: 0,
          clock: clock.now,
        },
        async ({ manager, store }) => {
          const first = await visit(manager, undefined, (s) => s.set('user', 'ada'));
          let id = first.id;
          const ids = [id];
          // Active every 25 s: never idle for long, regenerated on the way.
          for (let step = 0; step < 3; step += 1) {
            clock.advance(25);
            const session = await visit(manager, id);
            assert.equal(session.get('user'), 'ada', `still live at ${25 * (step + 1)} s`);
            assert.equal(session.get('__keepsake_meta'), null, 'keepsake’s own key is hidden');
            assert.equal(Object.keys(session.get()).includes('__keepsake_meta'), false);
            id = session.id;
            ids.push(id);
          }
          assert.ok(new Set(ids).size > 1, 'the session was regenerated meanwhile');
          clock.advance(25);
          const ended = await visit(manager, id, (s) => s.set('fresh', true));
          assert.notEqual(ended.id, id, 'a new ID');
          assert.equal(ended.get('user'), null, 'the old data is gone');
          assert.equal(
            await store().inner.peek({ id, ip: null }),
            null,
            'the old record is deleted',
          );
          const readOnly = await manager.start(requestFor(ended.id, { readOnly: true }));
          assert.equal(readOnly.get('fresh'), true, 'the new session starts its own clock');
        },
      ));

    it('setLifetime() sets this session’s idle lifetime and cookie Max-Age, lasting across requests; 0 is a browser session', () =>
      managerFor(
        target,
        { expiration: 60, gcMaxLifetime: 90, timeToUpdate: 0 },
        async ({ manager, store, clock }) => {
          const session = await manager.start(requestFor());
          session.set('user', 'ada');
          session.setLifetime(30 * 86_400);
          const [cookie] = manager.setCookies(session);
          await manager.commit(session);
          assert.equal(maxAgeOf(cookie), 30 * 86_400);
          const { id } = session;
          if (target.expiry === 'clock') {
            clock.advance(3_600);
            await manager.collectGarbage();
          }
          const later = await manager.start(requestFor(id));
          assert.equal(later.get('user'), 'ada', 'alive past the default lifetime');
          // An AJAX-less request with timeToUpdate 0 refreshes the cookie: its Max-Age is the session's.
          const [refreshed] = manager.setCookies(later);
          await manager.commit(later);
          assert.equal(maxAgeOf(refreshed), 30 * 86_400);
          const browser = await manager.start(requestFor(id));
          browser.setLifetime(0);
          const [browserCookie] = manager.setCookies(browser);
          await manager.commit(browser);
          assert.equal(maxAgeOf(browserCookie), undefined, 'no Max-Age');
          assert.ok(await store().inner.peek({ id, ip: null }), 'stored');
          if (target.expiry === 'clock') {
            clock.advance(120);
            const gone = await visit(manager, id);
            assert.notEqual(gone.id, id, 'a browser session lives gcMaxLifetime on the server');
          }
          const other = await visit(manager, undefined, (s) => s.set('n', 1));
          const again = await manager.start(requestFor(other.id));
          const [otherCookie] = manager.setCookies(again);
          await manager.commit(again);
          assert.equal(maxAgeOf(otherCookie), 60, 'others keep expiration');
        },
      ));

    it('encryption: no plaintext at rest, a round trip, rotation to the first key, and a wrong key or a swapped payload gives an empty session and one warning', () =>
      managerFor(
        target,
        { encryption: { keys: [KEY_2, KEY_1] }, timeToUpdate: 0 },
        async ({ manager, store, warnings }) => {
          const a = await visit(manager, undefined, (s) => s.set('card', 'ada-4111-secret'));
          const stored = (await store().inner.peek({ id: a.id, ip: null })) ?? '';
          assert.match(stored, /^ks1\./);
          assert.equal(stored.includes('ada-4111'), false, 'no plaintext in the store');
          assert.equal((await visit(manager, a.id)).get('card'), 'ada-4111-secret');

          // Encrypted by the older key: read, then re-encrypted with the first key.
          const old = new PayloadCipher([KEY_1]).encrypt('{"user":"old-key"}', a.id);
          await overwrite(store(), a.id, old);
          assert.equal((await visit(manager, a.id)).get('user'), 'old-key');
          const rewritten = (await store().inner.peek({ id: a.id, ip: null })) ?? '';
          assert.notEqual(rewritten.split('.')[1], old.split('.')[1], 'another key id');
          assert.equal((await visit(manager, a.id)).get('user'), 'old-key');
          assert.deepEqual(warnings, []);

          const b = await visit(manager, undefined, (s) => s.set('user', 'bob'));
          for (const [what, payload] of [
            ['a key not configured', new PayloadCipher([KEY_3]).encrypt('{"user":"eve"}', b.id)],
            ['a payload copied from another ID', rewritten],
            ['a plaintext payload', '{"user":"eve"}'],
          ] as const) {
            await overwrite(store(), b.id, payload);
            warnings.length = 0;
            const read = await visit(manager, b.id, (s) => s.set('next', 1));
            assert.notEqual(read.id, b.id, `${what}: a new session`);
            assert.equal(read.get('user'), null, `${what}: empty`);
            assert.equal(warnings.length, 1, `${what}: one warning ${JSON.stringify(warnings)}`);
          }
        },
      ));

    it('hashIds: the store holds a keyed hash of each ID, never the ID; regeneration, reads and GC work on it', () =>
      managerFor(
        target,
        { hashIds: { secret: HASH_SECRET }, expiration: 60, timeToUpdate: 0 },
        async ({ manager, store, clock }) => {
          const ids = new StorageIds(HASH_SECRET);
          const first = await visit(manager, undefined, (s) => s.set('user', 'ada'));
          assert.equal(await store().inner.peek({ id: first.id, ip: null }), null);
          assert.match((await store().inner.peek({ id: ids.of(first.id), ip: null })) ?? '', /ada/);
          const moved = await visit(manager, first.id, (s) => s.regenerate());
          const forward = (await store().inner.peek({ id: ids.of(first.id), ip: null })) ?? '';
          assert.equal(forward.includes(moved.id), false, 'the forward names no usable ID');
          const followed = await visit(manager, first.id);
          assert.equal(followed.id, moved.id, 'the old cookie still leads to the session');
          assert.equal(followed.get('user'), 'ada');
          if (target.expiry === 'clock') {
            clock.advance(120);
            await manager.collectGarbage();
            assert.equal(await store().inner.peek({ id: ids.of(moved.id), ip: null }), null);
            assert.notEqual((await visit(manager, moved.id)).id, moved.id, 'expired');
          }
        },
      ));
  });
}
