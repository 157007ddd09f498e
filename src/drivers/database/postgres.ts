import { createHash } from 'node:crypto';
import type { TouchOutcome } from '../contract.js';
import type { PgPool, PgQueryResult } from './connection.js';
import { lockTableName, quoteTable, type TableName } from './schema.js';
import {
  columnBytes,
  type LockedRow,
  type RowKey,
  type SessionTable,
  sqlErrorFields,
  type TableShape,
} from './session-table.js';

/** SQLSTATEs worth retrying at once: serialization_failure and deadlock_detected. */
const TRANSIENT_STATES = new Set(['40001', '40P01']);
/** undefined_table and undefined_column: the table was dropped or altered after keepsake opened it. */
const MISSING_TABLE_STATES = new Set(['42P01', '42703']);

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

function run(
  pool: PgPool,
  text: string,
  values: unknown[],
  ioTimeoutMs: number,
): Promise<PgQueryResult> {
  return pool.query({ name: statementName(text), text, values, query_timeout: ioTimeoutMs });
}

/** The session table's columns and primary key and the lock table's persistence; null when the session table does not exist. */
export async function inspectPostgresTable(
  pool: PgPool,
  table: TableName,
  ioTimeoutMs: number,
): Promise<TableShape | null> {
  const { rows } = await run(
    pool,
    `SELECT to_regclass($1) IS NOT NULL AS found,
      ARRAY(SELECT attname::text FROM pg_attribute
            WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped) AS columns,
      ARRAY(SELECT a.attname::text FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = to_regclass($1) AND i.indisprimary) AS primary_key,
      (SELECT relpersistence::text FROM pg_class WHERE oid = to_regclass($2)) AS lock_persistence`,
    [quoteTable('postgres', table), quoteTable('postgres', lockTableName(table))],
    ioTimeoutMs,
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

/**
 * The session table's statements for PostgreSQL. Locks live in the UNLOGGED table `<table>_locks`,
 * so taking one writes no WAL and its commit waits for no WAL flush: a request costs one durable
 * commit (its write), like a store without locks. A lock attempt is one statement that upserts the
 * lock row and reads the session; a write, touch, destroy or release is one statement that acts
 * on the session only if it could release the lock row still holding the request's token.
 */
export class PostgresSessionTable implements SessionTable {
  readonly dialect = 'postgres';
  readonly #pool: PgPool;
  readonly #ioTimeoutMs: number;
  readonly #sql: ReturnType<typeof statements>;

  /** `primaryKey`: the session table's key columns as found, which ON CONFLICT must name exactly. */
  constructor(pool: PgPool, table: TableName, primaryKey: readonly string[], ioTimeoutMs: number) {
    this.#pool = pool;
    this.#ioTimeoutMs = ioTimeoutMs;
    this.#sql = statements(table, primaryKey);
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
    const session = current ? row : await this.#reread(key, token, nowMs);
    if (session === undefined || session.data === null) return { timestamp: 0, data: null };
    return { timestamp: Number(session.timestamp), data: columnBytes(session.data) };
  }

  async renew(key: RowKey, token: string, lockExpiresMs: number): Promise<boolean> {
    return (await this.#count(this.#sql.renew, [key.id, key.ip, token, lockExpiresMs])) > 0;
  }

  async write(key: RowKey, token: string, data: Buffer, timestamp: number): Promise<boolean> {
    const values = [key.id, key.ip, token, data, timestamp, Date.now()];
    return (await this.#count(this.#sql.write, values)) > 0;
  }

  async touch(
    key: RowKey,
    token: string,
    timestamp: number,
    liveAfter: number,
  ): Promise<TouchOutcome> {
    const values = [key.id, key.ip, token, timestamp, liveAfter, Date.now()];
    const row = (await this.#query(this.#sql.touch, values)).rows[0];
    if (row?.released === true) return 'touched';
    return row?.held === true ? 'missing' : 'fenced';
  }

  async destroy(key: RowKey, token: string): Promise<boolean> {
    const { rows } = await this.#query(this.#sql.destroy, [key.id, key.ip, token]);
    return rows[0]?.released === true;
  }

  async unlock(key: RowKey, token: string): Promise<void> {
    await this.#query(this.#sql.unlock, [key.id, key.ip, token, Date.now()]);
  }

  async discard(key: RowKey, token: string, liveAfter: number): Promise<void> {
    await this.#query(this.#sql.discard, [key.id, key.ip, token, liveAfter]);
  }

  async peek(key: RowKey, liveAfter: number): Promise<Buffer | null> {
    const { rows } = await this.#query(this.#sql.peek, [key.id, key.ip, liveAfter]);
    return rows[0] === undefined ? null : columnBytes(rows[0].data);
  }

  async deleteIdle(idleBefore: number, nowMs: number): Promise<number> {
    return this.#count(this.#sql.deleteIdle, [idleBefore, nowMs, idleBefore * 1000]);
  }

  isTransient(error: unknown): boolean {
    return TRANSIENT_STATES.has(String(sqlErrorFields(error).code));
  }

  isMissingTable(error: unknown): boolean {
    return MISSING_TABLE_STATES.has(String(sqlErrorFields(error).code));
  }

  /** The second statement of a lock attempt that raced a writer; gives the lock back if it fails. */
  async #reread(key: RowKey, token: string, nowMs: number) {
    try {
      return (await this.#query(this.#sql.reread, [key.id, key.ip])).rows[0];
    } catch (error) {
      // The attempt fails as a whole: the lock it took must not wait for lockTtl to free itself.
      await this.#query(this.#sql.unlock, [key.id, key.ip, token, nowMs]).catch(() => {});
      throw error;
    }
  }

  async #count(text: string, values: unknown[]): Promise<number> {
    return (await this.#query(text, values)).rowCount ?? 0;
  }

  #query(text: string, values: unknown[]): Promise<PgQueryResult> {
    return run(this.#pool, text, values, this.#ioTimeoutMs);
  }
}

function statements(sessionTable: TableName, conflictColumns: readonly string[]) {
  const table = quoteTable('postgres', sessionTable);
  const locks = quoteTable('postgres', lockTableName(sessionTable));
  const slot = 'id = $1 AND ip_address = $2';
  const conflict = conflictColumns.map((column) => `"${column}"`).join(', ');
  // Releases the lock if it is $3's; every change of a lock row bumps its version (see tryLock).
  const release = (nowParameter: string, condition = '') =>
    `UPDATE ${locks} SET lock_token = NULL, lock_expires = ${nowParameter}, version = version + 1
      WHERE ${slot} AND lock_token = $3${condition} RETURNING 1`;
  // Removes the lock row if the lock is $3's (a vanished row reads as changed, see tryLock).
  const remove = `DELETE FROM ${locks} WHERE ${slot} AND lock_token = $3 RETURNING 1`;
  return {
    // Takes the lock when it is free, expired or already ours (a retried attempt), a new lock row
    // starting at version 0 and a taken one going to version + 1, and reads the session in the
    // same statement. `seen` is the lock row's version in the statement's snapshot, the one the
    // session was read in.
    tryLock: `WITH seen AS (SELECT version FROM ${locks} WHERE ${slot}),
      taken AS (
        INSERT INTO ${locks} AS k (id, ip_address, lock_token, lock_expires, version)
        VALUES ($1, $2, $3, $4, 0)
        ON CONFLICT (id, ip_address) DO UPDATE
          SET lock_token = EXCLUDED.lock_token, lock_expires = EXCLUDED.lock_expires, version = k.version + 1
          WHERE k.lock_token IS NULL OR k.lock_expires <= $5 OR k.lock_token = EXCLUDED.lock_token
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
    // Releases only when a live session is there to touch: a missing one keeps the lock for the
    // write that follows. `held` (in the snapshot) tells a missing session from a lost lock.
    touch: `WITH released AS (${release(
      '$6::bigint',
      ` AND EXISTS (SELECT 1 FROM ${table} WHERE ${slot} AND "timestamp" > $5::bigint)`,
    )}),
      touched AS (UPDATE ${table} SET "timestamp" = $4::bigint WHERE ${slot} AND EXISTS (SELECT 1 FROM released) RETURNING 1)
      SELECT EXISTS (SELECT 1 FROM released) AS released,
        EXISTS (SELECT 1 FROM ${locks} WHERE ${slot} AND lock_token = $3) AS held`,
    destroy: `WITH released AS (${remove}),
      deleted AS (DELETE FROM ${table} WHERE ${slot} AND EXISTS (SELECT 1 FROM released) RETURNING 1)
      SELECT EXISTS (SELECT 1 FROM released) AS released`,
    unlock: release('$4::bigint'),
    // A lock taken where no live session was: remove the lock row, and a session expired by now.
    discard: `WITH released AS (${remove})
      DELETE FROM ${table} WHERE ${slot} AND "timestamp" <= $4::bigint AND EXISTS (SELECT 1 FROM released)`,
    peek: `SELECT data FROM ${table} WHERE ${slot} AND "timestamp" > $3`,
    // Lock rows unused for the whole lifetime go too (a row in use has a recent lock_expires; a
    // held one, a future one).
    deleteIdle: `WITH purged AS (DELETE FROM ${locks} WHERE lock_expires < LEAST($2::bigint, $3::bigint))
      DELETE FROM ${table} AS s WHERE s."timestamp" < $1 AND NOT EXISTS (
        SELECT 1 FROM ${locks} k
        WHERE k.id = s.id AND k.ip_address = s.ip_address AND k.lock_token IS NOT NULL AND k.lock_expires > $2)`,
  };
}
