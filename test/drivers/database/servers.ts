/** Shared setup of the database driver tests: URLs of the machine's servers and table helpers. */
import mysql from 'mysql2/promise';
import pg from 'pg';
import { type SqlDialect, sessionTableSql } from '../../../src/drivers/database.js';

export const POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';
export const MYSQL_URL = 'mysql://root@127.0.0.1:3306/test';

export const urlOf = (dialect: SqlDialect) => (dialect === 'postgres' ? POSTGRES_URL : MYSQL_URL);

/** The machine's two database servers: dialect, name for messages, port. */
export const DATABASE_SERVERS: readonly [SqlDialect, string, number][] = [
  ['postgres', 'PostgreSQL', 5432],
  ['mysql', 'MariaDB', 3306],
];

/** Runs SQL (several statements separated by ";\n" allowed) on a short-lived connection. */
export async function runSql(dialect: SqlDialect, sql: string): Promise<void> {
  const statements = sql
    .split(/;\s*\n/)
    .map((statement) => statement.trim())
    .filter((statement) => statement !== '');
  if (dialect === 'postgres') {
    const client = new pg.Client({
      connectionString: POSTGRES_URL,
      connectionTimeoutMillis: 5_000,
    });
    await client.connect();
    try {
      for (const statement of statements) await client.query(statement);
    } finally {
      await client.end();
    }
    return;
  }
  const connection = await mysql.createConnection({ uri: MYSQL_URL, connectTimeout: 5_000 });
  try {
    for (const statement of statements) await connection.query(statement);
  } finally {
    await connection.end();
  }
}

/** Creates a fresh session table (dropping an old one of the same name). */
export async function createTable(
  dialect: SqlDialect,
  table: string,
  matchIP: boolean,
): Promise<void> {
  await dropTable(dialect, table);
  await runSql(dialect, sessionTableSql({ dialect, table, matchIP }));
}

/** Drops a session table and its PostgreSQL lock table. */
export async function dropTable(dialect: SqlDialect, table: string): Promise<void> {
  await runSql(dialect, `DROP TABLE IF EXISTS ${table}, ${table}_locks`);
}

/** Rows of the PostgreSQL lock table, or of the session table on MySQL (where locks live). */
export const lockRowsTable = (dialect: SqlDialect, table: string) =>
  dialect === 'postgres' ? `${table}_locks` : table;

/** Rows of the table, for assertions about what is stored. */
export async function countRows(dialect: SqlDialect, table: string): Promise<number> {
  if (dialect === 'postgres') {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    try {
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM ${table}`);
      return (rows[0] as { n: number }).n;
    } finally {
      await client.end();
    }
  }
  const connection = await mysql.createConnection({ uri: MYSQL_URL });
  try {
    const [rows] = await connection.query(`SELECT count(*) AS n FROM ${table}`);
    return Number((rows as { n: number }[])[0]?.n);
  } finally {
    await connection.end();
  }
}

/** Rows a query answers (one statement, with parameters), on a short-lived connection. */
export async function queryRows(
  dialect: SqlDialect,
  sql: string,
  values: unknown[] = [],
): Promise<Record<string, unknown>[]> {
  if (dialect === 'postgres') {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    try {
      return (await client.query(sql, values)).rows as Record<string, unknown>[];
    } finally {
      await client.end();
    }
  }
  const connection = await mysql.createConnection({ uri: MYSQL_URL });
  try {
    const [rows] = await connection.query(sql, values);
    return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
  } finally {
    await connection.end();
  }
}

/** The session table's placeholder for "no IP" (matchIP off), as the driver stores it. */
export const NO_IP = '0.0.0.0';

/** `?` or `$n` placeholders, as the dialect's client wants them. */
export const placeholder = (dialect: SqlDialect, position: number) =>
  dialect === 'postgres' ? `$${position}` : '?';
