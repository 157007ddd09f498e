import { SessionConfigError } from '../../errors.js';

/** The SQL dialects the database driver speaks. */
export type SqlDialect = 'postgres' | 'mysql';

/** What the session table's CREATE statement depends on. */
export interface SessionTableOptions {
  readonly dialect: SqlDialect;
  /** Table name, optionally schema-qualified (`app.sessions`); default `ci_sessions`. */
  readonly table?: string;
  /** Primary key (id, ip_address) instead of (id), for the `matchIP` option. */
  readonly matchIP?: boolean;
}

export const DEFAULT_TABLE = 'ci_sessions';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** A validated table name split into its optional schema and its name. */
export interface TableName {
  readonly schema: string | null;
  readonly name: string;
}

/**
 * Validates a table name (the `table` option, or `savePath` in the CodeIgniter-style
 * configuration); only plain identifiers are accepted, so quoting can never be escaped.
 */
export function parseTableName(table: string): TableName {
  const text = table === '' ? DEFAULT_TABLE : table;
  const parts = typeof text === 'string' ? text.split('.') : [];
  if (parts.length === 0 || parts.length > 2 || !parts.every((part) => IDENTIFIER.test(part))) {
    throw new SessionConfigError(
      'table',
      `the database driver takes a table name (savePath in the CodeIgniter-style configuration): letters, digits and "_", at most 63 characters, optionally "schema.table"; got ${JSON.stringify(table)}.`,
    );
  }
  const [first, second] = parts as [string, string | undefined];
  return second === undefined ? { schema: null, name: first } : { schema: first, name: second };
}

/** The identifier quoted for the dialect (safe because parseTableName allows no quote characters). */
export function quoteIdentifier(dialect: SqlDialect, identifier: string): string {
  return dialect === 'postgres' ? `"${identifier}"` : `\`${identifier}\``;
}

/** The (possibly schema-qualified) table, quoted. */
export function quoteTable(dialect: SqlDialect, table: TableName): string {
  const name = quoteIdentifier(dialect, table.name);
  return table.schema === null ? name : `${quoteIdentifier(dialect, table.schema)}.${name}`;
}

/** The table as written in messages and commands: `name` or `schema.name`. */
export function tableText(table: TableName): string {
  return table.schema === null ? table.name : `${table.schema}.${table.name}`;
}

/** The shell command that prints the CREATE TABLE statements for this table. */
export function migrationCommand(dialect: SqlDialect, table: TableName, matchIP: boolean): string {
  return `npx keepsake migration --driver ${dialect} --table ${tableText(table)}${matchIP ? ' --match-ip' : ''}`;
}

/** Longest table name whose PostgreSQL lock table name (`<name>_locks`) still fits in 63 bytes. */
const MAX_POSTGRES_TABLE = 63 - '_locks'.length;

/**
 * The PostgreSQL lock table that goes with the session table: `<table>_locks` in the same schema.
 * Throws a SessionConfigError when that name would be too long for PostgreSQL, which would
 * silently truncate it.
 */
export function lockTableName(table: TableName): TableName {
  if (table.name.length > MAX_POSTGRES_TABLE) {
    throw new SessionConfigError(
      'table',
      `on PostgreSQL the session table name may have at most ${MAX_POSTGRES_TABLE} characters, because its lock table is named "<table>_locks" and PostgreSQL cuts names at 63; "${table.name}" has ${table.name.length}.`,
    );
  }
  return { schema: table.schema, name: `${table.name}_locks` };
}

/**
 * The CREATE TABLE (and index) statements.
 *
 * PostgreSQL: the session table has CodeIgniter's columns (`timestamp` is the last write or touch
 * in epoch seconds, shifted for a session stored with a lifetime of its own: see store.ts), and
 * the locks live in a separate UNLOGGED table `<table>_locks`: taking a lock then
 * writes no WAL, so the commit of a lock-and-read statement waits for no WAL flush (an unlogged
 * table is emptied by a PostgreSQL crash, which only frees the locks). `lock_token` is the holder
 * (NULL when free), `lock_expires` the epoch milliseconds after which a crashed holder's lock
 * counts as free (or when it was released), and `version` counts changes of the lock row, so a
 * lock taker can tell whether its read is as new as the lock it took.
 *
 * MySQL/MariaDB: the lock lives in the session row (`lock_token`, `lock_expires`); `timestamp` 0
 * marks a row that only holds the lock of a session never written yet.
 */
export function sessionTableSql(options: SessionTableOptions): string {
  const table = parseTableName(options.table ?? DEFAULT_TABLE);
  const { dialect } = options;
  const q = (identifier: string) => quoteIdentifier(dialect, identifier);
  const qualified = quoteTable(dialect, table);
  const primaryKey = options.matchIP ? `${q('id')}, ${q('ip_address')}` : q('id');
  const indexName = q(`${table.name}_timestamp`);
  if (dialect === 'postgres') {
    const locks = quoteTable(dialect, lockTableName(table));
    return [
      `CREATE TABLE IF NOT EXISTS ${qualified} (`,
      `  ${q('id')} varchar(128) NOT NULL,`,
      `  ${q('ip_address')} inet NOT NULL,`,
      `  ${q('timestamp')} bigint DEFAULT 0 NOT NULL,`,
      `  ${q('data')} bytea DEFAULT '' NOT NULL,`,
      `  PRIMARY KEY (${primaryKey})`,
      ');',
      `CREATE INDEX IF NOT EXISTS ${indexName} ON ${qualified} (${q('timestamp')});`,
      `CREATE UNLOGGED TABLE IF NOT EXISTS ${locks} (`,
      `  ${q('id')} varchar(128) NOT NULL,`,
      `  ${q('ip_address')} inet NOT NULL,`,
      `  ${q('lock_token')} varchar(64) NULL,`,
      `  ${q('lock_expires')} bigint DEFAULT 0 NOT NULL,`,
      `  ${q('version')} bigint DEFAULT 0 NOT NULL,`,
      `  PRIMARY KEY (${q('id')}, ${q('ip_address')})`,
      // Room on each page for the new version of an updated row keeps lock updates HOT.
      ') WITH (fillfactor = 50);',
      '',
    ].join('\n');
  }
  return [
    `CREATE TABLE IF NOT EXISTS ${qualified} (`,
    `  ${q('id')} varchar(128) NOT NULL,`,
    `  ${q('ip_address')} varchar(45) NOT NULL,`,
    `  ${q('timestamp')} int(10) unsigned DEFAULT 0 NOT NULL,`,
    // mediumblob, not CodeIgniter's blob: blob stops at 64 KiB, which a session can outgrow.
    `  ${q('data')} mediumblob NOT NULL,`,
    `  ${q('lock_token')} varchar(64) NULL DEFAULT NULL,`,
    `  ${q('lock_expires')} bigint unsigned DEFAULT 0 NOT NULL,`,
    `  PRIMARY KEY (${primaryKey}),`,
    `  KEY ${indexName} (${q('timestamp')})`,
    ') ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin;',
    '',
  ].join('\n');
}
