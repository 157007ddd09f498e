/**
 * The database driver at its failure edges, on the real servers: a failed save, a holder whose
 * lock connection dropped while another request logged out, deadlocks and lock-wait timeouts,
 * bytes that are not UTF-8, per-call lifetimes, and the round trips an uncontended request costs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2';
import pg from 'pg';
import { FakeClock } from '../../src/clock.js';
import type { SessionDriver, SessionStore } from '../../src/drivers/contract.js';
import { database, type SqlDialect } from '../../src/drivers/database.js';
import { SessionStoreError } from '../../src/errors.js';
import { createSessionId } from '../../src/id.js';
import { SessionManager } from '../../src/manager.js';
import type { Session } from '../../src/session.js';
import { recordingLogger } from '../../src/testing/conformance.js';
import { isUnlocked, lock, newToken, put } from '../../src/testing/conformance-store.js';
import { openStore } from '../../src/testing/index.js';
import { requestFor } from '../../src/testing/request-for.js';
import { serviceSkip } from '../helpers/services.js';
import {
  contender,
  DELETE_MARKER,
  installTriggers,
  removeTriggers,
  WRITE_MARKER,
} from './database/contention.js';
import { observedDriver, type StoreFailure } from './database/observed-store.js';
import { roundTripProxy } from './database/round-trip-proxy.js';
import {
  createTable,
  DATABASE_SERVERS,
  dropTable,
  killConnection,
  lockHolder,
  MYSQL_URL,
  NO_IP,
  POSTGRES_URL,
  placeholder,
  queryRows,
  runSql,
  untilLockFree,
  urlOf,
} from './database/servers.js';

const servers = DATABASE_SERVERS;

const newKey = () => ({ id: createSessionId(), ip: null });

const request = (id?: string) => requestFor(id);

/** One whole request: start, `work`, cookies, commit. */
async function visit(
  manager: SessionManager,
  id: string | undefined,
  work: (session: Session) => void = () => {},
): Promise<Session> {
  const session = await manager.start(request(id));
  work(session);
  manager.setCookies(session);
  await manager.commit(session);
  return session;
}

/** A session manager over `driver` that collects no garbage by chance; `warnings` gets its log. */
async function managerOf(
  driver: SessionDriver,
  warnings: string[] = [],
  ioTimeout = 2_000,
): Promise<SessionManager> {
  const manager = new SessionManager({
    driver,
    gcProbability: 0,
    ioTimeout,
    logger: recordingLogger(warnings),
  });
  await manager.ready();
  return manager;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The session table's rows for one ID. */
function rowsOf(dialect: SqlDialect, table: string, id: string) {
  return queryRows(
    dialect,
    `SELECT "timestamp" AS ts, data FROM ${table} WHERE id = ${placeholder(dialect, 1)}`.replaceAll(
      '"',
      dialect === 'postgres' ? '"' : '`',
    ),
    [id],
  );
}

/** Stores raw bytes under `id` as a live session, as another program could. */
async function storeBytes(dialect: SqlDialect, table: string, id: string, hex: string) {
  await runSql(
    dialect,
    dialect === 'postgres'
      ? `INSERT INTO ${table} (id, ip_address, "timestamp", data) VALUES ('${id}', '${NO_IP}', ${nowSeconds()}, decode('${hex}', 'hex'))
         ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data`
      : `INSERT INTO ${table} (id, ip_address, \`timestamp\`, data) VALUES ('${id}', '${NO_IP}', ${nowSeconds()}, X'${hex}')
         ON DUPLICATE KEY UPDATE data = VALUES(data)`,
  );
}

/** Drops the connection holding the session's lock from the server side, and waits until it is free. */
async function dropLockConnection(dialect: SqlDialect, id: string): Promise<void> {
  const holder = await lockHolder(dialect, id);
  assert.ok(holder !== null, `the lock of ${id} is held`);
  await killConnection(dialect, holder);
  await untilLockFree(dialect, id);
}

/**
 * What changes when a session's row is written: on PostgreSQL the row version's transaction and
 * place (xmin, ctid: every UPDATE makes a new version), on MySQL/MariaDB the count that the
 * triggers of countWrites() keep of the statements that wrote a row of the table.
 */
async function rowWrites(dialect: SqlDialect, table: string, id: string): Promise<unknown> {
  if (dialect === 'postgres') {
    return queryRows(
      dialect,
      `SELECT xmin::text AS xmin, ctid::text AS ctid FROM ${table} WHERE id = $1`,
      [id],
    );
  }
  return queryRows(dialect, `SELECT n FROM ${table}_writes`);
}

/**
 * On MySQL/MariaDB, triggers that count every row the table's statements insert, update or delete
 * (the server's global counters would count other tests' writes too); answers their removal.
 */
async function countWrites(dialect: SqlDialect, table: string): Promise<() => Promise<void>> {
  if (dialect === 'postgres') return async () => {};
  await runSql(dialect, `CREATE TABLE ${table}_writes (n int NOT NULL) ENGINE=InnoDB`);
  await runSql(dialect, `INSERT INTO ${table}_writes VALUES (0)`);
  for (const event of ['INSERT', 'UPDATE', 'DELETE']) {
    await runSql(
      dialect,
      `CREATE TRIGGER ${table}_count_${event.toLowerCase()} AFTER ${event} ON ${table} FOR EACH ROW UPDATE ${table}_writes SET n = n + 1`,
    );
  }
  return async () => {
    for (const event of ['insert', 'update', 'delete']) {
      await runSql(dialect, `DROP TRIGGER IF EXISTS ${table}_count_${event}`);
    }
    await runSql(dialect, `DROP TABLE IF EXISTS ${table}_writes`);
  };
}

for (const [dialect, label, port] of servers) {
  const skip = await serviceSkip(label, '127.0.0.1', port);
  const suffix = dialect === 'postgres' ? 'pg' : 'my';
  const table = `keepsake_edge_${suffix}`;
  const target = {
    driver: () => database({ connection: urlOf(dialect), table }),
    expiry: 'clock' as const,
  };

  describe(`database driver edges on ${label}`, { skip }, () => {
    const opened: SessionStore[] = [];
    const open = async (overrides: Parameters<typeof openStore>[1] = {}) => {
      const harness = await openStore(target, overrides);
      opened.push(harness.store);
      return harness;
    };
    before(() => createTable(dialect, table, false));
    after(async () => {
      for (const store of opened) await store.close().catch(() => {});
      await dropTable(dialect, table);
    });

    it('a discarding unlock never deletes a live session, only its lock', async () => {
      const harness = await open();
      const { store } = harness;
      const key = newKey();
      await put(harness, key, '{"user":"ada"}');
      const held = await lock(store, key);
      await store.unlock(key, held.token, true);
      assert.equal(await store.peek(key), '{"user":"ada"}');
      assert.equal(await isUnlocked(store, key), true);
      assert.equal((await rowsOf(dialect, table, key.id)).length, 1);
    });

    it('a holder whose lock connection dropped while a logout took over cannot write, touch or delete the session back', async () => {
      const harness = await open();
      const { store } = harness;
      const key = newKey();
      await put(harness, key, '{"user":"ada"}');
      const stalled = await lock(store, key);
      await dropLockConnection(dialect, key.id);
      const { store: elsewhere } = await open();
      const other = await lock(elsewhere, key);
      assert.equal(other.payload, '{"user":"ada"}', 'the dropped lock was taken over');
      assert.equal(await elsewhere.destroyAndUnlock(key, other.token), true, 'the logout');

      assert.equal(
        await store.writeAndUnlock(key, stalled.token, '{"user":"ada","n":2}', 60),
        false,
      );
      assert.equal(await store.touchAndUnlock(key, stalled.token, 60), 'fenced');
      assert.equal(await store.peek(key), null, 'the session stays logged out');
      assert.deepEqual(await rowsOf(dialect, table, key.id), [], 'no row came back');

      await put(harness, key, '{"user":"bob"}');
      assert.equal(await store.destroyAndUnlock(key, stalled.token), false);
      await store.unlock(key, stalled.token, true);
      assert.equal(await store.peek(key), '{"user":"bob"}', 'nor did it delete the next session');
    });

    it('reads a row whose data is not UTF-8 as unreadable, and peeks it as no session', async () => {
      const { store } = await open();
      const key = newKey();
      await storeBytes(dialect, table, key.id, 'fffe7b7d');
      assert.equal(await store.peek(key), null);
      const token = newToken();
      assert.deepEqual(await store.lockAndRead(key, token), {
        locked: true,
        payload: null,
        unreadable: 'the data column holds 4 bytes that are not UTF-8 text',
      });
      assert.equal(await store.destroyAndUnlock(key, token), true);
      assert.deepEqual(await rowsOf(dialect, table, key.id), []);
    });

    it('replaces a session whose bytes are not UTF-8 with a new one, warning once', async () => {
      const warnings: string[] = [];
      const manager = await managerOf(target.driver(), warnings);
      try {
        const first = await visit(manager, undefined, (session) => session.set('user', 'ada'));
        await storeBytes(dialect, table, first.id, 'c328e29482');
        warnings.length = 0;
        const next = await visit(manager, first.id);
        assert.notEqual(next.id, first.id);
        assert.equal(next.get('user'), null);
        assert.equal(warnings.length, 1, JSON.stringify(warnings));
        assert.match(
          warnings[0] ?? '',
          /corrupt \(the data column holds 5 bytes that are not UTF-8 text\)/,
        );
        assert.deepEqual(await rowsOf(dialect, table, first.id), [], 'the corrupt row is deleted');
      } finally {
        await manager.shutdown();
      }
    });

    it('gives back a payload that starts with a byte-order mark byte for byte', async () => {
      const harness = await open();
      const key = newKey();
      await put(harness, key, '\ufeff{"bom":1}');
      assert.equal(await harness.store.peek(key), '\ufeff{"bom":1}');
      const held = await lock(harness.store, key);
      assert.equal(held.payload, '\ufeff{"bom":1}');
      await harness.store.unlock(key, held.token, false);
    });

    it("stores a per-call lifetime as a shifted last-activity timestamp, which CodeIgniter's GC honours", async () => {
      const harness = await open({ lifetimeSeconds: 120 });
      const { store, clock } = harness;
      const regular = newKey();
      const short = newKey();
      const long = newKey();
      const written = Math.floor(clock.now() / 1000);
      await put(harness, regular, '{"r":1}');
      await put(harness, short, '{"s":1}', 30);
      await put(harness, long, '{"l":1}', 3_600);
      const stamp = async (id: string) => Number((await rowsOf(dialect, table, id))[0]?.ts);
      assert.equal(await stamp(regular.id), written);
      assert.equal(await stamp(short.id), written + 30 - 120);
      assert.equal(await stamp(long.id), written + 3_600 - 120);

      // CodeIgniter's GC: DELETE … WHERE timestamp < now - maxLifetime.
      const codeIgniterGc = (nowS: number) =>
        runSql(
          dialect,
          `DELETE FROM ${table} WHERE ${dialect === 'postgres' ? '"timestamp"' : '`timestamp`'} < ${nowS - 120}`,
        );
      clock.advance(20);
      await codeIgniterGc(written + 20);
      assert.equal(await store.peek(short), '{"s":1}', '20 s into a 30 s lifetime');
      clock.advance(20);
      assert.equal(await store.peek(short), null, 'keepsake: 40 s is past a 30 s lifetime');
      await codeIgniterGc(written + 40);
      assert.deepEqual(await rowsOf(dialect, table, short.id), [], 'and CodeIgniter deletes it');
      assert.equal(await store.peek(regular), '{"r":1}');
      clock.advance(3_000);
      await codeIgniterGc(written + 3_040);
      assert.equal(await store.peek(regular), null);
      assert.equal(await store.peek(long), '{"l":1}', 'an hour-long lifetime outlives 3 040 s');
      assert.equal(await store.gc?.(120), 0, "keepsake's GC agrees with CodeIgniter's");
    });

    it('costs two round trips per uncontended request: lock and read, then write (or touch, or unlock) with the unlock', async () => {
      const proxy = await roundTripProxy(port);
      const url = urlOf(dialect).replace(`:${port}/`, `:${proxy.port}/`);
      const manager = await managerOf(database({ connection: url, table }));
      try {
        proxy.roundTrips = 0;
        const first = await visit(manager, undefined, (session) => session.set('n', 1));
        assert.equal(proxy.roundTrips, 2, 'a new session');
        proxy.roundTrips = 0;
        await visit(manager, first.id, (session) => session.set('n', 2));
        assert.equal(proxy.roundTrips, 2, 'a changed session');
        proxy.roundTrips = 0;
        const unchanged = await visit(manager, first.id);
        assert.equal(unchanged.get('n'), 2);
        assert.equal(proxy.roundTrips, 2, 'an unchanged session (no touch due: only the unlock)');
      } finally {
        await manager.shutdown();
        await proxy.close();
      }
    });

    it('makes no durable write for a read-only request on an unchanged session, until touchAfter of its lifetime has passed', async () => {
      const clock = new FakeClock(Date.now());
      const manager = new SessionManager({
        driver: target.driver(),
        gcProbability: 0,
        timeToUpdate: 0,
        expiration: 1_000,
        clock: clock.now,
        logger: recordingLogger([]),
      });
      await manager.ready();
      const stopCounting = await countWrites(dialect, table);
      try {
        const first = await visit(manager, undefined, (session) => session.set('user', 'ada'));
        const written = await rowWrites(dialect, table, first.id);
        clock.advance(50);
        const read = await visit(manager, first.id);
        assert.equal(read.get('user'), 'ada');
        assert.deepEqual(
          await rowWrites(dialect, table, first.id),
          written,
          'a read 50 s into a 1 000 s lifetime wrote nothing',
        );
        clock.advance(60);
        await visit(manager, first.id);
        assert.notDeepEqual(
          await rowWrites(dialect, table, first.id),
          written,
          'past touchAfter (100 s of 1 000 s) the read refreshed the expiry',
        );
      } finally {
        await manager.shutdown();
        await stopCounting();
      }
    });

    describe('transient errors: real deadlocks and lock waits, retried by the core', () => {
      const contended = `keepsake_dl_${suffix}`;
      before(async () => {
        await createTable(dialect, contended, false);
        await installTriggers(dialect, contended);
      });
      after(async () => {
        await dropTable(dialect, contended);
        await removeTriggers(dialect, contended);
      });

      const deadlockCode = dialect === 'postgres' ? '40P01' : 1213;
      const codeOf = (failure: StoreFailure | undefined) => {
        const error = failure?.error as { code?: unknown; errno?: unknown } | undefined;
        return dialect === 'postgres' ? error?.code : error?.errno;
      };

      it('retries a write chosen as the victim of a deadlock, and the request succeeds', async () => {
        const failures: StoreFailure[] = [];
        const driver = observedDriver(
          database({ connection: urlOf(dialect), table: contended }),
          failures,
        );
        const manager = await managerOf(driver, [], 8_000);
        const other = await contender(dialect, contended);
        try {
          const first = await visit(manager, undefined, (session) => session.set('note', 'calm'));
          const session = await manager.start(request(first.id));
          session.set('note', WRITE_MARKER);
          manager.setCookies(session);
          await other.holdSideRows();
          const committing = manager.commit(session);
          committing.catch(() => {});
          // keepsake's write holds its session row and waits, in the trigger, for side row 1.
          await other.untilSomeoneWaits();
          // Now the contender waits for that session row: a cycle, of which keepsake is the victim.
          await other.lockSessionRow(first.id);
          await other.rollback();
          await committing;
          assert.equal(failures.length, 1, 'one deadlock, then the retry went through');
          assert.equal(failures[0]?.method, 'writeAndUnlock');
          assert.equal(codeOf(failures[0]), deadlockCode);
          const again = await visit(manager, first.id);
          assert.equal(again.id, first.id);
          assert.equal(again.get('note'), WRITE_MARKER);
        } finally {
          await other.rollback().catch(() => {});
          await other.end();
          await manager.shutdown();
        }
      });

      it('retries a GC chosen as the victim of a deadlock', async () => {
        const failures: StoreFailure[] = [];
        const driver = observedDriver(
          database({ connection: urlOf(dialect), table: contended }),
          failures,
        );
        const manager = await managerOf(driver, [], 8_000);
        const other = await contender(dialect, contended);
        const expired = createSessionId();
        await runSql(
          dialect,
          `INSERT INTO ${contended} (id, ip_address, ${dialect === 'postgres' ? '"timestamp"' : '`timestamp`'}, data)
           VALUES ('${expired}', '${NO_IP}', 1, ${dialect === 'postgres' ? `convert_to('${DELETE_MARKER}', 'UTF8')` : `'${DELETE_MARKER}'`})`,
        );
        try {
          await other.holdSideRows();
          const collecting = manager.collectGarbage();
          // Settled only later: mark it handled, so its failure surfaces once, where it is awaited.
          collecting.catch(() => {});
          // The GC holds the expired row and waits, in the delete trigger, for side row 1.
          await other.untilSomeoneWaits();
          await other.lockSessionRow(expired);
          await other.rollback();
          assert.ok((await collecting) >= 1, 'the retried GC removed the expired session');
          assert.equal(failures.length, 1);
          assert.equal(failures[0]?.method, 'gc');
          assert.equal(codeOf(failures[0]), deadlockCode);
          assert.deepEqual(await rowsOf(dialect, contended, expired), []);
        } finally {
          await other.rollback().catch(() => {});
          await other.end();
          await manager.shutdown();
        }
      });

      if (dialect === 'mysql') {
        it('retries a write that timed out waiting for a row lock (1205)', async () => {
          // The setting reaches the lock connection too: it is taken out of this pool.
          const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 2 });
          pool.on('connection', (connection) => {
            connection.query('SET SESSION innodb_lock_wait_timeout = 1');
          });
          const failures: StoreFailure[] = [];
          const other = await contender(dialect, contended);
          // The holder lets go only once keepsake's write has timed out: the retry then succeeds.
          const driver = observedDriver(
            database({ connection: pool, table: contended, lockConnections: 1 }),
            failures,
            () => other.rollback(),
          );
          const manager = await managerOf(driver, [], 8_000);
          try {
            const first = await visit(manager, undefined, (session) => session.set('n', 1));
            const session = await manager.start(request(first.id));
            session.set('n', 2);
            manager.setCookies(session);
            await other.query('BEGIN');
            await other.lockSessionRow(first.id);
            await manager.commit(session);
            assert.equal(failures.length, 1);
            assert.equal(codeOf(failures[0]), 1205);
            assert.equal((await visit(manager, first.id)).get('n'), 2);
          } finally {
            await other.rollback().catch(() => {});
            await other.end();
            await manager.shutdown();
            await new Promise<void>((resolve) => pool.end(() => resolve()));
          }
        });
      } else {
        it('retries a write that failed to serialize (40001) under REPEATABLE READ', async () => {
          const pool = new pg.Pool({
            connectionString: POSTGRES_URL,
            max: 2,
            options: '-c default_transaction_isolation=repeatable\\ read',
          });
          const failures: StoreFailure[] = [];
          const other = await contender(dialect, contended);
          const manager = await managerOf(
            observedDriver(database({ connection: pool, table: contended }), failures),
            [],
            8_000,
          );
          try {
            const first = await visit(manager, undefined, (session) => session.set('n', 1));
            const session = await manager.start(request(first.id));
            session.set('n', 2);
            manager.setCookies(session);
            // A concurrent change of the session row, committed after keepsake's write took its snapshot.
            await other.query('BEGIN');
            await other.query(`UPDATE ${contended} SET "timestamp" = "timestamp" WHERE id = $1`, [
              first.id,
            ]);
            const committing = manager.commit(session);
            committing.catch(() => {});
            await other.untilSomeoneWaits();
            await other.commit();
            await committing;
            assert.equal(failures.length, 1);
            assert.equal(codeOf(failures[0]), '40001');
            assert.equal((await visit(manager, first.id)).get('n'), 2);
          } finally {
            await other.rollback().catch(() => {});
            await other.end();
            await manager.shutdown();
            await pool.end();
          }
        });
      }
    });
  });
}

const mysqlSkip = await serviceSkip('MariaDB', '127.0.0.1', 3306);
describe("a MySQL session table whose data column is CodeIgniter's blob (64 KiB)", {
  skip: mysqlSkip,
}, () => {
  const table = 'keepsake_edge_blob';
  before(async () => {
    await createTable('mysql', table, false);
    await runSql('mysql', `ALTER TABLE ${table} MODIFY data blob NOT NULL`);
  });
  after(() => dropTable('mysql', table));

  const tooBig = (error: unknown) => {
    assert.ok(error instanceof SessionStoreError);
    assert.equal(error.status, 503);
    assert.ok(error.cause instanceof Error);
    assert.match(error.cause.message, /holds \(65535 bytes\).*MODIFY data mediumblob/);
    return true;
  };

  for (const sqlMode of ['strict', 'not strict'] as const) {
    it(`a failed save (${sqlMode} SQL mode) answers 503 and the next request reads the previous data`, async () => {
      // The save runs on the lock connection, taken out of this pool with its settings.
      const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 2 });
      if (sqlMode === 'not strict') {
        // Outside strict mode the server would cut the data to 64 KiB without an error.
        pool.on('connection', (connection) => {
          connection.query(`SET SESSION sql_mode = ''`);
        });
      }
      const warnings: string[] = [];
      const manager = await managerOf(
        database({ connection: pool, table, lockConnections: 1 }),
        warnings,
      );
      try {
        assert.ok(
          warnings.some((warning) => /is blob, which holds at most 65535 bytes/.test(warning)),
          JSON.stringify(warnings),
        );
        const first = await visit(manager, undefined, (session) => session.set('user', 'ada'));
        await assert.rejects(
          visit(manager, first.id, (session) => session.set('big', 'x'.repeat(100_000))),
          tooBig,
        );
        const next = await visit(manager, first.id);
        assert.equal(next.id, first.id, 'the session still exists');
        assert.equal(next.get('user'), 'ada');
        assert.equal(next.get('big'), null);
      } finally {
        await manager.shutdown();
        await new Promise<void>((resolve) => pool.end(() => resolve()));
      }
    });
  }
});
