import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2';
import mysqlPromise from 'mysql2/promise';
import pg from 'pg';
import type { DriverContext, SessionStore } from '../../src/drivers/contract.js';
import { type DatabaseConnection, database, type SqlDialect } from '../../src/drivers/database.js';
import { SessionConfigError, SessionStoreError } from '../../src/errors.js';
import { createSessionId } from '../../src/id.js';
import { delay, lock, newToken, protocolFor, put } from '../../src/testing/conformance-store.js';
import { openStore } from '../../src/testing/index.js';
import { serviceSkip } from '../helpers/services.js';
import {
  countRows,
  createTable,
  DATABASE_SERVERS,
  dropTable,
  lockRowsTable,
  MYSQL_URL,
  POSTGRES_URL,
  runSql,
  urlOf,
} from './database/servers.js';

const servers = DATABASE_SERVERS;

const newKey = () => ({ id: createSessionId(), ip: null });

describe('database driver configuration (no server needed)', () => {
  it('rejects a table that is not a table name when the driver is created', () => {
    assert.throws(
      () => database({ connection: POSTGRES_URL, table: 'sessions; DROP TABLE users' }),
      (error: unknown) =>
        error instanceof SessionConfigError &&
        error.option === 'table' &&
        /table name/.test(error.message),
    );
  });

  for (const connection of [undefined, 'redis://127.0.0.1', { query: () => {} }, 42]) {
    it(`rejects ${JSON.stringify(connection) ?? 'a missing connection'} as connection`, () => {
      assert.throws(
        () => database({ connection: connection as unknown as DatabaseConnection }),
        (error: unknown) =>
          error instanceof SessionConfigError &&
          error.option === 'connection' &&
          /pg\.Pool, a mysql2 pool, or a URL/.test(error.message),
      );
    });
  }

  it('types connection as a pg or mysql2 pool or a URL, so another object does not compile', async () => {
    assert.throws(
      // @ts-expect-error: an object with a query() that is neither pg's nor mysql2's
      () => database({ connection: { query: () => {} } }),
      SessionConfigError,
    );
    // @ts-expect-error: a mysql2 single connection is no pool
    const single: DatabaseConnection = null as unknown as mysql.Connection;
    assert.equal(single, null);
    // Pools connect on their first query: these never do, and are only ended.
    const pgPool = new pg.Pool({ connectionString: POSTGRES_URL }) satisfies DatabaseConnection;
    const pgClient = new pg.Client({ connectionString: POSTGRES_URL }) satisfies DatabaseConnection;
    const callbackPool = mysql.createPool({ uri: MYSQL_URL }) satisfies DatabaseConnection;
    const promisePool = mysqlPromise.createPool({ uri: MYSQL_URL }) satisfies DatabaseConnection;
    const wrappedPool = mysql.createPool({ uri: MYSQL_URL }).promise() satisfies DatabaseConnection;
    try {
      assert.equal(database({ connection: pgPool }).dialect, 'postgres');
      assert.equal(database({ connection: pgClient }).dialect, 'postgres');
      assert.equal(database({ connection: callbackPool }).dialect, 'mysql');
      assert.equal(database({ connection: promisePool }).dialect, 'mysql');
      assert.equal(database({ connection: wrappedPool }).dialect, 'mysql');
      assert.equal(database({ connection: 'mariadb://root@127.0.0.1/test' }).dialect, 'mysql');
      assert.equal(
        database({ connection: 'postgresql://postgres@127.0.0.1/test' }).dialect,
        'postgres',
      );
    } finally {
      await pgPool.end();
      await new Promise<void>((resolve) => callbackPool.end(() => resolve()));
      await promisePool.end();
      await wrappedPool.end();
    }
  });

  it('refuses, on PostgreSQL, a table name too long for its lock table when the driver is created', () => {
    assert.throws(
      () => database({ connection: POSTGRES_URL, table: 'x'.repeat(58) }),
      (error: unknown) =>
        error instanceof SessionConfigError && /at most 57 characters/.test(error.message),
    );
  });
});

for (const [dialect, label, port] of servers) {
  const skip = await serviceSkip(label, '127.0.0.1', port);
  const suffix = dialect === 'postgres' ? 'pg' : 'my';
  const table = `keepsake_drv_${suffix}`;
  describe(`database driver on ${label}: setup errors, pools, locks`, { skip }, () => {
    const opened: SessionStore[] = [];
    const open = async (overrides: Partial<DriverContext> = {}, tableName = table) => {
      const harness = await openStore(
        {
          driver: () => database({ connection: urlOf(dialect), table: tableName }),
          expiry: 'clock',
        },
        overrides,
      );
      opened.push(harness.store);
      return harness;
    };
    /** Empties the session table (and lock table), for tests that count every row. */
    const emptyTable = () =>
      runSql(
        dialect,
        dialect === 'postgres'
          ? `DELETE FROM ${table};\nDELETE FROM ${table}_locks`
          : `DELETE FROM ${table}`,
      );

    after(async () => {
      for (const store of opened) await store.close().catch(() => {});
      for (const name of [table, `${table}_ci`, `${table}_gone`]) await dropTable(dialect, name);
    });

    before(() => createTable(dialect, table, false));

    it('names the migration command when the table does not exist', async () => {
      await assert.rejects(
        open({}, `${table}_missing`),
        (error: unknown) =>
          error instanceof SessionConfigError &&
          error.option === 'table' &&
          error.message.includes(
            `npx keepsake migration --driver ${dialect} --table ${table}_missing`,
          ),
      );
    });

    it(
      dialect === 'postgres'
        ? 'names the missing lock table of a CodeIgniter table'
        : 'says which lock columns a CodeIgniter table lacks',
      async () => {
        const ciTable = `${table}_ci`;
        await runSql(
          dialect,
          `CREATE TABLE ${ciTable} (id varchar(128) NOT NULL, ip_address varchar(45) NOT NULL, timestamp bigint DEFAULT 0 NOT NULL, data text NOT NULL, PRIMARY KEY (id))`,
        );
        const expected =
          dialect === 'postgres'
            ? new RegExp(`lock table "${ciTable}_locks" .* does not exist.*npx keepsake migration`)
            : /lock_token, lock_expires/;
        await assert.rejects(
          open({}, ciTable),
          (error: unknown) => error instanceof SessionConfigError && expected.test(error.message),
        );
      },
    );

    if (dialect === 'mysql') {
      it('refuses a mysql2 single connection: the driver needs a pool', async () => {
        const single = mysql.createConnection({ uri: MYSQL_URL });
        try {
          assert.throws(
            () => database({ connection: single as unknown as DatabaseConnection }),
            (error: unknown) =>
              error instanceof SessionConfigError && error.option === 'connection',
          );
        } finally {
          await single.promise().end();
        }
      });
    }

    it('refuses matchIP on a table keyed by id alone', async () => {
      await assert.rejects(
        open({ matchIP: true }),
        (error: unknown) =>
          error instanceof SessionConfigError &&
          error.option === 'matchIP' &&
          error.message.includes('--match-ip'),
      );
    });

    it('reports a table dropped at run time as a store error naming the command', async () => {
      const goneTable = `${table}_gone`;
      await createTable(dialect, goneTable, false);
      const harness = await open({}, goneTable);
      await dropTable(dialect, goneTable);
      const command = `npx keepsake migration --driver ${dialect} --table ${goneTable}`;
      await assert.rejects(
        harness.store.peek(newKey()),
        (error: unknown) => error instanceof Error && error.message.includes(command),
      );
      // What a client may be shown names neither the table nor SQL; the log gets the command.
      await assert.rejects(protocolFor(harness).peek(newKey()), (error: unknown) => {
        assert.ok(error instanceof SessionStoreError);
        assert.equal(error.status, 503);
        assert.ok(!error.message.includes(goneTable), error.message);
        assert.ok(error.cause instanceof Error && error.cause.message.includes(command));
        return true;
      });
    });

    it('does not count the lock of a new session as a stored session, and a discarding unlock removes it', async () => {
      await emptyTable();
      const { store } = await open();
      const { store: other } = await open();
      const fresh = newKey();
      const held = await lock(store, fresh);
      assert.equal(held.payload, null);
      assert.equal(await other.peek(fresh), null);
      assert.deepEqual(await other.lockAndRead(fresh, newToken()), { locked: false });
      assert.equal(await countRows(dialect, lockRowsTable(dialect, table)), 1, 'the lock row');
      await store.unlock(fresh, held.token, true);
      assert.equal(await countRows(dialect, table), 0);
      assert.equal(await countRows(dialect, lockRowsTable(dialect, table)), 0);
    });

    it('gc keeps an expired row while its lock is held, and the discarding unlock then removes it', async () => {
      await emptyTable();
      const harness = await open({ lifetimeSeconds: 60 });
      const { store, clock } = harness;
      const stale = newKey();
      await put(harness, stale, '{"old":1}');
      clock.advance(200);
      const held = await lock(store, stale);
      assert.equal(held.payload, null, 'an expired session reads as empty');
      assert.equal(await store.gc?.(60), 0);
      assert.equal(await countRows(dialect, table), 1);
      await store.unlock(stale, held.token, true);
      assert.equal(await countRows(dialect, table), 0);
    });

    it('gc removes lock rows unused for the whole lifetime, and no held one', async () => {
      await emptyTable();
      const harness = await open({ lifetimeSeconds: 60 });
      const { store, clock } = harness;
      const idle = newKey();
      const busy = newKey();
      await put(harness, idle, '{"idle":1}');
      await put(harness, busy, '{"busy":1}');
      const held = await lock(store, busy);
      clock.advance(200);
      // Released lock rows are stamped with Date.now(); the purge takes those stamped before now.
      await delay(5);
      assert.equal(await store.gc?.(60), 1, 'the idle session goes, the held one stays');
      assert.equal(await countRows(dialect, table), 1);
      if (dialect === 'postgres') assert.equal(await countRows(dialect, `${table}_locks`), 1);
      await store.unlock(busy, held.token, false);
      const again = await lock(store, busy);
      assert.equal(await store.destroyAndUnlock(busy, again.token), true);
    });

    if (dialect === 'postgres') {
      it('creates the lock table UNLOGGED', async () => {
        const client = new pg.Client({ connectionString: POSTGRES_URL });
        await client.connect();
        try {
          const { rows } = await client.query(
            `SELECT relpersistence FROM pg_class WHERE oid = to_regclass('${table}_locks')`,
          );
          assert.deepEqual(rows, [{ relpersistence: 'u' }]);
        } finally {
          await client.end();
        }
      });

      it('reads a write committed while its lock statement waited, not its older snapshot', async () => {
        const harness = await open();
        const { store } = harness;
        const session = newKey();
        await put(harness, session, '{"n":1}');
        // Another holder's write + release, kept open so the next lock statement starts (taking
        // its snapshot) before it commits, and waits for it on the lock row.
        const writer = new pg.Client({ connectionString: POSTGRES_URL });
        await writer.connect();
        try {
          await writer.query('BEGIN');
          await writer.query(`UPDATE ${table} SET data = $1 WHERE id = $2`, [
            Buffer.from('{"n":2}'),
            session.id,
          ]);
          await writer.query(`UPDATE ${table}_locks SET version = version + 1 WHERE id = $1`, [
            session.id,
          ]);
          const token = newToken();
          const reading = store.lockAndRead(session, token);
          await untilWaiting(writer);
          await writer.query('COMMIT');
          const second = await reading;
          assert.deepEqual(second, { locked: true, payload: '{"n":2}' });
          await store.unlock(session, token, false);
        } finally {
          await writer.query('ROLLBACK').catch(() => {});
          await writer.end();
        }
        const last = await lock(store, session);
        await store.destroyAndUnlock(session, last.token);
      });
    }

    it('takes over the lock of a holder that died without releasing it, once lockTtl has passed', async () => {
      const crashed = await open({ lockTtlMs: 300 });
      const survivor = await open({ lockTtlMs: 300 });
      const session = newKey();
      await put(crashed, session, '{"n":1}');
      await lock(crashed.store, session);
      await crashed.store.close(); // its pool ends without releasing, as a crash would
      const taken = await protocolFor(survivor).acquire(session, 3_000);
      assert.equal(taken.payload, '{"n":1}');
      await protocolFor(survivor).destroy(taken.lock);
    });

    it('bounds a query blocked by a table lock with ioTimeout', async () => {
      const harness = await open({ ioTimeoutMs: 300 });
      const release = await lockTableElsewhere(dialect, table);
      try {
        await assert.rejects(
          protocolFor(harness).peek(newKey()),
          (error: unknown) => error instanceof SessionStoreError && error.status === 503,
        );
      } finally {
        await release();
      }
      assert.equal(
        await harness.store.peek(newKey()),
        null,
        'it works again once the lock is gone',
      );
    });

    it('uses a pool the application passes in, and leaves it open when the store closes', async () => {
      const pools =
        dialect === 'postgres'
          ? [{ pool: new pg.Pool({ connectionString: POSTGRES_URL }), kind: 'pg.Pool' }]
          : [
              { pool: mysql.createPool({ uri: MYSQL_URL }), kind: 'mysql2 callback pool' },
              { pool: mysql.createPool({ uri: MYSQL_URL }).promise(), kind: 'mysql2 promise pool' },
            ];
      for (const { pool, kind } of pools) {
        const driver = database({ connection: pool, table });
        assert.equal(driver.dialect, dialect, kind);
        const harness = await openStore({ driver: () => driver, expiry: 'clock' });
        const session = newKey();
        await put(harness, session, `{"pool":"${kind}"}`);
        assert.equal(await harness.store.peek(session), `{"pool":"${kind}"}`);
        const held = await lock(harness.store, session);
        assert.equal(await harness.store.destroyAndUnlock(session, held.token), true);
        await harness.store.close();
        await stillUsable(pool);
        await endPool(pool);
      }
    });
  });
}

/** Resolves once a statement of another connection waits for a row lock held by `holder`. */
async function untilWaiting(holder: pg.Client): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const { rows } = await holder.query(
      `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()
         AND $1 = ANY(pg_blocking_pids(pid))`,
      [await backendPid(holder)],
    );
    if (rows.length > 0) return;
    if (Date.now() > deadline) throw new Error('the lock statement never waited');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function backendPid(client: pg.Client): Promise<number> {
  const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
  return (rows[0] as { pid: number }).pid;
}

type AnyPool = pg.Pool | mysql.Pool | ReturnType<mysql.Pool['promise']>;

async function stillUsable(pool: AnyPool): Promise<void> {
  if (pool instanceof pg.Pool) {
    await pool.query('SELECT 1');
    return;
  }
  if ('pool' in pool) {
    await pool.query('SELECT 1');
    return;
  }
  await new Promise<void>((resolve, reject) =>
    pool.query('SELECT 1', (error) => (error ? reject(error) : resolve())),
  );
}

async function endPool(pool: AnyPool): Promise<void> {
  if (pool instanceof pg.Pool || 'pool' in pool) {
    await pool.end();
    return;
  }
  await new Promise<void>((resolve) => pool.end(() => resolve()));
}

/** Another connection holds an exclusive table lock until the returned function is called. */
async function lockTableElsewhere(
  dialect: SqlDialect,
  table: string,
): Promise<() => Promise<void>> {
  if (dialect === 'postgres') {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    await client.query('BEGIN');
    await client.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
    return async () => {
      await client.query('ROLLBACK');
      await client.end();
    };
  }
  const connection = mysql.createConnection({ uri: MYSQL_URL }).promise();
  await connection.query(`LOCK TABLES ${table} WRITE`);
  return async () => {
    await connection.query('UNLOCK TABLES');
    await connection.end();
  };
}
