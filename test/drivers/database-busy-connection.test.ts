import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DriverContext } from '../../src/drivers/contract.js';
import {
  connect,
  type MysqlLockClient,
  planConnection,
  type SqlClient,
} from '../../src/drivers/database/connection.js';
import type { LockConnection } from '../../src/drivers/database/lock-connection.js';
import { openSessionTable } from '../../src/drivers/database/open-table.js';
import type { SqlDialect } from '../../src/drivers/database/schema.js';
import { parseTableName } from '../../src/drivers/database/schema.js';
import type { RowKey, SessionTable } from '../../src/drivers/database/session-table.js';
import { createSessionId } from '../../src/id.js';
import { recordingLogger } from '../../src/testing/conformance.js';
import { serviceSkip } from '../helpers/services.js';
import {
  createTable,
  DATABASE_SERVERS,
  dropTable,
  killConnection,
  lockHolder,
  NO_IP,
  queryRows,
  untilLockFree,
  urlOf,
} from './database/servers.js';

const table = `keepsake_busy_${process.pid}`;

const newKey = (): RowKey => ({ id: createSessionId(), ip: NO_IP, address: NO_IP });

const context: DriverContext = {
  cookieName: 'ci_session',
  matchIP: false,
  lifetimeSeconds: 7200,
  lockTtlMs: 5_000,
  ioTimeoutMs: 5_000,
  clock: Date.now,
  logger: recordingLogger([]),
};

/** The session table's statements in the dialect, and the client to end afterwards. */
async function openTable<Client>(dialect: SqlDialect): Promise<{
  table: SessionTable<Client>;
  client: SqlClient;
}> {
  const client = await connect(
    planConnection(urlOf(dialect)),
    context.ioTimeoutMs,
    context.logger,
    {
      count: 1,
      asked: true,
    },
  );
  const opened = await openSessionTable(client, parseTableName(table), context, 'keepsake');
  return { table: opened as SessionTable<Client>, client };
}

/** Counts the statements sent on a lock connection from now on. */
function countStatements(on: LockConnection<unknown>): { sent: number } {
  const counter = { sent: 0 };
  const client = on.client as { query: (...args: unknown[]) => unknown };
  const query = client.query.bind(client);
  client.query = (...args: unknown[]) => {
    counter.sent += 1;
    return query(...args);
  };
  return counter;
}

async function storedData(key: RowKey): Promise<string | null> {
  const rows = await queryRows('mysql', `SELECT data FROM ${table} WHERE id = ?`, [key.id]);
  return rows[0] === undefined ? null : String(rows[0].data);
}

for (const [dialect, name, port] of DATABASE_SERVERS) {
  const skip = await serviceSkip(name, '127.0.0.1', port);

  describe(`database driver (${name}): a release asked for while its lock connection is busy`, {
    skip,
  }, () => {
    before(() => createTable(dialect, table, false));
    after(() => dropTable(dialect, table));

    it('sends a release asked for while it runs a statement with its next lock attempt, in no statement of its own', async () => {
      const { table: sessions, client } = await openTable(dialect);
      const on = await sessions.openLockConnection();
      const statements = countStatements(on);
      try {
        const [held, other, next] = [newKey(), newKey(), newKey()];
        assert.notEqual(await sessions.tryLock(on, held), null);
        statements.sent = 0;
        const running = sessions.tryLock(on, other);
        const released = sessions.unlock(on, held);
        const attempt = sessions.tryLock(on, next);
        await Promise.all([running, released, attempt]);
        assert.equal(
          statements.sent,
          dialect === 'postgres' ? 4 : 2,
          'two lock attempts (each a lock and a read on PostgreSQL), the second carrying the release',
        );
        assert.equal(await lockHolder(dialect, held.id), null, 'the release was sent');
        assert.notEqual(await lockHolder(dialect, next.id), null);
        // Once the connection has nothing to run, a release goes on its own at once.
        await Promise.all([sessions.unlock(on, other), sessions.unlock(on, next)]);
        assert.equal(await lockHolder(dialect, other.id), null);
        assert.equal(await lockHolder(dialect, next.id), null);
      } finally {
        await on.close();
        await client.end?.();
      }
    });

    it('a release asked for while a statement runs goes on its own once the connection is idle', async () => {
      const { table: sessions, client } = await openTable(dialect);
      const on = await sessions.openLockConnection();
      try {
        const [held, other] = [newKey(), newKey()];
        await sessions.tryLock(on, held);
        const running = sessions.tryLock(on, other);
        await sessions.unlock(on, held);
        await running;
        assert.equal(await lockHolder(dialect, held.id), null);
        assert.notEqual(await lockHolder(dialect, other.id), null);
        await sessions.unlock(on, other);
      } finally {
        await on.close();
        await client.end?.();
      }
    });
  });
}

const mysqlSkip = await serviceSkip('MariaDB', '127.0.0.1', 3306);

describe('database driver (MariaDB): a write while its lock connection is busy', {
  skip: mysqlSkip,
}, () => {
  before(() => createTable('mysql', table, false));
  after(() => dropTable('mysql', table));

  it('writes on a pooled connection while the lock connection is busy, and releases the lock after the write', async () => {
    const { table: sessions, client } = await openTable<MysqlLockClient>('mysql');
    const on = await sessions.openLockConnection();
    try {
      const [held, other] = [newKey(), newKey()];
      await sessions.tryLock(on, held);
      const running = sessions.tryLock(on, other);
      const written = await sessions.write(on, held, Buffer.from('{"n":1}'), 1_000);
      await running;
      assert.equal(written, true);
      assert.equal(await storedData(held), '{"n":1}');
      assert.equal(await lockHolder('mysql', held.id), null);
      await sessions.unlock(on, other);
    } finally {
      await on.close();
      await client.end?.();
    }
  });

  for (const stored of [true, false]) {
    it(`a write on a pooled connection changes nothing once the lock connection has lost the lock (${stored ? 'a stored session' : 'a new one'})`, async () => {
      const { table: sessions, client } = await openTable<MysqlLockClient>('mysql');
      const on = await sessions.openLockConnection();
      const key = newKey();
      try {
        assert.notEqual(await sessions.tryLock(on, key), null);
        if (stored) {
          assert.equal(await sessions.write(on, key, Buffer.from('{"n":1}'), 1_000), true);
          assert.notEqual(await sessions.tryLock(on, key), null);
        }
        // The connection is busy (a call that never ends) when the server drops it.
        void on.run(() => new Promise<never>(() => {}));
        const holder = await lockHolder('mysql', key.id);
        assert.notEqual(holder, null);
        await killConnection('mysql', holder as number);
        await untilLockFree('mysql', key.id);
        assert.equal(await sessions.write(on, key, Buffer.from('{"n":2}'), 2_000), false);
        assert.equal(await storedData(key), stored ? '{"n":1}' : null);
      } finally {
        await on.close().catch(() => {});
        await client.end?.();
      }
    });
  }
});
