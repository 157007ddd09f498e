import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TABLE, database, sessionTableSql } from '../../src/drivers/database.js';
import { lock } from '../../src/testing/conformance-store.js';
import { openStore } from '../../src/testing/index.js';
import {
  countRows,
  DATABASE_SERVERS,
  dropTable,
  runSql,
  urlOf,
} from '../drivers/database/servers.js';
import { serviceSkip } from '../helpers/services.js';

const cli = fileURLToPath(new URL('../../src/cli/keepsake.ts', import.meta.url));

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function keepsake(...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', cli, ...args], (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('keepsake migration: command line', () => {
  it('prints the PostgreSQL table with inet, bytea, the index and the key, and nothing for locks', async () => {
    const { code, stdout } = await keepsake('migration', '--driver', 'postgres');
    assert.equal(code, 0);
    assert.match(stdout, /^CREATE TABLE IF NOT EXISTS "ci_sessions" \(/);
    assert.match(stdout, /"ip_address" inet NOT NULL/);
    assert.match(stdout, /"data" bytea/);
    assert.match(stdout, /PRIMARY KEY \("id"\)\n/);
    assert.match(
      stdout,
      /CREATE INDEX IF NOT EXISTS "ci_sessions_timestamp" ON "ci_sessions" \("timestamp"\);/,
    );
    // Session locks are advisory locks held by connections: no lock table, no lock column.
    assert.doesNotMatch(stdout, /lock_token|lock_expires|_locks|UNLOGGED/);
  });

  it('honours --table and --match-ip, and answers to session:migration for MySQL', async () => {
    const { code, stdout } = await keepsake(
      'session:migration',
      '--driver',
      'mysql',
      '--table',
      'app_sessions',
      '--match-ip',
    );
    assert.equal(code, 0);
    assert.match(stdout, /^CREATE TABLE IF NOT EXISTS `app_sessions` \(/);
    assert.match(stdout, /`ip_address` varchar\(45\) NOT NULL/);
    assert.match(stdout, /PRIMARY KEY \(`id`, `ip_address`\)/);
    assert.match(stdout, /KEY `app_sessions_timestamp` \(`timestamp`\)/);
  });

  it('writes a timestamped file with --out and prints its path', async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 'keepsake-cli-'));
    try {
      const target = path.join(directory, 'migrations');
      const { code, stdout } = await keepsake(
        'migration',
        '--driver',
        'postgres',
        '--table',
        'sessions',
        '--out',
        target,
      );
      assert.equal(code, 0);
      const [file] = await readdir(target);
      assert.match(file ?? '', /^\d{14}_create_sessions\.sql$/);
      assert.equal(stdout.trim(), path.join(target, file ?? ''));
      const printed = await keepsake('migration', '--driver', 'postgres', '--table', 'sessions');
      assert.equal(await readFile(path.join(target, file ?? ''), 'utf8'), printed.stdout);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('prints what sessionTableSql from the database driver module returns', async () => {
    const { stdout } = await keepsake('migration', '--driver', 'mysql', '--table', 'app.sessions');
    assert.equal(stdout, sessionTableSql({ dialect: 'mysql', table: 'app.sessions' }));
    assert.equal(DEFAULT_TABLE, 'ci_sessions');
  });

  it("prints help with --help, which speaks of CodeIgniter's command", async () => {
    const { code, stdout } = await keepsake('migration', '--help');
    assert.equal(code, 0);
    assert.match(stdout, /Usage: keepsake migration --driver postgres\|mysql/);
    assert.match(stdout, /CodeIgniter's\n"php spark session:migration"/);
  });

  for (const [args, message] of [
    [['migration', '--driver', 'postgres', '--bogus'], /Unknown option '--bogus'/],
    [['migration'], /--driver is required/],
    [['migration', '--driver', 'oracle'], /unknown --driver "oracle"/],
    [['migration', '--driver', 'mysql', '--table', 'x; DROP TABLE y'], /invalid --table/],
    [['migrate', '--driver', 'mysql'], /unknown command "migrate"/],
    [['migration', '--driver', 'postgres', '--table', 'x'.repeat(64)], /at most 63 characters/],
  ] as const) {
    it(`rejects ${args.join(' ')} with exit code 2`, async () => {
      const { code, stdout, stderr } = await keepsake(...args);
      assert.equal(code, 2);
      assert.equal(stdout, '');
      assert.match(stderr, message);
    });
  }
});

const servers = DATABASE_SERVERS;

for (const [dialect, label, port] of servers) {
  const skip = await serviceSkip(label, '127.0.0.1', port);
  describe(`keepsake migration applied to ${label}`, { skip }, () => {
    const tables: string[] = [];
    after(async () => {
      for (const table of tables) await dropTable(dialect, table);
    });

    for (const matchIP of [false, true]) {
      it(`makes a working table ${matchIP ? 'with' : 'without'} --match-ip`, async () => {
        const table = `keepsake_cli_${dialect === 'postgres' ? 'pg' : 'my'}_${matchIP ? 'ip' : 'id'}`;
        tables.push(table);
        await dropTable(dialect, table);
        const { code, stdout } = await keepsake(
          'migration',
          '--driver',
          dialect,
          '--table',
          table,
          ...(matchIP ? ['--match-ip'] : []),
        );
        assert.equal(code, 0);
        await runSql(dialect, stdout);
        await runSql(dialect, stdout); // IF NOT EXISTS: running it twice is harmless
        assert.equal(await countRows(dialect, table), 0);
        const { store } = await openStore(
          { driver: () => database({ connection: urlOf(dialect), table }), expiry: 'clock' },
          { matchIP },
        );
        try {
          const key = { id: 'a'.repeat(32), ip: matchIP ? '192.0.2.7' : null };
          const first = await lock(store, key);
          assert.equal(first.payload, null);
          assert.equal(await store.writeAndUnlock(key, first.token, '{"n":1}', 60), true);
          const second = await lock(store, key);
          assert.equal(second.payload, '{"n":1}');
          await store.unlock(key, second.token, false);
          assert.equal(await store.peek(key), '{"n":1}');
          if (matchIP) assert.equal(await store.peek({ ...key, ip: '192.0.2.8' }), null);
        } finally {
          await store.close();
        }
      });
    }
  });
}
