import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2';
import mysqlPromise from 'mysql2/promise';
import pg from 'pg';
import type { DriverContext, SessionStore } from '../../src/drivers/contract.js';
import { sessionLockKey } from '../../src/drivers/database/lock-key.js';
import { type DatabaseConnection, database, type SqlDialect } from '../../src/drivers/database.js';
import {
  SessionConfigError,
  SessionLockTimeoutError,
  SessionStoreError,
} from '../../src/errors.js';
import { createSessionId } from '../../src/id.js';
import { SessionManager } from '../../src/manager.js';
import { recordingLogger } from '../../src/testing/conformance.js';
import {
  isUnlocked,
  lock,
  newToken,
  protocolFor,
  put,
} from '../../src/testing/conformance-store.js';
import { openStore } from '../../src/testing/index.js';
import { requestFor } from '../../src/testing/request-for.js';
import { serviceSkip } from '../helpers/services.js';
import {
  countRows,
  createTable,
  DATABASE_SERVERS,
  dropTable,
  killConnection,
  lockHolder,
  MYSQL_URL,
  NO_IP,
  POSTGRES_URL,
  queryRows,
  runSql,
  untilLockFree,
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

  it('takes a 63-character table name on PostgreSQL: there is no lock table to name', () => {
    assert.equal(database({ connection: POSTGRES_URL, table: 'x'.repeat(63) }).dialect, 'postgres');
  });

  for (const lockConnections of [0, 1.5, 65, Number.NaN]) {
    it(`rejects lockConnections: ${lockConnections} when the driver is created`, () => {
      assert.throws(
        () => database({ connection: POSTGRES_URL, lockConnections }),
        (error: unknown) =>
          error instanceof SessionConfigError &&
          error.option === 'lockConnections' &&
          /whole number of lock connections from 1 to 64/.test(error.message),
      );
    });
  }

  it("derives the keys CodeIgniter locks, for a mode that shares CodeIgniter's table", () => {
    const key = { id: 'a'.repeat(32), ip: '192.0.2.7' };
    assert.deepEqual(sessionLockKey('postgres', 'codeigniter', false, key), {
      arguments: 'hashtext($1)',
      values: [key.id],
    });
    assert.deepEqual(sessionLockKey('postgres', 'codeigniter', true, key), {
      arguments: 'hashtext($1), hashtext($2)',
      values: [key.id, key.ip],
    });
    // md5('aaa…a') and md5('aaa…a_192.0.2.7'), as PHP computes them.
    assert.equal(
      sessionLockKey('mysql', 'codeigniter', false, key).name,
      createHash('md5').update(key.id).digest('hex'),
    );
    assert.equal(
      sessionLockKey('mysql', 'codeigniter', true, key).name,
      createHash('md5').update(`${key.id}_192.0.2.7`).digest('hex'),
    );
    const own = sessionLockKey('postgres', 'keepsake', false, key);
    assert.equal(own.arguments, '$1::bigint');
    assert.match(own.values[0] ?? '', /^-?\d+$/);
    assert.match(sessionLockKey('mysql', 'keepsake', false, key).name, /^keepsake:[0-9a-f]{40}$/);
    assert.notDeepEqual(sessionLockKey('postgres', 'keepsake', false, { ...key, ip: NO_IP }), own);
  });
});

/** The old shape of the session table: what an earlier keepsake version's migration created. */
const EARLIER_TABLE: Record<SqlDialect, (table: string) => string> = {
  postgres: (table) =>
    `CREATE TABLE ${table} (id varchar(128) NOT NULL, ip_address inet NOT NULL, "timestamp" bigint DEFAULT 0 NOT NULL, data bytea DEFAULT '' NOT NULL, PRIMARY KEY (id));
CREATE UNLOGGED TABLE ${table}_locks (id varchar(128) NOT NULL, ip_address inet NOT NULL, lock_token varchar(64) NULL, lock_expires bigint DEFAULT 0 NOT NULL, version bigint DEFAULT 0 NOT NULL, PRIMARY KEY (id, ip_address))`,
  mysql: (table) =>
    `CREATE TABLE ${table} (id varchar(128) NOT NULL, ip_address varchar(45) NOT NULL, \`timestamp\` int(10) unsigned DEFAULT 0 NOT NULL, data mediumblob NOT NULL, lock_token varchar(64) NULL DEFAULT NULL, lock_expires bigint unsigned DEFAULT 0 NOT NULL, PRIMARY KEY (id)) ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin`,
};

/** Another process's connection taking a session's lock the way keepsake names it. */
async function lockElsewhere(
  dialect: SqlDialect,
  sessionId: string,
): Promise<{ write(data: string): Promise<void>; release(): Promise<void> }> {
  const key = { id: sessionId, ip: NO_IP };
  if (dialect === 'postgres') {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    const { values } = sessionLockKey('postgres', 'keepsake', false, key);
    const { rows } = await client.query('SELECT pg_try_advisory_lock($1::bigint) AS locked', [
      ...values,
    ]);
    assert.equal((rows[0] as { locked: boolean }).locked, true, 'the other process got the lock');
    return {
      write: async (data) => {
        await client.query('UPDATE keepsake_drv_pg SET data = $1 WHERE id = $2', [
          Buffer.from(data),
          sessionId,
        ]);
      },
      release: async () => {
        await client.query('SELECT pg_advisory_unlock($1::bigint)', [...values]);
        await client.end();
      },
    };
  }
  const connection = await mysql.createConnection({ uri: MYSQL_URL }).promise();
  const { name } = sessionLockKey('mysql', 'keepsake', false, key);
  const [rows] = await connection.query('SELECT GET_LOCK(?, 0) AS locked', [name]);
  assert.equal(
    Number((rows as { locked: number }[])[0]?.locked),
    1,
    'the other process got the lock',
  );
  return {
    write: async (data) => {
      await connection.query('UPDATE keepsake_drv_my SET data = ? WHERE id = ?', [
        Buffer.from(data),
        sessionId,
      ]);
    },
    release: async () => {
      await connection.query('DO RELEASE_LOCK(?)', [name]);
      await connection.end();
    },
  };
}

for (const [dialect, label, port] of servers) {
  const skip = await serviceSkip(label, '127.0.0.1', port);
  const suffix = dialect === 'postgres' ? 'pg' : 'my';
  const table = `keepsake_drv_${suffix}`;
  describe(`database driver on ${label}: setup errors, pools, locks`, { skip }, () => {
    const opened: SessionStore[] = [];
    const open = async (
      overrides: Partial<DriverContext> = {},
      tableName = table,
      lockConnections?: number,
    ) => {
      const harness = await openStore(
        {
          driver: () =>
            database({
              connection: urlOf(dialect),
              table: tableName,
              ...(lockConnections === undefined ? {} : { lockConnections }),
            }),
          expiry: 'clock',
        },
        overrides,
      );
      opened.push(harness.store);
      return harness;
    };
    /** Empties the session table, for tests that count every row. */
    const emptyTable = () => runSql(dialect, `DELETE FROM ${table}`);

    after(async () => {
      for (const store of opened) await store.close().catch(() => {});
      for (const name of [table, `${table}_ci`, `${table}_gone`, `${table}_old`])
        await dropTable(dialect, name);
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

    it('opens a table with only the four columns of CodeIgniter: it needs no lock table and no lock column', async () => {
      const ciTable = `${table}_ci`;
      await runSql(
        dialect,
        `CREATE TABLE ${ciTable} (id varchar(128) NOT NULL, ip_address varchar(45) NOT NULL, timestamp bigint DEFAULT 0 NOT NULL, data ${dialect === 'postgres' ? 'bytea' : 'blob'} NOT NULL, PRIMARY KEY (id))`,
      );
      const harness = await open({}, ciTable);
      const key = newKey();
      await put(harness, key, '{"ci":1}');
      assert.equal(await harness.store.peek(key), '{"ci":1}');
    });

    it('keeps working on a table of an earlier keepsake version, and says what it no longer uses', async () => {
      const oldTable = `${table}_old`;
      await dropTable(dialect, oldTable);
      await runSql(dialect, EARLIER_TABLE[dialect](oldTable));
      const harness = await open({}, oldTable);
      const unused =
        dialect === 'postgres'
          ? new RegExp(`"${oldTable}_locks".*no longer used.*DROP TABLE "${oldTable}_locks"`)
          : new RegExp(
              `lock_token, lock_expires of "${oldTable}".*no longer used.*ALTER TABLE ${oldTable} DROP COLUMN lock_token, DROP COLUMN lock_expires`,
            );
      assert.ok(
        harness.warnings.some((warning) => unused.test(warning)),
        JSON.stringify(harness.warnings),
      );
      assert.ok(
        harness.warnings.some((warning) => /must not share the table/.test(warning)),
        'it warns that the two versions do not exclude each other',
      );
      const key = newKey();
      await put(harness, key, '{"old":1}');
      const held = await lock(harness.store, key);
      assert.equal(held.payload, '{"old":1}');
      assert.equal(await harness.store.destroyAndUnlock(key, held.token), true);
    });

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

      it('by default takes as many lock connections as a small mysql2 pool can spare, leaving it 2', async () => {
        const pool = mysqlPromise.createPool({ uri: MYSQL_URL, connectionLimit: 4 });
        const internals = (
          pool as unknown as {
            pool: { _allConnections: { length: number }; _freeConnections: { length: number } };
          }
        ).pool;
        try {
          const harness = await openStore({
            driver: () => database({ connection: pool, table }),
            expiry: 'clock',
          });
          try {
            const lent = internals._allConnections.length - internals._freeConnections.length;
            assert.equal(lent, 2, 'two of the four connections hold session locks');
          } finally {
            await harness.store.close();
          }
        } finally {
          await pool.end();
        }
      });

      it('refuses a mysql2 pool too small to lend its lock connections', async () => {
        const pool = mysqlPromise.createPool({ uri: MYSQL_URL, connectionLimit: 2 });
        try {
          await assert.rejects(
            openStore({
              driver: () => database({ connection: pool, table, lockConnections: 2 }),
              expiry: 'clock',
            }),
            (error: unknown) =>
              error instanceof SessionConfigError &&
              error.option === 'lockConnections' &&
              /connectionLimit 2.*at least 3 connections/.test(error.message),
          );
        } finally {
          await pool.end();
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
      // A lock attempt fails the same way, and leaves no lock behind.
      const key = newKey();
      await assert.rejects(
        harness.store.lockAndRead(key, newToken()),
        (error: unknown) => error instanceof Error && error.message.includes(command),
      );
      assert.equal(await lockHolder(dialect, key.id), null);
    });

    it('takes the lock of a new session without writing a row, and a discarding unlock leaves nothing', async () => {
      await emptyTable();
      const { store } = await open();
      const { store: other } = await open();
      const fresh = newKey();
      const held = await lock(store, fresh);
      assert.equal(held.payload, null);
      assert.notEqual(await lockHolder(dialect, fresh.id), null, 'the server shows the lock');
      assert.equal(await other.peek(fresh), null);
      assert.deepEqual(await other.lockAndRead(fresh, newToken()), { locked: false });
      assert.equal(await countRows(dialect, table), 0, 'the lock is no row');
      await store.unlock(fresh, held.token, true);
      assert.equal(await countRows(dialect, table), 0);
      assert.equal(await lockHolder(dialect, fresh.id), null);
    });

    it("keeps out while another process's connection holds the lock, and reads what it wrote once it lets go", async () => {
      const harness = await open();
      const key = newKey();
      await put(harness, key, '{"n":1}');
      const elsewhere = await lockElsewhere(dialect, key.id);
      try {
        assert.deepEqual(await harness.store.lockAndRead(key, newToken()), { locked: false });
        await elsewhere.write('{"n":2}');
      } finally {
        await elsewhere.release();
      }
      const taken = await lock(harness.store, key);
      assert.equal(taken.payload, '{"n":2}');
      await harness.store.unlock(key, taken.token, false);
    });

    it('holds many session locks on one connection, and none of them for another connection', async () => {
      const { store } = await open({}, table, 1);
      const { store: other } = await open({}, table, 1);
      const keys = Array.from({ length: 20 }, () => newKey());
      const held = [];
      for (const key of keys) held.push(await lock(store, key));
      for (const key of keys)
        assert.deepEqual(await other.lockAndRead(key, newToken()), { locked: false });
      const holders = new Set(await Promise.all(keys.map((key) => lockHolder(dialect, key.id))));
      assert.equal(holders.size, 1, 'one connection holds all 20');
      for (const [index, key] of keys.entries())
        await store.unlock(key, held[index]?.token ?? '', true);
      for (const key of keys) assert.equal(await isUnlocked(other, key), true);
    });

    it("gc deletes an expired session even while a request holds it: the holder's save brings it back", async () => {
      await emptyTable();
      const harness = await open({ lifetimeSeconds: 60 });
      const { store, clock } = harness;
      const written = newKey();
      const touched = newKey();
      await put(harness, written, '{"w":1}');
      await put(harness, touched, '{"t":1}');
      const writer = await lock(store, written);
      const toucher = await lock(store, touched);
      assert.equal(toucher.payload, '{"t":1}');
      clock.advance(200);
      assert.equal(await store.gc?.(60), 2, 'both sessions expired while their requests ran');
      assert.equal(await store.writeAndUnlock(written, writer.token, '{"w":2}', 60), true);
      assert.equal(await store.peek(written), '{"w":2}');
      // The core answers a touch of a missing session by writing it.
      assert.equal(await store.touchAndUnlock(touched, toucher.token, 60), 'missing');
      assert.equal(await store.writeAndUnlock(touched, toucher.token, '{"t":1}', 60), true);
      assert.equal(await store.peek(touched), '{"t":1}');
    });

    it('frees the lock of a holder whose connection ended without releasing it at once (lockTtl 60 s)', async () => {
      const crashed = await open({ lockTtlMs: 60_000 });
      const survivor = await open({ lockTtlMs: 60_000 });
      const session = newKey();
      await put(crashed, session, '{"n":1}');
      await lock(crashed.store, session);
      await crashed.store.close(); // its connections end without releasing, as a crash would
      const taken = await protocolFor(survivor).acquire(session, 1_000);
      assert.equal(taken.payload, '{"n":1}');
      await protocolFor(survivor).destroy(taken.lock);
    });

    it('a dropped lock connection fences the request that held its lock: the save changes nothing and answers 503; the session works again at once', async () => {
      const warnings: string[] = [];
      const manager = new SessionManager({
        driver: database({ connection: urlOf(dialect), table, lockConnections: 1 }),
        gcProbability: 0,
        lockWait: 1_000,
        lockTtl: 60_000,
        logger: recordingLogger(warnings),
      });
      await manager.ready();
      try {
        const first = await manager.start(requestFor());
        first.set('n', 1);
        manager.setCookies(first);
        await manager.commit(first);
        const holding = await manager.start(requestFor(first.id));
        holding.set('n', 2);
        manager.setCookies(holding);
        const holder = await lockHolder(dialect, first.id);
        assert.ok(holder !== null, 'the request holds the lock');
        await killConnection(dialect, holder);
        await untilLockFree(dialect, first.id);
        await assert.rejects(manager.commit(holding), (error: unknown) => {
          assert.ok(error instanceof SessionStoreError, String(error));
          assert.equal(error.status, 503);
          return true;
        });
        assert.deepEqual(
          await queryRows(dialect, `SELECT count(*) AS n FROM ${table} WHERE id = '${first.id}'`),
          [{ n: dialect === 'postgres' ? '1' : 1 }],
        );
        const next = await manager.start(requestFor(first.id));
        assert.equal(next.id, first.id);
        assert.equal(next.get('n'), 1, 'the fenced save changed nothing');
        next.set('n', 3);
        manager.setCookies(next);
        await manager.commit(next);
        const last = await manager.start(requestFor(first.id));
        assert.equal(last.get('n'), 3);
        manager.setCookies(last);
        await manager.commit(last);
        assert.ok(
          warnings.some((warning) => /session lock connection .* closed/.test(warning)),
          JSON.stringify(warnings),
        );
      } finally {
        await manager.shutdown();
      }
    });

    it('holds no pooled connection while a request waits for a lock', async () => {
      const pool =
        dialect === 'postgres'
          ? new pg.Pool({ connectionString: POSTGRES_URL, max: 1 })
          : mysqlPromise.createPool({ uri: MYSQL_URL, connectionLimit: 2 });
      try {
        const harness = await openStore({
          driver: () => database({ connection: pool, table, lockConnections: 1 }),
          expiry: 'clock',
        });
        const protocol = protocolFor(harness);
        const key = newKey();
        const first = await protocol.acquire(key, 1_000);
        const waiting = protocol.acquire(key, 400);
        waiting.catch(() => {});
        // The pool's one free connection serves reads meanwhile.
        for (let read = 0; read < 5; read += 1)
          assert.equal(await harness.store.peek(newKey()), null);
        await assert.rejects(waiting, SessionLockTimeoutError);
        await protocol.release(first.lock);
        await harness.store.close();
        await stillUsable(pool);
      } finally {
        await endPool(pool);
      }
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

    if (dialect === 'postgres') {
      it('locks on a single connected pg.Client passed as connection, one statement at a time', async () => {
        const client = new pg.Client({ connectionString: POSTGRES_URL });
        await client.connect();
        try {
          const harness = await openStore({
            driver: () => database({ connection: client, table }),
            expiry: 'clock',
          });
          const key = newKey();
          await put(harness, key, '{"single":1}');
          const held = await lock(harness.store, key);
          assert.equal(held.payload, '{"single":1}');
          assert.equal(await lockHolder(dialect, key.id), await backendPid(client));
          assert.equal(await harness.store.touchAndUnlock(key, held.token, 60), 'touched');
          await harness.store.close();
          assert.equal((await client.query('SELECT 1 AS one')).rows[0]?.one, 1, 'left open');
        } finally {
          await client.end();
        }
      });
    }
  });
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
