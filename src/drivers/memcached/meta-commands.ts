import type { Command } from './connection.js';

/**
 * The meta commands the built-in client sends (memcached ≥ 1.6). Every reply is a status line,
 * `c` asks for the item's CAS, and a CAS given as `C<cas>` makes the command apply only to that
 * exact version of the item.
 */

/** ` F<flags>` for client flags other than 0 (memcached's default). */
function clientFlags(flags: number): string {
  return flags === 0 ? '' : ` F${flags}`;
}

/** Stores the lock only if no lock exists (`ME`: add mode); HD c<cas>, or NS. */
export function addLock(lockKey: string, value: Buffer, seconds: number, flags: number): Command {
  return { line: `ms ${lockKey} ${value.length} T${seconds}${clientFlags(flags)} ME c`, value };
}

/** Rewrites the lock (a renewal, a takeover) only if it is still version `cas`; HD c<new cas>, EX or NF. */
export function replaceLock(
  lockKey: string,
  value: Buffer,
  seconds: number,
  flags: number,
  cas: string,
): Command {
  return {
    line: `ms ${lockKey} ${value.length} T${seconds}${clientFlags(flags)} C${cas} c`,
    value,
  };
}

/** The item's value, CAS, time left and client flags: VA <size> c<cas> t<s> f<flags> and the bytes, or EN. */
export function readItem(key: string): Command {
  return { line: `mg ${key} v c t f` };
}

/** The value and its client flags, for a read without a lock. */
export function peekItem(key: string): Command {
  return { line: `mg ${key} v f` };
}

/**
 * Stores a session: over version `cas` only (EX when it changed since, NF when it is gone), or,
 * with no version, only where none exists (`ME`; NS when one does).
 */
export function storeItem(
  key: string,
  value: Buffer,
  exptime: number,
  cas: string | null,
): Command {
  const condition = cas === null ? 'ME' : `C${cas}`;
  return { line: `ms ${key} ${value.length} T${exptime} ${condition} c`, value };
}

/** Restarts the item's lifetime without sending it: HD, or EN when it is gone. */
export function touchItem(key: string, exptime: number): Command {
  return { line: `mg ${key} T${exptime}` };
}

/** Deletes the item, only at version `cas` when given: HD, EX (changed since) or NF. */
export function deleteItem(key: string, cas: string | null): Command {
  return { line: cas === null ? `md ${key}` : `md ${key} C${cas}` };
}

/** Stores the item whatever is there (set mode): HD c<cas>. */
export function setItem(key: string, value: Buffer, seconds: number, flags = 0): Command {
  return { line: `ms ${key} ${value.length} T${seconds}${clientFlags(flags)} c`, value };
}
