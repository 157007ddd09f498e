import type { TouchOutcome } from '../contract.js';
import type { MysqlPool } from './connection.js';
import { quoteTable, type TableName } from './schema.js';
import {
  columnBytes,
  type LockedRow,
  type RowKey,
  type SessionTable,
  sqlErrorFields,
  type TableShape,
} from './session-table.js';

interface ResultHeader {
  affectedRows: number;
}

type Row = Record<string, unknown>;

/** ER_LOCK_DEADLOCK and ER_LOCK_WAIT_TIMEOUT: InnoDB rolled the statement back; it may simply run again. */
const TRANSIENT_ERRNOS = new Set([1213, 1205]);
/** ER_NO_SUCH_TABLE and ER_BAD_FIELD_ERROR: the table was dropped or altered after keepsake opened it. */
const MISSING_TABLE_ERRNOS = new Set([1146, 1054]);

/** What opening learns about a MySQL/MariaDB session table. */
export interface MysqlTableShape extends TableShape {
  /** MariaDB ≥ 10.5, whose INSERT … RETURNING makes a lock attempt one statement. */
  readonly returning: boolean;
  /** The data column's type and the bytes it holds (CodeIgniter's blob: 65 535). */
  readonly dataType: string | null;
  readonly dataCapacity: number | null;
}

async function run(pool: MysqlPool, sql: string, values: unknown[], ioTimeoutMs: number) {
  const [result] = await pool.query({ sql, values, timeout: ioTimeoutMs });
  return result;
}

/** The session table's columns, primary key and data column, and the server's dialect; null columns when the table does not exist. */
export async function inspectMysqlTable(
  pool: MysqlPool,
  table: TableName,
  ioTimeoutMs: number,
): Promise<MysqlTableShape | null> {
  const { schema, name } = table;
  const rows = (await run(
    pool,
    `SELECT VERSION() AS version,
      (SELECT GROUP_CONCAT(COLUMN_NAME) FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?) AS columns,
      (SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM information_schema.KEY_COLUMN_USAGE
        WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY') AS primary_key,
      (SELECT CONCAT(DATA_TYPE, ':', COALESCE(CHARACTER_OCTET_LENGTH, '')) FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND COLUMN_NAME = 'data') AS data_column`,
    [schema, name, schema, name, schema, name],
    ioTimeoutMs,
  )) as Row[];
  const row = rows[0];
  if (row === undefined || row.columns === null) return null;
  const version = String(row.version ?? '');
  const mariadb = /mariadb/i.exec(version) !== null;
  const [major = 0, minor = 0] = version.split('.').map((part) => Number.parseInt(part, 10));
  const list = (value: unknown) => (value === null ? [] : String(value).split(','));
  const [dataType = null, capacity = ''] =
    row.data_column === null ? [] : String(row.data_column).split(':');
  return {
    columns: list(row.columns),
    primaryKey: list(row.primary_key),
    returning: mariadb && (major > 10 || (major === 10 && minor >= 5)),
    dataType,
    dataCapacity: capacity === '' ? null : Number(capacity),
  };
}

/**
 * The session table's statements for MySQL and MariaDB. The lock lives in the session row
 * (`lock_token`, `lock_expires`), and every statement that ends a request names the token in its
 * WHERE, so it changes nothing once the lock is another's. A lock attempt is one
 * `INSERT … ON DUPLICATE KEY UPDATE … RETURNING` on MariaDB ≥ 10.5, and that statement followed
 * by a SELECT on MySQL, which has no RETURNING.
 */
export class MysqlSessionTable implements SessionTable {
  readonly dialect = 'mysql';
  readonly #pool: MysqlPool;
  readonly #ioTimeoutMs: number;
  readonly #table: string;
  readonly #shape: MysqlTableShape;
  readonly #sql: ReturnType<typeof statements>;

  constructor(pool: MysqlPool, table: TableName, shape: MysqlTableShape, ioTimeoutMs: number) {
    this.#pool = pool;
    this.#ioTimeoutMs = ioTimeoutMs;
    this.#table = quoteTable('mysql', table);
    this.#shape = shape;
    this.#sql = statements(this.#table);
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
      token,
      lockExpiresMs,
    ];
    if (this.#shape.returning) {
      const rows = (await this.#query(this.#sql.tryLockReturning, values)) as Row[];
      const row = rows[0];
      if (row === undefined || row.lock_token !== token || row.ip_address !== key.ip) return null;
      return { timestamp: Number(row.timestamp), data: columnBytes(row.data) };
    }
    await this.#query(this.#sql.tryLock, values);
    let rows: Row[];
    try {
      rows = (await this.#query(this.#sql.lockedRow, [key.id, key.ip, token])) as Row[];
    } catch (error) {
      // The attempt fails as a whole: the lock it may have taken must not wait for lockTtl.
      await this.unlock(key, token).catch(() => {});
      throw error;
    }
    const row = rows[0];
    return row === undefined
      ? null
      : { timestamp: Number(row.timestamp), data: columnBytes(row.data) };
  }

  async renew(key: RowKey, token: string, lockExpiresMs: number): Promise<boolean> {
    return (await this.#affected(this.#sql.renew, [lockExpiresMs, key.id, key.ip, token])) > 0;
  }

  async write(key: RowKey, token: string, data: Buffer, timestamp: number): Promise<boolean> {
    const { dataCapacity, dataType } = this.#shape;
    if (dataCapacity !== null && data.length > dataCapacity) {
      // Refused here, not by the server: outside strict SQL mode it would silently cut the data.
      throw new Error(
        `the session is ${data.length} bytes, more than the ${dataType} column "data" of ${this.#table} holds (${dataCapacity} bytes). ` +
          `CodeIgniter's blob stops at 64 KiB; keepsake's table has mediumblob: ALTER TABLE ${this.#table} MODIFY data mediumblob NOT NULL`,
      );
    }
    return (await this.#affected(this.#sql.write, [data, timestamp, key.id, key.ip, token])) > 0;
  }

  async touch(
    key: RowKey,
    token: string,
    timestamp: number,
    liveAfter: number,
  ): Promise<TouchOutcome> {
    const values = [timestamp, key.id, key.ip, token, liveAfter];
    if ((await this.#affected(this.#sql.touch, values)) > 0) return 'touched';
    // Rare (the session expired or went while locked): tell a missing session from a lost lock.
    const held = (await this.#query(this.#sql.held, [key.id, key.ip, token])) as Row[];
    return held.length > 0 ? 'missing' : 'fenced';
  }

  async destroy(key: RowKey, token: string): Promise<boolean> {
    return (await this.#affected(this.#sql.destroy, [key.id, key.ip, token])) > 0;
  }

  async unlock(key: RowKey, token: string): Promise<void> {
    await this.#query(this.#sql.unlock, [key.id, key.ip, token]);
  }

  async discard(key: RowKey, token: string, liveAfter: number): Promise<void> {
    const deleted = await this.#affected(this.#sql.discard, [key.id, key.ip, token, liveAfter]);
    if (deleted === 0) await this.unlock(key, token);
  }

  async peek(key: RowKey, liveAfter: number): Promise<Buffer | null> {
    const rows = (await this.#query(this.#sql.peek, [key.id, key.ip, liveAfter])) as Row[];
    return rows[0] === undefined ? null : columnBytes(rows[0].data);
  }

  async deleteIdle(idleBefore: number, nowMs: number): Promise<number> {
    return this.#affected(this.#sql.deleteIdle, [idleBefore, nowMs]);
  }

  isTransient(error: unknown): boolean {
    return TRANSIENT_ERRNOS.has(Number(sqlErrorFields(error).errno));
  }

  isMissingTable(error: unknown): boolean {
    return MISSING_TABLE_ERRNOS.has(Number(sqlErrorFields(error).errno));
  }

  async #affected(sql: string, values: unknown[]): Promise<number> {
    return ((await this.#query(sql, values)) as ResultHeader).affectedRows;
  }

  #query(sql: string, values: unknown[]): Promise<unknown> {
    return run(this.#pool, sql, values, this.#ioTimeoutMs);
  }
}

function statements(table: string) {
  const slot = 'id = ? AND ip_address = ?';
  // Assignments run left to right: lock_expires follows lock_token only when the token became
  // ours. A lock already ours (a retried attempt) is taken again.
  const tryLock = `INSERT INTO ${table} (id, ip_address, \`timestamp\`, data, lock_token, lock_expires)
      VALUES (?, ?, 0, '', ?, ?)
      ON DUPLICATE KEY UPDATE
        lock_token = IF(ip_address = ? AND (lock_token IS NULL OR lock_expires <= ? OR lock_token = ?), ?, lock_token),
        lock_expires = IF(lock_token = ?, ?, lock_expires)`;
  const release = 'lock_token = NULL, lock_expires = 0';
  return {
    tryLock,
    tryLockReturning: `${tryLock} RETURNING ip_address, \`timestamp\`, data, lock_token`,
    lockedRow: `SELECT \`timestamp\`, data FROM ${table} WHERE ${slot} AND lock_token = ?`,
    renew: `UPDATE ${table} SET lock_expires = ? WHERE ${slot} AND lock_token = ?`,
    write: `UPDATE ${table} SET data = ?, \`timestamp\` = ?, ${release} WHERE ${slot} AND lock_token = ?`,
    touch: `UPDATE ${table} SET \`timestamp\` = ?, ${release}
      WHERE ${slot} AND lock_token = ? AND \`timestamp\` > ?`,
    held: `SELECT 1 FROM ${table} WHERE ${slot} AND lock_token = ?`,
    destroy: `DELETE FROM ${table} WHERE ${slot} AND lock_token = ?`,
    unlock: `UPDATE ${table} SET ${release} WHERE ${slot} AND lock_token = ?`,
    // Only a placeholder or an expired session goes with the lock; a live one is only unlocked.
    discard: `DELETE FROM ${table} WHERE ${slot} AND lock_token = ? AND \`timestamp\` <= ?`,
    peek: `SELECT data FROM ${table} WHERE ${slot} AND \`timestamp\` > ?`,
    deleteIdle: `DELETE FROM ${table} WHERE \`timestamp\` < ? AND (lock_token IS NULL OR lock_expires <= ?)`,
  };
}
