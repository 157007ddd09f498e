import { SessionConfigError } from '../../errors.js';
import type { DriverContext } from '../contract.js';
import type { MysqlLockClient, PgLockClient, SqlClient } from './connection.js';
import type { LockKeyScheme } from './lock-key.js';
import { inspectMysqlTable, MysqlSessionTable } from './mysql.js';
import { inspectPostgresTable, PostgresSessionTable } from './postgres.js';
import { quoteTable, type TableName, tableRecipe, tableText } from './schema.js';
import {
  type SessionTable,
  type TableShape,
  type TimestampColumn,
  timestampColumnOf,
} from './session-table.js';

const REQUIRED_COLUMNS = ['id', 'ip_address', 'timestamp', 'data'];
/** The lock columns an earlier keepsake version added to the MySQL session table. */
const LEGACY_LOCK_COLUMNS = ['lock_token', 'lock_expires'];
/** keepsake's default maxPayloadBytes (not imported: config.ts imports the drivers). */
const DEFAULT_PAYLOAD_LIMIT = 1024 * 1024;

/**
 * Checks the session table and answers its statements, aimed at its primary key and at the type of
 * its `timestamp` (Unix seconds, or CodeIgniter's date/time type, in either layout). A missing
 * table, missing columns, a primary key that does not fit matchIP, a `timestamp` that cannot keep
 * time (or Unix seconds under CodeIgniter's layout, which CodeIgniter could not read), or a MySQL
 * server whose connections hold one named lock at a time are a SessionConfigError naming what to
 * do; what an earlier keepsake version left for its locks (PostgreSQL's `<table>_locks`, MySQL's
 * lock columns) works, unused, and is reported.
 */
export async function openSessionTable(
  client: SqlClient,
  table: TableName,
  context: DriverContext,
  scheme: LockKeyScheme,
): Promise<SessionTable<PgLockClient> | SessionTable<MysqlLockClient>> {
  const { ioTimeoutMs, matchIP, logger } = context;
  const recipe = tableRecipe(scheme, client.dialect, table, matchIP);
  const name = tableText(table);
  if (client.dialect === 'postgres') {
    const shape = found(await inspectPostgresTable(client.pool, table, ioTimeoutMs), table, recipe);
    const primaryKey = checkShape(shape, table, recipe, matchIP);
    const timestampColumn = checkTimestamp(shape, table, recipe, scheme);
    checkAddressKey(shape, table, timestampColumn, matchIP);
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
      timestampColumn,
      ioTimeoutMs,
      logger,
    });
  }
  const shape = found(await inspectMysqlTable(client.pool, table, ioTimeoutMs), table, recipe);
  if (!shape.manyLocks) {
    throw new SessionConfigError(
      'connection',
      `the database driver needs MySQL 5.7 or MariaDB 10.0.2 or newer, whose connections hold several named locks at once (GET_LOCK); the server is ${shape.version}.`,
    );
  }
  checkShape(shape, table, recipe, matchIP);
  const timestampColumn = checkTimestamp(shape, table, recipe, scheme);
  checkAddressKey(shape, table, timestampColumn, matchIP);
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
        `Widen it with ALTER TABLE ${name} MODIFY data mediumblob NOT NULL (keepsake's own table has mediumblob; CodeIgniter reads and writes one as it does a blob).`,
    );
  }
  return new MysqlSessionTable(client.pool, client.openLockConnection, {
    table,
    shape,
    matchIP,
    scheme,
    timestampColumn,
    ioTimeoutMs,
    logger,
  });
}

function found<Shape extends TableShape>(
  shape: Shape | null,
  table: TableName,
  recipe: string,
): Shape {
  if (shape !== null) return shape;
  throw new SessionConfigError(
    'table',
    `the session table "${tableText(table)}" does not exist. Create it with ${recipe}.`,
  );
}

/**
 * How `timestamp` keeps time. Both layouts work on both kinds of table: Unix seconds (keepsake's
 * table) and a date/time type (CodeIgniter's), except that CodeIgniter could not read Unix seconds,
 * so CodeIgniter's layout refuses them; a type that holds neither is refused by both.
 */
function checkTimestamp(
  shape: TableShape,
  table: TableName,
  recipe: string,
  scheme: LockKeyScheme,
): TimestampColumn {
  const type = shape.timestampType ?? '';
  const column = timestampColumnOf(type);
  const name = tableText(table);
  if (column === null) {
    throw new SessionConfigError(
      'table',
      `the "timestamp" of "${name}" is a ${type}, which holds no time keepsake can keep: it needs Unix seconds (bigint, int) or a date/time type (timestamptz, timestamp, datetime). See ${recipe} for the full table.`,
    );
  }
  if (column === 'seconds' && scheme === 'codeigniter') {
    throw new SessionConfigError(
      'layout',
      `layout: 'codeigniter' needs CodeIgniter's session table, whose "timestamp" is a timestamp, but "${name}" keeps it as ${type} (Unix seconds, keepsake's table), which CodeIgniter cannot read: drop layout: 'codeigniter', or create the table with ${recipe}.`,
    );
  }
  return column;
}

/**
 * Throws for CodeIgniter's table keyed by (id, ip_address) without matchIP: there ip_address is
 * the client's address, which changes between requests, so keepsake's upsert would add a second
 * row for the session instead of changing its one row.
 */
function checkAddressKey(
  shape: TableShape,
  table: TableName,
  timestampColumn: TimestampColumn,
  matchIP: boolean,
): void {
  if (matchIP || timestampColumn === 'seconds' || !shape.primaryKey.includes('ip_address')) return;
  const name = tableText(table);
  throw new SessionConfigError(
    'matchIP',
    `the primary key of "${name}" is (${shape.primaryKey.join(', ')}), CodeIgniter's key for sessionMatchIP, where ip_address is the client's address: turn matchIP on, as CodeIgniter's sessionMatchIP is, or key the table by id alone with ALTER TABLE … DROP PRIMARY KEY, ADD PRIMARY KEY (id).`,
  );
}

/** Throws unless the table has every column and a primary key fit for matchIP; answers that key. */
function checkShape(
  shape: TableShape,
  table: TableName,
  recipe: string,
  matchIP: boolean,
): readonly string[] {
  const name = tableText(table);
  const missing = REQUIRED_COLUMNS.filter((column) => !shape.columns.includes(column));
  if (missing.length > 0) {
    throw new SessionConfigError(
      'table',
      `the session table "${name}" lacks the column(s) ${missing.join(', ')}. See ${recipe} for the full table.`,
    );
  }
  const keyHasIp = shape.primaryKey.includes('ip_address');
  if (!shape.primaryKey.includes('id') || (matchIP && !keyHasIp)) {
    throw new SessionConfigError(
      'matchIP',
      `the primary key of "${name}" is (${shape.primaryKey.join(', ')}), but ${matchIP ? 'matchIP needs (id, ip_address)' : 'it must include id'}. Recreate the table from ${recipe}, or change it with ALTER TABLE … DROP PRIMARY KEY, ADD PRIMARY KEY (${matchIP ? 'id, ip_address' : 'id'}).`,
    );
  }
  return keyHasIp ? ['id', 'ip_address'] : ['id'];
}
