/**
 * The database driver in CodeIgniter's layout on PostgreSQL, sharing CodeIgniter 4.1's user guide
 * table with a real CodeIgniter 4.1.3 app (DatabaseHandler): see shared-sessions.ts for the
 * scenarios.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { database, sessionTableSql } from '../../src/drivers/database.js';
import { serviceSkip } from '../helpers/services.js';
import { codeIgniterSkip } from './ci-app.js';
import { createPostgresCodeIgniterTable } from './ci-tables.js';
import { databaseLayoutSuite } from './database-layout.js';
import { sharedSessionSuite } from './shared-sessions.js';

const URL = 'postgres://postgres@127.0.0.1:5432/test';

const skip =
  (await codeIgniterSkip('postgres')) || (await serviceSkip('PostgreSQL', '127.0.0.1', 5432));

sharedSessionSuite('postgres', skip, async () => {
  const client = new pg.Client({ connectionString: URL });
  await client.connect();
  const table = await createPostgresCodeIgniterTable(client);
  return {
    codeigniter: { driver: 'postgres', savePath: table },
    driver: () => database({ connection: URL, table, layout: 'codeigniter' }),
    async read(id) {
      const { rows } = await client.query(`SELECT data FROM "${table}" WHERE id = $1`, [id]);
      return (rows[0] as { data: Buffer } | undefined)?.data ?? null;
    },
    async write(id, data) {
      await client.query(`UPDATE "${table}" SET data = $2, "timestamp" = now() WHERE id = $1`, [
        id,
        data,
      ]);
    },
    async cleanup() {
      await client.query(`DROP TABLE IF EXISTS "${table}"`);
      await client.end();
    },
  };
});

databaseLayoutSuite('PostgreSQL', skip, () => {
  const client = new pg.Client({ connectionString: URL });
  const locker = new pg.Client({ connectionString: URL });
  const connected = Promise.all([client.connect(), locker.connect()]);
  const tables: string[] = [];
  return {
    driver: 'postgres',
    url: URL,
    async createTable(kind, matchIP) {
      await connected;
      const table =
        kind === 'codeigniter'
          ? await createPostgresCodeIgniterTable(client, matchIP)
          : `keepsake_own_${randomBytes(4).toString('hex')}`;
      if (kind === 'keepsake') await client.query(sessionTableSql({ dialect: 'postgres', table }));
      tables.push(table);
      return table;
    },
    async row(table, id) {
      const { rows } = await client.query(
        `SELECT host(ip_address) AS ip, "timestamp"::text AS timestamp,
           extract(epoch FROM now() - "timestamp")::float8 AS seconds_ago
         FROM "${table}" WHERE id = $1`,
        [id],
      );
      const row = rows[0] as { ip: string; timestamp: string; seconds_ago: number } | undefined;
      return row === undefined
        ? null
        : { ip: row.ip, timestamp: row.timestamp, secondsAgo: row.seconds_ago };
    },
    // DatabaseHandler: pg_advisory_lock(hashtext('<id>')), with hashtext('<ip>') as the second
    // key under matchIP; here tried rather than waited for.
    async lockAsCodeIgniter(id, ip) {
      const { rows } = await locker.query(
        ip === undefined
          ? 'SELECT pg_try_advisory_lock(hashtext($1)) AS locked'
          : 'SELECT pg_try_advisory_lock(hashtext($1), hashtext($2)) AS locked',
        ip === undefined ? [id] : [id, ip],
      );
      return (rows[0] as { locked: boolean }).locked;
    },
    async unlockAsCodeIgniter(id, ip) {
      await locker.query(
        ip === undefined
          ? 'SELECT pg_advisory_unlock(hashtext($1))'
          : 'SELECT pg_advisory_unlock(hashtext($1), hashtext($2))',
        ip === undefined ? [id] : [id, ip],
      );
    },
    // 4.1.3 writes the text 'now()', which PostgreSQL reads as the current time.
    codeIgniterTimestamp: /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/,
    async dropTables() {
      for (const table of tables) await client.query(`DROP TABLE IF EXISTS "${table}"`);
    },
    async close() {
      await Promise.all([client.end(), locker.end()]);
    },
  };
});
