import { isUtf8 } from 'node:buffer';
import type { LockAttempt } from './contract.js';

/**
 * The payload a store's bytes hold, or null when they are not UTF-8: no keepsake write made them,
 * and decoding would replace the bad bytes silently. A leading byte-order mark is kept, so a
 * payload comes back byte for byte.
 */
export function payloadOf(bytes: Buffer): string | null {
  return isUtf8(bytes) ? bytes.toString('utf8') : null;
}

/**
 * A lock attempt that took the lock and found `bytes` (null: no record), with the record's time
 * left to live when the store knows it; `what` names the record for the warning.
 */
export function lockedWith(bytes: Buffer | null, what: string, expiresInMs?: number): LockAttempt {
  if (bytes === null) return { locked: true, payload: null };
  const payload = payloadOf(bytes);
  if (payload === null) {
    return {
      locked: true,
      payload: null,
      unreadable: `${what} holds ${bytes.length} bytes that are not UTF-8 text`,
    };
  }
  return expiresInMs === undefined
    ? { locked: true, payload }
    : { locked: true, payload, expiresInMs };
}
