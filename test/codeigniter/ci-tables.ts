/**
 * CodeIgniter 4.1's user guide session tables (the ID is the key; with sessionMatchIP, the ID and
 * the address): their SQL, and the same under a fresh name per call, for the tests that run
 * CodeIgniter's DatabaseHandler.
 */
import { randomBytes } from 'node:crypto';
import type mysql from 'mysql2/promise';
import type pg from 'pg';

const freshName = () => `keepsake_ci_${randomBytes(4).toString('hex')}`;

const primaryKey = (matchIP: boolean, quote: string) =>
  matchIP ? `${quote}id${quote}, ${quote}ip_address${quote}` : `${quote}id${quote}`;

/** CodeIgniter's table on PostgreSQL: its CREATE TABLE and CREATE INDEX, separated by ";\n". */
export function postgresCodeIgniterTableSql(table: string, matchIP = false): string {
  return `CREATE TABLE "${table}" (
    "id" varchar(128) NOT NULL,
    "ip_address" inet NOT NULL,
    "timestamp" timestamptz DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "data" bytea DEFAULT '' NOT NULL,
    PRIMARY KEY (${primaryKey(matchIP, '"')}));
  CREATE INDEX "${table}_timestamp" ON "${table}" ("timestamp")`;
}

/** CodeIgniter's table on MySQL/MariaDB. */
export function mysqlCodeIgniterTableSql(table: string, matchIP = false): string {
  return `CREATE TABLE \`${table}\` (
    \`id\` varchar(128) NOT NULL,
    \`ip_address\` varchar(45) NOT NULL,
    \`timestamp\` timestamp DEFAULT CURRENT_TIMESTAMP NOT NULL,
    \`data\` blob NOT NULL,
    PRIMARY KEY (${primaryKey(matchIP, '`')}),
    KEY \`${table}_timestamp\` (\`timestamp\`))`;
}

export async function createPostgresCodeIgniterTable(
  client: pg.Client,
  matchIP = false,
): Promise<string> {
  const table = freshName();
  for (const statement of postgresCodeIgniterTableSql(table, matchIP).split(';\n')) {
    await client.query(statement);
  }
  return table;
}

export async function createMysqlCodeIgniterTable(
  connection: mysql.Connection,
  matchIP = false,
): Promise<string> {
  const table = freshName();
  await connection.query(mysqlCodeIgniterTableSql(table, matchIP));
  return table;
}
