import { after, before, describe } from 'node:test';
import type { SessionDriver } from '../../src/drivers/contract.js';
import { connect, planConnection } from '../../src/drivers/database/connection.js';
import { LockConnections } from '../../src/drivers/database/lock-connection.js';
import { inspectMysqlTable, MysqlSessionTable } from '../../src/drivers/database/mysql.js';
import { parseTableName } from '../../src/drivers/database/schema.js';
import { DatabaseStore } from '../../src/drivers/database/store.js';
import { database, type SqlDialect } from '../../src/drivers/database.js';
import { runConformanceSuite } from '../../src/testing/conformance.js';
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
