import assert from 'node:assert/strict';
import type { DriverContext, SessionKey, SessionStore } from '../drivers/contract.js';
import { SessionLockLostError, SessionLockTimeoutError } from '../errors.js';
import { createSessionId } from '../id.js';
import { LockProtocol } from '../lock-protocol.js';
import {
  type ConformanceTarget,
  openStore,
  type StoreHarness,
  type TestFunctions,
} from './conformance.js';

export function newKey(ip: string | null = null): SessionKey {
  return { id: createSessionId(), ip };
}

let tokens = 0;
/** A lock token no other test uses. */
export function newToken(): string {
  tokens += 1;
  return `conformance-${process.pid}-${tokens}-${Math.random().toString(36).slice(2)}`;
}

export const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens a store, runs `body`, then closes it and cleans up, whatever happened. */
export async function withStore(
  target: ConformanceTarget,
  overrides: Partial<DriverContext>,
  body: (harness: StoreHarness) => Promise<void>,
): Promise<void> {
  const harness = await openStore(target, overrides);
  try {
    await body(harness);
  } finally {
    await harness.store.close();
    await target.cleanup?.();
  }
}

/** Takes the lock with a new token (asserting it was free) and answers the token and payload. */
export async function lock(
  store: SessionStore,
  key: SessionKey,
): Promise<{ token: string; payload: string | null }> {
  const token = newToken();
  const attempt = await store.lockAndRead(key, token);
  assert.ok(attempt.locked, `the lock of ${key.id} was free`);
  return { token, payload: attempt.payload };
}

/** Stores `payload` under `key` with the lock (lifetime from the context unless given). */
export async function put(
  harness: StoreHarness,
  key: SessionKey,
  payload: string,
  lifetimeSeconds = harness.context.lifetimeSeconds,
): Promise<void> {
  const { token } = await lock(harness.store, key);
  assert.equal(await harness.store.writeAndUnlock(key, token, payload, lifetimeSeconds), true);
}

/** Takes the lock with a new token once it is free: tries after `afterMs`, then every 50 ms up to `boundMs`. */
async function lockOnceFree(
  store: SessionStore,
  key: SessionKey,
  afterMs: number,
  boundMs: number,
): Promise<{ token: string; payload: string | null }> {
  await delay(afterMs);
  const deadline = performance.now() + boundMs;
  for (;;) {
    const token = newToken();
    const attempt = await store.lockAndRead(key, token);
    if (attempt.locked) return { token, payload: attempt.payload };
    assert.ok(performance.now() < deadline, `the expired lock of ${key.id} was never freed`);
    await delay(50);
  }
}

/** Whether the session's lock is free now: takes and gives back a probe lock. */
export async function isUnlocked(store: SessionStore, key: SessionKey): Promise<boolean> {
  const token = newToken();
  const attempt = await store.lockAndRead(key, token);
  if (!attempt.locked) return false;
  await store.unlock(key, token, attempt.payload === null);
  return true;
}

/** The core's lock protocol over an opened store, as a session manager runs it. */
export function protocolFor(harness: StoreHarness): LockProtocol {
  return new LockProtocol(harness.store, {
    driver: harness.driver.name,
    lockTtlMs: harness.context.lockTtlMs,
    ioTimeoutMs: harness.context.ioTimeoutMs,
    logger: harness.context.logger,
  });
}

/** The store primitives, one by one, and the lock protocol the core runs over them. */
export function storePrimitives(target: ConformanceTarget, test: TestFunctions): void {
  const { describe, it } = test;
  const run = (overrides: Partial<DriverContext>, body: (h: StoreHarness) => Promise<void>) =>
    withStore(target, overrides, body);

  describe('store primitives', () => {
    it('an unknown session reads as null, and a discarding unlock leaves nothing behind', () =>
      run({}, async ({ store }) => {
        const key = newKey();
        const { token, payload } = await lock(store, key);
        assert.equal(payload, null);
        await store.unlock(key, token, true);
        assert.equal(await store.peek(key), null);
        assert.equal(await isUnlocked(store, key), true);
      }));

    it('stores a payload byte for byte (unicode, quotes, control characters, 256 KiB)', () =>
      run({}, async (harness) => {
        const payloads = [
          '{"a":1}',
          '{"text":"héllo wörld ✓ 日本語 🎉","quote":"\\"\'\\\\","nul":"\\u0000\\n\\t"}',
          `{"big":"${'x'.repeat(256 * 1024)}"}`,
        ];
        for (const payload of payloads) {
          const key = newKey();
          await put(harness, key, payload);
          const { token, payload: read } = await lock(harness.store, key);
          assert.equal(read, payload);
          await harness.store.unlock(key, token, false);
          assert.equal(await harness.store.peek(key), payload);
        }
      }));

    it('a discarding unlock never deletes a live session (a write that landed before it)', () =>
      run({}, async (harness) => {
        const { store } = harness;
        const key = newKey();
        const { token, payload } = await lock(store, key);
        assert.equal(payload, null);
        // The core discards after a failed or late write; the write may have landed after all.
        assert.equal(await store.writeAndUnlock(key, token, '{"landed":1}', 60), true);
        await store.unlock(key, token, true);
        assert.equal(await store.peek(key), '{"landed":1}');
        const stranger = await lock(store, key);
        await store.unlock(key, newToken(), true);
        assert.equal(await store.peek(key), '{"landed":1}', 'nor one another request holds');
        await store.unlock(key, stranger.token, false);
      }));

    it('overwrites a payload on the next write', () =>
      run({}, async (harness) => {
        const key = newKey();
        await put(harness, key, '{"n":1}');
        await put(harness, key, '{"n":2}');
        assert.equal(await harness.store.peek(key), '{"n":2}');
      }));

    it('grants one lock at a time per session, and another once it is released', () =>
      run({}, async ({ store }) => {
        const key = newKey();
        const first = await lock(store, key);
        assert.deepEqual(await store.lockAndRead(key, newToken()), { locked: false });
        await store.unlock(key, first.token, true);
        assert.equal(await isUnlocked(store, key), true);
      }));

    it('does not lock other sessions', () =>
      run({}, async ({ store }) => {
        const busy = newKey();
        const held = await lock(store, busy);
        assert.equal(await isUnlocked(store, newKey()), true);
        await store.unlock(busy, held.token, true);
      }));

    for (const ending of ['writeAndUnlock', 'touchAndUnlock', 'destroyAndUnlock', 'unlock']) {
      it(`releases the lock on ${ending}`, () =>
        run({}, async (harness) => {
          const { store, context } = harness;
          const key = newKey();
          await put(harness, key, '{"e":1}');
          const { token } = await lock(store, key);
          if (ending === 'writeAndUnlock')
            assert.equal(await store.writeAndUnlock(key, token, '{"e":2}', 60), true);
          if (ending === 'touchAndUnlock')
            assert.equal(
              await store.touchAndUnlock(key, token, context.lifetimeSeconds),
              'touched',
            );
          if (ending === 'destroyAndUnlock')
            assert.equal(await store.destroyAndUnlock(key, token), true);
          if (ending === 'unlock') await store.unlock(key, token, false);
          assert.equal(await isUnlocked(store, key), true);
        }));
    }

    it('touch keeps the payload, and answers missing (keeping the lock) when the record is gone', () =>
      run({}, async (harness) => {
        const { store } = harness;
        const key = newKey();
        await put(harness, key, '{"u":1}');
        let held = await lock(store, key);
        assert.equal(await store.touchAndUnlock(key, held.token, 60), 'touched');
        assert.equal(await store.peek(key), '{"u":1}');
        const gone = newKey();
        held = await lock(store, gone);
        assert.equal(await store.touchAndUnlock(gone, held.token, 60), 'missing');
        assert.deepEqual(await store.lockAndRead(gone, newToken()), { locked: false });
        assert.equal(await store.writeAndUnlock(gone, held.token, '{"u":2}', 60), true);
        assert.equal(await store.peek(gone), '{"u":2}');
      }));

    it('peek reads without waiting for the lock', () =>
      run({}, async (harness) => {
        const key = newKey();
        await put(harness, key, '{"p":1}');
        const held = await lock(harness.store, key);
        assert.equal(await harness.store.peek(key), '{"p":1}');
        await harness.store.unlock(key, held.token, false);
      }));

    it('destroyAndUnlock deletes the session', () =>
      run({}, async (harness) => {
        const key = newKey();
        await put(harness, key, '{"d":1}');
        const held = await lock(harness.store, key);
        assert.equal(held.payload, '{"d":1}');
        assert.equal(await harness.store.destroyAndUnlock(key, held.token), true);
        assert.equal(await harness.store.peek(key), null);
        const again = await lock(harness.store, key);
        assert.equal(again.payload, null);
        await harness.store.unlock(key, again.token, true);
      }));

    it('keeps sessions of different IPs apart under matchIP', () =>
      run({ matchIP: true }, async (harness) => {
        const id = createSessionId();
        const v4 = { id, ip: '127.0.0.1' };
        const v6 = { id, ip: '::1' };
        await put(harness, v4, '{"ip":"v4"}');
        assert.equal(await harness.store.peek(v6), null);
        await put(harness, v6, '{"ip":"v6"}');
        assert.equal(await harness.store.peek(v4), '{"ip":"v4"}');
        assert.equal(await harness.store.peek(v6), '{"ip":"v6"}');
        const held = await lock(harness.store, v6);
        await harness.store.destroyAndUnlock(v6, held.token);
        assert.equal(await harness.store.peek(v4), '{"ip":"v4"}');
      }));

    it('a token that does not hold the lock changes nothing: not a write, touch, destroy or unlock', () =>
      run({}, async (harness) => {
        const { store } = harness;
        const key = newKey();
        await put(harness, key, '{"kept":1}');
        const holder = await lock(store, key);
        const stranger = newToken();
        assert.equal(await store.writeAndUnlock(key, stranger, '{"kept":0}', 60), false);
        assert.equal(await store.touchAndUnlock(key, stranger, 60), 'fenced');
        assert.equal(await store.destroyAndUnlock(key, stranger), false);
        await store.unlock(key, stranger, true);
        assert.equal(await store.peek(key), '{"kept":1}');
        assert.deepEqual(await store.lockAndRead(key, newToken()), { locked: false });
        assert.equal(await store.writeAndUnlock(key, holder.token, '{"kept":2}', 60), true);
        assert.equal(await store.peek(key), '{"kept":2}');
      }));

    if (target.expiry === 'clock') {
      it('expires a session lifetimeSeconds after its last write or touch, as each call says', () =>
        run({ lifetimeSeconds: 60 }, async (harness) => {
          const { store, clock } = harness;
          const key = newKey();
          const short = newKey();
          const long = newKey();
          await put(harness, key, '{"e":1}');
          await put(harness, short, '{"short":1}', 10);
          await put(harness, long, '{"long":1}', 600);
          clock.advance(50);
          assert.equal(await store.peek(short), null, 'a 10 s lifetime is over after 50 s');
          const held = await lock(store, key);
          assert.equal(await store.touchAndUnlock(key, held.token, 60), 'touched');
          clock.advance(50);
          assert.equal(await store.peek(key), '{"e":1}', 'a touch restarts the lifetime');
          clock.advance(11);
          assert.equal(await store.peek(key), null);
          const expired = await lock(store, key);
          assert.equal(expired.payload, null, 'an expired session reads as absent');
          await store.unlock(key, expired.token, true);
          assert.equal(await store.peek(long), '{"long":1}', 'a 600 s lifetime outlives 60 s');
        }));

      it('gc deletes expired sessions and keeps live ones, long-lived ones included', () =>
        run({ lifetimeSeconds: 120 }, async (harness) => {
          const { store, clock } = harness;
          const idle = newKey();
          const live = newKey();
          const long = newKey();
          await put(harness, idle, '{"idle":1}');
          await put(harness, long, '{"long":1}', 3_600);
          clock.advance(100);
          await put(harness, live, '{"live":1}');
          clock.advance(30);
          const removed = (await store.gc?.(120)) ?? 0;
          assert.ok(removed >= 1, `gc reported ${removed} removals`);
          assert.equal(await store.peek(idle), null);
          assert.equal(await store.peek(live), '{"live":1}');
          assert.equal(await store.peek(long), '{"long":1}');
        }));
    } else {
      it('expires a session by the store TTL each call gives', () =>
        run({}, async (harness) => {
          const key = newKey();
          const long = newKey();
          await put(harness, key, '{"e":1}', 1);
          await put(harness, long, '{"long":1}', 60);
          assert.equal(await harness.store.peek(key), '{"e":1}');
          await delay(2_200);
          assert.equal(await harness.store.peek(key), null);
          assert.equal(await harness.store.peek(long), '{"long":1}');
        }));
    }

    it('revoke ends a session whose lock is held: the holder cannot write, touch or destroy, and the next holder reads nothing', () =>
      run({}, async (harness) => {
        const { store } = harness;
        const revoke = store.revoke?.bind(store);
        if (revoke === undefined) {
          // The fallback: the core's revocation takes the lock like a request.
          const key = newKey();
          await put(harness, key, '{"user":"ada"}');
          await protocolFor(harness).revoke(key, 1_000);
          assert.equal(await store.peek(key), null);
          return;
        }
        for (const ending of ['write', 'touch', 'destroy', 'unlock'] as const) {
          const key = newKey();
          await put(harness, key, '{"user":"ada"}');
          const { token, payload } = await lock(store, key);
          assert.equal(payload, '{"user":"ada"}');
          await revoke(key);
          assert.equal(await store.peek(key), null, `${ending}: gone at once`);
          const lifetime = harness.context.lifetimeSeconds;
          if (ending === 'write')
            assert.equal(
              await store.writeAndUnlock(key, token, '{"user":"back"}', lifetime),
              false,
            );
          if (ending === 'touch')
            assert.equal(await store.touchAndUnlock(key, token, lifetime), 'fenced');
          if (ending === 'destroy') assert.equal(await store.destroyAndUnlock(key, token), false);
          if (ending === 'unlock') await store.unlock(key, token, false);
          assert.equal(await store.peek(key), null, `${ending}: the holder brought nothing back`);
          const next = await lockOnceFree(store, key, 0, 2_000);
          assert.equal(next.payload, null, `${ending}: the next holder reads no session`);
          assert.equal(
            await store.writeAndUnlock(key, next.token, '{"user":"new"}', lifetime),
            true,
          );
          assert.equal(await store.peek(key), '{"user":"new"}', `${ending}: and may store one`);
        }
      }));

    it('revoke fences a holder with nothing stored yet, and a key that holds nothing', () =>
      run({}, async (harness) => {
        const { store } = harness;
        const revoke = store.revoke?.bind(store);
        const lifetime = harness.context.lifetimeSeconds;
        const fresh = newKey();
        if (revoke === undefined) {
          await protocolFor(harness).revoke(fresh, 1_000);
          assert.equal(await store.peek(fresh), null);
          return;
        }
        const { token } = await lock(store, fresh);
        await revoke(fresh);
        assert.equal(await store.writeAndUnlock(fresh, token, '{"new":1}', lifetime), false);
        await store.unlock(fresh, token, true);
        assert.equal(await store.peek(fresh), null);
        const unknown = newKey();
        await revoke(unknown);
        await revoke(unknown);
        assert.equal(await store.peek(unknown), null);
        const next = await lockOnceFree(store, unknown, 0, 2_000);
        assert.equal(next.payload, null);
        assert.equal(await store.writeAndUnlock(unknown, next.token, '{"n":1}', lifetime), true);
        assert.equal(await store.peek(unknown), '{"n":1}');
      }));
  });

  describe('lock protocol over the store', () => {
    it('a waiter gets the lock when the holder releases it', () =>
      run({}, async (harness) => {
        const protocol = protocolFor(harness);
        const key = newKey();
        const first = await protocol.acquire(key, 1_000);
        let granted = false;
        const second = protocol.acquire(key, 5_000).then((result) => {
          granted = true;
          return result;
        });
        await delay(150);
        assert.equal(granted, false, 'the second request waits while the lock is held');
        await protocol.write(first.lock, '{"by":"first"}', 60);
        const { lock: secondLock, payload } = await second;
        assert.equal(payload, '{"by":"first"}');
        await protocol.release(secondLock);
      }));

    it('gives up with SessionLockTimeoutError after the wait bound', () =>
      run({}, async (harness) => {
        const protocol = protocolFor(harness);
        const key = newKey();
        const held = await protocol.acquire(key, 1_000);
        const started = performance.now();
        await assert.rejects(protocol.acquire(key, 300), SessionLockTimeoutError);
        const waited = performance.now() - started;
        assert.ok(waited >= 250, `waited ${Math.round(waited)} ms for a 300 ms bound`);
        await protocol.release(held.lock);
      }));

    it('keeps a lock held past lockTtl while its request runs (renewed)', () =>
      run({ lockTtlMs: 600 }, async (harness) => {
        const protocol = protocolFor(harness);
        const key = newKey();
        const held = await protocol.acquire(key, 1_000);
        await delay(1_500);
        await assert.rejects(protocol.acquire(key, 200), SessionLockTimeoutError);
        await protocol.write(held.lock, '{"kept":true}', 60);
        assert.equal(await harness.store.peek(key), '{"kept":true}');
      }));

    it('a holder whose lock expired and was taken over cannot write, touch or destroy', () =>
      run({ lockTtlMs: 300 }, async (harness) => {
        const { store } = harness;
        const protocol = protocolFor(harness);
        const key = newKey();
        await put(harness, key, '{"user":"ada"}');
        if (store.renewLock === undefined) {
          // Locks that never expire (a file lock, a connection's lock) cannot be taken over.
          const held = await protocol.acquire(key, 1_000);
          await delay(450);
          assert.deepEqual(await store.lockAndRead(key, newToken()), { locked: false });
          await protocol.release(held.lock);
          return;
        }
        // The other request runs elsewhere: a second store opened from the same driver (another
        // connection, another process's file handles), so only what the store shares can fence.
        const elsewhere = await harness.driver.open(harness.context);
        try {
          for (const ending of ['write', 'touch', 'destroy'] as const) {
            const stalled = await protocol.acquire(key, 1_000);
            // The stall: no renewal reaches the store for longer than lockTtl.
            clearTimeout(stalled.lock.renewal);
            // Another request takes the expired lock as soon as the store lets it (a store
            // whose locks expire in whole seconds frees it up to two seconds later).
            const other = await lockOnceFree(elsewhere, key, 450, 3_000);
            assert.equal(other.payload, '{"user":"ada"}', 'the lock expired, so another took it');
            // The other request logs out.
            assert.equal(await elsewhere.destroyAndUnlock(key, other.token), true);
            // The store's own check is what is tested here, not the core's lease.
            stalled.lock.leaseUntil = Number.POSITIVE_INFINITY;
            const attempt =
              ending === 'write'
                ? protocol.write(stalled.lock, '{"user":"ada","back":1}', 60)
                : ending === 'touch'
                  ? protocol.touch(stalled.lock, '{"user":"ada"}', 60)
                  : protocol.destroy(stalled.lock);
            await assert.rejects(attempt, SessionLockLostError);
            assert.equal(
              await store.peek(key),
              null,
              `a late ${ending} did not revive the session`,
            );
            await put(harness, key, '{"user":"ada"}');
          }
        } finally {
          await elsewhere.close();
        }
      }));

    it('a holder whose lease ran out is refused by the core even when nobody took the lock', () =>
      run({ lockTtlMs: 300 }, async (harness) => {
        const { store } = harness;
        const protocol = protocolFor(harness);
        const key = newKey();
        await put(harness, key, '{"user":"ada"}');
        const stalled = await protocol.acquire(key, 1_000);
        clearTimeout(stalled.lock.renewal);
        await delay(450);
        if (store.renewLock === undefined) {
          // A lock that cannot expire has no lease to run out: the holder still saves.
          await protocol.write(stalled.lock, '{"user":"bob"}', 60);
          assert.equal(await store.peek(key), '{"user":"bob"}');
          return;
        }
        await assert.rejects(
          protocol.write(stalled.lock, '{"user":"bob"}', 60),
          SessionLockLostError,
        );
        assert.equal(await store.peek(key), '{"user":"ada"}');
        await delay(50);
        assert.equal(await isUnlocked(store, key), true, 'the refused holder gave its lock back');
      }));
  });
}
