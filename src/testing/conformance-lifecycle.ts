import assert from 'node:assert/strict';
import { FakeClock } from '../clock.js';
import { DEFAULT_MAX_PAYLOAD_BYTES, type SessionConfig } from '../config.js';
import type { SessionKey, SessionStore } from '../drivers/contract.js';
import { SessionStoreError, SessionValueError } from '../errors.js';
import { SessionManager } from '../manager.js';
import type { Session } from '../session.js';
import { type ConformanceTarget, recordingLogger, type TestFunctions } from './conformance.js';
import { delay, isUnlocked, newToken } from './conformance-store.js';
import { type FaultyStore, faultyDriver } from './faulty-store.js';
import { requestFor } from './request-for.js';

export interface ManagerHarness {
  readonly manager: SessionManager;
  /** The store the manager opened, wrapped to inject faults. */
  store(): FaultyStore;
  readonly clock: FakeClock;
  readonly warnings: string[];
}

const request = (id?: string) => requestFor(id);

/** One whole request: start, `work`, cookies, commit. */
export async function visit(
  manager: SessionManager,
  id: string | undefined,
  work: (session: Session) => void | Promise<void> = () => {},
): Promise<Session> {
  const session = await manager.start(request(id));
  await work(session);
  manager.setCookies(session);
  await manager.commit(session);
  return session;
}

/** Whether the store tells, when it locks a stored session, how long that session has left. */
async function reportsTimeLeft(store: SessionStore, key: SessionKey): Promise<boolean> {
  const deadline = performance.now() + 2_000;
  for (;;) {
    const token = newToken();
    const attempt = await store.lockAndRead(key, token);
    if (attempt.locked) {
      await store.unlock(key, token, false);
      assert.notEqual(attempt.payload, null, 'the session is stored');
      return attempt.expiresInMs !== undefined;
    }
    assert.ok(performance.now() < deadline, `the lock of ${key.id} stayed taken`);
    await delay(50);
  }
}

/** Polls until every key's lock is free (at most `boundMs`); answers the keys still locked. */
async function stillLocked(
  store: FaultyStore,
  keys: readonly SessionKey[],
  boundMs: number,
): Promise<string[]> {
  const deadline = performance.now() + boundMs;
  let locked = keys;
  for (;;) {
    const next: SessionKey[] = [];
    for (const key of locked) if (!(await isUnlocked(store.inner, key))) next.push(key);
    locked = next;
    if (locked.length === 0 || performance.now() > deadline) return locked.map((key) => key.id);
    await delay(50);
  }
}

/** Runs `body` with a session manager over a fresh store of `target` (wrapped to inject faults). */
export async function managerFor(
  target: ConformanceTarget,
  options: SessionConfig,
  body: (harness: ManagerHarness) => Promise<void>,
): Promise<void> {
  const stores: FaultyStore[] = [];
  const clock = new FakeClock(Date.now());
  const warnings: string[] = [];
  const manager = new SessionManager({
    driver: faultyDriver(await target.driver(), stores),
    clock: target.expiry === 'clock' ? clock.now : () => Date.now(),
    logger: recordingLogger(warnings),
    gcProbability: 0,
    lockWait: 1_000,
    lockTtl: 1_000,
    ...options,
  });
  await manager.ready();
  const store = () => {
    const opened = stores[0];
    if (opened === undefined) throw new Error('the manager has not opened its store');
    return opened;
  };
  try {
    await body({ manager, store, clock, warnings });
  } finally {
    await manager.shutdown();
    await target.cleanup?.();
  }
}

/** The guarantees keepsake gives on top of the store, checked through a real session manager. */
export function lifecycleInvariants(target: ConformanceTarget, test: TestFunctions): void {
  const { describe, it } = test;

  const withManager = (options: SessionConfig, body: (harness: ManagerHarness) => Promise<void>) =>
    managerFor(target, options, body);

  describe('invariants of keepsake over the store', () => {
    it('10 000 visitors who store nothing leave no record and cost no store call; the first set() creates the session', () =>
      withManager({}, async ({ manager, store }) => {
        for (let visitor = 0; visitor < 10_000; visitor += 1) {
          const session = await manager.start(request());
          session.get('user');
          assert.deepEqual(manager.setCookies(session), []);
          await manager.commit(session);
        }
        assert.deepEqual(store().calls, [], 'the store was never asked anything');
        const created = await visit(manager, undefined, (s) => s.set('user', 'ada'));
        assert.match(
          (await store().inner.peek({ id: created.id, ip: null })) ?? '',
          /"user":"ada"/,
        );
      }));

    if (target.expiry === 'clock') {
      it('refreshes an unchanged session only once touchAfter of its lifetime has passed: early, never late', () =>
        withManager(
          { touchAfter: 0.5, expiration: 60, timeToUpdate: 0 },
          async ({ manager, store, clock }) => {
            const touches = () =>
              store().calls.filter((call) => call.method === 'touchAndUnlock').length;
            const { id } = await visit(manager, undefined, (s) => s.set('user', 'ada'));
            const key = { id, ip: null };
            clock.advance(20);
            if (!(await reportsTimeLeft(store().inner, key))) {
              // A store that cannot say how long a session has left is touched on every request.
              await visit(manager, id);
              assert.equal(touches(), 1, 'the store reports no time left: touched every time');
              return;
            }
            await visit(manager, id);
            assert.equal(touches(), 0, 'a third of the lifetime passed: no touch');
            clock.advance(15);
            await visit(manager, id);
            assert.equal(touches(), 1, 'over half of the lifetime passed: touched');
            clock.advance(59);
            assert.notEqual(await store().inner.peek(key), null, 'alive 59 s after its touch');
            clock.advance(2);
            assert.equal(
              await store().inner.peek(key),
              null,
              'expired 60 s after its touch, not later',
            );
            const unrefreshed = await visit(manager, undefined, (s) => s.set('user', 'bob'));
            clock.advance(20);
            await visit(manager, unrefreshed.id);
            clock.advance(41);
            assert.equal(
              await store().inner.peek({ id: unrefreshed.id, ip: null }),
              null,
              'a session read without a touch expires at most touchAfter early',
            );
          },
        ));
    } else {
      it('refreshes an unchanged session only once touchAfter of its lifetime has passed', () =>
        withManager(
          { touchAfter: 0.5, expiration: 4, timeToUpdate: 0 },
          async ({ manager, store }) => {
            const touches = () =>
              store().calls.filter((call) => call.method === 'touchAndUnlock').length;
            const { id } = await visit(manager, undefined, (s) => s.set('user', 'ada'));
            await delay(1_000);
            if (!(await reportsTimeLeft(store().inner, { id, ip: null }))) {
              // A store that cannot say how long a session has left is touched on every request.
              await visit(manager, id);
              assert.equal(touches(), 1, 'the store reports no time left: touched every time');
              return;
            }
            await visit(manager, id);
            assert.equal(touches(), 0, 'a quarter of the lifetime passed: no touch');
            await delay(1_300);
            await visit(manager, id);
            assert.equal(touches(), 1, 'over half of the lifetime passed: touched');
            await delay(2_500);
            assert.notEqual(
              await store().inner.peek({ id, ip: null }),
              null,
              'the touch extended it',
            );
          },
        ));
    }

    it('a failed write keeps the previous data and frees the lock', () =>
      withManager({}, async ({ manager, store }) => {
        const { id } = await visit(manager, undefined, (s) => s.set('user', 'ada'));
        store().methodFaults.set('writeAndUnlock', {
          kind: 'throw',
          error: new Error('Data too long for column'),
        });
        await assert.rejects(
          visit(manager, id, (s) => s.set('user', 'bob')),
          SessionStoreError,
        );
        store().methodFaults.clear();
        const after = await visit(manager, id);
        assert.equal(after.id, id, 'the session still exists');
        assert.equal(after.get('user'), 'ada');
      }));

    it('a write that answers after ioTimeout frees the lock once it has landed', () =>
      withManager({ ioTimeout: 300, lockTtl: 10_000 }, async ({ manager, store }) => {
        const { id } = await visit(manager, undefined, (s) => s.set('user', 'ada'));
        store().methodFaults.set('writeAndUnlock', { kind: 'delay', ms: 600 });
        await assert.rejects(
          visit(manager, id, (s) => s.set('user', 'bob')),
          SessionStoreError,
        );
        store().methodFaults.clear();
        // The write reaches the store 600 ms late, lands, and releases the lock itself.
        assert.deepEqual(await stillLocked(store(), [{ id, ip: null }], 5_000), []);
        const after = await visit(manager, id);
        assert.equal(after.get('user'), 'bob', 'the late write landed, and nothing after it');
      }));

    it('a lock attempt given up after ioTimeout leaves no lock once it runs', () =>
      withManager(
        { ioTimeout: 300, lockTtl: 10_000, lockWait: 500 },
        async ({ manager, store }) => {
          const { id } = await visit(manager, undefined, (s) => s.set('user', 'ada'));
          // A frozen store: the attempt reaches it only after the core has given up.
          store().methodFaults.set('lockAndRead', { kind: 'delay', ms: 600 });
          await assert.rejects(manager.start(request(id)), SessionStoreError);
          store().methodFaults.clear();
          await delay(800);
          const after = await visit(manager, id);
          assert.equal(
            after.get('user'),
            'ada',
            'the next request got the lock long before lockTtl',
          );
        },
      ));

    it('a failure at any step on the way into a request releases every lock taken', async () => {
      // The way in: follow a regenerated ID to its session, regenerate it again (timeToUpdate
      // passed), age the flashdata. Each store call and each clock reading fails once in turn.
      const scenario = async (
        failAt: { storeCall?: number; clockCall?: number; debugThrows?: boolean },
        run: (outcome: { calls: number; clockCalls: number }) => Promise<void>,
      ) => {
        let clockCalls = 0;
        let countClock = false;
        const base = new FakeClock(Date.now());
        const clock = () => {
          if (countClock) {
            clockCalls += 1;
            if (clockCalls === failAt.clockCall) throw new Error('injected clock failure');
          }
          // Regeneration follows this clock on every store; a TTL store's expiry does not.
          return base.now();
        };
        // Only while the request under test starts: the setup requests log as usual.
        const throwingDebug = {
          debug: () => {
            if (countClock) throw new Error('injected logger failure');
          },
          warn: () => {},
          error: () => {},
        };
        await withManager(
          {
            clock,
            timeToUpdate: 300,
            regenerateGrace: 600,
            lockTtl: 1_000,
            ...(failAt.debugThrows === true ? { logger: throwingDebug } : {}),
          },
          async ({ manager, store }) => {
            const first = await visit(manager, undefined, (s) => {
              s.set('user', 'ada');
              s.setFlashdata('notice', 'saved');
            });
            const oldId = first.id;
            await visit(manager, oldId, (s) => s.regenerate(false));
            base.advance(301);
            const faulty = store();
            const setupCalls = faulty.calls.length;
            if (failAt.storeCall !== undefined) {
              faulty.faults.set(setupCalls + failAt.storeCall, {
                kind: 'throw',
                error: new Error('injected store failure'),
              });
            }
            countClock = true;
            let started: Session | undefined;
            try {
              started = await manager.start(request(oldId));
            } catch (error) {
              assert.ok(error instanceof Error);
            }
            countClock = false;
            const calls = faulty.calls.length - setupCalls;
            if (started !== undefined) {
              assert.equal(started.get('user'), 'ada');
              await manager.commit(started).catch(() => {});
            }
            faulty.faults.clear();
            const locked = await stillLocked(faulty, faulty.keysSeen(), 2_500);
            assert.deepEqual(locked, [], `locks left after ${JSON.stringify(failAt)}`);
            await run({ calls, clockCalls });
          },
        );
      };
      let storeCalls = 0;
      let clockCalls = 0;
      await scenario({}, async (clean) => {
        storeCalls = clean.calls;
        clockCalls = clean.clockCalls;
      });
      assert.ok(storeCalls >= 4, `the way in made ${storeCalls} store calls`);
      for (let call = 1; call <= storeCalls; call += 1)
        await scenario({ storeCall: call }, async () => {});
      for (let call = 1; call <= clockCalls; call += 1)
        await scenario({ clockCall: call }, async () => {});
      await scenario({ debugThrows: true }, async () => {});
    });

    for (const [shape, payload] of [
      ['not JSON', 'not json at all'],
      ['a JSON array', '[1,2]'],
      ['JSON null', 'null'],
      ['truncated JSON', '{"user":"ada"'],
      ['a null forwarding record', '{"__keepsake_moved":null}'],
      ['a forwarding record to a bad ID', '{"__keepsake_moved":{"to":"../etc","until":9e9}}'],
      ['an invalid date tag', '{"when":{"$keepsake:date":"not a date"}}'],
      ['20 000 levels of nesting', `{"deep":${'['.repeat(20_000)}${']'.repeat(20_000)}}`],
      ['binary junk', '\u0000\u0001\ufffd\u00ff'],
    ] as const) {
      it(`a corrupt record (${shape}) gives an empty session, one warning and a released lock`, () =>
        withManager({}, async ({ manager, store, warnings }) => {
          const { id } = await visit(manager, undefined, (s) => s.set('user', 'ada'));
          const key = { id, ip: null };
          const token = newToken();
          const attempt = await store().inner.lockAndRead(key, token);
          assert.ok(attempt.locked);
          await store().inner.writeAndUnlock(key, token, payload, 60);
          warnings.length = 0;
          const fresh = await visit(manager, id, (s) => s.set('next', 1));
          assert.notEqual(fresh.id, id, 'a new session replaces the corrupt one');
          assert.equal(fresh.get('user'), null);
          assert.equal(warnings.length, 1, `one warning: ${JSON.stringify(warnings)}`);
          assert.match(warnings[0] ?? '', /corrupt/);
          assert.equal(await store().inner.peek(key), null, 'the corrupt record is deleted');
          assert.equal(await isUnlocked(store().inner, key), true);
          const again = await visit(manager, fresh.id);
          assert.equal(again.get('next'), 1);
        }));
    }

    it('stores and reads back the largest allowed payload, and refuses a larger one keeping the old data', () =>
      withManager({}, async ({ manager }) => {
        const limit = manager.config.maxPayloadBytes;
        assert.ok(limit >= 64 && limit <= 16 * DEFAULT_MAX_PAYLOAD_BYTES, `limit ${limit}`);
        const room = limit - '{"__ci_last_regenerate":0000000000,"big":""}'.length;
        const big = 'x'.repeat(room);
        const { id } = await visit(manager, undefined, (s) => s.set('big', big));
        const read = await visit(manager, id);
        assert.equal(read.get('big'), big);
        const rejected = visit(manager, id, (s) => s.set('big', `${big}xx`));
        await assert.rejects(rejected, (error: unknown) => {
          assert.ok(error instanceof SessionValueError);
          assert.match(error.message, new RegExp(`${limit}-byte limit \\(maxPayloadBytes\\)`));
          return true;
        });
        const after = await visit(manager, id);
        assert.equal(after.get('big'), big, 'the stored session is unchanged');
      }));
  });
}
