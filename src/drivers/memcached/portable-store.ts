import type { LockAttempt, SessionKey, SessionStore, TouchOutcome } from '../contract.js';
import type { MemcachedClient } from './client.js';
import { exptime, lockItemSeconds } from './expiry.js';
import { type ItemKeys, itemKeys } from './keys.js';

/** The lock's value while a revoke deletes the session: no request's token. */
const REVOKING = 'keepsake:revoke';

/**
 * Sessions in memcached through a client of the application's own, with the commands every client
 * has. The lock is an `add` of the request's token; every call that changes the session first reads
 * the lock to check that it still holds this token, and the unlock is get, compare, delete. Without
 * CAS this is not atomic: the lock would have to expire or be evicted, and be taken by another
 * request, between the check and the command, and the core's lease sends no command once lockTtl
 * has passed since the lock was last confirmed. A lock whose holder stopped renewing it frees
 * itself when its item expires (lockTtl rounded up to whole seconds, plus one).
 */
export class PortableStore implements SessionStore {
  readonly #client: MemcachedClient;
  readonly #prefix: string;
  readonly #lockSeconds: number;

  constructor(client: MemcachedClient, prefix: string, lockTtlMs: number) {
    this.#client = client;
    this.#prefix = prefix;
    this.#lockSeconds = lockItemSeconds(lockTtlMs);
  }

  async lockAndRead(key: SessionKey, token: string): Promise<LockAttempt> {
    const keys = itemKeys(this.#prefix, key);
    if (!(await this.#client.add(keys.lock, token, this.#lockSeconds))) return { locked: false };
    try {
      return { locked: true, payload: (await this.#client.get(keys.data)) ?? null };
    } catch (error) {
      // Nobody else knows of this lock: give it back before failing.
      await this.#client.delete(keys.lock).catch(() => {});
      throw error;
    }
  }

  async renewLock(key: SessionKey, token: string): Promise<boolean> {
    const keys = itemKeys(this.#prefix, key);
    if (!(await this.#holds(keys, token))) return false;
    return this.#client.touch(keys.lock, this.#lockSeconds);
  }

  async writeAndUnlock(
    key: SessionKey,
    token: string,
    payload: string,
    lifetimeSeconds: number,
  ): Promise<boolean> {
    const keys = itemKeys(this.#prefix, key);
    if (!(await this.#holds(keys, token))) return false;
    if (!(await this.#client.set(keys.data, payload, exptime(lifetimeSeconds)))) {
      throw new Error('memcached did not store the session (the client answered false)');
    }
    return this.#release(keys, token);
  }

  async touchAndUnlock(
    key: SessionKey,
    token: string,
    lifetimeSeconds: number,
  ): Promise<TouchOutcome> {
    const keys = itemKeys(this.#prefix, key);
    if (!(await this.#holds(keys, token))) return 'fenced';
    if (!(await this.#client.touch(keys.data, exptime(lifetimeSeconds)))) return 'missing';
    return (await this.#release(keys, token)) ? 'touched' : 'fenced';
  }

  async destroyAndUnlock(key: SessionKey, token: string): Promise<boolean> {
    const keys = itemKeys(this.#prefix, key);
    if (!(await this.#holds(keys, token))) return false;
    await this.#client.delete(keys.data);
    return this.#release(keys, token);
  }

  async unlock(key: SessionKey, token: string): Promise<void> {
    // The lock item is all a lock leaves behind, so there is nothing to discard.
    await this.#release(itemKeys(this.#prefix, key), token);
  }

  /**
   * Takes the lock whoever holds it (a value that is no request's token), deletes the session,
   * then releases the lock: a holder's next check finds the lock not its own, so it stores,
   * touches or deletes nothing, and no request can take the lock and read the session before it is
   * gone. As with a lost lock, a check and its command are two calls: a holder whose check passed
   * just before the revoke still stores its write a round trip later.
   */
  async revoke(key: SessionKey): Promise<void> {
    const keys = itemKeys(this.#prefix, key);
    if (!(await this.#client.set(keys.lock, REVOKING, this.#lockSeconds))) {
      throw new Error('memcached did not store the lock (the client answered false)');
    }
    try {
      await this.#client.delete(keys.data);
    } finally {
      await this.#client.delete(keys.lock);
    }
  }

  async peek(key: SessionKey): Promise<string | null> {
    return (await this.#client.get(itemKeys(this.#prefix, key).data)) ?? null;
  }

  async close(): Promise<void> {
    // The client is the application's: keepsake never closes it.
  }

  async #holds(keys: ItemKeys, token: string): Promise<boolean> {
    return (await this.#client.get(keys.lock)) === token;
  }

  /** Get, compare, delete: answers whether the lock was still this token's. */
  async #release(keys: ItemKeys, token: string): Promise<boolean> {
    if (!(await this.#holds(keys, token))) return false;
    return this.#client.delete(keys.lock);
  }
}
