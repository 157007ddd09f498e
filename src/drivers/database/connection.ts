import { SessionConfigError } from '../../errors.js';
import type { SessionLogger } from '../../log.js';
import { requirePeer } from '../peer.js';
import { LockConnection } from './lock-connection.js';
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

/** What keepsake uses of a pg client it keeps for session locks. */
export interface PgLockClient {
  query(config: PgQueryConfig): Promise<PgQueryResult>;
}

/** What keepsake uses of a mysql2 connection it keeps for session locks. */
export interface MysqlLockClient {
  query(options: MysqlQueryOptions): Promise<[unknown, unknown]>;
}

/** Opens one connection for session locks; `logger` hears when it ends unasked. */
export type LockConnectionOpener<Client> = (
  logger: SessionLogger,
) => Promise<LockConnection<Client>>;

/** A client ready for queries, in the dialect it speaks, and how to open its lock connections. */
export type SqlClient =
  | {
      readonly dialect: 'postgres';
      readonly pool: PgPool;
      readonly end: (() => Promise<void>) | null;
      readonly openLockConnection: LockConnectionOpener<PgLockClient>;
      /** 1 when the application passed a single pg.Client, which is the one lock connection. */
      readonly lockConnectionLimit?: number;
    }
  | {
      readonly dialect: 'mysql';
      readonly pool: MysqlPool;
      readonly end: (() => Promise<void>) | null;
      readonly openLockConnection: LockConnectionOpener<MysqlLockClient>;
      /** Fewer than the default when the application's pool is small and no count was asked for. */
      readonly lockConnectionLimit?: number;
    };

/** How to reach the database, decided from the `connection` option without any I/O. */
export type ConnectionPlan =
  | { readonly dialect: 'postgres'; readonly pool: PgPool; readonly url?: undefined }
  | { readonly dialect: 'mysql'; readonly pool: MysqlPool; readonly url?: undefined }
  | { readonly dialect: SqlDialect; readonly url: string; readonly pool?: undefined };

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
    if (mysqlPool !== null) return { dialect: 'mysql', pool: mysqlPool };
    if (isPgPool(connection)) return { dialect: 'postgres', pool: connection as unknown as PgPool };
  }
  throw new SessionConfigError(
    'connection',
    `the database driver needs a pg.Pool, a mysql2 pool, or a URL such as "postgres://user@host/db" or "mysql://user@host/db"; got ${describe(connection)}.`,
  );
}

interface PoolEvents {
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** A pg client as keepsake opens and watches it. */
interface PgClient extends PgLockClient {
  connect(): Promise<unknown>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  removeListener(event: 'error' | 'end', listener: (...args: never[]) => void): unknown;
}

interface PgModule {
  default: {
    Pool: new (config: Shape) => PgPool & PoolEvents & { end(): Promise<void> };
    Client: new (config: Shape) => PgClient;
  };
}

/** A connection taken out of a mysql2 promise pool. */
interface MysqlPooledConnection extends MysqlLockClient {
  destroy(): void;
  readonly connection: {
    on(event: 'error' | 'end', listener: (error?: Error) => void): unknown;
  };
}

interface MysqlPoolWithConnections extends MysqlPool {
  getConnection(): Promise<MysqlPooledConnection>;
}

interface Mysql2Module {
  createPool(config: Shape): MysqlPoolWithConnections & PoolEvents & { end(): Promise<void> };
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

/** Pools created from a URL have this many connections for reads and GC, besides the lock connections. */
const URL_POOL_SIZE = 10;

/**
 * How long an idle lock connection whose client vanished (a network partition, a host that died
 * without closing its sockets) keeps its locks on a PostgreSQL server: the server's TCP
 * keepalive, probing after 10 s every 5 s three times, instead of the system's two hours.
 */
const POSTGRES_KEEPALIVE =
  "SELECT set_config('tcp_keepalives_idle', '10', false), set_config('tcp_keepalives_interval', '5', false), set_config('tcp_keepalives_count', '3', false)";

/**
 * The client for a plan: the application's pool as it is, or a pool created from the URL with
 * `ioTimeoutMs` as its connect and statement timeouts (ended by `end`); and the lock connections:
 *
 * - PostgreSQL: clients of their own in pg's pipeline mode (a call's statements go out together
 *   and come back in one round trip), from the URL or from the settings of the application's pool
 *   (`pool.options`); a single connected pg.Client passed as `connection` is used as it is.
 * - MySQL/MariaDB: connections taken out of the pool (so the pool's per-connection setup applies
 *   to them too) for as long as the store is open.
 */
export async function connect(
  plan: ConnectionPlan,
  ioTimeoutMs: number,
  logger: SessionLogger,
  lockConnections: { readonly count: number; readonly asked: boolean },
): Promise<SqlClient> {
  if (plan.dialect === 'postgres') {
    if (plan.pool !== undefined) {
      return {
        dialect: 'postgres',
        pool: plan.pool,
        end: null,
        openLockConnection: postgresLockOpener(plan.pool, null),
        ...(isSingleClient(plan.pool) ? { lockConnectionLimit: 1 } : {}),
      };
    }
    const pg = await importClientPackage<PgModule>('pg');
    const settings = {
      connectionString: plan.url,
      connectionTimeoutMillis: ioTimeoutMs,
      statement_timeout: ioTimeoutMs,
    };
    const pool = new pg.default.Pool({
      ...settings,
      query_timeout: ioTimeoutMs,
      max: URL_POOL_SIZE,
    });
    // An idle pooled connection dropped by the server must not crash the process.
    pool.on('error', (error) =>
      logger.warn(`keepsake: a PostgreSQL session connection failed: ${error.message}`),
    );
    return {
      dialect: 'postgres',
      pool,
      end: () => pool.end(),
      openLockConnection: postgresLockOpener(pool, settings),
    };
  }
  if (plan.pool !== undefined) {
    const pool = plan.pool as MysqlPoolWithConnections;
    return {
      dialect: 'mysql',
      pool,
      end: null,
      openLockConnection: mysqlLockOpener(pool),
      lockConnectionLimit: mysqlLockConnections(pool, lockConnections),
    };
  }
  const mysql = await importClientPackage<Mysql2Module>('mysql2/promise');
  const pool = mysql.createPool({
    uri: plan.url,
    connectTimeout: ioTimeoutMs,
    connectionLimit: URL_POOL_SIZE + lockConnections.count,
    enableKeepAlive: true,
  });
  pool.on('error', (error) =>
    logger.warn(`keepsake: a MySQL session connection failed: ${error.message}`),
  );
  return {
    dialect: 'mysql',
    pool,
    end: () => pool.end(),
    openLockConnection: mysqlLockOpener(pool),
  };
}

/**
 * Opens PostgreSQL lock connections: with `settings` (a pool keepsake created from a URL), else
 * with the application's pool's own settings, or on the application's single pg.Client itself.
 */
function postgresLockOpener(
  pool: PgPool,
  settings: Shape | null,
): LockConnectionOpener<PgLockClient> {
  const shared = pool as unknown as Shape;
  if (settings === null && isSingleClient(pool)) {
    // A single pg.Client: its statements cannot be pipelined, and it cannot be replaced.
    const client = pool as unknown as PgClient;
    let used = false;
    return async (logger) => {
      if (used) {
        throw new Error(
          'the pg.Client passed as connection has ended; pass a pg.Pool, from which keepsake opens new lock connections',
        );
      }
      used = true;
      const onEnd = (error?: Error) => watch(connection, logger, error);
      const connection = new LockConnection<PgLockClient>(client, async () => {
        client.removeListener('error', onEnd);
        client.removeListener('end', onEnd);
      });
      client.on('error', onEnd);
      client.on('end', onEnd);
      return connection;
    };
  }
  return async (logger) => {
    const pg = await importClientPackage<PgModule>('pg');
    let config: Shape;
    if (settings !== null) {
      config = settings;
    } else {
      const options = shared.options as Shape;
      // pg-pool keeps the password (and a TLS key) out of enumeration; copy it by name.
      config = { ...options, password: options.password, query_timeout: undefined };
    }
    const client = new pg.default.Client({ ...config, pipeline: true });
    const onEnd = (error?: Error) => watch(connection, logger, error);
    const connection = new LockConnection<PgLockClient>(client, () => client.end());
    client.on('error', onEnd);
    client.on('end', onEnd);
    try {
      await client.connect();
      await client.query({ text: POSTGRES_KEEPALIVE });
    } catch (error) {
      connection.ended();
      await client.end().catch(() => {});
      throw error;
    }
    return connection;
  };
}

/** A pg.Client rather than a pg.Pool: it has no pool settings to open more connections with. */
function isSingleClient(pool: PgPool): boolean {
  const shape = pool as unknown as Shape;
  return !('options' in shape && isObject(shape.options));
}

/** Takes MySQL lock connections out of the pool, set up for the lock statements (see mysql.ts). */
function mysqlLockOpener(pool: MysqlPoolWithConnections): LockConnectionOpener<MysqlLockClient> {
  return async (logger) => {
    const pooled = await pool.getConnection();
    const connection = new LockConnection<MysqlLockClient>(pooled, async () => pooled.destroy());
    const onEnd = (error?: Error) => watch(connection, logger, error);
    pooled.connection.on('error', onEnd);
    pooled.connection.on('end', onEnd);
    try {
      // Locking reads of a missing row take gap locks only under REPEATABLE READ, and every
      // statement must commit by itself: whatever the pool's settings, these are the lock
      // connection's.
      await pooled.query({ sql: 'SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ' });
      await pooled.query({ sql: 'SET SESSION autocommit = 1' });
    } catch (error) {
      connection.ended();
      pooled.destroy();
      throw error;
    }
    return connection;
  };
}

/** Pool connections the driver leaves for reads when it sizes its lock connections itself. */
const MYSQL_POOL_KEPT_FOR_READS = 2;

/**
 * How many of a mysql2 pool's connections to keep for session locks: the count asked for, which a
 * pool too small to lend it and still serve reads refuses; or, by default, as many as the pool can
 * spare up to the default count.
 */
function mysqlLockConnections(
  pool: MysqlPool,
  lockConnections: { readonly count: number; readonly asked: boolean },
): number {
  const core = (pool as unknown as { pool?: { config?: { connectionLimit?: unknown } } }).pool;
  const limit = core?.config?.connectionLimit;
  const { count, asked } = lockConnections;
  if (typeof limit !== 'number' || limit > count) return count;
  if (!asked && limit > MYSQL_POOL_KEPT_FOR_READS)
    return Math.max(1, limit - MYSQL_POOL_KEPT_FOR_READS);
  throw new SessionConfigError(
    'lockConnections',
    `the mysql2 pool has connectionLimit ${limit}, and the database driver keeps ${count} of its connections for session locks while it is open; give the pool at least ${count + 1} connections, or lower lockConnections.`,
  );
}

/** Records that a lock connection ended, and tells the operator once what it means for its locks. */
function watch<Client>(
  connection: LockConnection<Client>,
  logger: SessionLogger,
  error: Error | undefined,
): void {
  if (!connection.alive) return;
  connection.ended();
  logger.warn(
    `keepsake: a session lock connection of the database driver closed${error === undefined ? '' : ` (${error.message})`}; ` +
      'the database released the locks it held, so the requests that held them cannot save (503), and a new connection takes the next locks.',
  );
}
