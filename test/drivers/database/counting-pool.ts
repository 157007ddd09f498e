import mysqlPromise from 'mysql2/promise';
import pg from 'pg';
import type { SqlDialect } from '../../../src/drivers/database.js';
import { MYSQL_URL, POSTGRES_URL } from './servers.js';

/** A real pool of one connection whose queries are counted, for statements-per-request checks. */
export interface CountingPool {
  readonly pool: pg.Pool | mysqlPromise.Pool;
  /** Queries sent since it was last set to 0. */
  statements: number;
  /** The names of the statements its (single) PostgreSQL connection has prepared. */
  preparedStatements(): Promise<string[]>;
  end(): Promise<void>;
}

export async function countingPool(dialect: SqlDialect): Promise<CountingPool> {
  const pool =
    dialect === 'postgres'
      ? new pg.Pool({ connectionString: POSTGRES_URL, max: 1 })
      : mysqlPromise.createPool({ uri: MYSQL_URL, connectionLimit: 1 });
  const counting: CountingPool = {
    pool,
    statements: 0,
    async preparedStatements() {
      if (!(pool instanceof pg.Pool)) return [];
      const { rows } = await pool.query('SELECT name FROM pg_prepared_statements');
      return rows.map((row: { name: string }) => row.name);
    },
    end: () => pool.end(),
  };
  const query = pool.query;
  pool.query = function countedQuery(this: unknown, ...args: unknown[]) {
    counting.statements += 1;
    return Reflect.apply(query, this, args);
  } as typeof pool.query;
  return counting;
}
