import type { TouchOutcome } from '../contract.js';
import type { SqlDialect } from './schema.js';

/** One stored session's storage slot: its ID and the IP it is bound to ('0.0.0.0' without matchIP). */
export interface RowKey {
  readonly id: string;
  readonly ip: string;
}

/** What a lock attempt found under the key when it obtained the lock. */
export interface LockedRow {
  /** The row's `timestamp` (epoch seconds); 0 when only the lock exists. */
  readonly timestamp: number;
  /** The stored bytes; null when only the lock exists. */
  readonly data: Buffer | null;
}

/** What opening checks about the session table (and, on PostgreSQL, its lock table). */
export interface TableShape {
  readonly columns: readonly string[];
  readonly primaryKey: readonly string[];
  /** The lock table's state, for a dialect that keeps locks in one; undefined otherwise. */
  readonly lockTable?: 'missing' | 'unlogged' | 'logged';
}

/**
 * The session table's statements in one SQL dialect, aimed at a table already checked. Each
 * method is one statement unless noted, runs on any pooled connection, and holds no connection
 * between calls. Every method that changes or releases a session acts only while the lock is
 * still `token`'s.
 */
export interface SessionTable {
  readonly dialect: SqlDialect;
  /** Takes the lock if it is free, expired or already `token`'s, and reads the session; null when another holder has it. */
  tryLock(
    key: RowKey,
    token: string,
    lockExpiresMs: number,
    nowMs: number,
  ): Promise<LockedRow | null>;
  /** Pushes the lock's expiry out; false when the lock is no longer `token`'s. */
  renew(key: RowKey, token: string, lockExpiresMs: number): Promise<boolean>;
  /** Saves data and timestamp and unlocks; false when the lock is not `token`'s. */
  write(key: RowKey, token: string, data: Buffer, timestamp: number): Promise<boolean>;
  /**
   * Sets the timestamp of a session written after `liveAfter` and unlocks; 'missing' (keeping
   * the lock) when there is none.
   */
  touch(key: RowKey, token: string, timestamp: number, liveAfter: number): Promise<TouchOutcome>;
  /** Deletes the session and unlocks; false when the lock is not `token`'s. */
  destroy(key: RowKey, token: string): Promise<boolean>;
  /** Clears the lock if it is `token`'s. */
  unlock(key: RowKey, token: string): Promise<void>;
  /**
   * Removes the lock if it is `token`'s, with the session row if it was written at or before
   * `liveAfter` (a placeholder, an expired session): never a live session.
   */
  discard(key: RowKey, token: string, liveAfter: number): Promise<void>;
  /** The data of a row written after `liveAfter`, else null. */
  peek(key: RowKey, liveAfter: number): Promise<Buffer | null>;
  /**
   * Deletes sessions whose timestamp is before `idleBefore` unless their lock is held at `nowMs`
   * (and, where locks have a table of their own, lock rows unused since then); answers how many
   * sessions went.
   */
  deleteIdle(idleBefore: number, nowMs: number): Promise<number>;
  /** Whether the error is a deadlock, lock-wait timeout or serialization failure: worth retrying at once. */
  isTransient(error: unknown): boolean;
  /** Whether the error says the table (or its lock table) is gone or lacks a column. */
  isMissingTable(error: unknown): boolean;
}

/** Error fields both dialects' clients put on a failed query. */
export interface SqlErrorLike {
  readonly code?: unknown;
  readonly errno?: unknown;
}

export function sqlErrorFields(error: unknown): SqlErrorLike {
  return typeof error === 'object' && error !== null ? (error as SqlErrorLike) : {};
}

/** The data column's bytes: a bytea or blob arrives as a Buffer, a text column (a CodeIgniter table) as a string. */
export function columnBytes(value: unknown): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(String(value ?? ''), 'utf8');
}
