import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SessionLockLostError } from '../errors.js';
import type { Session } from '../session.js';
import { StorageIds } from '../storage-key.js';
import type { ConformanceTarget, TestFunctions } from './conformance.js';
import { managerFor, visit } from './conformance-lifecycle.js';
import { delay } from './conformance-store.js';
import { requestFor } from './request-for.js';

const HASH_SECRET = 'a secret of at least thirty-two bytes, for the tests';

/** User IDs no other test (nor an earlier run on the same store) uses. */
function newUsers(): Record<'ada' | 'bob' | 'nobody', string> {
  const run = randomBytes(6).toString('hex');
  return { ada: `ada-${run}`, bob: `bob-${run}`, nobody: `nobody-${run}` };
}

/** Logs a new session in as `userId` (bindUser + regenerate(true), as at a login). */
async function logIn(
  manager: Parameters<typeof visit>[0],
  userId: string,
  details?: { clientIp?: string; userAgent?: string },
): Promise<Session> {
  return visit(manager, undefined, async (session) => {
    session.set('user', userId);
    session.bindUser(userId, details);
  });
}

/** The handles sessionsOf() lists for `userId`, sorted. */
async function handlesOf(manager: Parameters<typeof visit>[0], userId: string): Promise<string[]> {
  return (await manager.sessionsOf(userId)).map((listed) => listed.handle).sort();
}

function handleOf(session: Session): string {
  const bound = session.boundUser();
  assert.ok(bound !== null, 'the session is bound');
  return bound.handle;
}

/** Per-user index and revocation ("log out everywhere"), through a real session manager. */
export function userGuarantees(target: ConformanceTarget, test: TestFunctions): void {
  const { describe, it } = test;

  describe("each user's sessions, and revocation", () => {
    it('bindUser: sessionsOf lists the session with its handle, created, last active and what the app recorded', () =>
      managerFor(target, { timeToUpdate: 0 }, async ({ manager }) => {
        const users = newUsers();
        const before = Math.floor(Date.now() / 1000) - 1;
        const ada = await logIn(manager, users.ada, {
          clientIp: '203.0.113.7',
          userAgent: 'Firefox',
        });
        const other = await logIn(manager, users.bob);
        const listed = await manager.sessionsOf(users.ada);
        assert.equal(listed.length, 1);
        const [entry] = listed;
        assert.equal(entry?.handle, handleOf(ada));
        assert.equal(entry?.clientIp, '203.0.113.7');
        assert.equal(entry?.userAgent, 'Firefox');
        assert.ok((entry?.created.getTime() ?? 0) >= before * 1000, 'created is a recent Date');
        assert.ok(
          (entry?.lastActive.getTime() ?? 0) >= before * 1000,
          'last active is a recent Date',
        );
        assert.deepEqual(await handlesOf(manager, users.bob), [handleOf(other)]);
        assert.deepEqual(await manager.sessionsOf(users.nobody), []);
        const again = await visit(manager, ada.id);
        assert.deepEqual(again.boundUser(), { userId: users.ada, handle: handleOf(ada) });
        assert.equal(again.get('user'), users.ada);
      }));

    it('the binding survives regeneration (kept and destroyed old ID) and destroy() removes it', () =>
      managerFor(target, { timeToUpdate: 0, regenerateGrace: 30 }, async ({ manager, store }) => {
        const users = newUsers();
        const ada = await logIn(manager, users.ada);
        const handle = handleOf(ada);
        const kept = await visit(manager, ada.id, (s) => s.regenerate(false));
        const destroyed = await visit(manager, kept.id, (s) => s.regenerate(true));
        assert.notEqual(destroyed.id, ada.id);
        assert.deepEqual(await handlesOf(manager, users.ada), [handle], 'one session, same handle');
        assert.deepEqual(destroyed.boundUser(), { userId: users.ada, handle });
        // Revoked by its handle: the index names the current ID.
        assert.equal(await manager.revoke({ userId: users.ada, handle }), true);
        const after = await visit(manager, destroyed.id);
        assert.notEqual(after.id, destroyed.id, 'the regenerated session is dead');
        assert.equal(after.get('user'), null);
        const old = await visit(manager, ada.id);
        assert.equal(old.get('user'), null, 'the old cookie leads nowhere');

        const bob = await logIn(manager, users.bob);
        await visit(manager, bob.id, (s) => s.destroy());
        assert.deepEqual(await manager.sessionsOf(users.bob), []);
        const indexKey = new StorageIds().indexKeyOf(users.bob);
        assert.equal(await store().inner.peek({ id: indexKey, ip: null }), null, 'no index left');
      }));

    it('revokeAll ends every session of the user except the one kept (by ID or handle); others are untouched', () =>
      managerFor(target, { timeToUpdate: 0 }, async ({ manager }) => {
        const users = newUsers();
        const phone = await logIn(manager, users.ada);
        const laptop = await logIn(manager, users.ada);
        const tablet = await logIn(manager, users.ada);
        const bob = await logIn(manager, users.bob);
        assert.equal(await manager.revokeAll(users.ada, { except: laptop.id }), 2);
        assert.deepEqual(await handlesOf(manager, users.ada), [handleOf(laptop)]);
        for (const gone of [phone, tablet]) {
          const next = await visit(manager, gone.id);
          assert.notEqual(next.id, gone.id, 'a revoked session is dead at its next request');
          assert.equal(next.get('user'), null);
        }
        assert.equal((await visit(manager, laptop.id)).get('user'), users.ada, 'kept');
        assert.equal((await visit(manager, bob.id)).get('user'), users.bob, 'another user');
        assert.equal(await manager.revokeAll(users.ada, { except: [handleOf(laptop)] }), 0);
        assert.equal(await manager.revokeAll(users.ada), 1);
        assert.notEqual((await visit(manager, laptop.id)).id, laptop.id);
        assert.deepEqual(await manager.sessionsOf(users.ada), []);
      }));

    it('revoke(sessionId) ends one session, follows a regenerated ID, and answers false for an unknown one', () =>
      managerFor(target, { timeToUpdate: 0 }, async ({ manager }) => {
        const users = newUsers();
        const plain = await visit(manager, undefined, (s) => s.set('cart', 3));
        assert.equal(await manager.revoke(plain.id), true);
        assert.notEqual((await visit(manager, plain.id)).id, plain.id);
        assert.equal(await manager.revoke(plain.id), false);
        assert.equal(await manager.revoke('not-an-id'), false);

        const ada = await logIn(manager, users.ada);
        const moved = await visit(manager, ada.id, (s) => s.regenerate(false));
        assert.equal(await manager.revoke(ada.id), true, 'by the old ID in its grace window');
        assert.notEqual((await visit(manager, moved.id)).id, moved.id, 'the new ID is dead too');
        assert.deepEqual(await manager.sessionsOf(users.ada), []);
      }));

    it('a request in flight during the revocation cannot save the session back, and one waiting for its lock starts empty', () =>
      managerFor(target, { timeToUpdate: 0, lockWait: 5_000 }, async ({ manager, store }) => {
        const users = newUsers();
        const ada = await logIn(manager, users.ada);
        const inFlight = await manager.start(requestFor(ada.id));
        if (store().inner.revoke === undefined) {
          // Without the store primitive, revoke() waits for the session's lock like a request:
          // the request's save lands, then the revocation ends the session.
          const revoking = manager.revoke(ada.id);
          inFlight.set('cart', 'saved before the revocation');
          manager.setCookies(inFlight);
          await manager.commit(inFlight);
          assert.equal(await revoking, true);
          assert.notEqual((await visit(manager, ada.id)).id, ada.id, 'dead after it');
          return;
        }
        const waiting = manager.start(requestFor(ada.id));
        assert.equal(await manager.revoke(ada.id), true);
        inFlight.set('cart', 'saved after the revocation');
        manager.setCookies(inFlight);
        await assert.rejects(
          manager.commit(inFlight),
          (error) => error instanceof SessionLockLostError,
          'its save is refused',
        );
        const next = await waiting;
        assert.notEqual(next.id, ada.id, 'the waiting request starts a new session');
        assert.equal(next.get('user'), null);
        manager.setCookies(next);
        await manager.commit(next);
        const later = await visit(manager, ada.id);
        assert.notEqual(later.id, ada.id, 'still dead');
        assert.equal(later.get('cart'), null);
        assert.deepEqual(await manager.sessionsOf(users.ada), []);
      }));

    it('a request regenerating during revokeAll never leaves a live session behind', () =>
      managerFor(target, { timeToUpdate: 0, lockWait: 5_000 }, async ({ manager, store }) => {
        const users = newUsers();
        const ada = await logIn(manager, users.ada);
        // Without SessionStore.revoke, revoke() waits for the lock: the previous scenario covers it.
        if (store().inner.revoke === undefined) return;
        const inFlight = await manager.start(requestFor(ada.id));
        await inFlight.regenerate(false);
        await manager.revokeAll(users.ada);
        manager.setCookies(inFlight);
        await assert.rejects(manager.commit(inFlight), SessionLockLostError);
        for (const id of [ada.id, inFlight.id]) {
          const next = await visit(manager, id);
          assert.notEqual(next.id, id);
          assert.equal(next.get('user'), null);
        }
      }));

    it('binding to another user moves the session; a cookie naming an index is not served it', () =>
      managerFor(target, { timeToUpdate: 0 }, async ({ manager, store }) => {
        const users = newUsers();
        const shared = await logIn(manager, users.ada);
        await visit(manager, shared.id, (s) => s.bindUser(users.bob));
        assert.deepEqual(await manager.sessionsOf(users.ada), []);
        assert.equal((await manager.sessionsOf(users.bob)).length, 1);
        const indexKey = new StorageIds().indexKeyOf(users.bob);
        const probe = await visit(manager, indexKey);
        assert.notEqual(probe.id, indexKey, 'not served as a session');
        assert.equal(probe.get('__keepsake_index'), null);
        assert.notEqual(await store().inner.peek({ id: indexKey, ip: null }), null, 'left alone');
        assert.equal((await manager.sessionsOf(users.bob)).length, 1);
      }));

    it('expired sessions leave the index, and the index itself expires', () =>
      managerFor(
        target,
        { expiration: 2, gcMaxLifetime: 2, timeToUpdate: 0 },
        async ({ manager, store, clock }) => {
          const users = newUsers();
          const ada = await logIn(manager, users.ada);
          const indexKey = { id: new StorageIds().indexKeyOf(users.ada), ip: null };
          assert.notEqual(await store().inner.peek(indexKey), null);
          if (target.expiry === 'clock') clock.advance(10_000);
          else await delay(7_500);
          await manager.collectGarbage();
          assert.deepEqual(await manager.sessionsOf(users.ada), []);
          assert.equal(await store().inner.peek(indexKey), null, 'the index record expired');
          assert.notEqual((await visit(manager, ada.id)).id, ada.id);
        },
      ));

    it('with hashIds and encryption: the index is keyed and encrypted, and listing and revocation work', () =>
      managerFor(
        target,
        {
          timeToUpdate: 0,
          hashIds: { secret: HASH_SECRET },
          encryption: { keys: [Buffer.alloc(32, 7)] },
        },
        async ({ manager, store }) => {
          const users = newUsers();
          const phone = await logIn(manager, users.ada, { userAgent: 'Safari on iPhone' });
          const laptop = await logIn(manager, users.ada);
          const hashed = new StorageIds(HASH_SECRET);
          assert.equal(
            await store().inner.peek({ id: new StorageIds().indexKeyOf(users.ada), ip: null }),
            null,
          );
          const index = await store().inner.peek({ id: hashed.indexKeyOf(users.ada), ip: null });
          assert.ok(index !== null, 'the index is under a keyed hash of the user ID');
          for (const secret of [users.ada, 'Safari', phone.id, laptop.id, hashed.of(phone.id)])
            assert.equal(index.includes(secret), false, `no ${secret} in the stored index`);
          const listed = await manager.sessionsOf(users.ada);
          assert.equal(listed.length, 2);
          assert.ok(listed.some((entry) => entry.userAgent === 'Safari on iPhone'));
          assert.equal(await manager.revokeAll(users.ada, { except: laptop.id }), 1);
          assert.notEqual((await visit(manager, phone.id)).id, phone.id);
          assert.equal((await visit(manager, laptop.id)).get('user'), users.ada);
        },
      ));
  });
}
