import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2';
import pg from 'pg';
import { SessionConfigError, SessionStoreError } from '../../src/errors.js';
import type { HandlerSettings, SessionHandler } from '../../src/handlers/contract.js';
import { DatabaseHandler } from '../../src/handlers/database/index.js';
import type { SqlDialect } from '../../src/handlers/database/schema.js';
import { openHarness } from '../../src/testing/conformance.js';
import { serviceSkip } from '../helpers/services.js';
import {
  countRows,
  createTable,
  dropTable,
  lockRowsTable,
  MYSQL_URL,
  POSTGRES_URL,
  runSql,
  urlOf,
} from './database/servers.js';

const servers: [SqlDialect, string, number][] = [
  ['postgres', 'PostgreSQL', 5432],
  ['mysql', 'MariaDB', 3306],
];

const key = (letter: string, ip: string | null = null) => ({ id: letter.repeat(32), ip });

describe('database driver configuration (no server needed)', () => {
  const open = (settings: Partial<HandlerSettings>) =>
    openHarness({ createHandler: () => new DatabaseHandler(), expiry: 'settings' }, settings);

  it('rejects a savePath that is not a table name', async () => {
    await assert.rejects(
      open({ savePath: 'sessions; DROP TABLE users', connection: POSTGRES_URL }),
      (error: unknown) => error instanceof SessionConfigError && /table name/.test(error.message),
    );
  });

  for (const connection of [undefined, 'redis://127.0.0.1', { query: () => {} }, 42]) {
    it(`rejects ${JSON.stringify(connection) ?? 'a missing connection'} as connection`, async () => {
      await assert.rejects(
        open({ savePath: 'ci_sessions', connection }),
        (error: unknown) =>
          error instanceof SessionConfigError &&
          error.option === 'connection' &&
          /pg\.Pool, a mysql2 pool, or a URL/.test(error.message),
      );
    });
  }
});

for (const [dialect, label, port] of servers) {
  const skip = await serviceSkip(label, '127.0.0.1', port);
  const suffix = dialect === 'postgres' ? 'pg' : 'my';
  const table = `keepsake_drv_${suffix}`;
  describe(`database driver on ${label}: setup errors, pools, locks`, { skip }, () => {
    const handlers: SessionHandler[] = [];
    const open = async (settings: Partial<HandlerSettings> = {}, savePath = table) => {
      const harness = await openHarness(
        {
          createHandler: () => new DatabaseHandler(),
          savePath,
          connection: urlOf(dialect),
          expiry: 'settings',
        },
        settings,
      );
      handlers.push(harness.handler);
      return harness;
    };

    before(() => createTable(dialect, table, false));
    after(async () => {
      for (const handler of handlers) await handler.shutdown();
      for (const name of [table, `${table}_ci`, `${table}_gone`]) await dropTable(dialect, name);
    });

    it('names the migration command when the table does not exist', async () => {
      await assert.rejects(
        open({}, `${table}_missing`),
        (error: unknown) =>
          error instanceof SessionConfigError &&
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
      const { handler } = await open({}, goneTable);
      await dropTable(dialect, goneTable);
      await assert.rejects(
        handler.peek(key('a')),
        (error: unknown) =>
          error instanceof SessionStoreError &&
          error.message.includes(`npx keepsake migration --driver ${dialect} --table ${goneTable}`),
      );
    });

    it('does not count the lock of a new session as a stored session, and close removes it', async () => {
      const { handler } = await open();
      const { handler: other } = await open();
      const fresh = key('b');
      const held = await handler.read(fresh, 1_000);
      assert.equal(held.data, null);
      assert.equal(await other.validateId(fresh), false);
      assert.equal(await other.peek(fresh), null);
      assert.equal(await countRows(dialect, lockRowsTable(dialect, table)), 1, 'the lock row');
      await handler.close(fresh, held.lock);
      assert.equal(await countRows(dialect, table), 0);
      assert.equal(await countRows(dialect, lockRowsTable(dialect, table)), 0);
    });

    it('gc keeps an expired row while its lock is held, and close then removes it', async () => {
      const { handler, clock } = await open({ lifetimeSeconds: 60 });
      const stale = key('c');
      let locked = await handler.read(stale, 1_000);
      await handler.write(stale, locked.lock, '{"old":1}');
      clock.advance(200);
      locked = await handler.read(stale, 1_000);
      assert.equal(locked.data, null, 'an expired session reads as empty');
      assert.equal(await handler.gc(60), 0);
      assert.equal(await countRows(dialect, table), 1);
      await handler.close(stale, locked.lock);
      assert.equal(await countRows(dialect, table), 0);
    });

    it('gc removes lock rows unused for the whole lifetime, and no held one', async () => {
      const { handler, clock } = await open({ lifetimeSeconds: 60 });
      const idle = key('g');
      const busy = key('h');
      let locked = await handler.read(idle, 1_000);
      await handler.write(idle, locked.lock, '{"idle":1}');
      locked = await handler.read(busy, 1_000);
      await handler.write(busy, locked.lock, '{"busy":1}');
      locked = await handler.read(busy, 1_000);
      clock.advance(200);
      // Released lock rows are stamped with Date.now(); the purge takes those stamped before now.
      await new Promise((resolve) => setTimeout(resolve, 5));
      assert.equal(await handler.gc(60), 1, 'the idle session goes, the held one stays');
      assert.equal(await countRows(dialect, table), 1);
      if (dialect === 'postgres') assert.equal(await countRows(dialect, `${table}_locks`), 1);
      await handler.close(busy, locked.lock);
      await handler.destroy(busy, null);
    });

    if (dialect === 'postgres') {
      it('refuses a table name too long for its lock table', async () => {
        await assert.rejects(
          open({}, 'x'.repeat(58)),
          (error: unknown) =>
            error instanceof SessionConfigError && /at most 57 characters/.test(error.message),
        );
      });

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
        const { handler } = await open();
        const session = key('i');
        const first = await handler.read(session, 1_000);
        await handler.write(session, first.lock, '{"n":1}');
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
          const reading = handler.read(session, 5_000);
          await untilWaiting(writer);
          await writer.query('COMMIT');
          const second = await reading;
          assert.equal(second.data, '{"n":2}');
          await handler.close(session, second.lock);
        } finally {
          await writer.query('ROLLBACK').catch(() => {});
          await writer.end();
        }
        await handler.destroy(session, null);
      });
    }

    it('takes over the lock of a holder that died without releasing it, once lockTtl has passed', async () => {
      const { handler: crashed } = await open({ lockTtlMs: 300 });
      const { handler: survivor } = await open({ lockTtlMs: 300 });
      const session = key('d');
      let locked = await crashed.read(session, 1_000);
      await crashed.write(session, locked.lock, '{"n":1}');
      locked = await crashed.read(session, 1_000);
      await crashed.shutdown(); // stops renewing without releasing, as a crash would
      const taken = await survivor.read(session, 3_000);
      assert.equal(taken.data, '{"n":1}');
      await survivor.close(session, taken.lock);
      await survivor.destroy(session, null);
    });

    it('bounds a query blocked by a table lock with ioTimeout', async () => {
      const { handler } = await open({ ioTimeoutMs: 300 });
      const release = await lockTableElsewhere(dialect, table);
      try {
        await assert.rejects(
          handler.peek(key('e')),
          (error: unknown) => error instanceof SessionStoreError && error.status === 503,
        );
      } finally {
        await release();
      }
      assert.equal(await handler.peek(key('e')), null, 'it works again once the lock is gone');
    });

    it('uses a pool the application passes in, and leaves it open at shutdown', async () => {
      const pools =
        dialect === 'postgres'
          ? [{ pool: new pg.Pool({ connectionString: POSTGRES_URL }), kind: 'pg.Pool' }]
          : [
              { pool: mysql.createPool({ uri: MYSQL_URL }), kind: 'mysql2 callback pool' },
              { pool: mysql.createPool({ uri: MYSQL_URL }).promise(), kind: 'mysql2 promise pool' },
            ];
      for (const { pool, kind } of pools) {
        const handler = new DatabaseHandler();
        await openHarness(
          { createHandler: () => handler, savePath: table, connection: pool, expiry: 'settings' },
          {},
        );
        assert.equal(handler.dialect, dialect, kind);
        const session = key('f');
        const locked = await handler.read(session, 1_000);
        await handler.write(session, locked.lock, `{"pool":"${kind}"}`);
        assert.equal(await handler.peek(session), `{"pool":"${kind}"}`);
        await handler.destroy(session, null);
        await handler.shutdown();
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
