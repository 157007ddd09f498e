import { createHash } from 'node:crypto';
import { lockItemSeconds } from './expiry.js';
import type { ItemLayout } from './item-layout.js';
import { codeIgniterItemKeys } from './keys.js';
import type { LockValue } from './lock-value.js';

/**
 * PHP's memcached extension keeps a value's type in the low four bits of the client flags (0 a
 * string, 1 an int) and marks a compressed value with 16 (plus 32 for zlib, 64 for fastlz).
 */
const PHP_TYPE_MASK = 0xf;
const PHP_INT = 1;
const PHP_COMPRESSED = 16;
/** CodeIgniter 4.1 sets its lock item for 300 seconds. */
const CODEIGNITER_LOCK_SECONDS = 300;
/** The digits of the holder's tag after the 13 digits of the time: 19 in all, a PHP int. */
const TAG_DIGITS = 6;
const KEEPSAKE_LOCK = /^\d{19}$/;

/** Six digits naming a lock token: with the time, what tells this lock from another. */
function tagOf(token: string): string {
  const number = createHash('sha256').update(token).digest().readUInt32BE(0) % 10 ** TAG_DIGITS;
  return String(number).padStart(TAG_DIGITS, '0');
}

/**
 * CodeIgniter 4's MemcachedHandler layout: PHP session data as a string item (flags 0) under
 * `<prefix>[<ip>:]<id>` (`ci_session:` in 4.1), and a lock item beside it holding an int (flags 1) for 300 seconds.
 * CodeIgniter's lock holds `time()` (10 digits); keepsake's holds the time (ms, 13 digits) it may
 * be taken over and a tag of its token — an int PHP reads like its own, that CodeIgniter waits
 * for, and that keepsake never mistakes for CodeIgniter's, which it never takes over.
 */
export function codeIgniterItemLayout(lockTtlMs: number, prefix: string): ItemLayout {
  return {
    keys: codeIgniterItemKeys(prefix),
    lockSeconds: Math.max(CODEIGNITER_LOCK_SECONDS, lockItemSeconds(lockTtlMs)),
    lockFlags: PHP_INT,
    encodeLock: (lock: LockValue) =>
      Buffer.from(`${String(lock.expiresAtMs).padStart(13, '0')}${tagOf(lock.token)}`, 'latin1'),
    decodeLock(bytes: Buffer): LockValue | undefined {
      const text = bytes.toString('latin1');
      if (!KEEPSAKE_LOCK.test(text)) return undefined;
      return { expiresAtMs: Number(text.slice(0, 13)), token: text.slice(13) };
    },
    isHolder: (lock, token) => lock.token === tagOf(token),
    refusal(flags: number): string | undefined {
      if ((flags & PHP_COMPRESSED) !== 0) {
        return (
          `it was compressed by PHP's memcached extension (client flags ${flags}), which it does to values of ` +
          'memcached.compression_threshold bytes (2000 by default) or more; raise that setting in php.ini above your largest session'
        );
      }
      if ((flags & PHP_TYPE_MASK) !== 0) {
        return `it is not a PHP string (client flags ${flags})`;
      }
      return undefined;
    },
  };
}
