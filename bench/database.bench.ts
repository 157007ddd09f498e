/**
 * The database driver vs connect-pg-simple (PostgreSQL) and express-mysql-session (MariaDB), each
 * on its own table of the shared servers, with pools of the same size. The counted phase runs on a
 * private PostgreSQL (with pg_stat_statements) and a private MariaDB, both with the shared servers'
 * durability settings (their defaults: every commit waits for its log flush).
 */
import { execFile } from 'node:child_process';
import { chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { database } from 'keepsake/database';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { keepsakeApp, peerApp } from './array.bench.js';
import type { CountingStore } from './counts.js';
import { type BenchApps, type BenchGroup, type StoreAddress, uniqueName } from './harness.js';
import {
  childPids,
  runCommand,
  startPrivateServer,
  systemUser,
  Teardown,
} from './private-server.js';

const require = createRequire(import.meta.url);

const POSTGRES_PORT = 5432;
const MYSQL_PORT = 3306;
/** Spare ports for the counted phase's private servers. */
const PRIVATE_POSTGRES_PORT = 5491;
const PRIVATE_MYSQL_PORT = 3391;
const DATABASE = 'test';
const POOL_SIZE = 10;
/**
 * keepsake's lock connections (`lockConnections`); BENCH_LOCK_CONNECTIONS sets another count. On
 * MySQL they come out of the pool of 10; on PostgreSQL they are opened beside it.
 */
const lockConnections =
  process.env.BENCH_LOCK_CONNECTIONS === undefined
    ? undefined
    : Number(process.env.BENCH_LOCK_CONNECTIONS);
const keepsakeDriver = (connection: pg.Pool | mysql.Pool, table: string) =>
  database({ connection, table, ...(lockConnections === undefined ? {} : { lockConnections }) });

const postgresUrl = (port: number, database = DATABASE) =>
  `postgres://postgres@127.0.0.1:${port}/${database}`;
const mysqlUrl = (port: number, database = DATABASE) =>
  `mysql://root@127.0.0.1:${port}/${database}`;

const execFileAsync = promisify(execFile);
const { bin } = require('../package.json') as { bin: Record<string, string> };
const cliPath = fileURLToPath(new URL(`../${bin.keepsake}`, import.meta.url));

/**
 * Creates keepsake's session tables named after `table`, with the statements its `keepsake
 * migration` command prints, and answers a statement that drops them again.
 */
async function createSessionTables(
  dialect: 'postgres' | 'mysql',
  table: string,
  query: (sql: string) => Promise<unknown>,
): Promise<string> {
  const { stdout } = await execFileAsync(process.execPath, [
    cliPath,
    'migration',
    '--driver',
    dialect,
    '--table',
    table,
  ]);
  const statements = stdout
    .split(/;\s*(?:\n|$)/)
    .map((statement) => statement.trim())
    .filter((statement) => statement !== '');
  for (const statement of statements) await query(statement);
  const created = statements.flatMap(
    (statement) => /^CREATE (?:UNLOGGED )?TABLE IF NOT EXISTS (\S+)/.exec(statement)?.[1] ?? [],
  );
  return `DROP TABLE IF EXISTS ${created.join(', ')}`;
}

export const apps: BenchApps = {
  'keepsake-postgres': async ({ port = POSTGRES_PORT }: StoreAddress) => {
    const table = uniqueName('pg');
    const pool = new pg.Pool({ connectionString: postgresUrl(port), max: POOL_SIZE });
    const drop = await createSessionTables('postgres', table, (sql) => pool.query(sql));
    return keepsakeApp({ driver: keepsakeDriver(pool, table) }, async () => {
      await pool.query(drop);
      await pool.end();
    });
  },
  'connect-pg-simple': async ({ port = POSTGRES_PORT }: StoreAddress) => {
    const table = uniqueName('cps');
    const pool = new pg.Pool({ connectionString: postgresUrl(port), max: POOL_SIZE });
    const PgStore = require('connect-pg-simple')(require('express-session')) as new (
      options: object,
    ) => { close(): void };
    const store = new PgStore({
      pool,
      tableName: table,
      createTableIfMissing: true,
      pruneSessionInterval: false,
    });
    return peerApp(store, async () => {
      store.close();
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
      await pool.end();
    });
  },
  'keepsake-mysql': async ({ port = MYSQL_PORT }: StoreAddress) => {
    const table = uniqueName('my');
    const pool = mysql.createPool({ uri: mysqlUrl(port), connectionLimit: POOL_SIZE });
    const drop = await createSessionTables('mysql', table, (sql) => pool.query(sql));
    return keepsakeApp({ driver: keepsakeDriver(pool, table) }, async () => {
      await pool.query(drop);
      await pool.end();
    });
  },
  'express-mysql-session': async ({ port = MYSQL_PORT }: StoreAddress) => {
    const table = uniqueName('ems');
    const pool = mysql.createPool({ uri: mysqlUrl(port), connectionLimit: POOL_SIZE });
    const MySQLStore = require('express-mysql-session')(require('express-session')) as new (
      options: object,
      connection: unknown,
    ) => { onReady(): Promise<void>; close(): Promise<void> };
    const store = new MySQLStore(
      { createDatabaseTable: true, clearExpired: false, schema: { tableName: table } },
      pool,
    );
    await store.onReady();
    return peerApp(store, async () => {
      await store.close();
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
      await pool.end();
    });
  },
};

/** The newest PostgreSQL server binaries installed (Debian keeps them under /usr/lib/postgresql). */
async function postgresBin(): Promise<string> {
  const versions = (await readdir('/usr/lib/postgresql').catch(() => [] as string[]))
    .filter((name) => /^\d+$/.test(name))
    .sort((left, right) => Number(right) - Number(left));
  if (versions[0] === undefined) throw new Error('no PostgreSQL server in /usr/lib/postgresql');
  return `/usr/lib/postgresql/${versions[0]}/bin`;
}

/** A client connected once the server accepts sessions (it listens before it has started up). */
async function connectedWhenReady(create: () => pg.Client): Promise<pg.Client> {
  for (let attempt = 1; ; attempt += 1) {
    const client = create();
    try {
      await client.connect();
      return client;
    } catch (error) {
      await client.end().catch(() => {});
      if (attempt === 100) throw error;
      await sleep(100);
    }
  }
}

/** SELECT, UPDATE…; a statement with a WITH clause also names the changes it makes: WITH+INSERT. */
function statementKind(query: string): string {
  const first = /^\s*(\w+)/.exec(query)?.[1]?.toUpperCase() ?? '?';
  if (first !== 'WITH') return first;
  const changes = new Set(query.toUpperCase().match(/\b(INSERT|UPDATE|DELETE)\b/g));
  return ['WITH', ...[...changes].sort()].join('+');
}

/**
 * A private PostgreSQL with pg_stat_statements. Its statement counts are exact at once (the
 * cumulative statistics views, pg_stat_wal included, reach shared memory only when a backend
 * reports, up to seconds later). Autovacuum, checkpoints and the standby snapshots of wal_level
 * replica are kept out of the counting window, so that its WAL is the requests' own.
 */
async function privatePostgres(): Promise<CountingStore> {
  const bin = await postgresBin();
  const user = await systemUser('postgres');
  const directory = await mkdtemp(join(tmpdir(), 'keepsake-bench-postgres-'));
  const teardown = new Teardown();
  teardown.add(() => rm(directory, { recursive: true, force: true }));
  return teardown.guard(async () => {
    await chown(directory, user.uid, user.gid);
    const data = join(directory, 'data');
    await runCommand(`${bin}/initdb`, ['-D', data, '-U', 'postgres', '--auth=trust', '-N'], user);
    const server = await startPrivateServer({
      name: 'PostgreSQL',
      command: `${bin}/postgres`,
      args: [
        ['-D', data, '-p', String(PRIVATE_POSTGRES_PORT)],
        ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${directory}`],
        ['-c', 'shared_preload_libraries=pg_stat_statements', '-c', 'autovacuum=off'],
        ['-c', 'wal_level=minimal', '-c', 'max_wal_senders=0', '-c', 'checkpoint_timeout=1d'],
      ].flat(),
      port: PRIVATE_POSTGRES_PORT,
      user,
      stopSignal: 'SIGINT',
    });
    teardown.add(() => server.stop());
    // The bench's own queries run in another database, so that they stay out of the counts.
    const monitor = await connectedWhenReady(
      () => new pg.Client({ connectionString: postgresUrl(PRIVATE_POSTGRES_PORT, 'postgres') }),
    );
    teardown.add(() => monitor.end());
    await monitor.query(`CREATE DATABASE ${DATABASE}`);
    await monitor.query('CREATE EXTENSION pg_stat_statements');
    const { rows } = await monitor.query<{ oid: number }>(
      'SELECT oid FROM pg_database WHERE datname = $1',
      [DATABASE],
    );
    const databaseId = rows[0]?.oid;
    return {
      port: PRIVATE_POSTGRES_PORT,
      commands: async () => {
        const statements = await monitor.query<{ query: string; calls: string }>(
          'SELECT query, calls FROM pg_stat_statements WHERE dbid = $1',
          [databaseId],
        );
        const byKind = new Map<string, number>();
        for (const { query, calls } of statements.rows) {
          const kind = statementKind(query);
          byKind.set(kind, (byKind.get(kind) ?? 0) + Number(calls));
        }
        return byKind;
      },
      logBytes: async () => {
        const lsn = await monitor.query<{ bytes: string }>(
          `SELECT pg_current_wal_lsn() - '0/0' AS bytes`,
        );
        return Number(lsn.rows[0]?.bytes);
      },
      durability: {
        pids: async () => [server.pid, ...(await childPids(server.pid))],
        logFiles: /\/pg_wal\//,
      },
      // The WAL writer flushes asynchronous commits within wal_writer_delay (200 ms).
      settleMs: 300,
      stop: () => teardown.run(),
    };
  });
}

/**
 * A private MariaDB, from its compiled-in defaults (those of the shared server too: InnoDB flushes
 * its redo log at every commit, no binary log), without the grant tables. SHOW GLOBAL STATUS is
 * exact at once; Innodb_os_log_fsyncs is gone since MariaDB 10.8, so the redo-log fsyncs are
 * counted by strace.
 */
async function privateMysql(): Promise<CountingStore> {
  const directory = await mkdtemp(join(tmpdir(), 'keepsake-bench-mariadb-'));
  const teardown = new Teardown();
  teardown.add(() => rm(directory, { recursive: true, force: true }));
  return teardown.guard(async () => {
    const data = join(directory, 'data');
    await runCommand('mariadb-install-db', [
      '--no-defaults',
      `--datadir=${data}`,
      '--user=root',
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
    ]);
    const server = await startPrivateServer({
      name: 'MariaDB',
      command: 'mariadbd',
      args: [
        '--no-defaults',
        `--datadir=${data}`,
        `--port=${PRIVATE_MYSQL_PORT}`,
        '--bind-address=127.0.0.1',
        `--socket=${join(directory, 'mariadb.sock')}`,
        `--pid-file=${join(directory, 'mariadb.pid')}`,
        `--log-error=${join(directory, 'error.log')}`,
        '--user=root',
        '--skip-grant-tables',
      ],
      port: PRIVATE_MYSQL_PORT,
    });
    teardown.add(() => server.stop());
    const monitor = await mysql.createConnection({ uri: mysqlUrl(PRIVATE_MYSQL_PORT, 'mysql') });
    teardown.add(() => monitor.end());
    await monitor.query(`CREATE DATABASE ${DATABASE}`);
    const status = async () => {
      const [rows] = await monitor.query('SHOW GLOBAL STATUS');
      return new Map(
        (rows as { Variable_name: string; Value: string }[]).map((row) => [
          row.Variable_name,
          Number(row.Value),
        ]),
      );
    };
    return {
      port: PRIVATE_MYSQL_PORT,
      commands: async () => {
        const byCommand = new Map<string, number>();
        for (const [name, value] of await status()) {
          // Com_show_status is the bench reading these counters.
          if (name.startsWith('Com_') && name !== 'Com_show_status') {
            byCommand.set(name.slice(4).toUpperCase(), value);
          }
        }
        return byCommand;
      },
      logBytes: async () => (await status()).get('Innodb_lsn_current') ?? 0,
      durability: { pids: async () => [server.pid], logFiles: /\/ib_logfile\d+$/ },
      // InnoDB flushes the redo log written in the background (purge) once a second.
      settleMs: 1_100,
      stop: () => teardown.run(),
    };
  });
}

export const groups: BenchGroup[] = [
  {
    title: 'postgres',
    keepsake: 'keepsake-postgres',
    peer: 'connect-pg-simple',
    requires: { name: 'PostgreSQL', host: '127.0.0.1', port: POSTGRES_PORT },
    countingStore: privatePostgres,
  },
  {
    title: 'mysql',
    keepsake: 'keepsake-mysql',
    peer: 'express-mysql-session',
    requires: { name: 'MariaDB', host: '127.0.0.1', port: MYSQL_PORT },
    countingStore: privateMysql,
  },
];
