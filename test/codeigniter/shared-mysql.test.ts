/**
 * The database driver in CodeIgniter's layout on MariaDB, sharing CodeIgniter 4.1's user guide
 * table with a real CodeIgniter 4.1.3 app (DatabaseHandler): see shared-sessions.ts for the
 * scenarios.
 */
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { database, sessionTableSql } from '../../src/drivers/database.js';
import { serviceSkip } from '../helpers/services.js';
import { codeIgniterSkip } from './ci-app.js';
import { createMysqlCodeIgniterTable } from './ci-tables.js';
import { databaseLayoutSuite } from './database-layout.js';
import { sharedSessionSuite } from './shared-sessions.js';

const URL = 'mysql://root@127.0.0.1:3306/test';

const skip = (await codeIgniterSkip('mysql')) || (await serviceSkip('MariaDB', '127.0.0.1', 3306));

sharedSessionSuite('mysql', skip, async () => {
  const connection = await mysql.createConnection({ uri: URL });
  const table = await createMysqlCodeIgniterTable(connection);
  return {
    codeigniter: { driver: 'mysql', savePath: table },
    driver: () => database({ connection: URL, table, layout: 'codeigniter' }),
    async read(id) {
      const [rows] = await connection.query(`SELECT data FROM \`${table}\` WHERE id = ?`, [id]);
      return (rows as { data: Buffer }[])[0]?.data ?? null;
    },
    async write(id, data) {
      await connection.query(`UPDATE \`${table}\` SET data = ? WHERE id = ?`, [data, id]);
    },
    async cleanup() {
      await connection.query(`DROP TABLE IF EXISTS \`${table}\``);
      await connection.end();
    },
  };
});

databaseLayoutSuite('MariaDB', skip, () => {
  const connecting = Promise.all([
    mysql.createConnection({ uri: URL }),
    mysql.createConnection({ uri: URL }),
  ]);
  const tables: string[] = [];
  return {
    driver: 'mysql',
    url: URL,
    async createTable(kind, matchIP) {
      const [connection] = await connecting;
      const table =
        kind === 'codeigniter'
          ? await createMysqlCodeIgniterTable(connection, matchIP)
          : `keepsake_own_${randomBytes(4).toString('hex')}`;
      if (kind === 'keepsake') await connection.query(sessionTableSql({ dialect: 'mysql', table }));
      tables.push(table);
      return table;
    },
    async row(table, id) {
      const [connection] = await connecting;
      const [rows] = await connection.query(
        `SELECT ip_address AS ip, CAST(\`timestamp\` AS CHAR) AS timestamp,
           IF(\`timestamp\` = 0, NULL, UNIX_TIMESTAMP() - UNIX_TIMESTAMP(\`timestamp\`)) AS seconds_ago
         FROM \`${table}\` WHERE id = ?`,
        [id],
      );
      const row = (rows as { ip: string; timestamp: string; seconds_ago: number | null }[])[0];
      return row === undefined
        ? null
        : {
            ip: row.ip,
            timestamp: row.timestamp,
            secondsAgo: row.seconds_ago === null ? null : Number(row.seconds_ago),
          };
    },
    // DatabaseHandler: GET_LOCK(md5('<id>'), 300), md5('<id>_<ip>') under matchIP; here tried
    // rather than waited for.
    async lockAsCodeIgniter(id, ip) {
      const [, locker] = await connecting;
      const name = ip === undefined ? id : `${id}_${ip}`;
      const [rows] = await locker.query('SELECT GET_LOCK(MD5(?), 0) AS locked', [name]);
      return Number((rows as { locked: number }[])[0]?.locked) === 1;
    },
    async unlockAsCodeIgniter(id, ip) {
      const [, locker] = await connecting;
      await locker.query('DO RELEASE_LOCK(MD5(?))', [ip === undefined ? id : `${id}_${ip}`]);
    },
    // 4.1.3 writes the text 'now()' into the timestamp, which MariaDB, outside strict mode (as
    // CodeIgniter's MySQLi driver connects), stores as the zero date.
    codeIgniterTimestamp: /^0000-00-00 00:00:00$/,
    async dropTables() {
      const [connection] = await connecting;
      for (const table of tables) await connection.query(`DROP TABLE IF EXISTS \`${table}\``);
    },
    async close() {
      await Promise.all((await connecting).map((connection) => connection.end()));
    },
  };
});
