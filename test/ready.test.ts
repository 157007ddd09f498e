/** Everything that needs I/O is checked by one awaited ready(), which fails fast when the store cannot be reached. */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { requirePeer } from '../src/drivers/peer.js';
import { redis } from '../src/drivers/redis.js';
import { SessionConfigError, SessionStoreError } from '../src/errors.js';
import { SessionManager } from '../src/manager.js';

/** A TCP port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('ready()', () => {
  it('names the npm install command for a driver package that is not installed, when the driver is created', () => {
    assert.throws(
      () => requirePeer('keepsake-no-such-package', 'the test driver'),
      (error: unknown) =>
        error instanceof SessionConfigError &&
        /the test driver needs the "keepsake-no-such-package" package.*npm install keepsake-no-such-package/.test(
          error.message,
        ),
    );
  });

  it('fails with SessionStoreError when a Redis client the app passed in cannot reach its server', async () => {
    const client = new Redis({
      host: '127.0.0.1',
      port: await closedPort(),
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    const manager = new SessionManager({ driver: redis({ client }), ioTimeout: 500 });
    await assert.rejects(manager.ready(), (error: unknown) => {
      assert.ok(error instanceof SessionStoreError, String(error));
      assert.equal(error.operation, 'connect');
      return true;
    });
    client.disconnect();
  });

  it('fails within three IO timeouts when a driver never finishes opening, and closes it if it opens later', async () => {
    let closed = false;
    let finishOpening: () => void = () => {};
    const manager = new SessionManager({
      ioTimeout: 100,
      driver: {
        name: 'stuck',
        open: () =>
          new Promise((resolve) => {
            finishOpening = () =>
              resolve({
                lockAndRead: async () => ({ locked: false }),
                writeAndUnlock: async () => false,
                touchAndUnlock: async () => 'fenced',
                destroyAndUnlock: async () => false,
                unlock: async () => {},
                peek: async () => null,
                close: async () => {
                  closed = true;
                },
              });
          }),
      },
    });
    const started = performance.now();
    await assert.rejects(manager.ready(), (error: unknown) => {
      assert.ok(error instanceof SessionStoreError);
      assert.equal(error.operation, 'open');
      return true;
    });
    assert.ok(performance.now() - started < 2_000, 'ready() gave up instead of hanging');
    finishOpening();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(closed, true, 'the store that opened too late was closed');
  });
});
