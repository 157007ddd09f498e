import type { SqlDialect } from './schema.js';

/** One stored session's storage slot: its ID and the IP it is bound to ('0.0.0.0' without matchIP). */
export interface RowKey {
  readonly id: string;
  readonly ip: string;
}

/** What a lock attempt found under the key when it obtained the lock. */
export interface LockedRow {
  /** Epoch seconds of the last write; 0 for a row that only holds a lock. */
  readonly timestamp: number;
  readonly data: Buffer;
}

/** What open() checks about the session table (and, on PostgreSQL, its lock table). */
export interface TableShape {
  readonly columns: readonly string[];
  readonly primaryKey: readonly string[];
  /** The lock table's state, for a dialect that keeps locks in one; undefined otherwise. */
  readonly lockTable?: 'missing' | 'unlogged' | 'logged';
}

/**
 * The session table's statements in one SQL dialect. Each method is one statement (except where
 * noted), runs on any pooled connection, and never holds a connection between calls.
 */
export interface SessionTableStore {
  readonly dialect: SqlDialect;
  /** Columns the session table must have. */
  readonly requiredColumns: readonly string[];
  /** The separate lock table this dialect uses (`schema.name`), or null when locks live in the session row. */
  readonly lockTable: string | null;
  /** The table's columns and primary key, or null when the table does not exist. */
  inspect(): Promise<TableShape | null>;
  /** Aims the statements at the table's primary key, as found by inspect(). */
  usePrimaryKey(columns: readonly string[]): void;
  /** Takes the session's lock if it is free or expired and reads the session (timestamp 0 when there is none); null when another holder has the lock. */
  tryLock(
    key: RowKey,
    token: string,
    lockExpiresMs: number,
    nowMs: number,
  ): Promise<LockedRow | null>;
  /** Pushes the lock's expiry out; false when the lock is no longer ours. */
  renew(key: RowKey, token: string, lockExpiresMs: number): Promise<boolean>;
  /** Saves data and timestamp and unlocks; false when the row is not locked by `token`. */
  write(key: RowKey, token: string, data: Buffer, timestamp: number): Promise<boolean>;
  /** Sets only the timestamp and unlocks; false when the row is not locked by `token`. */
  touch(key: RowKey, token: string, timestamp: number): Promise<boolean>;
  /** Inserts an unlocked row unless one exists; false when one did. */
  insertIfAbsent(key: RowKey, data: Buffer, timestamp: number): Promise<boolean>;
  /** Clears the lock if it is `token`'s. */
  unlock(key: RowKey, token: string): Promise<void>;
  /** Removes the lock if it is `token`'s, with the session if it was written at or before `liveAfter` (epoch seconds). */
  deleteLocked(key: RowKey, token: string, liveAfter: number): Promise<void>;
  /** Deletes the session whoever holds it, and frees its lock. */
  delete(key: RowKey): Promise<void>;
  /** The data of a row written after `liveAfter` (epoch seconds), else null. */
  peek(key: RowKey, liveAfter: number): Promise<Buffer | null>;
  /** Whether a row written after `liveAfter` exists. */
  exists(key: RowKey, liveAfter: number): Promise<boolean>;
  /** Deletes sessions last written before `idleBefore` (epoch seconds) whose lock is not held at `nowMs`, and lock rows unused since then. */
  deleteIdle(idleBefore: number, nowMs: number): Promise<number>;
  /** Ends the pool if keepsake created it. */
  close(): Promise<void>;
}

/** Error codes both dialects' clients put on a failed query. */
export interface SqlErrorLike {
  readonly code?: unknown;
  readonly errno?: unknown;
  readonly message?: unknown;
}
