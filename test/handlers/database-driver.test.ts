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

    it('says which lock columns a CodeIgniter table lacks', async () => {
      const ciTable = `${table}_ci`;
      await runSql(
        dialect,
        `CREATE TABLE ${ciTable} (id varchar(128) NOT NULL, ip_address varchar(45) NOT NULL, timestamp bigint DEFAULT 0 NOT NULL, data text NOT NULL, PRIMARY KEY (id))`,
      );
      await assert.rejects(
        open({}, ciTable),
        (error: unknown) =>
          error instanceof SessionConfigError && /lock_token, lock_expires/.test(error.message),
      );
    });

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

    it('does not count a locked placeholder of a new session as a stored session', async () => {
      const { handler } = await open();
      const { handler: other } = await open();
      const fresh = key('b');
      const held = await handler.read(fresh, 1_000);
      assert.equal(held.data, null);
      assert.equal(await other.validateId(fresh), false);
      assert.equal(await other.peek(fresh), null);
      await handler.close(fresh, held.lock);
      assert.equal(await countRows(dialect, table), 0);
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
