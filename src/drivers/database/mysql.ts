import { quoteTable, type TableName } from './schema.js';
import type { LockedRow, RowKey, SessionTableStore, SqlErrorLike, TableShape } from './store.js';

/** The part of a mysql2 promise pool the driver uses. */
export interface MysqlQueryable {
  query(options: { sql: string; values: unknown[]; timeout?: number }): Promise<[unknown, unknown]>;
}

interface ResultHeader {
  affectedRows: number;
}

type Row = Record<string, unknown>;

/** InnoDB may pick a lock attempt as a deadlock victim or time it out; that only means "not now". */
const RETRYABLE_LOCK_ERRORS = new Set([1205, 1213]);

/**
 * The session table's statements for MySQL and MariaDB. The lock lives in the session row
 * (`lock_token`, `lock_expires`). A lock attempt is one
 * `INSERT … ON DUPLICATE KEY UPDATE … RETURNING` on MariaDB ≥ 10.5, and that statement followed by
 * a SELECT on MySQL, which has no RETURNING.
 */
export class MysqlSessionStore implements SessionTableStore {
  readonly dialect = 'mysql';
  readonly requiredColumns = [
    'id',
    'ip_address',
    'timestamp',
    'data',
    'lock_token',
    'lock_expires',
  ];
  readonly lockTable = null;
  readonly #client: MysqlQueryable;
  readonly #table: TableName;
  readonly #ioTimeoutMs: number;
  readonly #end: (() => Promise<void>) | null;
  readonly #sql: ReturnType<typeof statements>;
  #returning = false;

  constructor(options: {
    client: MysqlQueryable;
    table: TableName;
    ioTimeoutMs: number;
    /** Set when keepsake created the pool and must end it. */
    end: (() => Promise<void>) | null;
  }) {
    this.#client = options.client;
    this.#table = options.table;
    this.#ioTimeoutMs = options.ioTimeoutMs;
    this.#end = options.end;
    this.#sql = statements(quoteTable('mysql', options.table));
  }

  /** Whether lock attempts take one statement (MariaDB's RETURNING) rather than two. */
  get singleStatementLock(): boolean {
    return this.#returning;
  }

  async inspect(): Promise<TableShape | null> {
    const schema = this.#table.schema;
    const name = this.#table.name;
    const rows = (await this.#query(
      `SELECT VERSION() AS version,
        (SELECT GROUP_CONCAT(COLUMN_NAME) FROM information_schema.COLUMNS
          WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?) AS columns,
        (SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM information_schema.KEY_COLUMN_USAGE
          WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY') AS primary_key`,
      [schema, name, schema, name],
    )) as Row[];
    const row = rows[0];
    const version = String(row?.version ?? '');
    const mariadb = /mariadb/i.exec(version) !== null;
    const [major = 0, minor = 0] = version.split('.').map((part) => Number.parseInt(part, 10));
    this.#returning = mariadb && (major > 10 || (major === 10 && minor >= 5));
    if (row === undefined || row.columns === null) return null;
    const list = (value: unknown) => (value === null ? [] : String(value).split(','));
    return { columns: list(row.columns), primaryKey: list(row.primary_key) };
  }

  usePrimaryKey(): void {
    // ON DUPLICATE KEY UPDATE fires on any unique key; nothing to aim.
  }

  async tryLock(
    key: RowKey,
    token: string,
    lockExpiresMs: number,
    nowMs: number,
  ): Promise<LockedRow | null> {
    const values = [
      key.id,
      key.ip,
      token,
      lockExpiresMs,
      key.ip,
      nowMs,
      token,
      token,
      lockExpiresMs,
    ];
    try {
      if (this.#returning) {
        const rows = (await this.#query(this.#sql.tryLockReturning, values)) as Row[];
        const row = rows[0];
        if (row === undefined || row.lock_token !== token || row.ip_address !== key.ip) return null;
        return { timestamp: Number(row.timestamp), data: row.data as Buffer };
      }
      await this.#query(this.#sql.tryLock, values);
    } catch (error) {
      if (RETRYABLE_LOCK_ERRORS.has(Number((error as SqlErrorLike).errno))) return null;
      throw error;
    }
    const rows = (await this.#query(this.#sql.lockedRow, [key.id, key.ip, token])) as Row[];
    const row = rows[0];
    return row === undefined
      ? null
      : { timestamp: Number(row.timestamp), data: row.data as Buffer };
  }

  async renew(key: RowKey, token: string, lockExpiresMs: number): Promise<boolean> {
    return (await this.#affected(this.#sql.renew, [lockExpiresMs, key.id, key.ip, token])) > 0;
  }

  async write(key: RowKey, token: string, data: Buffer, timestamp: number): Promise<boolean> {
    return (await this.#affected(this.#sql.write, [data, timestamp, key.id, key.ip, token])) > 0;
  }

  async touch(key: RowKey, token: string, timestamp: number): Promise<boolean> {
    return (await this.#affected(this.#sql.touch, [timestamp, key.id, key.ip, token])) > 0;
  }

  async insertIfAbsent(key: RowKey, data: Buffer, timestamp: number): Promise<boolean> {
    return (await this.#affected(this.#sql.insertIfAbsent, [key.id, key.ip, timestamp, data])) > 0;
  }

  async unlock(key: RowKey, token: string): Promise<void> {
    await this.#query(this.#sql.unlock, [key.id, key.ip, token]);
  }

  /** The row was read as empty or expired while locked, so all of it goes. */
  async deleteLocked(key: RowKey, token: string): Promise<void> {
    await this.#query(this.#sql.deleteLocked, [key.id, key.ip, token]);
  }

  async delete(key: RowKey): Promise<void> {
    await this.#query(this.#sql.delete, [key.id, key.ip]);
  }

  async peek(key: RowKey, liveAfter: number): Promise<Buffer | null> {
    const rows = (await this.#query(this.#sql.peek, [key.id, key.ip, liveAfter])) as Row[];
    return (rows[0]?.data as Buffer | undefined) ?? null;
  }

  async exists(key: RowKey, liveAfter: number): Promise<boolean> {
    const rows = (await this.#query(this.#sql.exists, [key.id, key.ip, liveAfter])) as Row[];
    return rows.length > 0;
  }

  async deleteIdle(idleBefore: number, nowMs: number): Promise<number> {
    return this.#affected(this.#sql.deleteIdle, [idleBefore, nowMs]);
  }

  async close(): Promise<void> {
    await this.#end?.();
  }

  async #affected(sql: string, values: unknown[]): Promise<number> {
    return ((await this.#query(sql, values)) as ResultHeader).affectedRows;
  }

  async #query(sql: string, values: unknown[]): Promise<unknown> {
    const [result] = await this.#client.query({ sql, values, timeout: this.#ioTimeoutMs });
    return result;
  }
}

function statements(table: string) {
  const slot = 'id = ? AND ip_address = ?';
  // Assignments run left to right: lock_expires follows lock_token only when the token became ours.
  const tryLock = `INSERT INTO ${table} (id, ip_address, \`timestamp\`, data, lock_token, lock_expires)
      VALUES (?, ?, 0, '', ?, ?)
      ON DUPLICATE KEY UPDATE
        lock_token = IF(ip_address = ? AND (lock_token IS NULL OR lock_expires <= ?), ?, lock_token),
        lock_expires = IF(lock_token = ?, ?, lock_expires)`;
  return {
    tryLock,
    tryLockReturning: `${tryLock} RETURNING ip_address, \`timestamp\`, data, lock_token`,
    lockedRow: `SELECT \`timestamp\`, data FROM ${table} WHERE ${slot} AND lock_token = ?`,
    renew: `UPDATE ${table} SET lock_expires = ? WHERE ${slot} AND lock_token = ?`,
    write: `UPDATE ${table} SET data = ?, \`timestamp\` = ?, lock_token = NULL, lock_expires = 0
      WHERE ${slot} AND lock_token = ?`,
    touch: `UPDATE ${table} SET \`timestamp\` = ?, lock_token = NULL, lock_expires = 0
      WHERE ${slot} AND lock_token = ?`,
    insertIfAbsent: `INSERT IGNORE INTO ${table} (id, ip_address, \`timestamp\`, data, lock_token, lock_expires)
      VALUES (?, ?, ?, ?, NULL, 0)`,
    unlock: `UPDATE ${table} SET lock_token = NULL, lock_expires = 0 WHERE ${slot} AND lock_token = ?`,
    deleteLocked: `DELETE FROM ${table} WHERE ${slot} AND lock_token = ?`,
    delete: `DELETE FROM ${table} WHERE ${slot}`,
    peek: `SELECT data FROM ${table} WHERE ${slot} AND \`timestamp\` > ?`,
    exists: `SELECT 1 FROM ${table} WHERE ${slot} AND \`timestamp\` > ?`,
    deleteIdle: `DELETE FROM ${table} WHERE \`timestamp\` < ? AND (lock_token IS NULL OR lock_expires <= ?)`,
  };
}
