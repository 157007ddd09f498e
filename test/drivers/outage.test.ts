/**
 * Every driver with a store server, in the same fault cases, each on a private server of its own
 * on a spare port (never the machine's shared one): the server stopped and restarted under load,
 * and the server frozen (SIGSTOP) while requests hold or wait for locks.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { sessionTableSql } from '../../src/drivers/database/schema.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import type { DriverSpec } from '../helpers/driver-spec.js';
import { assertOutageAndRecovery, boundedGet } from '../helpers/outage.js';
import {
  type PrivateServer,
  type PrivateStoreKind,
  privateServerSkip,
  startPrivateServer,
} from '../helpers/private-servers.js';
import { type ChildServer, startCounterServer } from '../helpers/processes.js';

const IO_TIMEOUT_MS = 400;
const TABLE = 'keepsake_outage';

const stores: { kind: PrivateStoreKind; port: number; name: string }[] = [
  { kind: 'redis', port: 17301, name: 'Redis' },
  { kind: 'memcached', port: 17302, name: 'memcached' },
  { kind: 'postgres', port: 17303, name: 'PostgreSQL' },
  { kind: 'mariadb', port: 17304, name: 'MariaDB' },
];

const children: ChildServer[] = [];
after(async () => {
  for (const child of children.splice(0)) await child.kill('SIGKILL');
});

/** The driver for a private server, with the session table created where one is needed. */
async function driverFor(server: PrivateServer): Promise<DriverSpec> {
  switch (server.kind) {
    case 'redis':
      return { kind: 'redis', url: server.address };
    case 'memcached':
      return { kind: 'memcached', servers: server.address };
    case 'postgres': {
      const client = new pg.Client({ connectionString: server.address });
      await client.connect();
      await client.query(sessionTableSql({ dialect: 'postgres', table: TABLE }));
      await client.end();
      return { kind: 'database', url: server.address, table: TABLE };
    }
    case 'mariadb': {
      const connection = await mysql.createConnection({
        uri: server.address,
        multipleStatements: true,
      });
      await connection.query(sessionTableSql({ dialect: 'mysql', table: TABLE }));
      await connection.end();
      return { kind: 'database', url: server.address, table: TABLE };
    }
  }
}

async function counterServer(driver: DriverSpec, config: Record<string, unknown>) {
  const child = await startCounterServer(
    { ioTimeout: IO_TIMEOUT_MS, timeToUpdate: 0, gcProbability: 0, ...config },
    { driver },
  );
  children.push(child);
  return child;
}

for (const store of stores) {
  const skip = await privateServerSkip(store.kind);
  describe(`${store.name} outages on a private server`, { skip }, () => {
    let server: PrivateServer | undefined;
    const own = async () => {
      server ??= await startPrivateServer(store.kind, store.port);
      return server;
    };
    after(async () => {
      await server?.stop();
    });

    it('answers 503 within the IO timeout while the server is down, stays up, and recovers by itself', async () => {
      const running = await own();
      const app = await counterServer(await driverFor(running), { lockWait: 2_000 });
      await assertOutageAndRecovery({
        server: app,
        storeName: store.name,
        boundMs: IO_TIMEOUT_MS + 3_000,
        stopStore: () => running.kill(),
        restartStore: () => running.restart(),
      });
      // The operator's log: the first failure with its cause, no line per request, the recovery once.
      const log = app.errorOutput().split('counter-app: serving\n').at(-1) ?? '';
      // (The app's own framework logs each 503 too; keepsake's lines carry its warning code.)
      const failures =
        log.match(/\[KEEPSAKE\] Warning: keepsake: the "\w+" session store failed/g) ?? [];
      assert.ok(
        failures.length >= 1 && failures.length <= 3,
        `${failures.length} failure lines for an outage of many requests`,
      );
      assert.match(
        log,
        /127\.0\.0\.1|ECONNREFUSED|ECONNRESET|closed|terminated/i,
        'the cause is logged',
      );
      assert.equal((log.match(/\[KEEPSAKE\].*session store answers again/g) ?? []).length, 1);
    });

    it('a frozen server: requests answer 503 within the IO timeout, and no orphan lock outlives it', async () => {
      const running = await own();
      // A lock left behind by an attempt that ran late would hold the session for lockTtl (20 s);
      // lockWait is far shorter, so such a lock would turn the first requests after the thaw into 503s.
      const app = await counterServer(await driverFor(running), {
        lockTtl: 20_000,
        lockWait: 1_500,
      });
      const jar = new CookieJar();
      assert.equal((await jar.fetch(`${app.url}/inc`)).status, 200);
      const cookie = jar.header();
      const bound = IO_TIMEOUT_MS + 3_000;
      await running.freeze();
      try {
        const during = await Promise.all(
          Array.from({ length: 4 }, () => boundedGet(`${app.url}/inc`, cookie, bound)),
        );
        assert.deepEqual(during, [503, 503, 503, 503], 'requests on a frozen store are 503s');
      } finally {
        await running.thaw();
      }
      // The attempts given up on reach the server now; whatever lock they take is given back.
      await sleep(500);
      let status = 0;
      const thawedAt = Date.now();
      while (status !== 200 && Date.now() - thawedAt < 4_000) {
        status = await boundedGet(`${app.url}/inc`, cookie, bound);
        if (status !== 200) await sleep(100);
      }
      assert.equal(status, 200, 'the session is usable right after the thaw, not after lockTtl');
      assert.equal(app.child.exitCode, null, 'the app process is still running');
    });
  });
}
