import { SessionConfigError } from '../../errors.js';
import type { DriverContext } from '../contract.js';
import type { MysqlLockClient, PgLockClient, SqlClient } from './connection.js';
import type { LockKeyScheme } from './lock-key.js';
import { inspectMysqlTable, MysqlSessionTable } from './mysql.js';
import { inspectPostgresTable, PostgresSessionTable } from './postgres.js';
import { migrationCommand, quoteTable, type TableName, tableText } from './schema.js';
import type { SessionTable, TableShape } from './session-table.js';

const REQUIRED_COLUMNS = ['id', 'ip_address', 'timestamp', 'data'];
/** The lock columns an earlier keepsake version added to the MySQL session table. */
const LEGACY_LOCK_COLUMNS = ['lock_token', 'lock_expires'];
/** keepsake's default maxPayloadBytes (not imported: config.ts imports the drivers). */
const DEFAULT_PAYLOAD_LIMIT = 1024 * 1024;

/**
 * Checks the session table and answers its statements, aimed at its primary key. A missing table,
 * missing columns, a primary key that does not fit matchIP, or a MySQL server whose connections
 * hold one named lock at a time are a SessionConfigError naming what to do; what an earlier
 * keepsake version left for its locks (PostgreSQL's `<table>_locks`, MySQL's lock columns) works,
 * unused, and is reported.
 */
export async function openSessionTable(
  client: SqlClient,
  table: TableName,
  context: DriverContext,
  scheme: LockKeyScheme,
): Promise<SessionTable<PgLockClient> | SessionTable<MysqlLockClient>> {
  const { ioTimeoutMs, matchIP, logger } = context;
  const fix = migrationCommand(client.dialect, table, matchIP);
  const name = tableText(table);
  if (client.dialect === 'postgres') {
    const shape = found(await inspectPostgresTable(client.pool, table, ioTimeoutMs), table, fix);
    const primaryKey = checkShape(shape, table, fix, matchIP);
    checkTimestamp(shape, table, fix, scheme);
    if (shape.legacyLockTable) {
      const locks = quoteTable('postgres', { schema: table.schema, name: `${table.name}_locks` });
      logger.warn(
        `keepsake: the table ${locks}, where an earlier keepsake version kept the locks of "${name}", is no longer used (locks are advisory locks now); ` +
          `drop it with DROP TABLE ${locks} once no process of that version runs. Processes of the two versions must not share the table: they do not see each other's locks.`,
      );
    }
    return new PostgresSessionTable(client.pool, client.openLockConnection, {
      table,
      primaryKey,
      matchIP,
      scheme,
      ioTimeoutMs,
      logger,
    });
  }
  const shape = found(await inspectMysqlTable(client.pool, table, ioTimeoutMs), table, fix);
  if (!shape.manyLocks) {
    throw new SessionConfigError(
      'connection',
      `the database driver needs MySQL 5.7 or MariaDB 10.0.2 or newer, whose connections hold several named locks at once (GET_LOCK); the server is ${shape.version}.`,
    );
  }
  checkShape(shape, table, fix, matchIP);
  checkTimestamp(shape, table, fix, scheme);
  const legacyColumns = LEGACY_LOCK_COLUMNS.filter((column) => shape.columns.includes(column));
  if (legacyColumns.length > 0) {
    logger.warn(
      `keepsake: the columns ${legacyColumns.join(', ')} of "${name}", where an earlier keepsake version kept its locks, are no longer used (locks are named locks now); ` +
        `drop them with ALTER TABLE ${name} ${legacyColumns.map((column) => `DROP COLUMN ${column}`).join(', ')} once no process of that version runs. Processes of the two versions must not share the table: they do not see each other's locks.`,
    );
  }
  if (shape.dataCapacity !== null && shape.dataCapacity < DEFAULT_PAYLOAD_LIMIT) {
    logger.warn(
      `keepsake: the data column of "${name}" is ${shape.dataType}, which holds at most ${shape.dataCapacity} bytes (CodeIgniter's blob: 64 KiB); a bigger session cannot be saved. ` +
        `Widen it with ALTER TABLE ${name} MODIFY data mediumblob NOT NULL, as \`${fix}\` creates it.`,
    );
  }
  return new MysqlSessionTable(client.pool, client.openLockConnection, {
    table,
    shape,
    matchIP,
    scheme,
    ioTimeoutMs,
    logger,
  });
}

function found<Shape extends TableShape>(
  shape: Shape | null,
  table: TableName,
  fix: string,
): Shape {
  if (shape !== null) return shape;
  throw new SessionConfigError(
    'table',
    `the session table "${tableText(table)}" does not exist. Create it with the SQL printed by \`${fix}\`.`,
  );
}

/** What a `timestamp` column of a date/time type (CodeIgniter's table) is called on either server. */
const TIME_TYPE = /^(timestamp|datetime)/i;

/**
 * Throws unless `timestamp` suits the layout: epoch seconds in keepsake's table, a date/time type
 * in CodeIgniter's (a table of the other layout would fail on every request instead).
 */
function checkTimestamp(
  shape: TableShape,
  table: TableName,
  fix: string,
  scheme: LockKeyScheme,
): void {
  const type = shape.timestampType;
  if (type === null || TIME_TYPE.test(type) === (scheme === 'codeigniter')) return;
  const name = tableText(table);
  throw new SessionConfigError(
    'layout',
    scheme === 'codeigniter'
      ? `layout: 'codeigniter' needs CodeIgniter's session table, whose "timestamp" is a timestamp, but "${name}" keeps it as ${type} (keepsake's table, from \`${fix}\`): drop layout: 'codeigniter', or create the table from CodeIgniter's user guide.`
      : `the "timestamp" of "${name}" is a ${type}, as in CodeIgniter's table: share it with a CodeIgniter app with layout: 'codeigniter', or convert the column to Unix seconds (see docs/drivers/database.md) or create keepsake's table from \`${fix}\`.`,
  );
}

/** Throws unless the table has every column and a primary key fit for matchIP; answers that key. */
function checkShape(
  shape: TableShape,
  table: TableName,
  fix: string,
  matchIP: boolean,
): readonly string[] {
  const name = tableText(table);
  const missing = REQUIRED_COLUMNS.filter((column) => !shape.columns.includes(column));
  if (missing.length > 0) {
    throw new SessionConfigError(
      'table',
      `the session table "${name}" lacks the column(s) ${missing.join(', ')}. See \`${fix}\` for the full table.`,
    );
  }
  const keyHasIp = shape.primaryKey.includes('ip_address');
  if (!shape.primaryKey.includes('id') || (matchIP && !keyHasIp)) {
    throw new SessionConfigError(
      'matchIP',
      `the primary key of "${name}" is (${shape.primaryKey.join(', ')}), but ${matchIP ? 'matchIP needs (id, ip_address)' : 'it must include id'}. Recreate the table from \`${fix}\`, or change it with ALTER TABLE … DROP PRIMARY KEY, ADD PRIMARY KEY (${matchIP ? 'id, ip_address' : 'id'}).`,
    );
  }
  return keyHasIp ? ['id', 'ip_address'] : ['id'];
}
