import type { LockAttempt, SessionDriver, SessionStore } from '../drivers/contract.js';
import { deserialize } from '../serializer.js';

/**
 * Whether each session ID held a session when a request last locked and read it: that is what tells
 * a regenerated session (the client's session moved to a new ID) from a new one (the client's ID led
 * nowhere, so it was given a fresh one).
 */
export class ReadLog {
  readonly #heldSession = new Map<string, boolean>();

  record(id: string, attempt: LockAttempt): void {
    if (attempt.locked) this.#heldSession.set(id, holdsSession(attempt));
  }

  /** True when the latest locked read of `id` found a stored session (or the record of where it moved). */
  heldSession(id: string): boolean {
    return this.#heldSession.get(id) === true;
  }
}

function holdsSession(attempt: LockAttempt & { locked: true }): boolean {
  if (attempt.payload === null || attempt.unreadable !== undefined) return false;
  try {
    deserialize(attempt.payload);
    return true;
  } catch {
    return false;
  }
}

/**
 * `driver`, with every locked read noted in `log`. Everything else passes straight through, and the
 * optional primitives are present exactly when the driver's store has them.
 */
export function watchedDriver(driver: SessionDriver, log: ReadLog): SessionDriver {
  return {
    name: driver.name,
    ...(driver.maxPayloadBytes === undefined ? {} : { maxPayloadBytes: driver.maxPayloadBytes }),
    async open(context) {
      return watchedStore(await driver.open(context), log);
    },
  };
}

function watchedStore(store: SessionStore, log: ReadLog): SessionStore {
  const { renewLock, gc, waitForUnlock, isTransient } = store;
  return {
    async lockAndRead(key, token) {
      const attempt = await store.lockAndRead(key, token);
      log.record(key.id, attempt);
      return attempt;
    },
    writeAndUnlock: (key, token, payload, lifetime) =>
      store.writeAndUnlock(key, token, payload, lifetime),
    touchAndUnlock: (key, token, lifetime) => store.touchAndUnlock(key, token, lifetime),
    destroyAndUnlock: (key, token) => store.destroyAndUnlock(key, token),
    unlock: (key, token, discard) => store.unlock(key, token, discard),
    peek: (key) => store.peek(key),
    close: () => store.close(),
    ...(renewLock === undefined ? {} : { renewLock: renewLock.bind(store) }),
    ...(gc === undefined ? {} : { gc: gc.bind(store) }),
    ...(waitForUnlock === undefined ? {} : { waitForUnlock: waitForUnlock.bind(store) }),
    ...(isTransient === undefined ? {} : { isTransient: isTransient.bind(store) }),
  };
}
