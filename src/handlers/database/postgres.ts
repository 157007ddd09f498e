import { quoteTable, type TableName } from './schema.js';
import type { LockedRow, RowKey, SessionTableStore, TableShape } from './store.js';

/** The part of a `pg.Pool` (or `pg.Client`) the driver uses. */
export interface PgQueryable {
  query(config: { text: string; values: unknown[]; query_timeout?: number }): Promise<{
    rows: Record<string, unknown>[];
    rowCount: number | null;
  }>;
}

/** The session table's statements for PostgreSQL; a lock attempt is one INSERT … ON CONFLICT. */
export class PostgresSessionStore implements SessionTableStore {
  readonly dialect = 'postgres';
  readonly #client: PgQueryable;
  readonly #table: TableName;
  readonly #ioTimeoutMs: number;
  readonly #end: (() => Promise<void>) | null;

  #sql: ReturnType<typeof statements>;

  constructor(options: {
    client: PgQueryable;
    table: TableName;
    ioTimeoutMs: number;
    /** Set when keepsake created the pool and must end it. */
    end: (() => Promise<void>) | null;
  }) {
    this.#client = options.client;
    this.#table = options.table;
    this.#ioTimeoutMs = options.ioTimeoutMs;
    this.#end = options.end;
    this.#sql = statements(quoteTable('postgres', options.table), ['id']);
  }

  usePrimaryKey(columns: readonly string[]): void {
    // ON CONFLICT needs the exact columns of the unique index it conflicts on.
    this.#sql = statements(quoteTable('postgres', this.#table), columns);
  }

  async inspect(): Promise<TableShape | null> {
    const { rows } = await this.#query(
      `SELECT to_regclass($1) IS NOT NULL AS found,
        ARRAY(SELECT attname::text FROM pg_attribute
              WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped) AS columns,
        ARRAY(SELECT a.attname::text FROM pg_index i
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
              WHERE i.indrelid = to_regclass($1) AND i.indisprimary) AS primary_key`,
      [quoteTable('postgres', this.#table)],
    );
    const row = rows[0];
    if (row === undefined || row.found !== true) return null;
    return { columns: row.columns as string[], primaryKey: row.primary_key as string[] };
  }

  async tryLock(
    key: RowKey,
    token: string,
    lockExpiresMs: number,
    nowMs: number,
  ): Promise<LockedRow | null> {
    const { rows } = await this.#query(this.#sql.tryLock, [
      key.id,
      key.ip,
      token,
      lockExpiresMs,
      nowMs,
    ]);
    const row = rows[0];
    if (row === undefined) return null;
    return { timestamp: Number(row.timestamp), data: row.data as Buffer };
  }

  async renew(key: RowKey, token: string, lockExpiresMs: number): Promise<boolean> {
    return (await this.#count(this.#sql.renew, [key.id, key.ip, token, lockExpiresMs])) > 0;
  }

  async write(key: RowKey, token: string, data: Buffer, timestamp: number): Promise<boolean> {
    return (await this.#count(this.#sql.write, [key.id, key.ip, token, data, timestamp])) > 0;
  }

  async touch(key: RowKey, token: string, timestamp: number): Promise<boolean> {
    return (await this.#count(this.#sql.touch, [key.id, key.ip, token, timestamp])) > 0;
  }

  async insertIfAbsent(key: RowKey, data: Buffer, timestamp: number): Promise<boolean> {
    return (await this.#count(this.#sql.insertIfAbsent, [key.id, key.ip, data, timestamp])) > 0;
  }

  async unlock(key: RowKey, token: string): Promise<void> {
    await this.#query(this.#sql.unlock, [key.id, key.ip, token]);
  }

  async deleteLocked(key: RowKey, token: string): Promise<void> {
    await this.#query(this.#sql.deleteLocked, [key.id, key.ip, token]);
  }

  async delete(key: RowKey): Promise<void> {
    await this.#query(this.#sql.delete, [key.id, key.ip]);
  }

  async peek(key: RowKey, liveAfter: number): Promise<Buffer | null> {
    const { rows } = await this.#query(this.#sql.peek, [key.id, key.ip, liveAfter]);
    return (rows[0]?.data as Buffer | undefined) ?? null;
  }

  async exists(key: RowKey, liveAfter: number): Promise<boolean> {
    const { rows } = await this.#query(this.#sql.exists, [key.id, key.ip, liveAfter]);
    return rows.length > 0;
  }

  async deleteIdle(idleBefore: number, nowMs: number): Promise<number> {
    return this.#count(this.#sql.deleteIdle, [idleBefore, nowMs]);
  }

  async close(): Promise<void> {
    await this.#end?.();
  }

  async #count(text: string, values: unknown[]): Promise<number> {
    return (await this.#query(text, values)).rowCount ?? 0;
  }

  #query(text: string, values: unknown[]) {
    return this.#client.query({ text, values, query_timeout: this.#ioTimeoutMs });
  }
}

function statements(table: string, conflictColumns: readonly string[]) {
  const slot = 'id = $1 AND ip_address = $2';
  const conflict = conflictColumns.map((column) => `"${column}"`).join(', ');
  return {
    // Inserts a locked placeholder (timestamp 0) for a new key, or takes the lock of the existing
    // row only when it is free or expired; RETURNING yields a row exactly when the lock is ours.
    tryLock: `INSERT INTO ${table} AS s (id, ip_address, "timestamp", data, lock_token, lock_expires)
      VALUES ($1, $2, 0, ''::bytea, $3, $4)
      ON CONFLICT (${conflict}) DO UPDATE SET lock_token = EXCLUDED.lock_token, lock_expires = EXCLUDED.lock_expires
      WHERE s.ip_address = EXCLUDED.ip_address AND (s.lock_token IS NULL OR s.lock_expires <= $5)
      RETURNING s."timestamp", s.data`,
    renew: `UPDATE ${table} SET lock_expires = $4 WHERE ${slot} AND lock_token = $3`,
    write: `UPDATE ${table} SET data = $4, "timestamp" = $5, lock_token = NULL, lock_expires = 0
      WHERE ${slot} AND lock_token = $3`,
    touch: `UPDATE ${table} SET "timestamp" = $4, lock_token = NULL, lock_expires = 0
      WHERE ${slot} AND lock_token = $3`,
    insertIfAbsent: `INSERT INTO ${table} (id, ip_address, "timestamp", data, lock_token, lock_expires)
      VALUES ($1, $2, $4, $3, NULL, 0) ON CONFLICT DO NOTHING`,
    unlock: `UPDATE ${table} SET lock_token = NULL, lock_expires = 0 WHERE ${slot} AND lock_token = $3`,
    deleteLocked: `DELETE FROM ${table} WHERE ${slot} AND lock_token = $3`,
    delete: `DELETE FROM ${table} WHERE ${slot}`,
    peek: `SELECT data FROM ${table} WHERE ${slot} AND "timestamp" > $3`,
    exists: `SELECT 1 FROM ${table} WHERE ${slot} AND "timestamp" > $3`,
    deleteIdle: `DELETE FROM ${table} WHERE "timestamp" < $1 AND (lock_token IS NULL OR lock_expires <= $2)`,
  };
}
