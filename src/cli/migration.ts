import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  DEFAULT_TABLE,
  parseTableName,
  type SqlDialect,
  sessionTableSql,
} from '../drivers/database/schema.js';
import { SessionConfigError } from '../errors.js';

export { sessionTableSql } from '../drivers/database/schema.js';

/** Where the CLI writes; tests pass their own. */
export interface CliOutput {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Thrown for a bad command line; the entry point prints it with the usage and exits 2. */
export class UsageError extends Error {}

export const USAGE = `Usage: keepsake migration --driver postgres|mysql [--table NAME] [--match-ip] [--out DIR]
       (alias: keepsake session:migration)

Prints the CREATE TABLE statements for the database session driver (CodeIgniter's
"php spark session:migration"): the session table and its timestamp index.

Options:
  --driver postgres|mysql  the database (also: postgresql, pg, mariadb)
  --table NAME             table name, optionally schema.table (default ${DEFAULT_TABLE})
  --match-ip               primary key (id, ip_address), for the matchIP option
  --out DIR                write DIR/<YYYYMMDDHHMMSS>_create_<table>.sql instead of printing
  -h, --help               show this help
`;

const DIALECTS: Record<string, SqlDialect> = {
  postgres: 'postgres',
  postgresql: 'postgres',
  pg: 'postgres',
  mysql: 'mysql',
  mariadb: 'mysql',
};

/** The migration file's timestamp: UTC, YYYYMMDDHHMMSS. */
export function migrationStamp(date: Date): string {
  return date.toISOString().replace(/\D/g, '').slice(0, 14);
}

/** Runs `keepsake migration …` with the arguments after the command name; returns the exit code. */
export async function runMigrationCommand(
  args: readonly string[],
  output: CliOutput,
  now: Date = new Date(),
): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values } = parsed;
  if (values.help) {
    output.stdout(USAGE);
    return 0;
  }
  const dialect = values.driver === undefined ? undefined : DIALECTS[values.driver.toLowerCase()];
  if (dialect === undefined) {
    throw new UsageError(
      values.driver === undefined
        ? '--driver is required (postgres or mysql).'
        : `unknown --driver "${values.driver}"; use postgres or mysql.`,
    );
  }
  const table = values.table ?? DEFAULT_TABLE;
  try {
    parseTableName(table);
  } catch (error) {
    if (error instanceof SessionConfigError)
      throw new UsageError(
        `invalid --table "${table}": use letters, digits and "_", at most 63 characters per name (optionally schema.table).`,
      );
    throw error;
  }
  const sql = sessionTableSql({ dialect, table, matchIP: values['match-ip'] ?? false });
  if (values.out === undefined) {
    output.stdout(sql);
    return 0;
  }
  await mkdir(values.out, { recursive: true });
  const file = path.join(values.out, `${migrationStamp(now)}_create_${table}.sql`);
  await writeFile(file, sql, { flag: 'wx' });
  output.stdout(`${file}\n`);
  return 0;
}

function parse(args: readonly string[]) {
  return parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: {
      driver: { type: 'string' },
      table: { type: 'string' },
      'match-ip': { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
