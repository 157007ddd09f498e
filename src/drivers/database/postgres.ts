import { createHash } from 'node:crypto';
import { lockTableName, quoteTable, type TableName } from './schema.js';
import type { LockedRow, RowKey, SessionTableStore, TableShape } from './store.js';

/** The part of a `pg.Pool` (or `pg.Client`) the driver uses. */
export interface PgQueryable {
  query(config: {
    name?: string;
    text: string;
    values: unknown[];
    query_timeout?: number;
  }): Promise<{
    rows: Record<string, unknown>[];
    rowCount: number | null;
  }>;
}

/**
 * The session table's statements for PostgreSQL. Locks live in the UNLOGGED table `<table>_locks`,
 * so taking one writes no WAL and its commit waits for no WAL flush: a request costs one durable
 * commit (its write), like a store without locks. A lock attempt is one statement that upserts the
 * lock row and reads the session; the write is one statement that releases the lock and upserts
 * the session.
 */
export class PostgresSessionStore implements SessionTableStore {
  readonly dialect = 'postgres';
  readonly requiredColumns = ['id', 'ip_address', 'timestamp', 'data'];
  readonly lockTable: string;
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
    const locks = lockTableName(options.table);
    this.lockTable = locks.schema === null ? locks.name : `${locks.schema}.${locks.name}`;
    this.#sql = statements(options.table, ['id']);
  }

  usePrimaryKey(columns: readonly string[]): void {
    // ON CONFLICT needs the exact columns of the unique index it conflicts on.
    this.#sql = statements(this.#table, columns);
  }

  async inspect(): Promise<TableShape | null> {
    const { rows } = await this.#query(
      `SELECT to_regclass($1) IS NOT NULL AS found,
        ARRAY(SELECT attname::text FROM pg_attribute
              WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped) AS columns,
        ARRAY(SELECT a.attname::text FROM pg_index i
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
              WHERE i.indrelid = to_regclass($1) AND i.indisprimary) AS primary_key,
        (SELECT relpersistence::text FROM pg_class WHERE oid = to_regclass($2)) AS lock_persistence`,
      [quoteTable('postgres', this.#table), quoteTable('postgres', lockTableName(this.#table))],
    );
    const row = rows[0];
    if (row === undefined || row.found !== true) return null;
    const persistence = row.lock_persistence;
    return {
      columns: row.columns as string[],
      primaryKey: row.primary_key as string[],
      lockTable: persistence === null ? 'missing' : persistence === 'u' ? 'unlogged' : 'logged',
    };
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
    // The session was read in the statement's snapshot, but the lock row as it is now. If the lock
    // changed since the snapshot (version moved on more than our own +1, or the row came and went),
    // a holder may have written after the snapshot: read again, now that nobody else can write.
    const seen = row.seen === null ? null : Number(row.seen);
    const current = Number(row.taken) === (seen === null ? 0 : seen + 1);
    const session = current ? row : (await this.#query(this.#sql.reread, [key.id, key.ip])).rows[0];
    if (session === undefined || session.data === null) return { timestamp: 0, data: EMPTY };
    return { timestamp: Number(session.timestamp), data: session.data as Buffer };
  }

  async renew(key: RowKey, token: string, lockExpiresMs: number): Promise<boolean> {
    return (await this.#count(this.#sql.renew, [key.id, key.ip, token, lockExpiresMs])) > 0;
  }

  async write(key: RowKey, token: string, data: Buffer, timestamp: number): Promise<boolean> {
    const values = [key.id, key.ip, token, data, timestamp, Date.now()];
    return (await this.#count(this.#sql.write, values)) > 0;
  }

  async touch(key: RowKey, token: string, timestamp: number): Promise<boolean> {
    const values = [key.id, key.ip, token, timestamp, Date.now()];
    return (await this.#count(this.#sql.touch, values)) > 0;
  }

  async insertIfAbsent(key: RowKey, data: Buffer, timestamp: number): Promise<boolean> {
    const values = [key.id, key.ip, data, timestamp, Date.now()];
    return (await this.#count(this.#sql.insertIfAbsent, values)) > 0;
  }

  async unlock(key: RowKey, token: string): Promise<void> {
    await this.#query(this.#sql.unlock, [key.id, key.ip, token, Date.now()]);
  }

  async deleteLocked(key: RowKey, token: string, liveAfter: number): Promise<void> {
    await this.#query(this.#sql.deleteLocked, [key.id, key.ip, token, liveAfter]);
  }

  async delete(key: RowKey): Promise<void> {
    await this.#query(this.#sql.delete, [key.id, key.ip, Date.now()]);
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
    return this.#count(this.#sql.deleteIdle, [idleBefore, nowMs, idleBefore * 1000]);
  }

  async close(): Promise<void> {
    await this.#end?.();
  }

  async #count(text: string, values: unknown[]): Promise<number> {
    return (await this.#query(text, values)).rowCount ?? 0;
  }

  #query(text: string, values: unknown[]) {
    return this.#client.query({
      name: statementName(text),
      text,
      values,
      query_timeout: this.#ioTimeoutMs,
    });
  }
}

const statementNames = new Map<string, string>();

/**
 * A name for the statement, so that pg prepares it once per connection and PostgreSQL parses and
 * plans it once (the lock statement's planning costs more than its execution). Derived from the
 * text, so two tables sharing a pool get different names.
 */
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `keepsake_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name;
}

const EMPTY = Buffer.alloc(0);

function statements(sessionTable: TableName, conflictColumns: readonly string[]) {
  const table = quoteTable('postgres', sessionTable);
  const locks = quoteTable('postgres', lockTableName(sessionTable));
  const slot = 'id = $1 AND ip_address = $2';
  const conflict = conflictColumns.map((column) => `"${column}"`).join(', ');
  // Releases the lock if it is $3's; every change of a lock row bumps its version (see tryLock).
  const release = (nowParameter: string) =>
    `UPDATE ${locks} SET lock_token = NULL, lock_expires = ${nowParameter}, version = version + 1
      WHERE ${slot} AND lock_token = $3 RETURNING 1`;
  // Makes a lock row exist and bumps its version, for writes made without the lock.
  const bump = (nowParameter: string, free: boolean) =>
    `INSERT INTO ${locks} AS k (id, ip_address, lock_token, lock_expires, version)
      VALUES ($1, $2, NULL, ${nowParameter}, 1)
      ON CONFLICT (id, ip_address) DO UPDATE SET version = k.version + 1${free ? `, lock_token = NULL, lock_expires = ${nowParameter}` : ''}`;
  return {
    // Takes the lock when it is free or expired (a new lock row starts at version 0, a taken one
    // goes to version + 1) and reads the session in the same statement. `seen` is the lock row's
    // version in the statement's snapshot, the one the session was read in.
    tryLock: `WITH seen AS (SELECT version FROM ${locks} WHERE ${slot}),
      taken AS (
        INSERT INTO ${locks} AS k (id, ip_address, lock_token, lock_expires, version)
        VALUES ($1, $2, $3, $4, 0)
        ON CONFLICT (id, ip_address) DO UPDATE
          SET lock_token = EXCLUDED.lock_token, lock_expires = EXCLUDED.lock_expires, version = k.version + 1
          WHERE k.lock_token IS NULL OR k.lock_expires <= $5
        RETURNING k.version
      )
      SELECT t.version AS taken, (SELECT version FROM seen) AS seen, s."timestamp", s.data
      FROM taken t LEFT JOIN ${table} s ON s.id = $1 AND s.ip_address = $2`,
    reread: `SELECT "timestamp", data FROM ${table} WHERE ${slot}`,
    renew: `UPDATE ${locks} SET lock_expires = $4 WHERE ${slot} AND lock_token = $3`,
    // Writes only when the lock was still ours; the row count says whether it was.
    write: `WITH released AS (${release('$6::bigint')})
      INSERT INTO ${table} AS s (id, ip_address, "timestamp", data)
      SELECT $1, $2, $5::bigint, $4::bytea FROM released
      ON CONFLICT (${conflict}) DO UPDATE SET data = EXCLUDED.data, "timestamp" = EXCLUDED."timestamp"
      WHERE s.ip_address = EXCLUDED.ip_address`,
    touch: `WITH released AS (${release('$5::bigint')})
      UPDATE ${table} SET "timestamp" = $4 WHERE ${slot} AND EXISTS (SELECT 1 FROM released)`,
    insertIfAbsent: `WITH bumped AS (${bump('$5::bigint', false)})
      INSERT INTO ${table} (id, ip_address, "timestamp", data) VALUES ($1, $2, $4, $3) ON CONFLICT DO NOTHING`,
    unlock: release('$4::bigint'),
    // A lock taken on an empty or expired session: remove the lock row, and the expired session.
    deleteLocked: `WITH released AS (DELETE FROM ${locks} WHERE ${slot} AND lock_token = $3 RETURNING 1)
      DELETE FROM ${table} WHERE ${slot} AND "timestamp" <= $4 AND EXISTS (SELECT 1 FROM released)`,
    delete: `WITH bumped AS (${bump('$3::bigint', true)}) DELETE FROM ${table} WHERE ${slot}`,
    peek: `SELECT data FROM ${table} WHERE ${slot} AND "timestamp" > $3`,
    exists: `SELECT 1 FROM ${table} WHERE ${slot} AND "timestamp" > $3`,
    // Lock rows unused for the whole lifetime go too (a row in use has a recent lock_expires; a
    // held one, a future one).
    deleteIdle: `WITH purged AS (DELETE FROM ${locks} WHERE lock_expires < LEAST($2::bigint, $3::bigint))
      DELETE FROM ${table} AS s WHERE s."timestamp" < $1 AND NOT EXISTS (
        SELECT 1 FROM ${locks} k
        WHERE k.id = s.id AND k.ip_address = s.ip_address AND k.lock_token IS NOT NULL AND k.lock_expires > $2)`,
  };
}
