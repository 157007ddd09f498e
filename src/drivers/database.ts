import { PhpSessionStore } from '../codeigniter/php-session-store.js';
import { SessionConfigError, SessionError, SessionStoreError } from '../errors.js';
import type { DriverContext, SessionDriver, SessionStore } from './contract.js';
import {
  connect,
  type DatabaseConnection,
  planConnection,
  type SqlClient,
} from './database/connection.js';
import { LockConnections } from './database/lock-connection.js';
import { openSessionTable } from './database/open-table.js';
import { parseTableName, type SqlDialect } from './database/schema.js';
import type { SessionTable } from './database/session-table.js';
import { DatabaseStore } from './database/store.js';

export type {
  DatabaseConnection,
  MysqlCallbackPool,
  MysqlPool,
  MysqlQueryOptions,
  PgPool,
  PgQueryConfig,
  PgQueryResult,
} from './database/connection.js';
export {
  DEFAULT_TABLE,
  type SessionTableOptions,
  type SqlDialect,
  sessionTableSql,
} from './database/schema.js';

/**
 * Lock connections a store keeps unless `lockConnections` says otherwise. 8 serve more requests
 * on a busy server (docs/drivers/database.md), but every process opens them beside its pool, and
 * PostgreSQL's default max_connections is 100.
 */
export const DEFAULT_LOCK_CONNECTIONS = 4;
const MAX_LOCK_CONNECTIONS = 64;

export interface DatabaseDriverOptions {
  /**
   * A pg.Pool (or connected pg.Client), a mysql2 pool (callback or promise API) — keepsake never
   * ends it — or a postgres://, postgresql://, mysql:// or mariadb:// URL, from which keepsake
   * creates a pool and ends it when the manager shuts down.
   */
  readonly connection: DatabaseConnection;
  /** The session table (`schema.table` allowed); default `ci_sessions`. */
  readonly table?: string;
  /**
   * Connections kept open for session locks (default 4): every locked request's statements run
   * on one of them. On PostgreSQL keepsake opens them itself, with the pool's settings; on
   * MySQL/MariaDB it takes them out of the pool while the store is open (by default as many as a
   * smaller pool can spare, leaving it 2 for reads).
   */
  readonly lockConnections?: number;
  /**
   * 'keepsake' (default): JSON payloads, `timestamp` in epoch seconds (the table `npx keepsake
   * migration` prints). 'codeigniter': CodeIgniter 4.1's DatabaseHandler table as its own schema
   * creates it, shared with a running CodeIgniter app: PHP's session encoding in `data`, a
   * `timestamp` of the time type, the client's address in `ip_address`, and CodeIgniter's
   * advisory locks (`hashtext(id)`, `md5(id)`) taken (never waited for) and honoured.
   */
  readonly layout?: 'keepsake' | 'codeigniter';
}

/** The database driver, and the SQL dialect it found its connection to speak. */
export interface DatabaseDriver extends SessionDriver {
  readonly dialect: SqlDialect;
}

/**
 * The database driver: sessions in a PostgreSQL or MySQL/MariaDB table, locked like CodeIgniter's
 * DatabaseHandler with the database's named locks (advisory locks, GET_LOCK), but held by a few
 * connections of their own instead of one pooled connection per request.
 * `database({ connection: pool })`, or `database({ connection: 'postgres://…', table: 'sessions' })`.
 * The options are checked here, at once; the table is checked when the session manager opens the
 * driver (a missing table or column is a SessionConfigError naming `npx keepsake migration`).
 */
export function database(options: DatabaseDriverOptions): DatabaseDriver {
  const layout = options.layout ?? 'keepsake';
  if (layout !== 'keepsake' && layout !== 'codeigniter') {
    throw new SessionConfigError(
      'layout',
      `the database driver's layout is 'keepsake' or 'codeigniter', got ${JSON.stringify(layout)}.`,
    );
  }
  const plan = planConnection(options.connection);
  const table = parseTableName(options.table ?? '');
  const lockConnections = options.lockConnections ?? DEFAULT_LOCK_CONNECTIONS;
  if (
    !Number.isInteger(lockConnections) ||
    lockConnections < 1 ||
    lockConnections > MAX_LOCK_CONNECTIONS
  ) {
    throw new SessionConfigError(
      'lockConnections',
      `the database driver takes a whole number of lock connections from 1 to ${MAX_LOCK_CONNECTIONS}; got ${String(options.lockConnections)}.`,
    );
  }
  return {
    name: 'database',
    dialect: plan.dialect,
    async open(context: DriverContext): Promise<SessionStore> {
      let client: SqlClient | undefined;
      let connections: LockConnections<unknown> | undefined;
      try {
        client = await connect(plan, context.ioTimeoutMs, context.logger, {
          count: lockConnections,
          asked: options.lockConnections !== undefined,
        });
        const sessionTable: SessionTable<unknown> = await openSessionTable(
          client,
          table,
          context,
          layout,
        );
        connections = new LockConnections(
          Math.min(lockConnections, client.lockConnectionLimit ?? lockConnections),
          () => sessionTable.openLockConnection(),
          context.logger,
        );
        await connections.fill();
        const store = new DatabaseStore(sessionTable, connections, table, context, client.end);
        return layout === 'codeigniter' ? new PhpSessionStore(store, 'the session table') : store;
      } catch (error) {
        await connections?.close().catch(() => {});
        await client?.end?.().catch(() => {});
        if (error instanceof SessionError) throw error;
        throw new SessionStoreError('database', 'open', error);
      }
    },
  };
}
