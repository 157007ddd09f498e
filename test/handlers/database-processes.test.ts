import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { SqlDialect } from '../../src/handlers/database/schema.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { type ChildServer, startCounterServer } from '../helpers/processes.js';
import { serviceSkip } from '../helpers/services.js';
import { createTable, dropTable, urlOf } from './database/servers.js';

const servers: [SqlDialect, string, number, string][] = [
  ['postgres', 'PostgreSQL', 5432, 'keepsake_proc_pg'],
  ['mysql', 'MariaDB', 3306, 'keepsake_proc_my'],
];

const LOCK_TTL_MS = 1_000;

async function count(jar: CookieJar, server: ChildServer): Promise<number> {
  const response = await jar.fetch(`${server.url}/count`);
  assert.equal(response.status, 200);
  return ((await response.json()) as { count: number }).count;
}

for (const [dialect, label, port, table] of servers) {
  const skip = await serviceSkip(label, '127.0.0.1', port);
  describe(`database driver across processes on ${label}`, { skip }, () => {
    const config = {
      driver: 'database',
      connection: urlOf(dialect),
      savePath: table,
      lockTtl: LOCK_TTL_MS,
      // Longer than a crashed holder's lock lives, so recovery within lockTtl is what lets the request through.
      lockWait: 4 * LOCK_TTL_MS,
      gcProbability: 0,
    };
    const children: ChildServer[] = [];

    before(() => createTable(dialect, table, false));
    afterEach(async () => {
      for (const child of children.splice(0)) await child.kill('SIGKILL');
    });
    after(() => dropTable(dialect, table));

    it('loses no update: the creating request, then two processes × 150 concurrent increments → 301', async () => {
      const [first, second] = await Promise.all([
        startCounterServer({ ...config, lockWait: 20_000 }, { delayMs: 1 }),
        startCounterServer({ ...config, lockWait: 20_000 }, { delayMs: 1 }),
      ]);
      children.push(first, second);
      const jar = new CookieJar();
      const seeded = await jar.fetch(`${first.url}/inc`);
      assert.equal(seeded.status, 200);
      const burst = (server: ChildServer, requests: number) =>
        Array.from({ length: requests }, () => jar.fetch(`${server.url}/inc`));
      const responses = await Promise.all([...burst(first, 150), ...burst(second, 150)]);
      const statuses = responses.map((response) => response.status);
      await Promise.all(responses.map((response) => response.arrayBuffer()));
      assert.deepEqual(
        statuses.filter((status) => status !== 200),
        [],
        'every increment succeeds',
      );
      assert.equal(await count(jar, second), 301);
    });

    it('recovers the session of a SIGKILLed lock holder within lockTtl', async () => {
      const [holder, other] = await Promise.all([
        startCounterServer(config),
        startCounterServer(config),
      ]);
      children.push(holder, other);
      const jar = new CookieJar();
      assert.equal((await jar.fetch(`${holder.url}/inc`)).status, 200);
      const held = jar.fetch(`${holder.url}/hold?ms=60000`).catch(() => undefined);
      await holder.waitForLine('holding');
      await holder.kill('SIGKILL');
      await held;
      const response = await jar.fetch(`${other.url}/inc`);
      assert.equal(response.status, 200, 'the dead holder’s lock expired within lockWait');
      assert.deepEqual(await response.json(), { count: 2 });
    });
  });
}
