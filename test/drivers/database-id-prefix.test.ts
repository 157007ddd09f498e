/**
 * The database driver's idPrefix: the text before the session ID in the `id` column (CodeIgniter
 * 4.3+ stores `<cookieName>:<id>`). Two prefixes share a table without seeing each other's
 * sessions; in CodeIgniter's layout the rows carry the prefix and the locks stay CodeIgniter's,
 * named after the bare ID.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { database } from '../../src/drivers/database.js';
import { SessionConfigError } from '../../src/errors.js';
import { createSessionId } from '../../src/id.js';
import { SessionManager } from '../../src/manager.js';
import type { Session } from '../../src/session.js';
import { lock, newToken, put } from '../../src/testing/conformance-store.js';
import { openStore } from '../../src/testing/index.js';
import { requestFor } from '../../src/testing/request-for.js';
import { mysqlCodeIgniterTableSql, postgresCodeIgniterTableSql } from '../codeigniter/ci-tables.js';
import { serviceSkip } from '../helpers/services.js';
import {
  createTable,
  DATABASE_SERVERS,
  dropTable,
  MYSQL_URL,
  POSTGRES_URL,
  queryRows,
  runSql,
  urlOf,
} from './database/servers.js';

const newKey = () => ({ id: createSessionId(), ip: null });

/** One whole request of an app whose cookie is `cookieName`. */
async function visit(
  manager: SessionManager,
  cookieName: string,
  id: string | undefined,
  work: (session: Session) => void = () => {},
): Promise<Session> {
  const session = await manager.start(requestFor(id, { cookieName }));
  work(session);
  manager.setCookies(session);
  await manager.commit(session);
  return session;
}

describe('idPrefix is checked when the driver is created', () => {
  for (const idPrefix of ['has space:', 'ümlaut:', 'tab\t', 'x'.repeat(65)]) {
    it(`refuses ${JSON.stringify(idPrefix.slice(0, 12))}`, () => {
      assert.throws(
        () => database({ connection: POSTGRES_URL, idPrefix }),
        (error: unknown) => error instanceof SessionConfigError && error.option === 'idPrefix',
      );
    });
  }

  it("takes CodeIgniter 4.3's '<cookieName>:' and 64 characters", () => {
    assert.equal(database({ connection: POSTGRES_URL, idPrefix: 'ci_session:' }).name, 'database');
    assert.equal(database({ connection: POSTGRES_URL, idPrefix: 'x'.repeat(64) }).name, 'database');
  });
});

for (const [dialect, label, port] of DATABASE_SERVERS) {
  const skip = await serviceSkip(label, '127.0.0.1', port);

  describe(`two idPrefixes sharing one table on ${label}`, { skip }, () => {
    const table = `keepsake_prefix_${dialect === 'postgres' ? 'pg' : 'my'}`;
    before(() => createTable(dialect, table, false));
    after(() => dropTable(dialect, table));

    const target = (idPrefix: string) => ({
      driver: () => database({ connection: urlOf(dialect), table, idPrefix }),
      expiry: 'clock' as const,
    });

    it('keep apart the sessions, the locks and the revocations of one ID', async () => {
      const a = await openStore(target('app_a:'));
      const b = await openStore(target('app_b:'));
      try {
        const key = newKey();
        await put(a, key, '{"app":"a"}');
        assert.equal(await b.store.peek(key), null, "b does not see a's session");
        const heldByA = await lock(a.store, key);
        // keepsake's lock is named after the stored ID, prefix included.
        const heldByB = await lock(b.store, key);
        assert.equal(heldByB.payload, null);
        assert.equal(await b.store.writeAndUnlock(key, heldByB.token, '{"app":"b"}', 60), true);
        assert.equal(await a.store.writeAndUnlock(key, heldByA.token, '{"app":"a2"}', 60), true);
        const rows = await queryRows(
          dialect,
          `SELECT id FROM ${table} WHERE id LIKE '%${key.id}' ORDER BY id`,
        );
        assert.deepEqual(
          rows.map((row) => row.id),
          [`app_a:${key.id}`, `app_b:${key.id}`],
        );
        await a.store.revoke?.(key);
        assert.equal(await a.store.peek(key), null);
        assert.equal(await b.store.peek(key), '{"app":"b"}', "a's revocation leaves b's session");
        const again = await lock(b.store, key);
        assert.equal(await b.store.destroyAndUnlock(key, again.token), true);
        assert.equal(await b.store.peek(key), null);
        const revoked = await a.store.lockAndRead(key, newToken());
        assert.ok(revoked.locked && revoked.payload === null, "a's own session stays revoked");
      } finally {
        await a.store.close();
        await b.store.close();
      }
    });

    it("an app's cookie does not open the other app's session", async () => {
      const managerOf = (cookieName: string) =>
        new SessionManager({
          driver: database({ connection: urlOf(dialect), table, idPrefix: `${cookieName}:` }),
          cookieName,
          gcProbability: 0,
        });
      const shop = managerOf('shop');
      const blog = managerOf('blog');
      try {
        const bought = await visit(shop, 'shop', undefined, (s) => s.set('cart', 3));
        const elsewhere = await visit(blog, 'blog', bought.id, (s) => s.set('seen', true));
        assert.notEqual(elsewhere.id, bought.id, 'the blog never adopts the shop\u2019s ID');
        assert.equal(elsewhere.get('cart'), null);
        const back = await visit(shop, 'shop', bought.id);
        assert.equal(back.id, bought.id);
        assert.equal(back.get('cart'), 3);
        assert.equal(back.get('seen'), null);
      } finally {
        await shop.shutdown();
        await blog.shutdown();
      }
    });
  });

  describe(`idPrefix in CodeIgniter's layout on ${label} (CodeIgniter 4.3+ rows)`, { skip }, () => {
    const table = `keepsake_prefix_ci_${dialect === 'postgres' ? 'pg' : 'my'}`;
    const codeIgniterLock =
      dialect === 'postgres'
        ? 'SELECT pg_try_advisory_lock(hashtext($1)) AS locked'
        : 'SELECT GET_LOCK(MD5(?), 0) AS locked';
    const codeIgniterUnlock =
      dialect === 'postgres'
        ? 'SELECT pg_advisory_unlock(hashtext($1))'
        : 'DO RELEASE_LOCK(MD5(?))';
    let manager: SessionManager;
    let locker: { query(sql: string, values: unknown[]): Promise<boolean>; end(): Promise<void> };

    before(async () => {
      await dropTable(dialect, table);
      await runSql(
        dialect,
        dialect === 'postgres'
          ? postgresCodeIgniterTableSql(table)
          : mysqlCodeIgniterTableSql(table),
      );
      manager = new SessionManager({
        driver: database({
          connection: urlOf(dialect),
          table,
          layout: 'codeigniter',
          idPrefix: 'ci_session:',
        }),
        gcProbability: 0,
        lockWait: 300,
      });
      await manager.ready();
      if (dialect === 'postgres') {
        const client = new pg.Client({ connectionString: POSTGRES_URL });
        await client.connect();
        locker = {
          query: async (sql, values) => (await client.query(sql, values)).rows[0]?.locked === true,
          end: () => client.end(),
        };
      } else {
        const connection = await mysql.createConnection({ uri: MYSQL_URL });
        locker = {
          query: async (sql, values) => {
            const [rows] = await connection.query(sql, values);
            return Array.isArray(rows) && Number((rows[0] as { locked?: number })?.locked) === 1;
          },
          end: () => connection.end(),
        };
      }
    });
    after(async () => {
      await manager?.shutdown();
      await locker?.end();
      await dropTable(dialect, table);
    });

    it("stores '<cookieName>:<id>' and reads a row CodeIgniter 4.3 wrote so", async () => {
      const created = await visit(manager, 'ci_session', undefined, (s) => s.set('user', 'ann'));
      const rows = await queryRows(
        dialect,
        `SELECT id, data FROM ${table} WHERE id LIKE '%${created.id}'`,
      );
      assert.deepEqual(
        rows.map((row) => row.id),
        [`ci_session:${created.id}`],
      );
      // PHP's session encoding, not keepsake's JSON.
      assert.match(String(rows[0]?.data), /(^|;)user\|s:3:"ann";/);
      const id = createSessionId();
      const insert =
        dialect === 'postgres'
          ? `INSERT INTO ${table} (id, ip_address, "timestamp", data) VALUES ($1, '127.0.0.1', now(), $2)`
          : `INSERT INTO ${table} (id, ip_address, \`timestamp\`, data) VALUES (?, '127.0.0.1', now(), ?)`;
      await queryRows(dialect, insert, [`ci_session:${id}`, Buffer.from('user|s:3:"bob";')]);
      const read = await visit(manager, 'ci_session', id);
      assert.equal(read.id, id);
      assert.equal(read.get('user'), 'bob');
    });

    it('locks the bare ID, as CodeIgniter 4.3 does, not the stored one', async () => {
      const created = await visit(manager, 'ci_session', undefined, (s) => s.set('n', 1));
      assert.equal(await locker.query(codeIgniterLock, [created.id]), true);
      try {
        await assert.rejects(manager.start(requestFor(created.id)), /lock/i);
      } finally {
        await locker.query(codeIgniterUnlock, [created.id]);
      }
      const session = await manager.start(requestFor(created.id));
      try {
        assert.equal(await locker.query(codeIgniterLock, [created.id]), false);
        assert.equal(await locker.query(codeIgniterLock, [`ci_session:${created.id}`]), true);
        await locker.query(codeIgniterUnlock, [`ci_session:${created.id}`]);
      } finally {
        await manager.commit(session);
      }
    });
  });
}
