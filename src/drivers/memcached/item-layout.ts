import type { SessionKey } from '../contract.js';
import { lockItemSeconds } from './expiry.js';
import { type ItemKeys, itemKeys } from './keys.js';
import { decodeLockValue, encodeLockValue, type LockValue } from './lock-value.js';

/**
 * How MetaStore lays out a session's two items: their keys, what the lock item holds (and with
 * which client flags), how long it lives, and which session items it may use as they are.
 */
export interface ItemLayout {
  keys(key: SessionKey): ItemKeys;
  /** The lock item's TTL in seconds. */
  readonly lockSeconds: number;
  /** The client flags the lock item is stored with. */
  readonly lockFlags: number;
  encodeLock(lock: LockValue): Buffer;
  /** The lock a lock item holds; undefined for one written by anybody else (never taken over). */
  decodeLock(bytes: Buffer): LockValue | undefined;
  /** Whether the lock read back is `token`'s. */
  isHolder(lock: LockValue, token: string): boolean;
  /** Why a session item stored with these client flags cannot be used; undefined when it can. */
  refusal(flags: number): string | undefined;
}

/** keepsake's own layout: `<cookieName>:[<ip>:]{<id>}` items, flags 0, a lock of lockTtl. */
export function keepsakeItemLayout(prefix: string, lockTtlMs: number): ItemLayout {
  return {
    keys: (key) => itemKeys(prefix, key),
    lockSeconds: lockItemSeconds(lockTtlMs),
    lockFlags: 0,
    encodeLock: encodeLockValue,
    decodeLock: decodeLockValue,
    isHolder: (lock, token) => lock.token === token,
    refusal: () => undefined,
  };
}
