import { SessionConfigError } from '../../errors.js';
import type { SessionLogger } from '../../log.js';
import { requirePeer } from '../peer.js';
import type { SqlDialect } from './schema.js';

/** A query as keepsake sends it to pg: named, so each connection prepares it once. */
export interface PgQueryConfig {
  readonly name?: string;
  readonly text: string;
  readonly values?: unknown[];
  /** pg abandons the query after this many milliseconds. */
  readonly query_timeout?: number;
}

export interface PgQueryResult {
  readonly rows: Record<string, unknown>[];
  readonly rowCount: number | null;
}

/** What keepsake uses of a `pg.Pool` (or a connected `pg.Client`). */
export interface PgPool {
  query(config: PgQueryConfig): Promise<PgQueryResult>;
}

export interface MysqlQueryOptions {
  readonly sql: string;
  readonly values?: unknown[];
  /** mysql2 abandons the query after this many milliseconds. */
  readonly timeout?: number;
}

/** What keepsake uses of a mysql2 promise pool (`createPool` from "mysql2/promise", or `pool.promise()`). */
export interface MysqlPool {
  query(options: MysqlQueryOptions): Promise<[unknown, unknown]>;
  /** The callback pool underneath: what tells a pool from a single connection. */
  readonly pool: object;
}

/** What keepsake uses of a mysql2 callback pool (`createPool` from "mysql2"). */
export interface MysqlCallbackPool {
  promise(): MysqlPool;
}

/**
 * What the database driver connects with: a pool (or client) the application created, which
 * keepsake never ends, or a URL from which keepsake creates a pool of its own.
 */
export type DatabaseConnection = PgPool | MysqlPool | MysqlCallbackPool | string;

/** A client ready for queries, in the dialect it speaks. */
export type SqlClient =
  | {
      readonly dialect: 'postgres';
      readonly pool: PgPool;
      readonly end: (() => Promise<void>) | null;
    }
  | {
      readonly dialect: 'mysql';
      readonly pool: MysqlPool;
      readonly end: (() => Promise<void>) | null;
    };

/** How to reach the database, decided from the `connection` option without any I/O. */
export type ConnectionPlan =
  | { readonly dialect: SqlDialect; readonly injected: SqlClient }
  | { readonly dialect: SqlDialect; readonly url: string; readonly injected?: undefined };

type Shape = Record<string, unknown>;

const isObject = (value: unknown): value is Shape => typeof value === 'object' && value !== null;

/** A pg.Pool (or pg.Client): what only pg's classes carry. */
function isPgPool(value: Shape): boolean {
  return (
    typeof value.query === 'function' &&
    ('totalCount' in value || 'connectionParameters' in value || 'idleCount' in value)
  );
}

/** A mysql2 pool, callback or promise API (both carry the pool config), as a promise pool. */
function asMysqlPool(value: Shape): MysqlPool | null {
  const core = isObject(value.pool) ? value.pool : value;
  const config = core.config;
  if (!isObject(config) || !isObject(config.connectionConfig)) return null;
  if (core === value) {
    return typeof value.promise === 'function'
      ? (value as unknown as MysqlCallbackPool).promise()
      : null;
  }
  return typeof value.query === 'function' ? (value as unknown as MysqlPool) : null;
}

function describe(connection: unknown): string {
  if (connection === undefined) return 'nothing';
  if (typeof connection === 'string')
    return 'a string that is not a postgres://, mysql:// or mariadb:// URL';
  return isObject(connection)
    ? 'an object that is neither a pg.Pool nor a mysql2 pool'
    : typeof connection;
}

/**
 * Decides from `connection` which dialect to speak and whether keepsake creates the pool. Throws
 * SessionConfigError for anything else, or for a URL whose client package is not installed.
 */
export function planConnection(connection: unknown): ConnectionPlan {
  if (typeof connection === 'string') {
    const protocol = /^([a-z]+):\/\//i.exec(connection)?.[1]?.toLowerCase();
    if (protocol === 'postgres' || protocol === 'postgresql') {
      requirePeer('pg', 'the database driver with a postgres:// URL', 'or pass your own pg.Pool');
      return { dialect: 'postgres', url: connection };
    }
    if (protocol === 'mysql' || protocol === 'mariadb') {
      requirePeer(
        'mysql2',
        'the database driver with a mysql:// URL',
        'or pass your own mysql2 pool',
      );
      return { dialect: 'mysql', url: connection.replace(/^mariadb:/i, 'mysql:') };
    }
  } else if (isObject(connection)) {
    const mysqlPool = asMysqlPool(connection);
    if (mysqlPool !== null) {
      return { dialect: 'mysql', injected: { dialect: 'mysql', pool: mysqlPool, end: null } };
    }
    if (isPgPool(connection)) {
      const pool = connection as unknown as PgPool;
      return { dialect: 'postgres', injected: { dialect: 'postgres', pool, end: null } };
    }
  }
  throw new SessionConfigError(
    'connection',
    `the database driver needs a pg.Pool, a mysql2 pool, or a URL such as "postgres://user@host/db" or "mysql://user@host/db"; got ${describe(connection)}.`,
  );
}

interface PoolEvents {
  on(event: 'error', listener: (error: Error) => void): unknown;
}

interface PgModule {
  default: { Pool: new (config: Shape) => PgPool & PoolEvents & { end(): Promise<void> } };
}

interface Mysql2Module {
  createPool(config: Shape): MysqlPool & PoolEvents & { end(): Promise<void> };
}

async function importClientPackage<Module>(name: 'pg' | 'mysql2/promise'): Promise<Module> {
  try {
    return (await import(name)) as Module;
  } catch (error) {
    const packageName = name === 'pg' ? 'pg' : 'mysql2';
    throw new SessionConfigError(
      'connection',
      `the database driver needs the "${packageName}" package for this connection, and it could not be loaded; install it with \`npm install ${packageName}\`.`,
      { cause: error },
    );
  }
}

/**
 * The client for a plan: the application's pool as it is, or a pool of 10 connections created
 * from the URL with `ioTimeoutMs` as its connect and statement timeouts (ended by `end`).
 */
export async function connect(
  plan: ConnectionPlan,
  ioTimeoutMs: number,
  logger: SessionLogger,
): Promise<SqlClient> {
  if (plan.injected !== undefined) return plan.injected;
  if (plan.dialect === 'postgres') {
    const pg = await importClientPackage<PgModule>('pg');
    const pool = new pg.default.Pool({
      connectionString: plan.url,
      connectionTimeoutMillis: ioTimeoutMs,
      query_timeout: ioTimeoutMs,
      statement_timeout: ioTimeoutMs,
      max: 10,
    });
    // An idle pooled connection dropped by the server must not crash the process.
    pool.on('error', (error) =>
      logger.warn(`keepsake: a PostgreSQL session connection failed: ${error.message}`),
    );
    return { dialect: 'postgres', pool, end: () => pool.end() };
  }
  const mysql = await importClientPackage<Mysql2Module>('mysql2/promise');
  const pool = mysql.createPool({
    uri: plan.url,
    connectTimeout: ioTimeoutMs,
    connectionLimit: 10,
    enableKeepAlive: true,
  });
  pool.on('error', (error) =>
    logger.warn(`keepsake: a MySQL session connection failed: ${error.message}`),
  );
  return { dialect: 'mysql', pool, end: () => pool.end() };
}
