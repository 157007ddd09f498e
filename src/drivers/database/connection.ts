import { SessionConfigError } from '../../errors.js';
import type { SessionLogger } from '../../log.js';
import { type MysqlQueryable, MysqlSessionStore } from './mysql.js';
import { type PgQueryable, PostgresSessionStore } from './postgres.js';
import type { TableName } from './schema.js';
import type { SessionTableStore } from './store.js';

interface StoreOptions {
  readonly connection: unknown;
  readonly table: TableName;
  readonly ioTimeoutMs: number;
  readonly logger: SessionLogger;
}

type Shape = Record<string, unknown>;

const isObject = (value: unknown): value is Shape => typeof value === 'object' && value !== null;

/** A pg.Pool (or pg.Client): what only pg's classes carry. */
function isPgClient(value: Shape): boolean {
  return (
    typeof value.query === 'function' &&
    ('totalCount' in value || 'connectionParameters' in value || 'idleCount' in value)
  );
}

/** A mysql2 pool, callback or promise API: both carry the connection config. */
function mysqlPromiseClient(value: Shape): MysqlQueryable | null {
  const core = isObject(value.pool) ? value.pool : value;
  const config = core.config;
  if (!isObject(config) || !isObject(config.connectionConfig)) return null;
  // The callback pool's promise() wrapper; a promise pool (it has .pool) is used as it is.
  if (core === value && typeof value.promise === 'function')
    return (value.promise as () => MysqlQueryable)();
  return typeof value.query === 'function' ? (value as unknown as MysqlQueryable) : null;
}

async function importDriverPackage<Module>(name: 'pg' | 'mysql2/promise'): Promise<Module> {
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

interface PgModule {
  default: { Pool: new (config: Shape) => PgQueryable & PoolEvents & { end(): Promise<void> } };
}

interface Mysql2Module {
  createPool(config: Shape): MysqlQueryable & PoolEvents & { end(): Promise<void> };
}

interface PoolEvents {
  on(event: 'error', listener: (error: Error) => void): unknown;
}

function describeConnection(connection: unknown): string {
  if (connection === undefined) return 'nothing';
  if (typeof connection === 'string')
    return 'a string that is not a postgres://, mysql:// or mariadb:// URL';
  return isObject(connection)
    ? 'an object that is neither a pg.Pool nor a mysql2 pool'
    : typeof connection;
}

/**
 * The session-table store for `connection`: a pg.Pool/pg.Client, a mysql2 pool (callback or
 * promise API), or a URL from which keepsake creates a pool it owns (and ends in shutdown()).
 */
export async function createSessionTableStore(options: StoreOptions): Promise<SessionTableStore> {
  const { connection, table, ioTimeoutMs, logger } = options;
  if (typeof connection === 'string') {
    const protocol = /^([a-z]+):\/\//i.exec(connection)?.[1]?.toLowerCase();
    if (protocol === 'postgres' || protocol === 'postgresql') {
      const pg = await importDriverPackage<PgModule>('pg');
      const pool = new pg.default.Pool({
        connectionString: connection,
        connectionTimeoutMillis: ioTimeoutMs,
        query_timeout: ioTimeoutMs,
        statement_timeout: ioTimeoutMs,
        max: 10,
      });
      // An idle pooled connection dropped by the server must not crash the process.
      pool.on('error', (error) =>
        logger.warn(`keepsake: a PostgreSQL session connection failed: ${error.message}`),
      );
      return new PostgresSessionStore({ client: pool, table, ioTimeoutMs, end: () => pool.end() });
    }
    if (protocol === 'mysql' || protocol === 'mariadb') {
      const mysql = await importDriverPackage<Mysql2Module>('mysql2/promise');
      const pool = mysql.createPool({
        uri: connection.replace(/^mariadb:/i, 'mysql:'),
        connectTimeout: ioTimeoutMs,
        connectionLimit: 10,
        enableKeepAlive: true,
      });
      pool.on('error', (error) =>
        logger.warn(`keepsake: a MySQL session connection failed: ${error.message}`),
      );
      return new MysqlSessionStore({ client: pool, table, ioTimeoutMs, end: () => pool.end() });
    }
  } else if (isObject(connection)) {
    const mysqlClient = mysqlPromiseClient(connection);
    if (mysqlClient !== null)
      return new MysqlSessionStore({ client: mysqlClient, table, ioTimeoutMs, end: null });
    if (isPgClient(connection))
      return new PostgresSessionStore({
        client: connection as unknown as PgQueryable,
        table,
        ioTimeoutMs,
        end: null,
      });
  }
  throw new SessionConfigError(
    'connection',
    `the database driver needs a pg.Pool, a mysql2 pool, or a URL such as "postgres://user@host/db" or "mysql://user@host/db"; got ${describeConnection(connection)}.`,
  );
}
