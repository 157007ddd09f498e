import type { LockConnection } from './lock-connection.js';
import type { SqlDialect } from './schema.js';

/** One stored session's storage slot: its ID and the IP it is bound to ('0.0.0.0' without matchIP). */
export interface RowKey {
  /** What the `id` column holds: the table's ID prefix, then the session's ID. */
  readonly id: string;
  /** The session's ID without the prefix, which CodeIgniter names its locks after; `id` when absent. */
  readonly sessionId?: string;
  readonly ip: string;
  /** The client's address, which a table in CodeIgniter's layout stores whether or not it is in the slot. */
  readonly address?: string;
}

/** What a lock attempt found under the key when it took the lock. */
export interface LockedRow {
  /** The row's `timestamp` (epoch seconds); 0 when no row is stored. */
  readonly timestamp: number;
  /** The stored bytes; null when no row is stored. */
  readonly data: Buffer | null;
}

/** What opening checks about the session table. */
export interface TableShape {
  readonly columns: readonly string[];
  readonly primaryKey: readonly string[];
  /** The `timestamp` column's type, as the server names it; null when there is none. */
  readonly timestampType: string | null;
}

/**
 * How a table keeps `timestamp`: 'seconds', Unix seconds (keepsake's table: bigint, int); 'time',
 * a date/time type that knows its zone or follows the connection's (CodeIgniter's table:
 * PostgreSQL's timestamptz, MySQL's timestamp or datetime); 'utc-time', PostgreSQL's timestamp
 * without time zone, which keepsake fills with UTC wall-clock time.
 */
export type TimestampColumn = 'seconds' | 'time' | 'utc-time';

/** How a `timestamp` of this type keeps time; null for a type that cannot hold a session's time. */
export function timestampColumnOf(type: string): TimestampColumn | null {
  if (/^timestamp(\(\d+\))? without time zone$/i.test(type)) return 'utc-time';
  if (/^(timestamp|datetime)/i.test(type)) return 'time';
  if (/^(bigint|integer|int|numeric|decimal)\b/i.test(type)) return 'seconds';
  return null;
}

/**
 * The session table's statements in one SQL dialect, aimed at a table already checked. A
 * session's lock is a named lock of the database, held by one of the store's lock connections
 * (`on`): the statements that take it, change the session under it and release it run there, in
 * one round trip per call wherever the dialect allows. A call that releases the lock releases it
 * only after its change has committed, and never when the change failed; a call that fails after
 * taking a lock releases it (or closes the connection, which releases every lock it holds).
 */
export interface SessionTable<Client> {
  readonly dialect: SqlDialect;
  /** Opens one more lock connection. */
  openLockConnection(): Promise<LockConnection<Client>>;
  /** Takes the session's lock on `on` if nobody holds it, and reads the session; null when another connection holds it. */
  tryLock(on: LockConnection<Client>, key: RowKey): Promise<LockedRow | null>;
  /**
   * Saves data and timestamp and releases the lock; false when nothing was written because the
   * key's row belongs to another IP (a table keyed by id alone) or is a tombstone (the session was
   * revoked), the lock released all the same.
   */
  write(on: LockConnection<Client>, key: RowKey, data: Buffer, timestamp: number): Promise<boolean>;
  /**
   * Sets the timestamp of a session written after `liveAfter` and releases the lock; 'missing'
   * (keeping the lock) when there is none; 'revoked' (releasing the lock) when the row is a tombstone.
   */
  touch(
    on: LockConnection<Client>,
    key: RowKey,
    timestamp: number,
    liveAfter: number,
  ): Promise<'touched' | 'missing' | 'revoked'>;
  /** Deletes the session and releases the lock; false when the row was a tombstone (revoked). */
  destroy(on: LockConnection<Client>, key: RowKey): Promise<boolean>;
  /**
   * Releases the lock, deleting the session row first if it was written at or before `liveAfter`
   * or is a tombstone.
   */
  discard(on: LockConnection<Client>, key: RowKey, liveAfter: number): Promise<void>;
  /**
   * Stores `tombstone` with `timestamp` under the key, on the pool and without the lock: a session
   * of the key's IP (or none) becomes a tombstone; a row of another IP is left alone.
   */
  revoke(key: RowKey, tombstone: Buffer, timestamp: number): Promise<void>;
  /** Deletes the row if it still holds exactly `tombstone`, on `on`, which holds the lock. */
  clearTombstone(on: LockConnection<Client>, key: RowKey, tombstone: Buffer): Promise<void>;
  /** Releases the lock. */
  unlock(on: LockConnection<Client>, key: RowKey): Promise<void>;
  /**
   * Whether `on` still holds the session's lock, for a dialect whose failed write, touch or
   * destroy may have released it; absent where a failed call never does.
   */
  holds?(on: LockConnection<Client>, key: RowKey): Promise<boolean>;
  /** The data of a row written after `liveAfter`, else null; on the pool, without a lock. */
  peek(key: RowKey, liveAfter: number): Promise<Buffer | null>;
  /** Deletes sessions whose timestamp is before `idleBefore`; answers how many went. */
  deleteIdle(idleBefore: number): Promise<number>;
  /** Whether the error is a deadlock, lock-wait timeout or serialization failure: worth retrying at once. */
  isTransient(error: unknown): boolean;
  /** Whether the error says the table is gone or lacks a column. */
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

/**
 * What a write stores in ip_address: the key's IP in keepsake's table and under matchIP (where it
 * is part of the row's key); otherwise, in CodeIgniter's table, the client's address.
 */
export function storedAddress(
  columns: { readonly guardsIp: boolean },
  matchIP: boolean,
  key: RowKey,
): string {
  return columns.guardsIp || matchIP ? key.ip : (key.address ?? key.ip);
}
