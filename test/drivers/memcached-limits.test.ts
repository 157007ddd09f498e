import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Memcache } from 'memcache';
import { memcached } from '../../src/drivers/memcached.js';
import { SessionStoreError } from '../../src/errors.js';
import { SessionManager } from '../../src/manager.js';
import { openStore } from '../../src/testing/conformance.js';
import { lock, newKey, put } from '../../src/testing/conformance-store.js';
import { requestFor } from '../../src/testing/request-for.js';
import { memcachedBinarySkip, type OwnMemcached, startMemcached } from './memcached/servers.js';

const skip = await memcachedBinarySkip();
/** A memcached whose items may be 32 MB (`-I 32m`), and one with the default 1 MB limit. */
const LARGE_ITEMS_PORT = 11413;
const DEFAULT_LIMIT_PORT = 11414;
const MEGABYTE = 1024 * 1024;

/** Exactly `bytes` bytes of UTF-8 text whose 1-, 2-, 3- and 4-byte characters straddle every chunk edge. */
function textOfBytes(bytes: number): string {
  const unit = 'xé日🎉'; // 1 + 2 + 3 + 4 bytes
  const text = unit.repeat(Math.floor(bytes / 10));
  return text + 'x'.repeat(bytes - Buffer.byteLength(text));
}

const request = (id?: string) => requestFor(id);

describe('memcached large sessions', { skip }, () => {
  let server: OwnMemcached | undefined;
  before(async () => {
    server = await startMemcached(LARGE_ITEMS_PORT, { itemSizeMax: '32m', memoryMb: 256 });
  });
  after(async () => {
    await server?.stop();
  });
  const servers = `127.0.0.1:${LARGE_ITEMS_PORT}`;

  it('reads back 1 000 000 bytes and 16 MB byte for byte, through lock + read and through peek', async () => {
    const harness = await openStore({ driver: () => memcached({ servers }), expiry: 'real' });
    try {
      for (const bytes of [1_000_000, 16 * MEGABYTE, 20 * MEGABYTE]) {
        const payload = textOfBytes(bytes);
        assert.equal(Buffer.byteLength(payload), bytes);
        const key = newKey();
        await put(harness, key, payload);
        const { token, payload: read } = await lock(harness.store, key);
        assert.ok(read === payload, `${bytes} bytes read back under the lock, byte for byte`);
        await harness.store.unlock(key, token, false);
        assert.ok(
          (await harness.store.peek(key)) === payload,
          `${bytes} bytes peeked, byte for byte`,
        );
      }
    } finally {
      await harness.store.close();
    }
  });

  it('serves a 16 MB session through the manager when maxPayloadBytes and -I are raised', async () => {
    const manager = new SessionManager({
      driver: memcached({ servers }),
      maxPayloadBytes: 16 * MEGABYTE,
      timeToUpdate: 0,
      gcProbability: 0,
    });
    try {
      const big = textOfBytes(16 * MEGABYTE - 1_000);
      const first = await manager.start(request());
      first.set('big', big);
      await manager.commit(first);
      const again = await manager.start(request(first.id));
      assert.ok(again.get('big') === big, 'the session came back whole');
      await manager.commit(again);
    } finally {
      await manager.shutdown();
    }
  });
});

describe('memcached item size limit (-I 1m, the default)', { skip }, () => {
  let server: OwnMemcached | undefined;
  before(async () => {
    server = await startMemcached(DEFAULT_LIMIT_PORT, { memoryMb: 64 });
  });
  after(async () => {
    await server?.stop();
  });
  const servers = `127.0.0.1:${DEFAULT_LIMIT_PORT}`;

  it('stores a payload of exactly the driver’s limit, 1 000 000 bytes, under the longest keys', async () => {
    const driver = memcached({ servers });
    assert.equal(driver.maxPayloadBytes, 1_000_000);
    // The longest cookie name the key check lets through, and the longest IP text.
    const harness = await openStore(
      { driver: () => driver, expiry: 'real' },
      { cookieName: 'c'.repeat(164), matchIP: true },
    );
    try {
      const key = newKey('ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255');
      const payload = textOfBytes(1_000_000);
      await put(harness, key, payload);
      assert.ok((await harness.store.peek(key)) === payload);
    } finally {
      await harness.store.close();
    }
  });

  it('refuses a session over the item limit as a store error, and the stored one stays', async () => {
    const manager = new SessionManager({
      driver: memcached({ servers }),
      // Raised without raising memcached's -I.
      maxPayloadBytes: 2 * MEGABYTE,
      timeToUpdate: 0,
      gcProbability: 0,
    });
    try {
      const first = await manager.start(request());
      first.set('big', 'a'.repeat(500_000));
      await manager.commit(first);
      const tooBig = await manager.start(request(first.id));
      tooBig.set('big', 'b'.repeat(1_500_000));
      await assert.rejects(manager.commit(tooBig), (error: unknown) => {
        assert.ok(error instanceof SessionStoreError);
        assert.match(String((error.cause as Error).message), /-I/);
        return true;
      });
      const after = await manager.start(request(first.id));
      assert.equal(after.id, first.id);
      assert.ok(after.get('big') === 'a'.repeat(500_000), 'the stored session is unchanged');
      await manager.commit(after);
    } finally {
      await manager.shutdown();
    }
  });

  it('memcached itself deletes the stored session when it refuses a too-large one (what a client of your own meets)', async () => {
    const client = new Memcache({ nodes: [servers], timeout: 2_000, maxValueSize: 4 * MEGABYTE });
    const harness = await openStore({ driver: () => memcached({ client }), expiry: 'real' });
    try {
      const key = newKey();
      await put(harness, key, '{"kept":"until the next write"}');
      const { token } = await lock(harness.store, key);
      await assert.rejects(
        harness.store.writeAndUnlock(key, token, 'x'.repeat(1_500_000), 60),
        /did not store/,
      );
      assert.equal(await harness.store.peek(key), null, 'memcached deleted the old item');
      await harness.store.unlock(key, token, false);
    } finally {
      await harness.store.close();
      await client.disconnect();
    }
  });
});
