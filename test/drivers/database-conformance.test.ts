import { after, before, describe } from 'node:test';
import type { SessionDriver } from '../../src/drivers/contract.js';
import { connect, planConnection } from '../../src/drivers/database/connection.js';
import { LockConnections } from '../../src/drivers/database/lock-connection.js';
import { inspectMysqlTable, MysqlSessionTable } from '../../src/drivers/database/mysql.js';
import { parseTableName } from '../../src/drivers/database/schema.js';
import { timestampColumnOf } from '../../src/drivers/database/session-table.js';
import { DatabaseStore } from '../../src/drivers/database/store.js';
import { database, type SqlDialect } from '../../src/drivers/database.js';
import { runConformanceSuite } from '../../src/testing/conformance.js';
import { mysqlCodeIgniterTableSql, postgresCodeIgniterTableSql } from '../codeigniter/ci-tables.js';
import { serviceSkip } from '../helpers/services.js';
import { createTable, dropTable, MYSQL_URL, runSql, urlOf } from './database/servers.js';

const servers: [SqlDialect, string, number, string][] = [
  ['postgres', 'PostgreSQL', 5432, 'keepsake_conf_pg'],
  ['mysql', 'MariaDB', 3306, 'keepsake_conf_my'],
];

const emptyTable = (dialect: SqlDialect, table: string) => runSql(dialect, `DELETE FROM ${table}`);

for (const [dialect, label, port, table] of servers) {
  const skip = await serviceSkip(label, '127.0.0.1', port);
  describe(`database driver on ${label}`, { skip }, () => {
    // (id, ip_address) key: the suite also runs the matchIP case on this table.
    before(() => createTable(dialect, table, true));
    after(() => dropTable(dialect, table));
    runConformanceSuite(`database (${label})`, {
      driver: () => database({ connection: urlOf(dialect), table }),
      expiry: 'clock',
      cleanup: () => emptyTable(dialect, table),
    });
  });
}

/**
 * CodeIgniter 4's table as CodeIgniter creates it (a time-typed `timestamp`; on MySQL/MariaDB its
 * blob widened to mediumblob, as docs/drivers/database.md advises, for the 256 KiB case).
 */
async function createCodeIgniterTable(dialect: SqlDialect, table: string, matchIP: boolean) {
  await dropTable(dialect, table);
  if (dialect === 'postgres') {
    await runSql(dialect, postgresCodeIgniterTableSql(table, matchIP));
    return;
  }
  await runSql(dialect, mysqlCodeIgniterTableSql(table, matchIP));
  await runSql(dialect, `ALTER TABLE ${table} MODIFY data mediumblob NOT NULL`);
}

/**
 * A driver on CodeIgniter's table keyed by id alone, but for a store opened with matchIP, which
 * such a table refuses: that one opens the table keyed by (id, ip_address).
 */
function byMatchIP(drivers: (table: string) => SessionDriver, idTable: string, ipTable: string) {
  return (): SessionDriver => ({
    name: 'database',
    open: (context) => drivers(context.matchIP ? ipTable : idTable).open(context),
  });
}

/** The driver, always opened with matchIP on. */
function withMatchIP(driver: SessionDriver): SessionDriver {
  return { name: driver.name, open: (context) => driver.open({ ...context, matchIP: true }) };
}

for (const [dialect, label, port, table] of servers) {
  const skip = await serviceSkip(label, '127.0.0.1', port);
  const idTable = `${table}_ci`;
  const ipTable = `${table}_ci_ip`;
  describe(`database driver in keepsake's layout on CodeIgniter's ${label} table`, { skip }, () => {
    before(async () => {
      await createCodeIgniterTable(dialect, idTable, false);
      await createCodeIgniterTable(dialect, ipTable, true);
    });
    after(async () => {
      await dropTable(dialect, idTable);
      await dropTable(dialect, ipTable);
    });
    const cleanup = async () => {
      await emptyTable(dialect, idTable);
      await emptyTable(dialect, ipTable);
    };
    runConformanceSuite(`database (${label}, CodeIgniter's table keyed by id)`, {
      driver: byMatchIP(
        (name) => database({ connection: urlOf(dialect), table: name }),
        idTable,
        ipTable,
      ),
      expiry: 'clock',
      cleanup,
    });
    // CodeIgniter's key for sessionMatchIP, which keepsake opens only with matchIP on: every case
    // runs with it (a key without an IP is stored under 0.0.0.0).
    runConformanceSuite(`database (${label}, CodeIgniter's table keyed by id and address)`, {
      driver: () => withMatchIP(database({ connection: urlOf(dialect), table: ipTable })),
      expiry: 'clock',
      cleanup,
    });
  });
}

/**
 * MySQL has no INSERT … RETURNING, so there a write and its unlock are two statements. MariaDB has
 * it; this runs the MySQL way on MariaDB, so that path is tested on a real server too.
 */
function withoutReturning(table: string): SessionDriver {
  return {
    name: 'database',
    async open(context) {
      const plan = planConnection(MYSQL_URL);
      const client = await connect(plan, context.ioTimeoutMs, context.logger, {
        count: 2,
        asked: true,
      });
      if (client.dialect !== 'mysql') throw new Error('MYSQL_URL is not a MySQL URL');
      const tableName = parseTableName(table);
      const shape = await inspectMysqlTable(client.pool, tableName, context.ioTimeoutMs);
      if (shape === null) throw new Error(`the table ${table} is missing`);
      const statements = new MysqlSessionTable(client.pool, client.openLockConnection, {
        table: tableName,
        shape: { ...shape, returning: false },
        matchIP: context.matchIP,
        scheme: 'keepsake',
        timestampColumn: timestampColumnOf(shape.timestampType ?? '') ?? 'seconds',
        ioTimeoutMs: context.ioTimeoutMs,
        logger: context.logger,
      });
      const connections = new LockConnections(
        2,
        () => statements.openLockConnection(),
        context.logger,
      );
      return new DatabaseStore(statements, connections, tableName, context, client.end);
    },
  };
}

const mysqlSkip = await serviceSkip('MariaDB', '127.0.0.1', 3306);
describe('database driver, two-statement lock of MySQL, on MariaDB', { skip: mysqlSkip }, () => {
  const table = 'keepsake_conf_my2';
  before(() => createTable('mysql', table, true));
  after(() => dropTable('mysql', table));
  runConformanceSuite('database (MySQL without RETURNING)', {
    driver: () => withoutReturning(table),
    expiry: 'clock',
    cleanup: () => emptyTable('mysql', table),
  });
});

describe("database driver, two-statement lock of MySQL, on CodeIgniter's MariaDB table", {
  skip: mysqlSkip,
}, () => {
  const idTable = 'keepsake_conf_my2_ci';
  const ipTable = 'keepsake_conf_my2_ci_ip';
  before(async () => {
    await createCodeIgniterTable('mysql', idTable, false);
    await createCodeIgniterTable('mysql', ipTable, true);
  });
  after(async () => {
    await dropTable('mysql', idTable);
    await dropTable('mysql', ipTable);
  });
  runConformanceSuite("database (MySQL without RETURNING, CodeIgniter's table)", {
    driver: byMatchIP(withoutReturning, idTable, ipTable),
    expiry: 'clock',
    cleanup: async () => {
      await emptyTable('mysql', idTable);
      await emptyTable('mysql', ipTable);
    },
  });
});
