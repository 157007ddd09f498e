import { createHash } from 'node:crypto';
import type { SessionLogger } from '../../log.js';
import type { LockConnectionOpener, PgLockClient, PgPool, PgQueryResult } from './connection.js';
import type { LockConnection } from './lock-connection.js';
import { type LockKeyScheme, type PostgresLockKey, sessionLockKey } from './lock-key.js';
import { quoteTable, type TableName } from './schema.js';
import {
  columnBytes,
  type LockedRow,
  type RowKey,
  type SessionTable,
  sqlErrorFields,
  storedAddress,
  type TableShape,
  type TimestampColumn,
} from './session-table.js';
import { tombstoneSql } from './tombstone.js';
import { type WaitingRelease, WaitingReleases } from './waiting-releases.js';

/** SQLSTATEs worth retrying at once: serialization_failure and deadlock_detected. */
const TRANSIENT_STATES = new Set(['40001', '40P01']);
/** undefined_table and undefined_column: the table was dropped or altered after keepsake opened it. */
const MISSING_TABLE_STATES = new Set(['42P01', '42703']);
/** The longest table name whose lock table an earlier keepsake version could create (`<table>_locks`). */
const LEGACY_LOCK_TABLE_MAX = 63 - '_locks'.length;
/** The most releases one statement carries. */
const MOST_RELEASES_PER_STATEMENT = 16;

const statementNames = new Map<string, string>();

/**
 * A name for the statement, so that pg prepares it once per connection and PostgreSQL parses and
 * plans it once. Derived from the text, so two tables sharing a pool get different names.
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
  client: PgPool | PgLockClient,
  text: string,
  values: readonly unknown[],
  ioTimeoutMs?: number,
): Promise<PgQueryResult> {
  return client.query({
    name: statementName(text),
    text,
    values: [...values],
    ...(ioTimeoutMs === undefined ? {} : { query_timeout: ioTimeoutMs }),
  });
}

/** What opening learns about a PostgreSQL session table. */
export interface PostgresTableShape extends TableShape {
  /** `<table>_locks`, which an earlier keepsake version kept its locks in, still exists. */
  readonly legacyLockTable: boolean;
}

/** The session table's columns and primary key; null when the table does not exist. */
export async function inspectPostgresTable(
  pool: PgPool,
  table: TableName,
  ioTimeoutMs: number,
): Promise<PostgresTableShape | null> {
  const legacy =
    table.name.length <= LEGACY_LOCK_TABLE_MAX
      ? quoteTable('postgres', { schema: table.schema, name: `${table.name}_locks` })
      : null;
  const { rows } = await run(
    pool,
    `SELECT to_regclass($1) IS NOT NULL AS found,
      ARRAY(SELECT attname::text FROM pg_attribute
            WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped) AS columns,
      ARRAY(SELECT a.attname::text FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = to_regclass($1) AND i.indisprimary) AS primary_key,
      $2::text IS NOT NULL AND to_regclass($2) IS NOT NULL AS legacy_lock_table,
      (SELECT format_type(atttypid, atttypmod) FROM pg_attribute
       WHERE attrelid = to_regclass($1) AND attname = 'timestamp' AND NOT attisdropped) AS timestamp_type`,
    [quoteTable('postgres', table), legacy],
    ioTimeoutMs,
  );
  const row = rows[0];
  if (row === undefined || row.found !== true) return null;
  return {
    columns: row.columns as string[],
    primaryKey: row.primary_key as string[],
    legacyLockTable: row.legacy_lock_table === true,
    timestampType: typeof row.timestamp_type === 'string' ? row.timestamp_type : null,
  };
}

/** How the PostgreSQL statements are aimed: the table, its key, and whose lock keys to use. */
export interface PostgresTableOptions {
  readonly table: TableName;
  /** The session table's key columns as found, which ON CONFLICT must name exactly. */
  readonly primaryKey: readonly string[];
  readonly matchIP: boolean;
  readonly scheme: LockKeyScheme;
  /** How the table keeps `timestamp` (see TimestampColumn); Unix seconds when absent. */
  readonly timestampColumn?: TimestampColumn;
  readonly ioTimeoutMs: number;
  readonly logger: SessionLogger;
}

/**
 * The session table's statements for PostgreSQL. A session's lock is a session-level advisory
 * lock (`pg_try_advisory_lock`) of a lock connection: it writes nothing to the WAL, and the server
 * releases it the moment that connection ends. A lock connection runs in pg's pipeline mode, so
 * each call sends its two statements at once and costs one round trip; each statement is its own
 * transaction:
 *
 * - take and read: `pg_try_advisory_lock`, then a SELECT of the session, whose snapshot is taken
 *   after the lock was granted, so it sees every write of the previous holder;
 * - write, touch, destroy, discard: the change, then `pg_advisory_unlock` — after the change has
 *   committed (a holder that released first would let the next one read a snapshot without its
 *   write), and only if it committed: the change stamps the session setting `keepsake.ended` with
 *   a value of this call, a failed change's stamp is rolled back with it, and the unlock runs
 *   only where it finds the stamp.
 */
export class PostgresSessionTable implements SessionTable<PgLockClient> {
  readonly dialect = 'postgres';
  readonly #pool: PgPool;
  readonly #open: LockConnectionOpener<PgLockClient>;
  readonly #options: PostgresTableOptions;
  readonly #sql: ReturnType<typeof statements>;
  readonly #columns: Columns;
  /** Makes every change's stamp unique among those a connection of this table ever saw. */
  #stamps = 0;
  readonly #waiting = new WaitingReleases<LockConnection<PgLockClient>, PostgresLockKey>();

  constructor(
    pool: PgPool,
    openLockConnection: LockConnectionOpener<PgLockClient>,
    options: PostgresTableOptions,
  ) {
    this.#pool = pool;
    this.#open = openLockConnection;
    this.#options = options;
    const { arguments: lockArguments, values } = sessionLockKey(
      'postgres',
      options.scheme,
      options.matchIP,
      { id: '', ip: '' },
    );
    const timestampColumn = options.timestampColumn ?? 'seconds';
    this.#columns =
      timestampColumn === 'seconds'
        ? KEEPSAKE_COLUMNS
        : codeIgniterColumns(options.matchIP, timestampColumn === 'time');
    this.#sql = statements(
      options.table,
      options.primaryKey,
      lockArguments,
      values.length,
      this.#columns,
    );
  }

  openLockConnection(): Promise<LockConnection<PgLockClient>> {
    return this.#open(this.#options.logger);
  }

  async tryLock(on: LockConnection<PgLockClient>, key: RowKey): Promise<LockedRow | null> {
    const lock = this.#lockKey(key);
    const carried = this.#waiting.take(on, MOST_RELEASES_PER_STATEMENT);
    const [taken, read] = await this.#statements(on, (client) =>
      Promise.allSettled([
        run(client, this.#sql.tryLock(carried.length), [
          ...carried.flatMap((release) => release.lock.values),
          ...lock.values,
        ]),
        run(client, this.#sql.read, [key.id, key.ip]),
      ]),
    );
    if (taken.status === 'rejected') {
      // A failed pg_try_advisory_lock took nothing; the releases it carried are sent again
      // (releasing a lock the connection does not hold changes nothing).
      this.#release(on, carried);
      throw taken.reason;
    }
    for (const release of carried) release.settle();
    const locked = taken.value.rows[0]?.locked === true;
    if (read.status === 'rejected') {
      if (locked) await this.#releaseOrClose(on, key);
      throw read.reason;
    }
    if (!locked) return null;
    const row = read.value.rows[0];
    if (row === undefined) return { timestamp: 0, data: null };
    return { timestamp: Number(row.timestamp), data: columnBytes(row.data) };
  }

  async write(
    on: LockConnection<PgLockClient>,
    key: RowKey,
    data: Buffer,
    timestamp: number,
  ): Promise<boolean> {
    const change = await this.#changeThenUnlock(on, key, this.#sql.write, [
      key.id,
      storedAddress(this.#columns, this.#options.matchIP, key),
      timestamp,
      data,
    ]);
    return Number(change.rows[0]?.written) > 0;
  }

  async touch(
    on: LockConnection<PgLockClient>,
    key: RowKey,
    timestamp: number,
    liveAfter: number,
  ): Promise<'touched' | 'missing' | 'revoked'> {
    const change = await this.#changeThenUnlock(on, key, this.#sql.touch, [
      key.id,
      key.ip,
      timestamp,
      liveAfter,
    ]);
    const row = change.rows[0];
    if (row === undefined) return 'missing';
    return row.revoked === true ? 'revoked' : 'touched';
  }

  async destroy(on: LockConnection<PgLockClient>, key: RowKey): Promise<boolean> {
    const change = await this.#changeThenUnlock(on, key, this.#sql.destroy, [key.id, key.ip]);
    return change.rows[0]?.destroyed === true;
  }

  async discard(on: LockConnection<PgLockClient>, key: RowKey, liveAfter: number): Promise<void> {
    await this.#changeThenUnlock(on, key, this.#sql.discard, [key.id, key.ip, liveAfter]);
  }

  async revoke(key: RowKey, tombstone: Buffer, timestamp: number): Promise<void> {
    await run(
      this.#pool,
      this.#sql.revoke,
      [key.id, key.ip, timestamp, tombstone],
      this.#options.ioTimeoutMs,
    );
  }

  async clearTombstone(
    on: LockConnection<PgLockClient>,
    key: RowKey,
    tombstone: Buffer,
  ): Promise<void> {
    await this.#on(on, (client) =>
      run(client, this.#sql.clearTombstone, [key.id, key.ip, tombstone]),
    );
  }

  /** Settles once the release was sent: with the connection's next statement, or at once if it is idle (see waiting-releases.ts). */
  unlock(on: LockConnection<PgLockClient>, key: RowKey): Promise<void> {
    const released = this.#waiting.add(on, this.#lockKey(key));
    this.#releaseWaitingIfIdle(on);
    return released;
  }

  async peek(key: RowKey, liveAfter: number): Promise<Buffer | null> {
    const { rows } = await run(
      this.#pool,
      this.#sql.peek,
      [key.id, key.ip, liveAfter],
      this.#options.ioTimeoutMs,
    );
    return rows[0] === undefined ? null : columnBytes(rows[0].data);
  }

  async deleteIdle(idleBefore: number): Promise<number> {
    const result = await run(
      this.#pool,
      this.#sql.deleteIdle,
      [idleBefore],
      this.#options.ioTimeoutMs,
    );
    return result.rowCount ?? 0;
  }

  isTransient(error: unknown): boolean {
    return TRANSIENT_STATES.has(String(sqlErrorFields(error).code));
  }

  isMissingTable(error: unknown): boolean {
    return MISSING_TABLE_STATES.has(String(sqlErrorFields(error).code));
  }

  /**
   * Runs a change (whose last parameter is the stamp it sets when it commits) and the stamped
   * unlock after it, in one round trip; answers the change's result.
   */
  async #changeThenUnlock(
    on: LockConnection<PgLockClient>,
    key: RowKey,
    text: string,
    values: readonly unknown[],
  ): Promise<PgQueryResult> {
    const lock = this.#lockKey(key);
    this.#stamps += 1;
    const stamp = String(this.#stamps);
    const [change, unlock] = await this.#on(on, (client) =>
      Promise.allSettled([
        run(client, text, [...values, stamp]),
        run(client, this.#sql.unlockIfStamped, [...lock.values, stamp]),
      ]),
    );
    if (change.status === 'rejected') throw change.reason;
    if (unlock.status === 'rejected') throw unlock.reason;
    return change.value;
  }

  /** Runs statements on the connection, after the releases waiting there. */
  #on<Result>(
    on: LockConnection<PgLockClient>,
    statements: (client: PgLockClient) => Promise<Result>,
  ): Promise<Result> {
    this.#release(on, this.#waiting.take(on));
    return this.#statements(on, statements);
  }

  /**
   * Runs statements on the connection; once nothing runs there any more, the releases that waited
   * for a statement to go with go on their own. The connection runs in pipeline mode, so a release
   * sent before a statement runs before it.
   */
  async #statements<Result>(
    on: LockConnection<PgLockClient>,
    statements: (client: PgLockClient) => Promise<Result>,
  ): Promise<Result> {
    try {
      return await on.run(statements);
    } finally {
      this.#releaseWaitingIfIdle(on);
    }
  }

  #releaseWaitingIfIdle(on: LockConnection<PgLockClient>): void {
    if (on.pending === 0) this.#release(on, this.#waiting.take(on));
  }

  /** Sends releases in statements of their own, settling each unlock that waits for one. */
  #release(
    on: LockConnection<PgLockClient>,
    releases: readonly WaitingRelease<PostgresLockKey>[],
  ): void {
    for (let start = 0; start < releases.length; start += MOST_RELEASES_PER_STATEMENT) {
      const batch = releases.slice(start, start + MOST_RELEASES_PER_STATEMENT);
      this.#statements(on, (client) =>
        run(
          client,
          this.#sql.release(batch.length),
          batch.flatMap((release) => release.lock.values),
        ),
      ).then(
        () => {
          for (const release of batch) release.settle();
        },
        (error: unknown) => {
          for (const release of batch) release.settle(error);
        },
      );
    }
  }

  /** Gives back a lock taken by a call that failed; a connection that cannot is closed, which frees it. */
  async #releaseOrClose(on: LockConnection<PgLockClient>, key: RowKey): Promise<void> {
    await this.unlock(on, key).catch(() => on.close().catch(() => {}));
  }

  #lockKey(key: RowKey): PostgresLockKey {
    return sessionLockKey('postgres', this.#options.scheme, this.#options.matchIP, key);
  }
}

/**
 * How statements address a session's row and its `timestamp`, which they take and give as epoch
 * seconds: keepsake's table keeps them as such (a bigint), CodeIgniter's as a timestamptz.
 */
interface Columns {
  /** The row of a session, from $1 (the ID) and $2 (the IP, or the client's address). */
  readonly slot: string;
  /** A timestamp column value from a parameter in epoch seconds. */
  at(parameter: string): string;
  /** The column as epoch seconds. */
  readonly seconds: string;
  /**
   * Whether a row of another IP under a key of id alone is left alone by a write (keepsake's
   * table); else ip_address is the client's address, which a write stores (CodeIgniter's).
   */
  readonly guardsIp: boolean;
}

const KEEPSAKE_COLUMNS: Columns = {
  slot: 'id = $1 AND ip_address = $2',
  at: (parameter) => `${parameter}::bigint`,
  seconds: '"timestamp"',
  guardsIp: true,
};

/**
 * CodeIgniter's table, in either layout: a session is its ID (and IP under matchIP), whatever
 * ip_address holds. Without matchIP $2 is the client's address, which only a write stores:
 * elsewhere it is typed and otherwise unused. A timestamptz (`zoned`) takes the instant; a
 * timestamp without time zone the UTC wall-clock time, which extract(epoch …) reads back as UTC.
 */
function codeIgniterColumns(matchIP: boolean, zoned: boolean): Columns {
  return {
    slot: matchIP ? 'id = $1 AND ip_address = $2' : 'id = $1 AND $2::inet IS NOT NULL',
    at: (parameter) =>
      zoned
        ? `to_timestamp(${parameter}::bigint)`
        : `(to_timestamp(${parameter}::bigint) AT TIME ZONE 'UTC')`,
    seconds: 'extract(epoch FROM "timestamp")::bigint',
    guardsIp: false,
  };
}

function statements(
  sessionTable: TableName,
  conflictColumns: readonly string[],
  lockArguments: string,
  lockValues: number,
  columns: Columns,
) {
  const table = quoteTable('postgres', sessionTable);
  const { slot, at } = columns;
  const conflict = conflictColumns.map((column) => `"${column}"`).join(', ');
  const stamp = (parameter: string) => `set_config('keepsake.ended', ${parameter}, false)`;
  // The lock arguments reading their values from $(offset + 1) on.
  const shifted = (offset: number) =>
    lockArguments.replace(/\$(\d+)/g, (_, position: string) => `$${Number(position) + offset}`);
  const unlockCalls = (releases: number) =>
    Array.from(
      { length: releases },
      (_, index) => `pg_advisory_unlock(${shifted(index * lockValues)}) AS released_${index + 1}`,
    );
  // A revoked session's row (see tombstone.ts).
  const tombstone = (data: string) => tombstoneSql('postgres', data);
  // keepsake's table: a row of another IP under a key of id alone is left alone.
  const ownRow = (row: string) =>
    columns.guardsIp ? `${row}.ip_address = EXCLUDED.ip_address` : 'true';
  return {
    // It carries `releases` waiting releases of other sessions (see waiting-releases.ts).
    tryLock: (releases: number) =>
      `SELECT ${[...unlockCalls(releases), `pg_try_advisory_lock(${shifted(releases * lockValues)}) AS locked`].join(', ')}`,
    read: `SELECT ${columns.seconds} AS "timestamp", data FROM ${table} WHERE ${slot}`,
    // A row not the key's own is left alone, and so is a tombstone: nothing is written.
    write: `WITH written AS (
        INSERT INTO ${table} AS s (id, ip_address, "timestamp", data) VALUES ($1, $2, ${at('$3')}, $4::bytea)
        ON CONFLICT (${conflict}) DO UPDATE SET data = EXCLUDED.data, "timestamp" = EXCLUDED."timestamp"
        WHERE ${ownRow('s')} AND NOT ${tombstone('s.data')}
        RETURNING 1
      )
      SELECT (SELECT count(*) FROM written)::int AS written, ${stamp('$5')} AS stamp`,
    // Stamps when a live session was touched, or when it was revoked (fenced: the lock goes too);
    // a missing one keeps its lock for the write.
    touch: `WITH touched AS (
        UPDATE ${table} SET "timestamp" = ${at('$3')}
        WHERE ${slot} AND "timestamp" > ${at('$4')} AND NOT ${tombstone('data')} RETURNING 1
      )
      SELECT ${stamp('$5')} AS stamp, false AS revoked FROM touched
      UNION ALL SELECT ${stamp('$5')}, true FROM ${table} WHERE ${slot} AND ${tombstone('data')}`,
    destroy: `WITH deleted AS (DELETE FROM ${table} WHERE ${slot} RETURNING data)
      SELECT ${stamp('$3')} AS stamp, NOT EXISTS (SELECT 1 FROM deleted WHERE ${tombstone('data')}) AS destroyed`,
    // The lock was taken where no live session was: a session expired by now goes with it, and so
    // does a tombstone.
    discard: `WITH deleted AS (
        DELETE FROM ${table} WHERE ${slot} AND ("timestamp" <= ${at('$3')} OR ${tombstone('data')}) RETURNING 1
      )
      SELECT ${stamp('$4')} AS stamp`,
    // Without the lock: the holder, if any, is fenced by the tombstone its statements refuse to change.
    revoke: `INSERT INTO ${table} AS s (id, ip_address, "timestamp", data) VALUES ($1, $2, ${at('$3')}, $4::bytea)
      ON CONFLICT (${conflict}) DO UPDATE SET data = EXCLUDED.data, "timestamp" = EXCLUDED."timestamp"
      WHERE ${ownRow('s')}`,
    clearTombstone: `DELETE FROM ${table} WHERE ${slot} AND data = $3::bytea`,
    unlockIfStamped: `SELECT pg_advisory_unlock(${lockArguments}) AS unlocked
      WHERE current_setting('keepsake.ended', true) = $${lockValues + 1}`,
    release: (releases: number) => `SELECT ${unlockCalls(releases).join(', ')}`,
    peek: `SELECT data FROM ${table} WHERE ${slot} AND "timestamp" > ${at('$3')}`,
    deleteIdle: `DELETE FROM ${table} WHERE "timestamp" < ${at('$1')}`,
  };
}
