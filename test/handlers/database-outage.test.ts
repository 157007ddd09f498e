/**
 * Restarts the machine's shared PostgreSQL and MariaDB in the middle of a load (the issue allows
 * this single test to do so; the servers are started again in a finally block, even on failure).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { SqlDialect } from '../../src/handlers/database/schema.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { startCounterServer } from '../helpers/processes.js';
import { canConnect, serviceSkip } from '../helpers/services.js';
import { createTable, dropTable, urlOf } from './database/servers.js';

const run = promisify(execFile);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface DatabaseServer {
  dialect: SqlDialect;
  label: string;
  port: number;
  table: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await canConnect('127.0.0.1', port, 500))) {
    if (Date.now() > deadline) throw new Error(`port ${port} did not open in ${timeoutMs} ms`);
    await pause(100);
  }
}

const MARIADB_DAEMON = ['--exec', '/usr/sbin/mariadbd'];

/** Whether a mariadbd process exists (start-stop-daemon --status exits 0 when it does). */
async function mariadbRunning(): Promise<boolean> {
  try {
    await run('start-stop-daemon', MARIADB_DAEMON.concat('--status'));
    return true;
  } catch {
    return false;
  }
}

const servers: DatabaseServer[] = [
  {
    dialect: 'postgres',
    label: 'PostgreSQL',
    port: 5432,
    table: 'keepsake_outage_pg',
    stop: async () => {
      await run('pg_ctlcluster', ['--skip-systemctl-redirect', '15', 'main', 'stop', '-m', 'fast']);
    },
    start: async () => {
      if (await canConnect('127.0.0.1', 5432, 500)) return;
      await run('pg_ctlcluster', ['--skip-systemctl-redirect', '15', 'main', 'start']);
      await waitForPort(5432, 30_000);
    },
  },
  {
    dialect: 'mysql',
    label: 'MariaDB',
    port: 3306,
    table: 'keepsake_outage_my',
    stop: async () => {
      await run('mariadb-admin', ['-uroot', '-h127.0.0.1', 'shutdown']);
      // The command returns before mariadbd has exited; a start before then would be a no-op.
      const deadline = Date.now() + 30_000;
      while ((await mariadbRunning()) && Date.now() < deadline) await pause(100);
    },
    start: async () => {
      const deadline = Date.now() + 30_000;
      while (!(await canConnect('127.0.0.1', 3306, 500))) {
        if (Date.now() > deadline) throw new Error('MariaDB did not start in 30 s');
        await run(
          'start-stop-daemon',
          MARIADB_DAEMON.concat('--start', '--oknodo', '--background'),
        );
        await waitForPort(3306, 3_000).catch(() => {});
      }
    },
  },
];

/** Polls `check` every 50 ms until it is true; throws after `timeoutMs`. */
async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(50);
  }
}

for (const server of servers) {
  const skip = await serviceSkip(server.label, '127.0.0.1', server.port);
  describe(`database driver during a ${server.label} restart`, { skip }, () => {
    it('answers 503 while the server is down, stays up, and recovers by itself', async () => {
      await createTable(server.dialect, server.table, false);
      const app = await startCounterServer({
        driver: 'database',
        connection: urlOf(server.dialect),
        savePath: server.table,
        ioTimeout: 1_000,
        lockTtl: 1_000,
        lockWait: 3_000,
        gcProbability: 0,
      });
      const jar = new CookieJar();
      const statuses: { status: number; phase: 'before' | 'down' | 'after' }[] = [];
      let phase: 'before' | 'down' | 'after' = 'before';
      let loading = true;
      const worker = async () => {
        while (loading) {
          const sentIn = phase;
          try {
            const response = await jar.fetch(`${app.url}/inc`, {
              signal: AbortSignal.timeout(10_000),
            });
            await response.arrayBuffer();
            statuses.push({ status: response.status, phase: sentIn });
          } catch {
            statuses.push({ status: 0, phase: sentIn });
          }
          await pause(20);
        }
      };
      let workers: Promise<void>[] = [];
      try {
        assert.equal((await jar.fetch(`${app.url}/inc`)).status, 200);
        workers = Array.from({ length: 4 }, worker);
        await pause(300);
        phase = 'down';
        try {
          await server.stop();
          await until(
            'a 503 during the outage',
            () => statuses.some((entry) => entry.phase === 'down' && entry.status === 503),
            15_000,
          );
          assert.equal(app.child.exitCode, null, 'the app process is still running');
        } finally {
          await server.start();
        }
        phase = 'after';
        await until(
          'a 200 after the server came back',
          () => statuses.some((entry) => entry.phase === 'after' && entry.status === 200),
          20_000,
        );
      } finally {
        loading = false;
        await Promise.all(workers);
        await app.kill('SIGKILL');
      }
      assert.equal(app.child.signalCode, 'SIGKILL', 'the app lived until the test killed it');
      const unexpected = statuses.filter((entry) => entry.status !== 200 && entry.status !== 503);
      assert.deepEqual(
        unexpected,
        [],
        'every request got 200 or 503, none hung or failed otherwise',
      );
      assert.ok(
        statuses.some((entry) => entry.phase === 'before' && entry.status === 200),
        'the load was served before the outage',
      );
      await dropTable(server.dialect, server.table);
    });
  });
}
