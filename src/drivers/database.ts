import { SessionError, SessionStoreError } from '../errors.js';
import type { DriverContext, SessionDriver, SessionStore } from './contract.js';
import {
  connect,
  type DatabaseConnection,
  planConnection,
  type SqlClient,
} from './database/connection.js';
import { openSessionTable } from './database/open-table.js';
import { lockTableName, parseTableName, type SqlDialect } from './database/schema.js';
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

export interface DatabaseDriverOptions {
  /**
   * A pg.Pool (or connected pg.Client), a mysql2 pool (callback or promise API) — keepsake never
   * ends it — or a postgres://, postgresql://, mysql:// or mariadb:// URL, from which keepsake
   * creates a pool of 10 connections and ends it when the manager shuts down.
   */
  readonly connection: DatabaseConnection;
  /** The session table (`schema.table` allowed); default `ci_sessions`. */
  readonly table?: string;
}

/** The database driver, and the SQL dialect it found its connection to speak. */
export interface DatabaseDriver extends SessionDriver {
  readonly dialect: SqlDialect;
}

/**
 * The database driver: sessions in a PostgreSQL or MySQL/MariaDB table, like CodeIgniter's
 * DatabaseHandler but with the lock in a row instead of a connection-held advisory lock.
 * `database({ connection: pool })`, or `database({ connection: 'postgres://…', table: 'sessions' })`.
 * The options are checked here, at once; the table is checked when the session manager opens the
 * driver (a missing table or column is a SessionConfigError naming `npx keepsake migration`).
 */
export function database(options: DatabaseDriverOptions): DatabaseDriver {
  const plan = planConnection(options.connection);
  const table = parseTableName(options.table ?? '');
  // PostgreSQL's lock table is `<table>_locks`: a name too long for it is refused now.
  if (plan.dialect === 'postgres') lockTableName(table);
  return {
    name: 'database',
    dialect: plan.dialect,
    async open(context: DriverContext): Promise<SessionStore> {
      let client: SqlClient | undefined;
      try {
        client = await connect(plan, context.ioTimeoutMs, context.logger);
        const sessionTable = await openSessionTable(client, table, context);
        return new DatabaseStore(sessionTable, table, context, client.end);
      } catch (error) {
        await client?.end?.().catch(() => {});
        if (error instanceof SessionError) throw error;
        throw new SessionStoreError('database', 'open', error);
      }
    },
  };
}
