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
   * 'keepsake' (default): JSON payloads and keepsake's locks, on the table `npx keepsake
   * migration` prints (`timestamp` in Unix seconds) or on CodeIgniter 4's table as it is
   * (`timestamp` of a date/time type, the client's address in `ip_address`). 'codeigniter':
   * CodeIgniter 4's DatabaseHandler table shared with a running CodeIgniter app: PHP's session
   * encoding in `data`, and CodeIgniter's advisory locks (`hashtext(id)`, `md5(id)`) taken (never
   * waited for) and honoured; a table keeping `timestamp` in Unix seconds is refused, as
   * CodeIgniter could not read it.
   */
  readonly layout?: 'keepsake' | 'codeigniter';
  /**
   * Put before the session ID in the `id` column (default '': the bare ID, as CodeIgniter 4.1 and
   * earlier store it). CodeIgniter 4.3 and later store `<cookieName>:<id>`: share their table with
   * `idPrefix: 'ci_session:'` (their cookie name and a colon). Printable ASCII without spaces, at
   * most 64 characters, so that it and an ID fit the varchar(128) column. Locks follow the layout:
   * CodeIgniter's are named after the bare ID, as CodeIgniter names them; keepsake's after the
   * stored ID, so that two prefixes sharing a table never wait for each other.
   */
  readonly idPrefix?: string;
}

/** The longest idPrefix: the id column is varchar(128), and IDs of up to 64 characters must fit beside it. */
const MAX_ID_PREFIX = 64;
const ID_PREFIX = /^[!-~]*$/;

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
 * driver (a missing table or column is a SessionConfigError naming `npx keepsake migration`, or
 * CodeIgniter's table in its layout).
 */
export function database(options: DatabaseDriverOptions): DatabaseDriver {
  const layout = options.layout ?? 'keepsake';
  if (layout !== 'keepsake' && layout !== 'codeigniter') {
    throw new SessionConfigError(
      'layout',
      `the database driver's layout is 'keepsake' or 'codeigniter', got ${JSON.stringify(layout)}.`,
    );
  }
  const idPrefix = options.idPrefix ?? '';
  if (
    typeof idPrefix !== 'string' ||
    !ID_PREFIX.test(idPrefix) ||
    idPrefix.length > MAX_ID_PREFIX
  ) {
    throw new SessionConfigError(
      'idPrefix',
      `the database driver's idPrefix is printable ASCII without spaces, at most ${MAX_ID_PREFIX} characters (CodeIgniter 4.3+: '<cookieName>:'); got ${JSON.stringify(options.idPrefix)}.`,
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
        const store = new DatabaseStore(sessionTable, connections, table, context, client.end, {
          idPrefix,
          layout,
        });
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
