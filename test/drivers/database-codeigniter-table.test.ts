/**
 * CodeIgniter 4's session table (a date/time `timestamp`) in keepsake's own layout, and what
 * opening refuses or names for each layout. The conformance suite runs on these tables in
 * database-conformance.test.ts; this file checks what it cannot see: the row's columns, the zero
 * date and the 2038 limit of MySQL's timestamp, and the messages.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DriverContext } from '../../src/drivers/contract.js';
import {
  connect,
  type MysqlLockClient,
  planConnection,
} from '../../src/drivers/database/connection.js';
import { openSessionTable } from '../../src/drivers/database/open-table.js';
import { parseTableName } from '../../src/drivers/database/schema.js';
import type { SessionTable } from '../../src/drivers/database/session-table.js';
import { database, type SqlDialect } from '../../src/drivers/database.js';
import { SessionConfigError } from '../../src/errors.js';
import { createSessionId } from '../../src/id.js';
import { SessionManager } from '../../src/manager.js';
import { recordingLogger, SUITE_CONTEXT } from '../../src/testing/conformance.js';
import { lock, put } from '../../src/testing/conformance-store.js';
import { openStore } from '../../src/testing/index.js';
import { requestFor } from '../../src/testing/request-for.js';
import { mysqlCodeIgniterTableSql, postgresCodeIgniterTableSql } from '../codeigniter/ci-tables.js';
import { serviceSkip } from '../helpers/services.js';
import { DATABASE_SERVERS, dropTable, queryRows, runSql, urlOf } from './database/servers.js';

const newKey = () => ({ id: createSessionId(), ip: null });

function codeIgniterTableSql(dialect: SqlDialect, table: string, matchIP = false): string {
  return dialect === 'postgres'
    ? postgresCodeIgniterTableSql(table, matchIP)
    : mysqlCodeIgniterTableSql(table, matchIP);
}

/** Opening `driver` fails with a SessionConfigError whose option and message are as given. */
async function refusal(
  driver: ReturnType<typeof database>,
  option: string,
  message: RegExp,
): Promise<string> {
  const manager = new SessionManager({ driver, gcProbability: 0, logger: recordingLogger([]) });
  let text = '';
  await assert.rejects(manager.ready(), (error: unknown) => {
    assert.ok(error instanceof SessionConfigError, String(error));
    assert.equal(error.option, option);
    assert.match(error.message, message);
    text = error.message;
    return true;
  });
  await manager.shutdown();
  return text;
}

for (const [dialect, label, port] of DATABASE_SERVERS) {
  const skip = await serviceSkip(label, '127.0.0.1', port);
  const name = (suffix: string) =>
    `keepsake_citable_${dialect === 'postgres' ? 'pg' : 'my'}_${suffix}`;
  const q = (column: string) => (dialect === 'postgres' ? `"${column}"` : `\`${column}\``);
  const secondsOf = (column: string) =>
    dialect === 'postgres' ? `extract(epoch FROM ${q(column)})` : `UNIX_TIMESTAMP(${q(column)})`;
  const url = urlOf(dialect);

  describe(`CodeIgniter's ${label} table in keepsake's layout`, { skip }, () => {
    const table = name('plain');
    const tables = [table, name('ip'), name('text'), name('utc'), name('missing')];
    before(async () => {
      await dropTable(dialect, table);
      await runSql(dialect, codeIgniterTableSql(dialect, table));
    });
    after(async () => {
      for (const each of tables) await dropTable(dialect, each);
    });

    it("stores JSON, the time, and the client's address though matchIP is off, as CodeIgniter does", async () => {
      const manager = new SessionManager({
        driver: database({ connection: url, table }),
        gcProbability: 0,
        logger: recordingLogger([]),
      });
      try {
        const session = await manager.start(requestFor(undefined, { ip: '10.1.2.3' }));
        session.set('user', 'ada');
        await manager.commit(session);
        const [row] = await queryRows(
          dialect,
          `SELECT ${dialect === 'postgres' ? 'host(ip_address)' : 'ip_address'} AS ip,
             ${secondsOf('timestamp')} AS seconds, data FROM ${table} WHERE id = ${dialect === 'postgres' ? '$1' : '?'}`,
          [session.id],
        );
        assert.equal(row?.ip, '10.1.2.3');
        assert.ok(Math.abs(Number(row?.seconds) - Date.now() / 1000) < 5, String(row?.seconds));
        assert.match(String(row?.data), /^\{.*"user":"ada"/);
        const again = await manager.start(requestFor(session.id, { ip: '10.9.9.9' }));
        assert.equal(again.get('user'), 'ada', 'a session is its ID alone without matchIP');
        await manager.commit(again);
      } finally {
        await manager.shutdown();
      }
    });

    it("refuses CodeIgniter's (id, ip_address) key without matchIP, and opens it with matchIP", async () => {
      const keyed = name('ip');
      await dropTable(dialect, keyed);
      await runSql(dialect, codeIgniterTableSql(dialect, keyed, true));
      await refusal(database({ connection: url, table: keyed }), 'matchIP', /turn matchIP on/);
      const manager = new SessionManager({
        driver: database({ connection: url, table: keyed }),
        matchIP: true,
        gcProbability: 0,
        logger: recordingLogger([]),
      });
      await manager.ready();
      await manager.shutdown();
    });

    it('refuses a timestamp that holds no time, naming the types that do', async () => {
      const text = name('text');
      await dropTable(dialect, text);
      await runSql(
        dialect,
        `CREATE TABLE ${text} (id varchar(128) NOT NULL, ip_address varchar(45) NOT NULL, ${q('timestamp')} varchar(32) NOT NULL, data ${dialect === 'postgres' ? 'bytea' : 'blob'} NOT NULL, PRIMARY KEY (id))`,
      );
      for (const layout of ['keepsake', 'codeigniter'] as const) {
        await refusal(
          database({ connection: url, table: text, layout }),
          'table',
          /holds no time keepsake can keep.*Unix seconds.*date\/time type/,
        );
      }
    });

    it("names the layout's own table when the table is missing", async () => {
      const missing = name('missing');
      const own = await refusal(
        database({ connection: url, table: missing }),
        'table',
        /does not exist/,
      );
      assert.match(own, /npx keepsake migration/);
      const codeIgniter = await refusal(
        database({ connection: url, table: missing, layout: 'codeigniter' }),
        'table',
        /does not exist/,
      );
      assert.match(codeIgniter, /CodeIgniter's user guide.*docs\/codeigniter\.md/);
      assert.doesNotMatch(codeIgniter, /npx keepsake migration/);
    });

    it("names CodeIgniter's table when it goes missing at run time in CodeIgniter's layout", async () => {
      const gone = name('gone');
      tables.push(gone);
      await dropTable(dialect, gone);
      await runSql(dialect, codeIgniterTableSql(dialect, gone));
      const harness = await openStore({
        driver: () => database({ connection: url, table: gone, layout: 'codeigniter' }),
        expiry: 'real',
      });
      try {
        await dropTable(dialect, gone);
        await assert.rejects(harness.store.peek(newKey()), (error: unknown) => {
          assert.ok(error instanceof Error);
          assert.match(error.message, /does not exist or lacks a column.*docs\/codeigniter\.md/);
          assert.doesNotMatch(error.message, /npx keepsake migration/);
          return true;
        });
      } finally {
        await harness.store.close();
      }
    });

    if (dialect === 'postgres') {
      it('keeps UTC wall-clock time in a timestamp without time zone', async () => {
        const utc = name('utc');
        await dropTable(dialect, utc);
        await runSql(
          dialect,
          `CREATE TABLE ${utc} (id varchar(128) NOT NULL, ip_address inet NOT NULL, "timestamp" timestamp DEFAULT now() NOT NULL, data bytea DEFAULT '' NOT NULL, PRIMARY KEY (id))`,
        );
        const harness = await openStore({
          driver: () => database({ connection: url, table: utc }),
          expiry: 'real',
        });
        try {
          const key = newKey();
          await put(harness, key, '{"utc":1}');
          const [row] = await queryRows(
            dialect,
            `SELECT extract(epoch FROM "timestamp") AS seconds FROM ${utc} WHERE id = $1`,
            [key.id],
          );
          assert.ok(Math.abs(Number(row?.seconds) - Date.now() / 1000) < 5, String(row?.seconds));
          assert.equal(await harness.store.peek(key), '{"utc":1}');
        } finally {
          await harness.store.close();
        }
      });
    }

    if (dialect === 'mysql') {
      const target = {
        driver: () => database({ connection: url, table }),
        expiry: 'real' as const,
      };

      it("reads CodeIgniter 4.1.3's zero-date row as no session, and GC deletes it", async () => {
        const harness = await openStore(target);
        try {
          const key = newKey();
          await runSql(
            dialect,
            `SET SESSION sql_mode = '';\nINSERT INTO ${table} (id, ip_address, \`timestamp\`, data) VALUES ('${key.id}', '127.0.0.1', 'now()', '{"zero":1}')`,
          );
          const [stored] = await queryRows(
            dialect,
            `SELECT CAST(\`timestamp\` AS CHAR) AS ts FROM ${table} WHERE id = ?`,
            [key.id],
          );
          assert.equal(stored?.ts, '0000-00-00 00:00:00');
          assert.equal(await harness.store.peek(key), null);
          const held = await lock(harness.store, key);
          assert.equal(held.payload, null);
          await harness.store.unlock(key, held.token, false);
          await harness.store.gc?.(60);
          assert.deepEqual(
            await queryRows(dialect, `SELECT id FROM ${table} WHERE id = ?`, [key.id]),
            [],
          );
        } finally {
          await harness.store.close();
        }
      });

      it('stores a time past 2038 as the last second a timestamp holds, and the session stays live', async () => {
        const harness = await openStore(target);
        try {
          const key = newKey();
          await put(harness, key, '{"long":1}', 2_000_000_000);
          const [row] = await queryRows(
            dialect,
            `SELECT UNIX_TIMESTAMP(\`timestamp\`) AS seconds FROM ${table} WHERE id = ?`,
            [key.id],
          );
          assert.equal(Number(row?.seconds), 2_147_483_647);
          assert.equal(await harness.store.peek(key), '{"long":1}');
        } finally {
          await harness.store.close();
        }
      });

      it('with expiration: 0 stores the last activity, which the timestamp holds', async () => {
        const manager = new SessionManager({
          driver: database({ connection: url, table }),
          expiration: 0,
          gcProbability: 0,
          logger: recordingLogger([]),
        });
        try {
          const session = await manager.start(requestFor());
          session.set('browser', true);
          await manager.commit(session);
          const [row] = await queryRows(
            dialect,
            `SELECT UNIX_TIMESTAMP(\`timestamp\`) AS seconds FROM ${table} WHERE id = ?`,
            [session.id],
          );
          assert.ok(Math.abs(Number(row?.seconds) - Date.now() / 1000) < 5, String(row?.seconds));
          const again = await manager.start(requestFor(session.id));
          assert.equal(again.get('browser'), true);
          await manager.commit(again);
        } finally {
          await manager.shutdown();
        }
      });

      it("a write on a pooled connection while the lock connection is busy stores the client's address", async () => {
        const context: DriverContext = {
          ...SUITE_CONTEXT,
          clock: Date.now,
          logger: recordingLogger([]),
        };
        const client = await connect(planConnection(url), 5_000, context.logger, {
          count: 1,
          asked: true,
        });
        const sessions = (await openSessionTable(
          client,
          parseTableName(table),
          context,
          'keepsake',
        )) as SessionTable<MysqlLockClient>;
        const on = await sessions.openLockConnection();
        try {
          const held = { id: createSessionId(), ip: '0.0.0.0', address: '10.2.2.2' };
          const other = { id: createSessionId(), ip: '0.0.0.0', address: '10.2.2.2' };
          await sessions.tryLock(on, held);
          const running = sessions.tryLock(on, other);
          const now = Math.floor(Date.now() / 1000);
          assert.equal(await sessions.write(on, held, Buffer.from('{"n":1}'), now), true);
          await running;
          await sessions.unlock(on, other);
          const [row] = await queryRows(
            dialect,
            `SELECT ip_address AS ip, UNIX_TIMESTAMP(\`timestamp\`) AS seconds, data FROM ${table} WHERE id = ?`,
            [held.id],
          );
          assert.deepEqual(
            { ip: row?.ip, seconds: Number(row?.seconds), data: String(row?.data) },
            { ip: '10.2.2.2', seconds: now, data: '{"n":1}' },
          );
        } finally {
          await on.close();
          await client.end?.();
        }
      });

      it("warns at startup that CodeIgniter's blob holds 64 KiB, and says how to widen it", async () => {
        const warnings: string[] = [];
        const manager = new SessionManager({
          driver: database({ connection: url, table }),
          gcProbability: 0,
          logger: recordingLogger(warnings),
        });
        try {
          await manager.ready();
          assert.ok(
            warnings.some((warning) =>
              /is blob, which holds at most 65535 bytes.*ALTER TABLE .* MODIFY data mediumblob NOT NULL/.test(
                warning,
              ),
            ),
            JSON.stringify(warnings),
          );
        } finally {
          await manager.shutdown();
        }
      });
    }
  });
}
