/**
 * The redis, memcached and sqlite drivers end a session with their own SessionStore.revoke, which
 * fences a request holding its lock: without it, manager.revoke() would wait for that request's
 * lock instead. Each opened store must have it (the conformance suites pass either way).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Memcache } from 'memcache';
import type { SessionDriver } from '../../src/drivers/contract.js';
import { memcached } from '../../src/drivers/memcached.js';
import { redis } from '../../src/drivers/redis.js';
import { sqlite } from '../../src/drivers/sqlite.js';
import { openStore } from '../../src/testing/index.js';
import { serviceSkip } from '../helpers/services.js';
import { SHARED_SERVER } from './memcached/servers.js';
import { SHARED_HOST, SHARED_PORT } from './redis/servers.js';

const redisSkip = await serviceSkip('Redis', SHARED_HOST, SHARED_PORT);
const memcachedSkip = await serviceSkip('memcached', '127.0.0.1', 11211);
const directory = await mkdtemp(join(tmpdir(), 'keepsake-revoke-support-'));
after(() => rm(directory, { recursive: true, force: true }));

const redisUrl = `tcp://${SHARED_HOST}:${SHARED_PORT}`;
const clients: Memcache[] = [];
after(async () => {
  await Promise.all(clients.map((client) => client.disconnect()));
});

const drivers: ReadonlyArray<readonly [string, () => SessionDriver, string | false]> = [
  ['redis', () => redis({ url: redisUrl }), redisSkip],
  [
    "redis in CodeIgniter's layout",
    () => redis({ url: redisUrl, layout: 'codeigniter' }),
    redisSkip,
  ],
  ['memcached with keepsake’s client', () => memcached({ servers: SHARED_SERVER }), memcachedSkip],
  [
    'memcached with a client of your own',
    () => {
      const client = new Memcache({ nodes: [SHARED_SERVER], timeout: 1_000 });
      clients.push(client);
      return memcached({ client });
    },
    memcachedSkip,
  ],
  ['sqlite', () => sqlite({ path: join(directory, 'sessions.db') }), false],
];

describe('the redis, memcached and sqlite stores revoke natively', () => {
  for (const [name, driver, skip] of drivers) {
    it(name, { skip }, async () => {
      const { store } = await openStore({ driver, expiry: 'real' });
      try {
        assert.equal(typeof store.revoke, 'function');
      } finally {
        await store.close();
      }
    });
  }
});
