import type { LockAttempt, SessionKey, SessionStore, TouchOutcome } from '../drivers/contract.js';
import { payloadOfPhpSession, phpSessionOf } from './payload.js';

/**
 * Checks, once a lock was taken, that it is still the request's: a store shared with a
 * CodeIgniter whose lock is not atomic (get, then set) answers false when PHP took it over.
 */
export type ConfirmLock = (key: SessionKey, token: string) => Promise<boolean>;

/**
 * A store whose records are PHP session data (CodeIgniter's layout), seen by keepsake's core as
 * one holding keepsake's payloads: what it reads is translated to JSON, what the core writes back
 * to PHP's session encoding, built on the PHP data read under the same lock (see phpSessionOf).
 */
export class PhpSessionStore implements SessionStore {
  readonly #inner: SessionStore;
  readonly #where: string;
  readonly #confirm: ConfirmLock | undefined;
  /** The PHP session data read under each lock held, by token. */
  readonly #php = new Map<string, string>();
  readonly renewLock?: (key: SessionKey, token: string) => Promise<boolean>;
  readonly gc?: (maxLifetimeSeconds: number) => Promise<number>;
  readonly waitForUnlock?: (key: SessionKey, maxWaitMs: number) => Promise<void>;
  readonly isTransient?: (error: unknown) => boolean;

  /** `where` names the store in messages ("memcached", "the sessions table"). */
  constructor(inner: SessionStore, where: string, confirm?: ConfirmLock) {
    this.#inner = inner;
    this.#where = where;
    this.#confirm = confirm;
    if (inner.renewLock) this.renewLock = inner.renewLock.bind(inner);
    if (inner.gc) this.gc = inner.gc.bind(inner);
    if (inner.waitForUnlock) this.waitForUnlock = inner.waitForUnlock.bind(inner);
    if (inner.isTransient) this.isTransient = inner.isTransient.bind(inner);
  }

  async lockAndRead(key: SessionKey, token: string): Promise<LockAttempt> {
    const attempt = await this.#inner.lockAndRead(key, token);
    if (!attempt.locked) return attempt;
    if (this.#confirm !== undefined && !(await this.#confirmed(key, token, this.#confirm))) {
      return { locked: false };
    }
    if (attempt.payload === null) return attempt;
    const php = attempt.payload;
    let translated: ReturnType<typeof payloadOfPhpSession>;
    try {
      translated = payloadOfPhpSession(Buffer.from(php, 'utf8'), this.#where);
    } catch (error) {
      // Left for PHP as it is: only the lock is given back.
      await this.#inner.unlock(key, token, false);
      throw error;
    }
    if ('unreadable' in translated) return { locked: true, payload: null, ...translated };
    this.#php.set(token, php);
    return { ...attempt, payload: translated.payload };
  }

  async writeAndUnlock(
    key: SessionKey,
    token: string,
    payload: string,
    lifetimeSeconds: number,
  ): Promise<boolean> {
    const previous = this.#php.get(token);
    this.#php.delete(token);
    let php: string;
    try {
      php = phpSessionOf(
        payload,
        previous === undefined ? null : Buffer.from(previous, 'utf8'),
      ).toString('utf8');
    } catch (error) {
      // What PHP cannot hold is the caller's error: the session stays as it was, unlocked.
      await this.#inner.unlock(key, token, false);
      throw error;
    }
    return this.#inner.writeAndUnlock(key, token, php, lifetimeSeconds);
  }

  touchAndUnlock(key: SessionKey, token: string, lifetimeSeconds: number): Promise<TouchOutcome> {
    // 'missing' keeps the lock for the write that follows; that write starts from nothing.
    this.#php.delete(token);
    return this.#inner.touchAndUnlock(key, token, lifetimeSeconds);
  }

  destroyAndUnlock(key: SessionKey, token: string): Promise<boolean> {
    this.#php.delete(token);
    return this.#inner.destroyAndUnlock(key, token);
  }

  unlock(key: SessionKey, token: string, discard: boolean): Promise<void> {
    this.#php.delete(token);
    return this.#inner.unlock(key, token, discard);
  }

  async peek(key: SessionKey): Promise<string | null> {
    const php = await this.#inner.peek(key);
    if (php === null) return null;
    const translated = payloadOfPhpSession(Buffer.from(php, 'utf8'), this.#where);
    return 'payload' in translated ? translated.payload : null;
  }

  /** Whether the lock is still ours; a failed check gives it back before it rejects. */
  async #confirmed(key: SessionKey, token: string, confirm: ConfirmLock): Promise<boolean> {
    try {
      return await confirm(key, token);
    } catch (error) {
      await this.#inner.unlock(key, token, false).catch(() => {});
      throw error;
    }
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
