import type { SessionLogger } from '../../log.js';
import type {
  LockConnectionOpener,
  MysqlLockClient,
  MysqlPool,
  MysqlQueryOptions,
} from './connection.js';
import type { LockConnection } from './lock-connection.js';
import { type LockKeyScheme, sessionLockKey } from './lock-key.js';
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

interface ResultHeader {
  readonly affectedRows: number;
  readonly info?: string;
}

type Row = Record<string, unknown>;

/** ER_LOCK_DEADLOCK and ER_LOCK_WAIT_TIMEOUT: InnoDB rolled the statement back; it may simply run again. */
const TRANSIENT_ERRNOS = new Set([1213, 1205]);
/** ER_NO_SUCH_TABLE and ER_BAD_FIELD_ERROR: the table was dropped or altered after keepsake opened it. */
const MISSING_TABLE_ERRNOS = new Set([1146, 1054]);
/** The most releases one statement carries (each is a parameter and a column of its own). */
const MOST_RELEASES_PER_STATEMENT = 16;

/** What opening learns about a MySQL/MariaDB session table and its server. */
export interface MysqlTableShape extends TableShape {
  /** The server's VERSION(). */
  readonly version: string;
  /** MariaDB ≥ 10.5, whose INSERT … RETURNING makes a write and its unlock one statement. */
  readonly returning: boolean;
  /**
   * Whether one connection may hold several named locks at once (MySQL ≥ 5.7, MariaDB ≥ 10.0.2);
   * before, GET_LOCK released the connection's previous lock.
   */
  readonly manyLocks: boolean;
  /** The data column's type and the bytes it holds (CodeIgniter's blob: 65 535). */
  readonly dataType: string | null;
  readonly dataCapacity: number | null;
}

async function run(client: MysqlPool | MysqlLockClient, options: MysqlQueryOptions) {
  const [result] = await client.query(options);
  return result;
}

/** The session table's columns, primary key and data column, and the server's dialect; null when the table does not exist. */
export async function inspectMysqlTable(
  pool: MysqlPool,
  table: TableName,
  ioTimeoutMs: number,
): Promise<MysqlTableShape | null> {
  const { schema, name } = table;
  const rows = (await run(pool, {
    sql: `SELECT VERSION() AS version,
      (SELECT GROUP_CONCAT(COLUMN_NAME) FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?) AS columns,
      (SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM information_schema.KEY_COLUMN_USAGE
        WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY') AS primary_key,
      (SELECT CONCAT(DATA_TYPE, ':', COALESCE(CHARACTER_OCTET_LENGTH, '')) FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND COLUMN_NAME = 'data') AS data_column,
      (SELECT DATA_TYPE FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND COLUMN_NAME = 'timestamp') AS timestamp_type`,
    values: [schema, name, schema, name, schema, name, schema, name],
    timeout: ioTimeoutMs,
  })) as Row[];
  const row = rows[0];
  if (row === undefined || row.columns === null) return null;
  const version = String(row.version ?? '');
  const mariadb = /mariadb/i.exec(version) !== null;
  const [major = 0, minor = 0, patch = 0] = version
    .split(/[.-]/)
    .map((part) => Number.parseInt(part, 10));
  const atLeast = (m: number, n: number, p = 0) =>
    major > m || (major === m && (minor > n || (minor === n && patch >= p)));
  const list = (value: unknown) => (value === null ? [] : String(value).split(','));
  const [dataType = null, capacity = ''] =
    row.data_column === null ? [] : String(row.data_column).split(':');
  return {
    columns: list(row.columns),
    primaryKey: list(row.primary_key),
    version,
    returning: mariadb && atLeast(10, 5),
    manyLocks: mariadb ? atLeast(10, 0, 2) : atLeast(5, 7),
    dataType,
    dataCapacity: capacity === '' ? null : Number(capacity),
    timestampType: row.timestamp_type === null ? null : String(row.timestamp_type),
  };
}

/** How the MySQL statements are aimed: the table, the server, and whose lock names to use. */
export interface MysqlTableOptions {
  readonly table: TableName;
  readonly shape: MysqlTableShape;
  readonly matchIP: boolean;
  readonly scheme: LockKeyScheme;
  /** How the table keeps `timestamp` (see TimestampColumn); Unix seconds when absent. */
  readonly timestampColumn?: TimestampColumn;
  readonly ioTimeoutMs: number;
  readonly logger: SessionLogger;
}

/**
 * The session table's statements for MySQL and MariaDB. A session's lock is a named lock
 * (`GET_LOCK(name, 0)`) of a lock connection: it writes nothing to the redo log, and the server
 * releases it the moment that connection ends. Every call is one statement where the server
 * allows it, and may release the lock inside it because a lock attempt reads the session with a
 * locking read (LOCK IN SHARE MODE, on a lock connection in REPEATABLE READ, so a missing row's
 * gap is locked too):
 *
 * - a releasing statement releases only after its change has locked the row (in SET, evaluated for
 *   a row already locked, or in RETURNING), and the next holder's read waits for that row lock,
 *   so it reads the change once committed;
 * - a lock attempt that read the row before a holder changed it keeps that row's shared lock until
 *   it ends, so the holder's change waits, still holding the named lock, and the attempt's
 *   GET_LOCK fails: it never takes the lock together with a stale read.
 *
 * MariaDB ≥ 10.5 writes with `INSERT … ON DUPLICATE KEY UPDATE … RETURNING RELEASE_LOCK()`; MySQL,
 * which has no RETURNING, follows the write with `DO RELEASE_LOCK()`. A destroy or discard is its
 * DELETE followed by the release.
 */
export class MysqlSessionTable implements SessionTable<MysqlLockClient> {
  readonly dialect = 'mysql';
  readonly #pool: MysqlPool;
  readonly #open: LockConnectionOpener<MysqlLockClient>;
  readonly #options: MysqlTableOptions;
  readonly #table: string;
  readonly #sql: ReturnType<typeof statements>;
  readonly #columns: Columns;
  readonly #waiting = new WaitingReleases<LockConnection<MysqlLockClient>, string>();
  /** Each lock connection's server thread (CONNECTION_ID()), as its lock attempts report it. */
  readonly #serverIds = new WeakMap<LockConnection<MysqlLockClient>, number>();

  constructor(
    pool: MysqlPool,
    openLockConnection: LockConnectionOpener<MysqlLockClient>,
    options: MysqlTableOptions,
  ) {
    this.#pool = pool;
    this.#open = openLockConnection;
    this.#options = options;
    this.#table = quoteTable('mysql', options.table);
    this.#columns =
      (options.timestampColumn ?? 'seconds') === 'seconds'
        ? KEEPSAKE_COLUMNS
        : codeIgniterColumns(options.matchIP, options.scheme === 'codeigniter');
    this.#sql = statements(this.#table, this.#columns);
  }

  openLockConnection(): Promise<LockConnection<MysqlLockClient>> {
    return this.#open(this.#options.logger);
  }

  async tryLock(on: LockConnection<MysqlLockClient>, key: RowKey): Promise<LockedRow | null> {
    const carried = this.#waiting.take(on, MOST_RELEASES_PER_STATEMENT);
    let rows: Row[];
    try {
      rows = (await this.#statement(on, this.#sql.tryLock(carried.length), [
        ...carried.map((release) => release.lock),
        this.#name(key),
        key.id,
        key.ip,
      ])) as Row[];
    } catch (error) {
      // Whether GET_LOCK and the carried releases ran before the statement failed is unknown:
      // release them all in any case (releasing a lock the connection does not hold does nothing).
      this.#release(on, carried);
      await this.#releaseOrClose(on, key);
      throw error;
    }
    for (const release of carried) release.settle();
    const row = rows[0];
    if (row?.connection_id !== undefined) this.#serverIds.set(on, Number(row.connection_id));
    if (Number(row?.locked) !== 1) return null;
    if (row?.data === null || row?.data === undefined) return { timestamp: 0, data: null };
    return { timestamp: Number(row.timestamp), data: columnBytes(row.data) };
  }

  async write(
    on: LockConnection<MysqlLockClient>,
    key: RowKey,
    data: Buffer,
    timestamp: number,
  ): Promise<boolean> {
    const { dataCapacity, dataType } = this.#options.shape;
    if (dataCapacity !== null && data.length > dataCapacity) {
      // Refused here, not by the server: outside strict SQL mode it would silently cut the data.
      throw new Error(
        `the session is ${data.length} bytes, more than the ${dataType} column "data" of ${this.#table} holds (${dataCapacity} bytes). ` +
          `CodeIgniter's blob stops at 64 KiB; keepsake's table has mediumblob: ALTER TABLE ${this.#table} MODIFY data mediumblob NOT NULL`,
      );
    }
    const values = [
      key.id,
      storedAddress(this.#columns, this.#options.matchIP, key),
      timestamp,
      data,
    ];
    // CodeIgniter reads without a locking read, so under its layout the lock is released only
    // once the change has committed, in a statement of its own.
    if (this.#options.shape.returning && this.#options.scheme !== 'codeigniter') {
      const serverId = this.#serverIds.get(on);
      if (on.pending > 0 && serverId !== undefined) {
        return this.#writeOnPool(on, key, values, serverId);
      }
      const rows = (await this.#on(on, this.#sql.writeReturning, [
        ...values,
        this.#name(key),
      ])) as Row[];
      return this.#ownWrite(key, rows[0]);
    }
    await this.#on(on, this.#sql.write, values);
    return !(await this.#unlockFindingTombstone(on, key));
  }

  /**
   * Whether a write's RETURNING row says it changed the session: not a tombstone, and in keepsake's
   * table not a row of another IP (CodeIgniter's table keeps the client's address there).
   */
  #ownWrite(key: RowKey, row: Row | undefined): boolean {
    const own = !this.#columns.guardsIp || row?.ip_address === key.ip;
    return own && Number(row?.revoked) !== 1;
  }

  /**
   * A write while the lock connection is busy with other sessions' statements: it runs on a pooled
   * connection instead of waiting behind them (and holding them up while it commits), fenced in
   * the statement by the lock, which must still be held by the lock connection's server thread.
   * Its release then goes with the lock connection's next statement.
   */
  async #writeOnPool(
    on: LockConnection<MysqlLockClient>,
    key: RowKey,
    values: readonly unknown[],
    serverId: number,
  ): Promise<boolean> {
    const name = this.#name(key);
    const rows = (await run(this.#pool, {
      sql: this.#sql.writeFenced,
      values: [...values, name, serverId, name, serverId, name, serverId, name, serverId],
      timeout: this.#options.ioTimeoutMs,
    })) as Row[];
    const row = rows[0];
    // No row: the session was not there and the lock is gone; `held` 0: it went during the write.
    if (row === undefined || Number(row.held) !== 1) return false;
    await this.unlock(on, key);
    return this.#ownWrite(key, row);
  }

  async touch(
    on: LockConnection<MysqlLockClient>,
    key: RowKey,
    timestamp: number,
    liveAfter: number,
  ): Promise<'touched' | 'missing' | 'revoked'> {
    if (this.#options.scheme === 'codeigniter') {
      // Released in a statement of its own, once the touch has committed (see write()).
      const touched = (await this.#on(on, this.#sql.touchOnly, [
        timestamp,
        key.id,
        key.ip,
        liveAfter,
      ])) as ResultHeader;
      if (matchedRows(touched) > 0) {
        await this.unlock(on, key);
        return 'touched';
      }
    } else {
      const header = (await this.#on(on, this.#sql.touch, [
        this.#name(key),
        timestamp,
        timestamp,
        key.id,
        key.ip,
        liveAfter,
      ])) as ResultHeader;
      if (matchedRows(header) > 0) return 'touched';
    }
    // Rare (the session expired or was revoked while held), so the hot path keeps one statement.
    const revoked = (await this.#on(on, this.#sql.unlockIfTombstone, [
      this.#name(key),
      key.id,
      key.ip,
    ])) as Row[];
    return revoked.length > 0 ? 'revoked' : 'missing';
  }

  async destroy(on: LockConnection<MysqlLockClient>, key: RowKey): Promise<boolean> {
    await this.#on(on, this.#sql.destroy, [key.id, key.ip]);
    return !(await this.#unlockFindingTombstone(on, key));
  }

  async discard(
    on: LockConnection<MysqlLockClient>,
    key: RowKey,
    liveAfter: number,
  ): Promise<void> {
    await this.#on(on, this.#sql.discard, [key.id, key.ip, liveAfter]);
    await this.unlock(on, key);
  }

  async revoke(key: RowKey, tombstone: Buffer, timestamp: number): Promise<void> {
    await run(this.#pool, {
      sql: this.#sql.revoke,
      values: [key.id, key.ip, timestamp, tombstone],
      timeout: this.#options.ioTimeoutMs,
    });
  }

  async clearTombstone(
    on: LockConnection<MysqlLockClient>,
    key: RowKey,
    tombstone: Buffer,
  ): Promise<void> {
    await this.#on(on, this.#sql.clearTombstone, [key.id, key.ip, tombstone]);
  }

  /** Settles once the release was sent: with the connection's next statement, or at once if it is idle (see waiting-releases.ts). */
  unlock(on: LockConnection<MysqlLockClient>, key: RowKey): Promise<void> {
    const released = this.#waiting.add(on, this.#name(key));
    this.#releaseWaitingIfIdle(on);
    return released;
  }

  async holds(on: LockConnection<MysqlLockClient>, key: RowKey): Promise<boolean> {
    const rows = (await this.#on(on, this.#sql.holds, [this.#name(key)])) as Row[];
    return Number(rows[0]?.held) === 1;
  }

  async peek(key: RowKey, liveAfter: number): Promise<Buffer | null> {
    const rows = (await run(this.#pool, {
      sql: this.#sql.peek,
      values: [key.id, key.ip, liveAfter],
      timeout: this.#options.ioTimeoutMs,
    })) as Row[];
    return rows[0] === undefined ? null : columnBytes(rows[0].data);
  }

  async deleteIdle(idleBefore: number): Promise<number> {
    const header = (await run(this.#pool, {
      sql: this.#sql.deleteIdle,
      values: [idleBefore],
      timeout: this.#options.ioTimeoutMs,
    })) as ResultHeader;
    return header.affectedRows;
  }

  isTransient(error: unknown): boolean {
    return TRANSIENT_ERRNOS.has(Number(sqlErrorFields(error).errno));
  }

  isMissingTable(error: unknown): boolean {
    return MISSING_TABLE_ERRNOS.has(Number(sqlErrorFields(error).errno));
  }

  /**
   * Releases the lock after a change that refused a tombstone, in the statement that would have
   * released it anyway; answers whether the row is a tombstone (the session was revoked).
   */
  async #unlockFindingTombstone(
    on: LockConnection<MysqlLockClient>,
    key: RowKey,
  ): Promise<boolean> {
    const rows = (await this.#on(on, this.#sql.unlockFindingTombstone, [
      this.#name(key),
      key.id,
      key.ip,
    ])) as Row[];
    return Number(rows[0]?.revoked) === 1;
  }

  /** Runs a statement on the connection, after the releases waiting there. */
  #on(on: LockConnection<MysqlLockClient>, sql: string, values: unknown[]): Promise<unknown> {
    this.#release(on, this.#waiting.take(on));
    return this.#statement(on, sql, values);
  }

  /**
   * Runs a statement on the connection; once nothing runs there any more, the releases that waited
   * for a statement to go with go on their own. mysql2 queues a connection's statements in the
   * order they are called, so a release sent before a statement runs before it.
   */
  async #statement(
    on: LockConnection<MysqlLockClient>,
    sql: string,
    values: unknown[],
  ): Promise<unknown> {
    try {
      return await on.run((client) => run(client, { sql, values }));
    } finally {
      this.#releaseWaitingIfIdle(on);
    }
  }

  #releaseWaitingIfIdle(on: LockConnection<MysqlLockClient>): void {
    if (on.pending === 0) this.#release(on, this.#waiting.take(on));
  }

  /** Sends releases in statements of their own, settling each unlock that waits for one. */
  #release(on: LockConnection<MysqlLockClient>, releases: readonly WaitingRelease<string>[]): void {
    for (let start = 0; start < releases.length; start += MOST_RELEASES_PER_STATEMENT) {
      const batch = releases.slice(start, start + MOST_RELEASES_PER_STATEMENT);
      this.#statement(
        on,
        this.#sql.release(batch.length),
        batch.map((release) => release.lock),
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

  /** Gives back a lock a failed call may have taken; a connection that cannot is closed, which frees it. */
  async #releaseOrClose(on: LockConnection<MysqlLockClient>, key: RowKey): Promise<void> {
    await this.unlock(on, key).catch(() => on.close().catch(() => {}));
  }

  #name(key: RowKey): string {
    return sessionLockKey('mysql', this.#options.scheme, this.#options.matchIP, key).name;
  }
}

/**
 * The rows an UPDATE matched: its info text says so whatever the client's flags ("Rows matched: 1
 * Changed: 0"); affectedRows counts them only with CLIENT_FOUND_ROWS, mysql2's default.
 */
function matchedRows(header: ResultHeader): number {
  const matched = /Rows matched: (\d+)/.exec(header.info ?? '')?.[1];
  return matched === undefined ? header.affectedRows : Number(matched);
}

/**
 * How statements address a session's row and its `timestamp`, which they take and give as epoch
 * seconds: keepsake's table keeps them as such (an int), CodeIgniter's as a timestamp.
 */
interface Columns {
  /** The row of a session, from two parameters: the ID and the IP (or the client's address). */
  slot(alias: string): string;
  /** A timestamp column value from a parameter in epoch seconds. */
  readonly at: string;
  /** The column (of `alias`) as epoch seconds. */
  seconds(alias: string): string;
  /** Whether the column of `alias` is later than the parameter (epoch seconds). */
  readonly liveAfter: string;
  /**
   * Whether a row of another IP under a key of id alone is left alone by a write (keepsake's
   * table); else ip_address is the client's address, which a write stores (CodeIgniter's).
   */
  readonly guardsIp: boolean;
}

const KEEPSAKE_COLUMNS: Columns = {
  slot: (alias) => `${alias}id = ? AND ${alias}ip_address = ?`,
  at: '?',
  seconds: (alias) => `${alias}\`timestamp\``,
  liveAfter: '`timestamp` > ?',
  guardsIp: true,
};

/**
 * The range of MySQL's timestamp type in Unix seconds (the zero date aside): what FROM_UNIXTIME is
 * given is kept within it, so a time past 2038 is stored as the type's last second instead of
 * failing (or, outside strict SQL mode, becoming the zero date).
 */
const TIMESTAMP_RANGE = [1, 2_147_483_647] as const;

/**
 * CodeIgniter's table, in either layout: a session is its ID (and IP under matchIP), whatever
 * ip_address holds. The time passes through the connection's time zone both ways
 * (FROM_UNIXTIME, UNIX_TIMESTAMP), so it reads back as written whatever that zone is.
 *
 * CodeIgniter 4.1 writes the text 'now()' into `timestamp`, which MariaDB and MySQL outside strict
 * mode store as the zero date. In CodeIgniter's layout (`zeroIsNow`) such a row counts as written
 * now (CodeIgniter reads a session whatever its timestamp); in keepsake's, as written at 0, long
 * expired. GC deletes it either way, as CodeIgniter's own GC does.
 */
function codeIgniterColumns(matchIP: boolean, zeroIsNow: boolean): Columns {
  const at = `FROM_UNIXTIME(LEAST(GREATEST(?, ${TIMESTAMP_RANGE[0]}), ${TIMESTAMP_RANGE[1]}))`;
  return {
    slot: (alias) =>
      matchIP ? `${alias}id = ? AND ${alias}ip_address = ?` : `${alias}id = ? AND ? IS NOT NULL`,
    at,
    seconds: (alias) =>
      zeroIsNow
        ? `IF(${alias}\`timestamp\` = 0, UNIX_TIMESTAMP(), UNIX_TIMESTAMP(${alias}\`timestamp\`))`
        : `UNIX_TIMESTAMP(${alias}\`timestamp\`)`,
    liveAfter: zeroIsNow ? `(\`timestamp\` > ${at} OR \`timestamp\` = 0)` : `\`timestamp\` > ${at}`,
    guardsIp: false,
  };
}

/** `RELEASE_LOCK(?) AS released_1, …, ` for a lock attempt that carries releases. */
function releaseColumns(releases: number): string {
  return Array.from(
    { length: releases },
    (_, index) => `RELEASE_LOCK(?) AS released_${index + 1}, `,
  ).join('');
}

function statements(table: string, columns: Columns) {
  const slot = columns.slot('');
  const { at } = columns;
  // A revoked session's row (see tombstone.ts).
  const tombstone = tombstoneSql('mysql', 'data');
  const upsert = (
    change: string,
  ) => `INSERT INTO ${table} (id, ip_address, \`timestamp\`, data) VALUES (?, ?, ${at}, ?)
      ON DUPLICATE KEY UPDATE
        data = IF(${change}, VALUES(data), data),
        \`timestamp\` = IF(${change}, VALUES(\`timestamp\`), \`timestamp\`)`;
  // keepsake's table: a row of another IP under a key of id alone is left as it is (see write()).
  const ownRow = columns.guardsIp ? 'ip_address = VALUES(ip_address)' : 'TRUE';
  // A row not the key's own is left as it is, and so is a tombstone. The assignments run in
  // order, so the second sees the first's data: both change, or neither.
  const write = upsert(`${ownRow} AND NOT ${tombstone}`);
  return {
    // One row whatever is stored: GET_LOCK runs exactly once, and the session is read with a
    // locking read (see the class comment).
    // It carries `releases` waiting releases of other sessions (see waiting-releases.ts).
    tryLock: (releases: number) => `SELECT ${releaseColumns(releases)}GET_LOCK(?, 0) AS locked,
      CONNECTION_ID() AS connection_id, ${columns.seconds('s.')} AS \`timestamp\`, s.data
      FROM (SELECT 1) AS one LEFT JOIN ${table} AS s ON ${columns.slot('s.')}
      LOCK IN SHARE MODE`,
    write,
    // On a pooled connection: nothing is written unless the lock connection's thread (the second
    // parameter of each pair) still holds the lock. A lock lost between the two assignments' checks
    // leaves the data written under the old timestamp, and the write answers that it was fenced.
    writeFenced: `INSERT INTO ${table} (id, ip_address, \`timestamp\`, data)
        SELECT ?, ?, ${at}, ? FROM DUAL WHERE IS_USED_LOCK(?) = ?
      ON DUPLICATE KEY UPDATE
        data = IF(${ownRow} AND NOT ${tombstone} AND IS_USED_LOCK(?) = ?, VALUES(data), data),
        \`timestamp\` = IF(${ownRow} AND NOT ${tombstone} AND IS_USED_LOCK(?) = ?,
          VALUES(\`timestamp\`), \`timestamp\`)
      RETURNING ip_address, ${tombstone} AS revoked, IS_USED_LOCK(?) = ? AS held`,
    writeReturning: `${write} RETURNING ip_address, ${tombstone} AS revoked, RELEASE_LOCK(?) AS released`,
    // Both branches set the same value: the IF only makes the release part of the assignment,
    // which runs for a matched (and so already locked) row only; a missing session keeps the lock.
    touch: `UPDATE ${table} SET \`timestamp\` = IF(RELEASE_LOCK(?), ${at}, ${at})
      WHERE ${slot} AND ${columns.liveAfter} AND NOT ${tombstone}`,
    touchOnly: `UPDATE ${table} SET \`timestamp\` = ${at}
      WHERE ${slot} AND ${columns.liveAfter} AND NOT ${tombstone}`,
    // Releases the lock only where the session was revoked (a row then comes back).
    unlockIfTombstone: `SELECT RELEASE_LOCK(?) AS released FROM ${table} WHERE ${slot} AND ${tombstone}`,
    // A tombstone stays, for the next holder to clear.
    destroy: `DELETE FROM ${table} WHERE ${slot} AND NOT ${tombstone}`,
    // The lock was taken where no live session was: a session expired by now goes with it, and so
    // does a tombstone.
    discard: `DELETE FROM ${table} WHERE ${slot} AND (NOT ${columns.liveAfter} OR ${tombstone})`,
    // Without the lock: the holder, if any, is fenced by the tombstone its statements refuse to change.
    revoke: upsert(ownRow),
    clearTombstone: `DELETE FROM ${table} WHERE ${slot} AND data = ?`,
    release: (releases: number) =>
      `DO ${Array.from({ length: releases }, () => 'RELEASE_LOCK(?)').join(', ')}`,
    unlockFindingTombstone: `SELECT RELEASE_LOCK(?) AS released,
      EXISTS (SELECT 1 FROM ${table} WHERE ${slot} AND ${tombstone}) AS revoked`,
    holds: 'SELECT IS_USED_LOCK(?) = CONNECTION_ID() AS held',
    peek: `SELECT data FROM ${table} WHERE ${slot} AND ${columns.liveAfter}`,
    deleteIdle: `DELETE FROM ${table} WHERE \`timestamp\` < ${at}`,
  };
}
