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

/** A lock attempt that took the lock and found `bytes` (null: no record); `what` names the record for the warning. */
export function lockedWith(bytes: Buffer | null, what: string): LockAttempt {
  if (bytes === null) return { locked: true, payload: null };
  const payload = payloadOf(bytes);
  return payload === null
    ? {
        locked: true,
        payload: null,
        unreadable: `${what} holds ${bytes.length} bytes that are not UTF-8 text`,
      }
    : { locked: true, payload };
}
