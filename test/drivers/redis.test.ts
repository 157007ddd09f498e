import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import type { RedisClient } from '../../src/drivers/redis.js';
import { redis } from '../../src/drivers/redis.js';
import { SessionConfigError, SessionStoreError } from '../../src/errors.js';
import { createSessionId } from '../../src/id.js';
import { runConformanceSuite } from '../../src/testing/conformance.js';
import { lock, put } from '../../src/testing/conformance-store.js';
import { openStore } from '../../src/testing/index.js';
import { serviceSkip } from '../helpers/services.js';
import { deleteKeys, listKeys, SHARED_HOST, SHARED_PORT, uniquePrefix } from './redis/servers.js';

const skip = await serviceSkip('Redis', SHARED_HOST, SHARED_PORT);
const prefix = uniquePrefix('redis');
const url = `tcp://${SHARED_HOST}:${SHARED_PORT}?prefix=${prefix}`;

after(async () => {
  if (skip === false) await deleteKeys(prefix);
});

describe('redis driver on the shared server', { skip }, () => {
  runConformanceSuite('redis (url, own node-redis client)', {
    driver: () => redis({ url }),
    expiry: 'real',
  });

  runConformanceSuite('redis (redis:// URL)', {
    driver: () => redis({ url: `redis://${SHARED_HOST}:${SHARED_PORT}/0?prefix=${prefix}url:` }),
    expiry: 'real',
  });

  describe('with an injected node-redis client', () => {
    const client = createClient({ socket: { host: SHARED_HOST, port: SHARED_PORT } });
    before(async () => {
      await client.connect();
    });
    after(() => {
      client.destroy();
    });
    runConformanceSuite('redis (injected node-redis client)', {
      driver: () => redis({ client, prefix: `${prefix}node-redis:` }),
      expiry: 'real',
    });
    it('leaves an injected client open when the store closes', async () => {
      const { store } = await openStore({
        driver: () => redis({ client, prefix: `${prefix}node-redis:` }),
        expiry: 'real',
      });
      await store.close();
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
      driver: () => redis({ client, url: `?prefix=${prefix}ioredis:` }),
      expiry: 'real',
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

    const open = (overrides: Parameters<typeof openStore>[1] = {}) =>
      openStore({ driver: () => redis({ url }), expiry: 'real' }, overrides);

    it('stores <prefix>{id} with the lifetime as TTL and a short-lived <prefix>{id}:lock', async () => {
      const harness = await open({ lockTtlMs: 4_000 });
      const key = { id: createSessionId(), ip: null };
      const { token } = await lock(harness.store, key);
      const lockTtl = await inspector.pTTL(`${prefix}{${key.id}}:lock`);
      assert.ok(lockTtl > 0 && lockTtl <= 4_000, `lock PTTL ${lockTtl}`);
      await harness.store.writeAndUnlock(key, token, '{"k":1}', 120);
      assert.deepEqual(await listKeys(`${prefix}{${key.id}}`), [`${prefix}{${key.id}}`]);
      const ttl = await inspector.ttl(`${prefix}{${key.id}}`);
      assert.ok(ttl > 100 && ttl <= 120, `data TTL ${ttl}`);
      await harness.store.close();
    });

    it('puts the IP before the ID under matchIP', async () => {
      const harness = await open({ matchIP: true });
      const key = { id: createSessionId(), ip: '203.0.113.9' };
      await put(harness, key, '{"ip":1}');
      assert.equal(await inspector.get(`${prefix}203.0.113.9:{${key.id}}`), '{"ip":1}');
      await harness.store.close();
    });

    it('uses "<cookieName>:" as the prefix when the url has no prefix=', async () => {
      const cookieName = `${prefix.replace(/[^A-Za-z0-9]/g, '')}cookie`;
      const harness = await openStore(
        { driver: () => redis({ url: `${SHARED_HOST}:${SHARED_PORT}` }), expiry: 'real' },
        { cookieName },
      );
      const key = { id: createSessionId(), ip: null };
      await put(harness, key, '{"p":1}');
      assert.equal(await inspector.get(`${cookieName}:{${key.id}}`), '{"p":1}');
      await inspector.del(`${cookieName}:{${key.id}}`);
      await harness.store.close();
    });

    it('touches an unchanged session without rewriting it, restarting its TTL', async () => {
      const harness = await open();
      const key = { id: createSessionId(), ip: null };
      await put(harness, key, '{"t":"stored"}');
      await inspector.expire(`${prefix}{${key.id}}`, 5);
      const { token } = await lock(harness.store, key);
      assert.equal(await harness.store.touchAndUnlock(key, token, 60), 'touched');
      assert.equal(await harness.store.peek(key), '{"t":"stored"}');
      assert.ok((await inspector.ttl(`${prefix}{${key.id}}`)) > 50);
      await harness.store.close();
    });

    it('refuses to save, touch or delete once another request owns the lock, and keeps their data', async () => {
      const harness = await open();
      const { store } = harness;
      const key = { id: createSessionId(), ip: null };
      await put(harness, key, '{"owner":"theirs"}');
      const { token } = await lock(store, key);
      // Our lock expired and another process took the session meanwhile.
      await inspector.set(`${prefix}{${key.id}}:lock`, 'someone-else', { PX: 5_000 });
      assert.equal(await store.writeAndUnlock(key, token, '{"owner":"ours"}', 60), false);
      assert.equal(await store.touchAndUnlock(key, token, 60), 'fenced');
      assert.equal(await store.destroyAndUnlock(key, token), false);
      assert.equal(await store.peek(key), '{"owner":"theirs"}');
      await store.unlock(key, token, false);
      assert.equal(await inspector.get(`${prefix}{${key.id}}:lock`), 'someone-else');
      await inspector.del(`${prefix}{${key.id}}:lock`);
      await store.close();
    });

    it('revokes by deleting <prefix>{id} and its lock, so the holder can store nothing after', async () => {
      const harness = await open();
      const { store } = harness;
      const key = { id: createSessionId(), ip: null };
      const other = { id: createSessionId(), ip: null };
      await put(harness, key, '{"user":"ada"}');
      await put(harness, other, '{"user":"bob"}');
      const { token } = await lock(store, key);
      assert.equal(await inspector.get(`${prefix}{${key.id}}:lock`), token);
      await store.revoke?.(key);
      assert.equal(
        await inspector.exists([`${prefix}{${key.id}}`, `${prefix}{${key.id}}:lock`]),
        0,
      );
      assert.equal(await store.writeAndUnlock(key, token, '{"user":"back"}', 60), false);
      assert.equal(await inspector.exists(`${prefix}{${key.id}}`), 0);
      assert.equal(await store.peek(other), '{"user":"bob"}', 'another session is untouched');
      await store.close();
    });

    it('reads a key of another Redis type as unreadable, and the lock is taken', async () => {
      const harness = await open();
      const key = { id: createSessionId(), ip: null };
      await inspector.hSet(`${prefix}{${key.id}}`, 'field', 'value');
      const attempt = await harness.store.lockAndRead(key, 'probe');
      assert.deepEqual(attempt, {
        locked: true,
        payload: null,
        unreadable: 'the Redis key holds a hash, not a string',
      });
      assert.equal(await harness.store.destroyAndUnlock(key, 'probe'), true);
      assert.equal(await inspector.exists(`${prefix}{${key.id}}`), 0);
      await harness.store.close();
    });
  });

  describe('configuration and connection errors', () => {
    it('rejects an empty url with no client when the driver is created', () => {
      assert.throws(
        () => redis({}),
        (error: unknown) =>
          error instanceof SessionConfigError && /No save path configured/.test(error.message),
      );
    });

    it('rejects a malformed url naming the accepted forms', () => {
      assert.throws(
        () => redis({ url: 'localhost' }),
        (error: unknown) =>
          error instanceof SessionConfigError && /tcp:\/\/host:port/.test(error.message),
      );
    });

    it('rejects an object that is no Redis client', () => {
      assert.throws(
        () => redis({ client: { get: () => null } as unknown as RedisClient }),
        SessionConfigError,
      );
    });

    it('rejects a node-redis client that was never connected', () => {
      const client = createClient({ socket: { host: SHARED_HOST, port: SHARED_PORT } });
      assert.throws(
        () => redis({ client }),
        (error: unknown) =>
          error instanceof SessionConfigError && /connect\(\)/.test(error.message),
      );
    });

    it('fails to open with SessionStoreError within the IO timeout when nothing listens', async () => {
      const started = Date.now();
      await assert.rejects(
        openStore(
          { driver: () => redis({ url: '127.0.0.1:7399' }), expiry: 'real' },
          { ioTimeoutMs: 300 },
        ),
        SessionStoreError,
      );
      assert.ok(Date.now() - started < 5_000);
    });
  });
});
