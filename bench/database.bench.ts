/**
 * The database driver vs connect-pg-simple (PostgreSQL) and express-mysql-session (MariaDB), each
 * on its own table of the shared servers, with pools of the same size. extras() counts the SQL
 * statements one request costs on an uncontended session, by wrapping each pool's query().
 */
import { createRequire } from 'node:module';
import type { RequestHandler } from 'express';
import { session } from 'keepsake/express';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { sessionTableSql } from '../src/handlers/database/schema.js';
import { expressSession, keepsakeCounter, peerCounter } from './array.bench.js';
import type { BenchApp, BenchApps, BenchGroup } from './harness.js';
import { countSequentialRequests } from './sequential.js';

const require = createRequire(import.meta.url);

const POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';
const MYSQL_URL = 'mysql://root@127.0.0.1:3306/test';
const POOL_SIZE = 10;
const SEQUENTIAL_REQUESTS = 200;

/** Counts the statements sent through a pool's query(). */
interface Counted<Pool> {
  pool: Pool;
  statements(): number;
  reset(): void;
}

function counting<Pool extends { query: (...args: never[]) => unknown }>(
  pool: Pool,
): Counted<Pool> {
  let statements = 0;
  const original = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  pool.query = ((...args: unknown[]) => {
    statements += 1;
    return original(...args);
  }) as Pool['query'];
  return {
    pool,
    statements: () => statements,
    reset: () => {
      statements = 0;
    },
  };
}

const pgPool = () => counting(new pg.Pool({ connectionString: POSTGRES_URL, max: POOL_SIZE }));
const mysqlPool = () => counting(mysql.createPool({ uri: MYSQL_URL, connectionLimit: POOL_SIZE }));

interface CountedApp {
  app: BenchApp;
  counter: Counted<unknown>;
}

async function keepsakePostgres(): Promise<CountedApp> {
  const table = 'keepsake_bench_pg';
  const counted = pgPool();
  const drop = `DROP TABLE IF EXISTS ${table}, ${table}_locks`;
  await counted.pool.query(drop);
  for (const statement of sessionTableSql({ dialect: 'postgres', table }).split(';\n')) {
    if (statement.trim() !== '') await counted.pool.query(statement);
  }
  const middleware = session({ driver: 'database', connection: counted.pool, savePath: table });
  await middleware.manager.ready();
  return {
    counter: counted,
    app: {
      middleware: middleware as unknown as RequestHandler,
      ...keepsakeCounter,
      close: async () => {
        await middleware.manager.shutdown();
        await counted.pool.query(drop);
        await counted.pool.end();
      },
    },
  };
}

async function connectPgSimple(): Promise<CountedApp> {
  const table = 'keepsake_bench_cps';
  const counted = pgPool();
  await counted.pool.query(`DROP TABLE IF EXISTS ${table}`);
  const PgStore = require('connect-pg-simple')(require('express-session')) as new (
    options: object,
  ) => { close(): void };
  const store = new PgStore({
    pool: counted.pool,
    tableName: table,
    createTableIfMissing: true,
    pruneSessionInterval: false,
  });
  return {
    counter: counted,
    app: {
      middleware: expressSession(store),
      ...peerCounter,
      close: async () => {
        store.close();
        await counted.pool.query(`DROP TABLE IF EXISTS ${table}`);
        await counted.pool.end();
      },
    },
  };
}

async function keepsakeMysql(): Promise<CountedApp> {
  const table = 'keepsake_bench_my';
  const counted = mysqlPool();
  await counted.pool.query(`DROP TABLE IF EXISTS ${table}`);
  await counted.pool.query(sessionTableSql({ dialect: 'mysql', table }));
  const middleware = session({ driver: 'database', connection: counted.pool, savePath: table });
  await middleware.manager.ready();
  return {
    counter: counted,
    app: {
      middleware: middleware as unknown as RequestHandler,
      ...keepsakeCounter,
      close: async () => {
        await middleware.manager.shutdown();
        await counted.pool.query(`DROP TABLE IF EXISTS ${table}`);
        await counted.pool.end();
      },
    },
  };
}

async function expressMysqlSession(): Promise<CountedApp> {
  const table = 'keepsake_bench_ems';
  const counted = mysqlPool();
  await counted.pool.query(`DROP TABLE IF EXISTS ${table}`);
  const MySQLStore = require('express-mysql-session')(require('express-session')) as new (
    options: object,
    connection: unknown,
  ) => { onReady(): Promise<void>; close(): Promise<void> };
  const store = new MySQLStore(
    { createDatabaseTable: true, clearExpired: false, schema: { tableName: table } },
    counted.pool,
  );
  await store.onReady();
  return {
    counter: counted,
    app: {
      middleware: expressSession(store),
      ...peerCounter,
      close: async () => {
        await store.close();
        await counted.pool.query(`DROP TABLE IF EXISTS ${table}`);
        await counted.pool.end();
      },
    },
  };
}

const factories = {
  'keepsake-postgres': keepsakePostgres,
  'connect-pg-simple': connectPgSimple,
  'keepsake-mysql': keepsakeMysql,
  'express-mysql-session': expressMysqlSession,
};

export const apps: BenchApps = Object.fromEntries(
  Object.entries(factories).map(([name, factory]) => [name, async () => (await factory()).app]),
);

export const groups: BenchGroup[] = [
  {
    title: 'postgres',
    keepsake: 'keepsake-postgres',
    peer: 'connect-pg-simple',
    requires: { name: 'PostgreSQL', host: '127.0.0.1', port: 5432 },
  },
  {
    title: 'mysql',
    keepsake: 'keepsake-mysql',
    peer: 'express-mysql-session',
    requires: { name: 'MariaDB', host: '127.0.0.1', port: 3306 },
  },
];

/** SQL statements per request over sequential requests on one session. */
async function statementsPerRequest(made: CountedApp): Promise<number> {
  const statements = await countSequentialRequests(made.app, SEQUENTIAL_REQUESTS, {
    start: () => made.counter.reset(),
    stop: () => made.counter.statements(),
  });
  return statements / SEQUENTIAL_REQUESTS;
}

/** SQL statements per request on an uncontended session, for both dialects. */
export async function extras(): Promise<string[]> {
  const lines = [
    `- **SQL statements per request** (${SEQUENTIAL_REQUESTS} sequential counter requests on one session, counted by wrapping each pool's query()):`,
  ];
  for (const name of Object.keys(factories) as (keyof typeof factories)[]) {
    try {
      const perRequest = await statementsPerRequest(await factories[name]());
      const note =
        name === 'keepsake-postgres'
          ? ' (lock + read, in the UNLOGGED lock table: no WAL flush; write + unlock: one WAL flush)'
          : name === 'keepsake-mysql'
            ? ' (lock + read, write + unlock: two redo-log flushes)'
            : ' (no lock)';
      lines.push(`  ${name} **${perRequest.toFixed(2)}**${note}`);
    } catch (error) {
      lines.push(
        `  ${name}: not measured (${error instanceof Error ? error.message : String(error)})`,
      );
    }
  }
  return lines;
}
