/** The redis driver's layout option, checked when the driver is made (the layout itself: test/codeigniter/shared-redis.test.ts). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from 'redis';
import { redis } from '../../src/drivers/redis.js';
import { SessionConfigError } from '../../src/errors.js';
import { createSessionId } from '../../src/id.js';
import { lock, put } from '../../src/testing/conformance-store.js';
import { openStore } from '../../src/testing/index.js';
import { serviceSkip } from '../helpers/services.js';
import { deleteKeys, SHARED_HOST, SHARED_PORT, uniquePrefix } from './redis/servers.js';

describe('redis driver: layout option', () => {
  it('refuses an unknown layout', () => {
    assert.throws(
      () => redis({ url: 'tcp://127.0.0.1:6379', layout: 'php' as 'codeigniter' }),
      (error: unknown) =>
        error instanceof SessionConfigError &&
        /'keepsake' or 'codeigniter', got "php"/.test(error.message),
    );
    assert.equal(redis({ url: 'tcp://127.0.0.1:6379', layout: 'codeigniter' }).name, 'redis');
  });
});

const skip = await serviceSkip('Redis', SHARED_HOST, SHARED_PORT);

describe("redis driver: revoke in CodeIgniter's layout", { skip }, () => {
  const prefix = uniquePrefix('ci-revoke');
  const inspector = createClient({ socket: { host: SHARED_HOST, port: SHARED_PORT } });
  const open = () =>
    openStore({
      driver: () =>
        redis({
          url: `tcp://${SHARED_HOST}:${SHARED_PORT}?prefix=${prefix}`,
          layout: 'codeigniter',
        }),
      expiry: 'real',
    });
  before(async () => {
    await inspector.connect();
  });
  after(async () => {
    inspector.destroy();
    await deleteKeys(prefix);
  });

  it('deletes <prefix><id> and the lock a keepsake request holds: that request can store nothing after', async () => {
    const harness = await open();
    const { store } = harness;
    const key = { id: createSessionId(), ip: null };
    await put(harness, key, '{"user":"ada"}');
    assert.equal(await inspector.get(`${prefix}${key.id}`), 'user|s:3:"ada";');
    const { token, payload } = await lock(store, key);
    assert.equal(payload, '{"user":"ada"}');
    await store.revoke?.(key);
    assert.equal(await inspector.exists([`${prefix}${key.id}`, `${prefix}${key.id}:lock`]), 0);
    assert.equal(await store.writeAndUnlock(key, token, '{"user":"back"}', 60), false);
    assert.equal(await store.touchAndUnlock(key, token, 60), 'fenced');
    assert.equal(await inspector.exists(`${prefix}${key.id}`), 0);
    const next = await lock(store, key);
    assert.equal(next.payload, null);
    assert.equal(await store.writeAndUnlock(key, next.token, '{"user":"new"}', 60), true);
    assert.equal(await store.peek(key), '{"user":"new"}');
    assert.deepEqual(harness.warnings, []);
    await store.close();
  });

  it('leaves the lock a CodeIgniter request holds, so requests still exclude each other, and warns that PHP may store the session again', async () => {
    const harness = await open();
    const { store } = harness;
    const key = { id: createSessionId(), ip: null };
    const phpLock = String(Math.floor(Date.now() / 1000));
    // As CodeIgniter 4.1's RedisHandler stores them: its data, and its lock holding time().
    await inspector.set(`${prefix}${key.id}`, 'user|s:3:"ada";', { EX: 600 });
    await inspector.set(`${prefix}${key.id}:lock`, phpLock, { EX: 300 });
    await store.revoke?.(key);
    assert.equal(await inspector.exists(`${prefix}${key.id}`), 0);
    assert.equal(await inspector.get(`${prefix}${key.id}:lock`), phpLock);
    assert.equal((await store.lockAndRead(key, 'keepsake-token')).locked, false);
    assert.equal(harness.warnings.length, 1);
    assert.match(harness.warnings[0] ?? '', /CodeIgniter request held its lock/);
    // PHP's close deletes its lock: the next request then finds no session.
    await inspector.del(`${prefix}${key.id}:lock`);
    const next = await lock(store, key);
    assert.equal(next.payload, null);
    await store.unlock(key, next.token, true);
    await store.close();
  });
});
