import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Memcache } from 'memcache';
import { SessionConfigError, SessionStoreError } from '../../src/errors.js';
import { routingKey, TaggedRing } from '../../src/handlers/memcached/ring.js';
import { parseMemcachedSavePath } from '../../src/handlers/memcached/save-path.js';
import { MemcachedHandler } from '../../src/handlers/memcached.js';
import { createSessionId } from '../../src/id.js';
import { SessionManager } from '../../src/manager.js';
import {
  type ConformanceTarget,
  openHarness,
  runConformanceSuite,
} from '../../src/testing/conformance.js';
import { serviceSkip } from '../helpers/services.js';
import {
  directClient,
  memcachedBinarySkip,
  type OwnMemcached,
  remainingTtl,
  SHARED_HOST,
  SHARED_PORT,
  SHARED_SERVER,
  serverClock,
  startMemcached,
  uniqueCookieName,
} from './memcached/servers.js';

const skip = await serviceSkip('memcached', SHARED_HOST, SHARED_PORT);
const poolSkip = await memcachedBinarySkip();
const POOL_PORTS = [11411, 11412] as const;

describe('memcached savePath', () => {
  it('parses host:port[:weight] lists, ignoring whitespace and duplicates', () => {
    assert.deepEqual(parseMemcachedSavePath('localhost:11211:5, 192.0.2.1:11211:1'), [
      { host: 'localhost', port: 11211, weight: 5 },
      { host: '192.0.2.1', port: 11211, weight: 1 },
    ]);
    assert.deepEqual(parseMemcachedSavePath(' 127.0.0.1:11211 ,127.0.0.1:11211:9,\t[::1]:11212 '), [
      { host: '127.0.0.1', port: 11211, weight: 1 },
      { host: '::1', port: 11212, weight: 1 },
    ]);
    assert.deepEqual(
      parseMemcachedSavePath('Cache-1.example.com:11211,cache-1.EXAMPLE.com:11211'),
      [{ host: 'Cache-1.example.com', port: 11211, weight: 1 }],
    );
  });

  for (const bad of [
    '',
    ' ',
    'localhost',
    'localhost:',
    'localhost:abc',
    'localhost:0',
    'localhost:70000',
    'a:1:0',
    'a:1:x',
    'a:1,,b:2',
    'a:1,',
    'tcp://a:1',
    'a b:1',
    '::1:11211',
    'a:1:2:3',
  ]) {
    it(`rejects ${JSON.stringify(bad)} naming the accepted format`, () => {
      assert.throws(
        () => parseMemcachedSavePath(bad),
        (error: unknown) =>
          error instanceof SessionConfigError &&
          error.option === 'savePath' &&
          /host:port\[:weight\]/.test(error.message),
      );
    });
  }

  it('is required when no connection is given (open() fails with a configuration error)', async () => {
    await assert.rejects(
      openHarness({ createHandler: () => new MemcachedHandler(), expiry: 'store' }),
      (error: unknown) => error instanceof SessionConfigError && error.option === 'savePath',
    );
  });
});

describe('memcached ring', () => {
  it('routes a key by its {hash tag}', () => {
    assert.equal(routingKey('ci_session:{abc}'), 'abc');
    assert.equal(routingKey('ci_session:10.0.0.1:{abc}:lock'), 'abc');
    assert.equal(routingKey('plain'), 'plain');
  });

  it('moves only the removed server’s keys when the pool shrinks', () => {
    const ring = new TaggedRing();
    for (const id of ['a:1', 'b:1', 'c:1']) ring.addNode({ id, weight: 1 });
    const ids = Array.from({ length: 2000 }, () => createSessionId());
    const before = new Map(ids.map((id) => [id, ring.getNodesByKey(`{${id}}`)[0]?.id]));
    ring.removeNode('c:1');
    for (const id of ids) {
      const was = before.get(id);
      if (was !== 'c:1') assert.equal(ring.getNodesByKey(`{${id}}`)[0]?.id, was);
    }
  });
});

describe('memcached driver on one server', { skip }, () => {
  const cookieName = uniqueCookieName('unit');
  const target: ConformanceTarget = {
    createHandler: () => new MemcachedHandler(),
    savePath: SHARED_SERVER,
    expiry: 'store',
  };
  const open = (overrides = {}) => openHarness(target, { cookieName, ...overrides });

  runConformanceSuite('memcached (one server)', target);

  const injected: Memcache[] = [];
  runConformanceSuite('memcached (injected memcache client)', {
    createHandler: () => new MemcachedHandler(),
    connection: () => {
      const client = new Memcache({ nodes: [SHARED_SERVER], timeout: 1_000 });
      injected.push(client);
      return client;
    },
    expiry: 'store',
    // keepsake never closes a client it was given; the test owns these.
    cleanup: async () => {
      await Promise.all(injected.splice(0).map((client) => client.disconnect()));
    },
  });

  it('stores data and lock under one hash tag, the lock with a short TTL and the data with the lifetime', async () => {
    const { handler } = await open({ lockTtlMs: 1_500, lifetimeSeconds: 600 });
    const client = directClient(SHARED_SERVER);
    try {
      const key = { id: createSessionId(), ip: '10.0.0.1' };
      const dataKey = `${cookieName}:10.0.0.1:{${key.id}}`;
      const { lock } = await handler.read(key, 1_000);
      assert.equal(await client.get(`${dataKey}:lock`), lock.token);
      const lockTtl = await remainingTtl(SHARED_HOST, SHARED_PORT, `${dataKey}:lock`);
      assert.ok(lockTtl !== null && lockTtl >= 1 && lockTtl <= 2, `lock TTL ${lockTtl} s`);
      await handler.write(key, lock, '{"a":1}');
      assert.equal(await client.get(dataKey), '{"a":1}');
      assert.equal(await client.get(`${dataKey}:lock`), undefined);
      const dataTtl = await remainingTtl(SHARED_HOST, SHARED_PORT, dataKey);
      assert.ok(dataTtl !== null && dataTtl > 590 && dataTtl <= 600, `data TTL ${dataTtl} s`);
      await handler.destroy(key, null);
    } finally {
      await handler.shutdown();
      await client.disconnect();
    }
  });

  it('sends lifetimes over 30 days as an absolute time, so they do not expire at once', async () => {
    const fortyDays = 40 * 24 * 3600;
    const { handler } = await open({ lifetimeSeconds: fortyDays });
    try {
      const key = { id: createSessionId(), ip: null };
      const { lock } = await handler.read(key, 1_000);
      const sentAt = Math.floor(Date.now() / 1000);
      await handler.write(key, lock, '{"long":1}');
      assert.equal(await handler.peek(key), '{"long":1}');
      const ttl = await remainingTtl(SHARED_HOST, SHARED_PORT, `${cookieName}:{${key.id}}`);
      // The absolute time is the wall clock's; memcached counts it down on its own clock, which
      // drifts from the wall clock the longer it runs (seen: 8 s behind after 80 minutes on a VM).
      const serverNow = await serverClock(SHARED_HOST, SHARED_PORT);
      const expected = sentAt + fortyDays - serverNow;
      assert.ok(
        ttl !== null && Math.abs(ttl - expected) <= 2,
        `data TTL ${ttl} s, expected ${expected} s (40 days by the server's clock)`,
      );
      await handler.destroy(key, null);
    } finally {
      await handler.shutdown();
    }
  });

  it('touches an unchanged session instead of rewriting it', async () => {
    const { handler } = await open({ lifetimeSeconds: 600 });
    const client = directClient(SHARED_SERVER);
    try {
      const key = { id: createSessionId(), ip: null };
      const dataKey = `${cookieName}:{${key.id}}`;
      let locked = await handler.read(key, 1_000);
      await handler.write(key, locked.lock, '{"t":1}');
      await client.set(dataKey, '{"t":"stored"}', 5);
      locked = await handler.read(key, 1_000);
      await handler.updateTimestamp(key, locked.lock, '{"t":"request copy"}');
      assert.equal(await client.get(dataKey), '{"t":"stored"}', 'the value was not rewritten');
      const ttl = await remainingTtl(SHARED_HOST, SHARED_PORT, dataKey);
      assert.ok(ttl !== null && ttl > 590, `the touch restarted the lifetime (TTL ${ttl} s)`);
      await handler.destroy(key, null);
    } finally {
      await handler.shutdown();
      await client.disconnect();
    }
  });

  it('never releases a lock it does not own', async () => {
    const { handler } = await open();
    const client = directClient(SHARED_SERVER);
    try {
      const key = { id: createSessionId(), ip: null };
      await handler.read(key, 1_000);
      const lockKey = `${cookieName}:{${key.id}}:lock`;
      await client.set(lockKey, 'someone-else', 5);
      await handler.close(key, { token: 'stale-token' });
      assert.equal(await client.get(lockKey), 'someone-else');
      await client.delete(lockKey);
    } finally {
      await handler.shutdown();
      await client.disconnect();
    }
  });

  it('never deletes a lock that another request took over (CAS-checked unlock)', async () => {
    const { handler, warnings } = await open();
    const client = directClient(SHARED_SERVER);
    try {
      const key = { id: createSessionId(), ip: null };
      const lockKey = `${cookieName}:{${key.id}}:lock`;
      const locked = await handler.read(key, 1_000);
      // As if the lock had been evicted and another process had taken the session meanwhile.
      await client.set(lockKey, 'another-process', 5);
      await handler.write(key, locked.lock, '{"v":1}');
      assert.equal(await client.get(lockKey), 'another-process');
      assert.equal(warnings.length, 1, 'the lost lock was reported');
      await client.delete(lockKey);
      await handler.destroy(key, null);
    } finally {
      await handler.shutdown();
      await client.disconnect();
    }
  });

  it('refuses to save once a renewal found the lock gone', async () => {
    // A 4-second lock is renewed every 1.33 s and counts as valid for 3 s without renewal.
    const { handler, warnings } = await open({ lockTtlMs: 4_000 });
    const client = directClient(SHARED_SERVER);
    try {
      const key = { id: createSessionId(), ip: null };
      const dataKey = `${cookieName}:{${key.id}}`;
      let locked = await handler.read(key, 1_000);
      await handler.write(key, locked.lock, '{"v":1}');
      locked = await handler.read(key, 1_000);
      await client.delete(`${dataKey}:lock`); // evicted
      for (let waited = 0; warnings.length === 0 && waited < 5_000; waited += 50) await sleep(50);
      assert.match(warnings[0] ?? '', /was gone/, 'the renewal noticed');
      await assert.rejects(handler.write(key, locked.lock, '{"v":"stale"}'), SessionStoreError);
      assert.equal(await client.get(dataKey), '{"v":1}');
      await handler.close(key, locked.lock);
      await handler.destroy(key, null);
    } finally {
      await handler.shutdown();
      await client.disconnect();
    }
  });

  it('refuses to save after a stall longer than the lock could live', async () => {
    const { handler } = await open({ lockTtlMs: 1_000 });
    try {
      const key = { id: createSessionId(), ip: null };
      const locked = await handler.read(key, 1_000);
      // A blocked event loop: no renewal could run, so the 2-second lock may have expired.
      const blockedUntil = Date.now() + 1_100;
      while (Date.now() < blockedUntil) {}
      await assert.rejects(handler.write(key, locked.lock, '{"v":1}'), SessionStoreError);
      await handler.close(key, locked.lock);
      assert.equal(await handler.peek(key), null);
      const again = await handler.read(key, 500);
      await handler.close(key, again.lock);
    } finally {
      await handler.shutdown();
    }
  });

  it('with an injected client, checks the lock owner before saving', async () => {
    const injectedClient = directClient(SHARED_SERVER);
    const { handler } = await openHarness(
      { createHandler: () => new MemcachedHandler(), connection: injectedClient, expiry: 'store' },
      { cookieName },
    );
    try {
      const key = { id: createSessionId(), ip: null };
      const dataKey = `${cookieName}:{${key.id}}`;
      let locked = await handler.read(key, 1_000);
      await handler.write(key, locked.lock, '{"v":1}');
      locked = await handler.read(key, 1_000);
      await injectedClient.set(`${dataKey}:lock`, 'another-process', 5);
      await assert.rejects(handler.write(key, locked.lock, '{"v":"stale"}'), SessionStoreError);
      assert.equal(await injectedClient.get(dataKey), '{"v":1}');
      await handler.close(key, locked.lock);
      assert.equal(await injectedClient.get(`${dataKey}:lock`), 'another-process');
      await injectedClient.delete(`${dataKey}:lock`);
      await injectedClient.delete(dataKey);
    } finally {
      await handler.shutdown();
      await injectedClient.disconnect();
    }
  });

  it('rejects a connection that is not a memcached client', async () => {
    await assert.rejects(
      openHarness({
        createHandler: () => new MemcachedHandler(),
        connection: { get() {} },
        expiry: 'store',
      }),
      (error: unknown) => error instanceof SessionConfigError && error.option === 'connection',
    );
  });

  it('rejects a cookie name too long for memcached keys', async () => {
    await assert.rejects(
      openHarness(target, { cookieName: 'c'.repeat(200) }),
      (error: unknown) => error instanceof SessionConfigError && error.option === 'cookieName',
    );
  });

  it('keeps a session for gcMaxLifetime when expiration is 0, not forever', async () => {
    const manager = new SessionManager({
      driver: 'memcached',
      savePath: SHARED_SERVER,
      cookieName,
      expiration: 0,
      gcMaxLifetime: 1,
      timeToUpdate: 0,
      gcProbability: 0,
    });
    try {
      const session = await manager.start({
        cookieHeader: undefined,
        ip: '127.0.0.1',
        ajax: false,
      });
      session.set('n', 1);
      await manager.commit(session);
      const dataKey = `${cookieName}:{${session.id}}`;
      const ttl = await remainingTtl(SHARED_HOST, SHARED_PORT, dataKey);
      assert.ok(ttl !== null && ttl >= 0 && ttl <= 1, `data TTL ${ttl} s`);
      await sleep(2_200);
      assert.equal(await remainingTtl(SHARED_HOST, SHARED_PORT, dataKey), null);
    } finally {
      await manager.shutdown();
    }
  });
});

describe('memcached weighted pool', { skip: poolSkip }, () => {
  const servers: OwnMemcached[] = [];
  before(async () => {
    for (const port of POOL_PORTS) servers.push(await startMemcached(port));
  });
  after(async () => {
    for (const server of servers) await server.stop();
  });

  runConformanceSuite('memcached (two-server pool)', {
    createHandler: () => new MemcachedHandler(),
    savePath: `127.0.0.1:${POOL_PORTS[0]}:2, 127.0.0.1:${POOL_PORTS[1]}:1`,
    expiry: 'store',
  });

  it('spreads 4000 sessions by weight (3:1), each with its lock on the same server', async () => {
    const { handler } = await openHarness(
      {
        createHandler: () => new MemcachedHandler(),
        savePath: `127.0.0.1:${POOL_PORTS[0]}:3,127.0.0.1:${POOL_PORTS[1]}:1`,
        expiry: 'store',
      },
      { lockTtlMs: 5_000, cookieName: 'spread' },
    );
    const heavy = directClient(`127.0.0.1:${POOL_PORTS[0]}`);
    const light = directClient(`127.0.0.1:${POOL_PORTS[1]}`);
    try {
      const sessions = 4_000;
      const checked = 200;
      let onHeavy = 0;
      const store = async (index: number) => {
        const key = { id: createSessionId(), ip: null };
        const [dataKey, lockKey] = [`spread:{${key.id}}`, `spread:{${key.id}}:lock`];
        const { lock } = await handler.read(key, 1_000);
        const lockOnHeavy = index < checked ? (await heavy.get(lockKey)) === lock.token : null;
        if (index < checked) {
          const lockOnLight = (await light.get(lockKey)) === lock.token;
          assert.notEqual(lockOnHeavy, lockOnLight, 'the lock is on exactly one server');
        }
        await handler.write(key, lock, '{}');
        const dataOnHeavy = (await heavy.get(dataKey)) === '{}';
        const dataOnLight = (await light.get(dataKey)) === '{}';
        assert.notEqual(dataOnHeavy, dataOnLight, 'the session is on exactly one server');
        if (lockOnHeavy !== null)
          assert.equal(dataOnHeavy, lockOnHeavy, 'data and lock share a server');
        if (dataOnHeavy) onHeavy += 1;
      };
      for (let start = 0; start < sessions; start += 100) {
        await Promise.all(Array.from({ length: 100 }, (_, offset) => store(start + offset)));
      }
      const heavyShare = onHeavy / sessions;
      assert.ok(
        heavyShare > 0.65 && heavyShare < 0.85,
        `weights 3:1 put ${(heavyShare * 100).toFixed(1)} % on the heavy server`,
      );
    } finally {
      await handler.shutdown();
      await heavy.disconnect();
      await light.disconnect();
    }
  });
});
