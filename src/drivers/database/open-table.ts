import { SessionConfigError } from '../../errors.js';
import type { DriverContext } from '../contract.js';
import type { SqlClient } from './connection.js';
import { inspectMysqlTable, MysqlSessionTable } from './mysql.js';
import { inspectPostgresTable, PostgresSessionTable } from './postgres.js';
import { lockTableName, migrationCommand, type TableName, tableText } from './schema.js';
import type { SessionTable, TableShape } from './session-table.js';

const POSTGRES_COLUMNS = ['id', 'ip_address', 'timestamp', 'data'];
const MYSQL_COLUMNS = [...POSTGRES_COLUMNS, 'lock_token', 'lock_expires'];
/** keepsake's default maxPayloadBytes (not imported: config.ts imports the drivers). */
const DEFAULT_PAYLOAD_LIMIT = 1024 * 1024;

/**
 * Checks the session table (and its lock table) and answers its statements, aimed at its primary
 * key. A missing table, missing columns or a primary key that does not fit matchIP are a
 * SessionConfigError naming the migration command; a lock table that writes WAL works, and is
 * reported.
 */
export async function openSessionTable(
  client: SqlClient,
  table: TableName,
  context: DriverContext,
): Promise<SessionTable> {
  const { ioTimeoutMs, matchIP, logger } = context;
  const fix = migrationCommand(client.dialect, table, matchIP);
  if (client.dialect === 'postgres') {
    const shape = found(await inspectPostgresTable(client.pool, table, ioTimeoutMs), table, fix);
    const primaryKey = checkShape(shape, table, POSTGRES_COLUMNS, fix, matchIP, '');
    const locks = tableText(lockTableName(table));
    if (shape.lockTable === 'missing') {
      throw new SessionConfigError(
        'table',
        `the lock table "${locks}" of the session table "${tableText(table)}" does not exist. Create it with the SQL printed by \`${fix}\` (it is safe to run again: every statement is CREATE … IF NOT EXISTS).`,
      );
    }
    if (shape.lockTable === 'logged') {
      logger.warn(
        `keepsake: the lock table "${locks}" is not UNLOGGED, so every lock costs a WAL flush; recreate it with the SQL printed by \`${fix}\` after dropping it, or run ALTER TABLE … SET UNLOGGED.`,
      );
    }
    return new PostgresSessionTable(client.pool, table, primaryKey, ioTimeoutMs);
  }
  const shape = found(await inspectMysqlTable(client.pool, table, ioTimeoutMs), table, fix);
  checkShape(
    shape,
    table,
    MYSQL_COLUMNS,
    fix,
    matchIP,
    ' (keepsake keeps its lock in lock_token and lock_expires)',
  );
  if (shape.dataCapacity !== null && shape.dataCapacity < DEFAULT_PAYLOAD_LIMIT) {
    logger.warn(
      `keepsake: the data column of "${tableText(table)}" is ${shape.dataType}, which holds at most ${shape.dataCapacity} bytes (CodeIgniter's blob: 64 KiB); a bigger session cannot be saved. ` +
        `Widen it with ALTER TABLE ${tableText(table)} MODIFY data mediumblob NOT NULL, as \`${fix}\` creates it.`,
    );
  }
  return new MysqlSessionTable(client.pool, table, shape, ioTimeoutMs);
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

/** Throws unless the table has every column and a primary key fit for matchIP; answers that key. */
function checkShape(
  shape: TableShape,
  table: TableName,
  requiredColumns: readonly string[],
  fix: string,
  matchIP: boolean,
  lockColumnsNote: string,
): readonly string[] {
  const name = tableText(table);
  const missing = requiredColumns.filter((column) => !shape.columns.includes(column));
  if (missing.length > 0) {
    throw new SessionConfigError(
      'table',
      `the session table "${name}" lacks the column(s) ${missing.join(', ')}${lockColumnsNote}. See \`${fix}\` for the full table, and docs/drivers/database.md for the ALTER TABLE that upgrades a CodeIgniter table.`,
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
