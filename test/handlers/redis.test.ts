import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { SessionConfigError, SessionStoreError } from '../../src/errors.js';
import { RedisHandler } from '../../src/handlers/redis.js';
import { createSessionId } from '../../src/id.js';
import { openHarness, runConformanceSuite } from '../../src/testing/conformance.js';
import { serviceSkip } from '../helpers/services.js';
import { deleteKeys, listKeys, SHARED_HOST, SHARED_PORT, uniquePrefix } from './redis/servers.js';

const skip = await serviceSkip('Redis', SHARED_HOST, SHARED_PORT);
const prefix = uniquePrefix('redis');
const savePath = `tcp://${SHARED_HOST}:${SHARED_PORT}?prefix=${prefix}`;

after(async () => {
  if (skip === false) await deleteKeys(prefix);
});

describe('redis driver on the shared server', { skip }, () => {
  runConformanceSuite('redis (savePath, own node-redis client)', {
    createHandler: () => new RedisHandler(),
    savePath,
    expiry: 'store',
  });

  runConformanceSuite('redis (connection URL)', {
    createHandler: () => new RedisHandler(),
    connection: `redis://${SHARED_HOST}:${SHARED_PORT}/0?prefix=${prefix}url:`,
    expiry: 'store',
  });

  describe('with an injected node-redis client', () => {
    const client = createClient({ socket: { host: SHARED_HOST, port: SHARED_PORT } });
    before(async () => {
      await client.connect();
    });
    after(async () => {
      client.destroy();
    });
    runConformanceSuite('redis (injected node-redis client)', {
      createHandler: () => new RedisHandler(),
      savePath: `?prefix=${prefix}node-redis:`,
      connection: () => client,
      expiry: 'store',
    });
    it('leaves an injected client open at shutdown', async () => {
      const { handler } = await openHarness({
        createHandler: () => new RedisHandler(),
        savePath: `?prefix=${prefix}node-redis:`,
        connection: client,
        expiry: 'store',
      });
      await handler.shutdown();
      assert.equal(await client.ping(), 'PONG');
    });
  });

  describe('with an injected ioredis client', () => {
    const client = new Redis({ host: SHARED_HOST, port: SHARED_PORT, lazyConnect: true });
    before(async () => {
      await client.connect();
    });
    after(() => {
      client.disconnect();
    });
    runConformanceSuite('redis (injected ioredis client)', {
      createHandler: () => new RedisHandler(),
      savePath: `?prefix=${prefix}ioredis:`,
      connection: () => client,
      expiry: 'store',
    });
  });

  describe('keys, locks and the lost-lock guard', () => {
    const inspector = createClient({ socket: { host: SHARED_HOST, port: SHARED_PORT } });
    before(async () => {
      await inspector.connect();
    });
    after(() => {
      inspector.destroy();
    });

    const open = (overrides: Parameters<typeof openHarness>[1] = {}) =>
      openHarness(
        { createHandler: () => new RedisHandler(), savePath, expiry: 'store' },
        overrides,
      );

    it('stores <prefix>{id} with the lifetime as TTL and a short-lived <prefix>{id}:lock', async () => {
      const { handler } = await open({ lifetimeSeconds: 120, lockTtlMs: 4_000 });
      const key = { id: createSessionId(), ip: null };
      const { lock } = await handler.read(key, 1_000);
      const lockTtl = await inspector.pTTL(`${prefix}{${key.id}}:lock`);
      assert.ok(lockTtl > 0 && lockTtl <= 4_000, `lock PTTL ${lockTtl}`);
      await handler.write(key, lock, '{"k":1}');
      assert.deepEqual(await listKeys(`${prefix}{${key.id}}`), [`${prefix}{${key.id}}`]);
      const ttl = await inspector.ttl(`${prefix}{${key.id}}`);
      assert.ok(ttl > 100 && ttl <= 120, `data TTL ${ttl}`);
      await handler.shutdown();
    });

    it('puts the IP before the ID under matchIP', async () => {
      const { handler } = await open({ matchIP: true });
      const key = { id: createSessionId(), ip: '203.0.113.9' };
      const { lock } = await handler.read(key, 1_000);
      await handler.write(key, lock, '{"ip":1}');
      assert.equal(await inspector.get(`${prefix}203.0.113.9:{${key.id}}`), '{"ip":1}');
      await handler.shutdown();
    });

    it('uses "<cookieName>:" as the prefix when savePath has no prefix=', async () => {
      const handler = new RedisHandler();
      await openHarness(
        {
          createHandler: () => handler,
          savePath: `${SHARED_HOST}:${SHARED_PORT}`,
          expiry: 'store',
        },
        { cookieName: `${prefix.replace(/[^A-Za-z0-9]/g, '')}cookie` },
      );
      assert.equal(handler.prefix, `${prefix.replace(/[^A-Za-z0-9]/g, '')}cookie:`);
      await handler.shutdown();
    });

    it('touches an unchanged session without rewriting it, restarting its TTL', async () => {
      const { handler } = await open({ lifetimeSeconds: 60 });
      const key = { id: createSessionId(), ip: null };
      let locked = await handler.read(key, 1_000);
      await handler.write(key, locked.lock, '{"t":"stored"}');
      await inspector.expire(`${prefix}{${key.id}}`, 5);
      locked = await handler.read(key, 1_000);
      // A touch never sends the payload when the record exists: the stored value stays as it was.
      await handler.updateTimestamp(key, locked.lock, '{"t":"not sent"}');
      assert.equal(await handler.peek(key), '{"t":"stored"}');
      assert.ok((await inspector.ttl(`${prefix}{${key.id}}`)) > 50);
      await handler.shutdown();
    });

    it('refuses to save once another request owns the lock, and keeps their data', async () => {
      const { handler } = await open();
      const key = { id: createSessionId(), ip: null };
      let locked = await handler.read(key, 1_000);
      await handler.write(key, locked.lock, '{"owner":"theirs"}');
      locked = await handler.read(key, 1_000);
      // Simulate our lock expiring and another process taking the session meanwhile.
      await inspector.set(`${prefix}{${key.id}}:lock`, 'someone-else', { PX: 5_000 });
      await assert.rejects(handler.write(key, locked.lock, '{"owner":"ours"}'), SessionStoreError);
      await assert.rejects(handler.updateTimestamp(key, locked.lock, '{}'), SessionStoreError);
      assert.equal(await handler.peek(key), '{"owner":"theirs"}');
      await handler.close(key, locked.lock);
      assert.equal(await inspector.get(`${prefix}{${key.id}}:lock`), 'someone-else');
      await inspector.del(`${prefix}{${key.id}}:lock`);
      await handler.shutdown();
    });

    it('destroy deletes the data even when the lock was lost', async () => {
      const { handler } = await open();
      const key = { id: createSessionId(), ip: null };
      let locked = await handler.read(key, 1_000);
      await handler.write(key, locked.lock, '{"d":1}');
      locked = await handler.read(key, 1_000);
      await inspector.set(`${prefix}{${key.id}}:lock`, 'someone-else', { PX: 5_000 });
      await handler.destroy(key, locked.lock);
      assert.equal(await handler.peek(key), null);
      await inspector.del(`${prefix}{${key.id}}:lock`);
      await handler.shutdown();
    });
  });

  describe('configuration and connection errors', () => {
    it('rejects an empty save path with no client', async () => {
      await assert.rejects(
        openHarness({ createHandler: () => new RedisHandler(), expiry: 'store' }),
        (error: unknown) =>
          error instanceof SessionConfigError && /No save path configured/.test(error.message),
      );
    });

    it('rejects a malformed save path naming the accepted forms', async () => {
      await assert.rejects(
        openHarness({
          createHandler: () => new RedisHandler(),
          savePath: 'localhost',
          expiry: 'store',
        }),
        (error: unknown) =>
          error instanceof SessionConfigError && /tcp:\/\/host:port/.test(error.message),
      );
    });

    it('rejects an object that is no Redis client', async () => {
      await assert.rejects(
        openHarness({
          createHandler: () => new RedisHandler(),
          connection: { get: () => null },
          expiry: 'store',
        }),
        SessionConfigError,
      );
    });

    it('rejects a node-redis client that was never connected', async () => {
      const client = createClient({ socket: { host: SHARED_HOST, port: SHARED_PORT } });
      await assert.rejects(
        openHarness({
          createHandler: () => new RedisHandler(),
          connection: client,
          expiry: 'store',
        }),
        (error: unknown) =>
          error instanceof SessionConfigError && /connect\(\)/.test(error.message),
      );
    });

    it('fails open() with SessionStoreError within the IO timeout when nothing listens', async () => {
      const started = Date.now();
      await assert.rejects(
        openHarness(
          { createHandler: () => new RedisHandler(), savePath: '127.0.0.1:7399', expiry: 'store' },
          { ioTimeoutMs: 300 },
        ),
        SessionStoreError,
      );
      assert.ok(Date.now() - started < 5_000);
    });
  });
});
