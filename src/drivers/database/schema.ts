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

/**
 * Where the full session table of a layout is found, for messages that ask for it to be created
 * or changed: the SQL `npx keepsake migration` prints, or CodeIgniter's own table.
 */
export function tableRecipe(
  layout: 'keepsake' | 'codeigniter',
  dialect: SqlDialect,
  table: TableName,
  matchIP: boolean,
): string {
  return layout === 'codeigniter'
    ? 'the CREATE TABLE of CodeIgniter\'s user guide, which keepsake\'s docs/codeigniter.md ("Run CodeIgniter and Node side by side") shows'
    : `the SQL printed by \`${migrationCommand(dialect, table, matchIP)}\``;
}

/**
 * The CREATE TABLE (and index) statements: CodeIgniter's columns, where `timestamp` is the last
 * write or touch in epoch seconds, shifted for a session stored with a lifetime of its own (see
 * store.ts). The locks are the database's named locks, so the table has no lock column and no
 * lock table: `data` is `bytea` on PostgreSQL (the payload byte for byte) and `mediumblob` on
 * MySQL (CodeIgniter's `blob` stops at 64 KiB), and the MySQL table compares IDs exactly (binary
 * collation).
 */
export function sessionTableSql(options: SessionTableOptions): string {
  const table = parseTableName(options.table ?? DEFAULT_TABLE);
  const { dialect } = options;
  const q = (identifier: string) => quoteIdentifier(dialect, identifier);
  const qualified = quoteTable(dialect, table);
  const primaryKey = options.matchIP ? `${q('id')}, ${q('ip_address')}` : q('id');
  const indexName = q(`${table.name}_timestamp`);
  if (dialect === 'postgres') {
    return [
      `CREATE TABLE IF NOT EXISTS ${qualified} (`,
      `  ${q('id')} varchar(128) NOT NULL,`,
      `  ${q('ip_address')} inet NOT NULL,`,
      `  ${q('timestamp')} bigint DEFAULT 0 NOT NULL,`,
      `  ${q('data')} bytea DEFAULT '' NOT NULL,`,
      `  PRIMARY KEY (${primaryKey})`,
      ');',
      `CREATE INDEX IF NOT EXISTS ${indexName} ON ${qualified} (${q('timestamp')});`,
      '',
    ].join('\n');
  }
  return [
    `CREATE TABLE IF NOT EXISTS ${qualified} (`,
    `  ${q('id')} varchar(128) NOT NULL,`,
    `  ${q('ip_address')} varchar(45) NOT NULL,`,
    `  ${q('timestamp')} int(10) unsigned DEFAULT 0 NOT NULL,`,
    `  ${q('data')} mediumblob NOT NULL,`,
    `  PRIMARY KEY (${primaryKey}),`,
    `  KEY ${indexName} (${q('timestamp')})`,
    ') ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin;',
    '',
  ].join('\n');
}
