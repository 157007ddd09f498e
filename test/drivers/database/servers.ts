/** Shared setup of the database driver tests: URLs of the machine's servers and table helpers. */
import mysql from 'mysql2/promise';
import pg from 'pg';
import { sessionLockKey } from '../../../src/drivers/database/lock-key.js';
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

/** Drops a session table (and the lock table an earlier keepsake version made beside it). */
export async function dropTable(dialect: SqlDialect, table: string): Promise<void> {
  await runSql(dialect, `DROP TABLE IF EXISTS ${table}, ${table}_locks`);
}

/**
 * The server-side ID of the connection holding a session's lock (PostgreSQL backend pid, MySQL
 * connection ID), or null when nobody holds it.
 */
export async function lockHolder(
  dialect: SqlDialect,
  sessionId: string,
  ip = NO_IP,
): Promise<number | null> {
  const key = { id: sessionId, ip };
  if (dialect === 'postgres') {
    // The one-bigint form shows in pg_locks as its high and low 32 bits, objsubid 1.
    const lock = BigInt.asUintN(
      64,
      BigInt(sessionLockKey('postgres', 'keepsake', false, key).values[0] ?? 0),
    );
    const rows = await queryRows(
      dialect,
      `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
         AND classid = $1 AND objid = $2
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [Number(lock >> 32n), Number(lock & 0xffffffffn)],
    );
    return rows[0] === undefined ? null : Number(rows[0].pid);
  }
  const rows = await queryRows(dialect, 'SELECT IS_USED_LOCK(?) AS holder', [
    sessionLockKey('mysql', 'keepsake', false, key).name,
  ]);
  return rows[0]?.holder === null || rows[0] === undefined ? null : Number(rows[0].holder);
}

/** Ends another connection from the server side, as a network failure or a DBA would. */
export async function killConnection(dialect: SqlDialect, id: number): Promise<void> {
  await runSql(
    dialect,
    dialect === 'postgres' ? `SELECT pg_terminate_backend(${id})` : `KILL ${id}`,
  );
}

/** Waits (at most 10 s) until nobody holds the session's lock on the server. */
export async function untilLockFree(dialect: SqlDialect, sessionId: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await lockHolder(dialect, sessionId)) !== null) {
    if (Date.now() > deadline) throw new Error(`the lock of ${sessionId} was never released`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

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
