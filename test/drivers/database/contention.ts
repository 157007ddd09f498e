/**
 * Real lock conflicts for the transient-error tests: a second connection (the contender) holds
 * rows in an open transaction, and triggers on a private session table make one of keepsake's
 * statements need those rows, so the servers raise genuine deadlocks and lock-wait timeouts.
 */
import mysqlPromise from 'mysql2/promise';
import pg from 'pg';
import type { SqlDialect } from '../../../src/drivers/database.js';
import { MYSQL_URL, POSTGRES_URL, runSql } from './servers.js';

/** A payload containing this makes the session table's update trigger touch side row 1. */
export const WRITE_MARKER = 'write-deadlock';
/** A stored session containing this makes the session table's delete trigger touch side row 1. */
export const DELETE_MARKER = 'gc-deadlock';
/** Rows of the side table the contender updates: many more than keepsake's statement changes. */
const SIDE_ROWS = 50;

const sideTable = (table: string) => `${table}_side`;

/**
 * Adds the side table and the triggers to `table`: an update whose new data holds WRITE_MARKER,
 * and a delete of a row whose data holds DELETE_MARKER, first update side row 1.
 */
export async function installTriggers(dialect: SqlDialect, table: string): Promise<void> {
  const side = sideTable(table);
  if (dialect === 'mysql') {
    const connection = await mysqlPromise.createConnection({ uri: MYSQL_URL });
    try {
      await connection.query(`DROP TABLE IF EXISTS ${side}`);
      await connection.query(
        `CREATE TABLE ${side} (id int PRIMARY KEY, n int NOT NULL) ENGINE=InnoDB`,
      );
      const rows = Array.from({ length: SIDE_ROWS }, (_, index) => `(${index + 1}, 0)`).join(', ');
      await connection.query(`INSERT INTO ${side} VALUES ${rows}`);
      await connection.query(
        `CREATE TRIGGER ${table}_on_write BEFORE UPDATE ON ${table} FOR EACH ROW
         BEGIN
           IF NEW.data <> OLD.data AND NEW.data LIKE '%${WRITE_MARKER}%' THEN
             UPDATE ${side} SET n = n + 1 WHERE id = 1;
           END IF;
         END`,
      );
      await connection.query(
        `CREATE TRIGGER ${table}_on_delete BEFORE DELETE ON ${table} FOR EACH ROW
         BEGIN
           IF OLD.data LIKE '%${DELETE_MARKER}%' THEN
             UPDATE ${side} SET n = n + 1 WHERE id = 1;
           END IF;
         END`,
      );
    } finally {
      await connection.end();
    }
    return;
  }
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(`DROP TABLE IF EXISTS ${side}`);
    await client.query(`CREATE TABLE ${side} (id int PRIMARY KEY, n int NOT NULL)`);
    await client.query(`INSERT INTO ${side} SELECT g, 0 FROM generate_series(1, ${SIDE_ROWS}) g`);
    await client.query(
      `CREATE OR REPLACE FUNCTION ${table}_contend() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP = 'UPDATE' THEN
           IF NEW.data <> OLD.data AND position('${WRITE_MARKER}' in convert_from(NEW.data, 'UTF8')) > 0 THEN
             UPDATE ${side} SET n = n + 1 WHERE id = 1;
           END IF;
           RETURN NEW;
         END IF;
         IF position('${DELETE_MARKER}' in convert_from(OLD.data, 'UTF8')) > 0 THEN
           UPDATE ${side} SET n = n + 1 WHERE id = 1;
         END IF;
         RETURN OLD;
       END $$`,
    );
    await client.query(
      `CREATE TRIGGER ${table}_contend BEFORE UPDATE OR DELETE ON ${table}
       FOR EACH ROW EXECUTE FUNCTION ${table}_contend()`,
    );
  } finally {
    await client.end();
  }
}

/** Drops the side table and the trigger function (the triggers go with the session table). */
export async function removeTriggers(dialect: SqlDialect, table: string): Promise<void> {
  await runSql(dialect, `DROP TABLE IF EXISTS ${sideTable(table)}`);
  if (dialect === 'postgres') await runSql(dialect, `DROP FUNCTION IF EXISTS ${table}_contend()`);
}

/** Another connection of the test, with a transaction kept open across calls. */
export interface Contender {
  /** Begins a transaction holding every side row, keepsake's trigger among them. */
  holdSideRows(): Promise<void>;
  /** Runs a statement in the open transaction. */
  query(sql: string, values?: unknown[]): Promise<void>;
  /** Resolves once another connection waits for a lock this one holds. */
  untilSomeoneWaits(): Promise<void>;
  /** Locks the session row `id` (waiting for whoever holds it): closes a deadlock cycle. */
  lockSessionRow(id: string): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  end(): Promise<void>;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const WAIT_BOUND_MS = 10_000;

export async function contender(dialect: SqlDialect, table: string): Promise<Contender> {
  const side = sideTable(table);
  if (dialect === 'mysql') {
    const connection = await mysqlPromise.createConnection({ uri: MYSQL_URL });
    const query = async (sql: string, values: unknown[] = []) => {
      await connection.query(sql, values);
    };
    return {
      // InnoDB makes the transaction with fewer changes the deadlock victim: keepsake's statement.
      holdSideRows: async () => {
        await query('BEGIN');
        await query(`UPDATE ${side} SET n = n + 1`);
      },
      query,
      untilSomeoneWaits: async () => {
        const deadline = Date.now() + WAIT_BOUND_MS;
        for (;;) {
          const [rows] = await connection.query(
            `SELECT COUNT(*) AS waiting FROM information_schema.INNODB_LOCK_WAITS w
             JOIN information_schema.INNODB_TRX t ON t.trx_id = w.blocking_trx_id
             WHERE t.trx_mysql_thread_id = CONNECTION_ID()`,
          );
          if (Number((rows as { waiting: number }[])[0]?.waiting) > 0) return;
          if (Date.now() > deadline) throw new Error('no statement waited for the contender');
          // InnoDB refreshes these tables only when they were not read for 100 ms.
          await pause(150);
        }
      },
      lockSessionRow: (id) => query(`SELECT id FROM ${table} WHERE id = ? FOR UPDATE`, [id]),
      commit: () => query('COMMIT'),
      rollback: () => query('ROLLBACK'),
      end: () => connection.end(),
    };
  }
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  const query = async (sql: string, values: unknown[] = []) => {
    await client.query(sql, values);
  };
  const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
  const pid = (rows[0] as { pid: number }).pid;
  return {
    // PostgreSQL aborts the backend whose deadlock_timeout check runs first. keepsake's
    // connections have the server's (1 s); this one waits 10 s before checking.
    holdSideRows: async () => {
      await query('BEGIN');
      await query(`SET LOCAL deadlock_timeout = '10s'`);
      await query(`UPDATE ${side} SET n = n + 1`);
    },
    query,
    untilSomeoneWaits: async () => {
      const deadline = Date.now() + WAIT_BOUND_MS;
      for (;;) {
        const waiting = await client.query(
          `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND $1 = ANY(pg_blocking_pids(pid))`,
          [pid],
        );
        if (waiting.rows.length > 0) return;
        if (Date.now() > deadline) throw new Error('no statement waited for the contender');
        await pause(20);
      }
    },
    lockSessionRow: (id) => query(`SELECT 1 FROM ${table} WHERE id = $1 FOR UPDATE`, [id]),
    commit: () => query('COMMIT'),
    rollback: () => query('ROLLBACK'),
    end: () => client.end(),
  };
}
