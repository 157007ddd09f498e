import { after, before, describe } from 'node:test';
import { DatabaseHandler } from '../../src/handlers/database/index.js';
import type { SqlDialect } from '../../src/handlers/database/schema.js';
import { runConformanceSuite } from '../../src/testing/conformance.js';
import { serviceSkip } from '../helpers/services.js';
import { createTable, dropTable, runSql, urlOf } from './database/servers.js';

const servers: [SqlDialect, string, number, string][] = [
  ['postgres', 'PostgreSQL', 5432, 'keepsake_conf_pg'],
  ['mysql', 'MariaDB', 3306, 'keepsake_conf_my'],
];

for (const [dialect, label, port, table] of servers) {
  const skip = await serviceSkip(label, '127.0.0.1', port);
  describe(`database driver on ${label}`, { skip }, () => {
    // (id, ip_address) key: the suite also runs the matchIP case on this table.
    before(() => createTable(dialect, table, true));
    after(() => dropTable(dialect, table));
    runConformanceSuite(`database (${label})`, {
      createHandler: () => new DatabaseHandler(),
      savePath: table,
      connection: urlOf(dialect),
      expiry: 'settings',
      cleanup: () =>
        runSql(
          dialect,
          dialect === 'postgres'
            ? `DELETE FROM ${table};\nDELETE FROM ${table}_locks`
            : `DELETE FROM ${table}`,
        ),
    });
  });
}
