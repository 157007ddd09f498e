import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { memcached } from '../../src/drivers/memcached.js';
import { SessionStoreError } from '../../src/errors.js';
import { SessionManager } from '../../src/manager.js';
import { requestFor } from '../../src/testing/request-for.js';
import { memcachedBinarySkip, type OwnMemcached, startMemcached } from './memcached/servers.js';

const skip = await memcachedBinarySkip();
const PORT = 11415;

const request = (id?: string) => requestFor(id);

describe('memcached frozen during a lock attempt', { skip }, () => {
  let server: OwnMemcached | undefined;
  before(async () => {
    server = await startMemcached(PORT);
  });
  after(async () => {
    server?.resume();
    await server?.stop();
  });

  it('leaves no lock behind once it wakes: the next request gets the session long before lockTtl', async () => {
    const own = server;
    assert.ok(own !== undefined);
    const manager = new SessionManager({
      driver: memcached({ servers: own.address }),
      ioTimeout: 300,
      lockTtl: 10_000,
      lockWait: 1_000,
      timeToUpdate: 0,
      gcProbability: 0,
    });
    try {
      const first = await manager.start(request());
      first.set('user', 'ada');
      await manager.commit(first);

      await own.pause();
      // The lock attempt is sent, and given up after ioTimeout: the server answers nothing.
      await assert.rejects(manager.start(request(first.id)), SessionStoreError);
      await sleep(200);
      // It wakes, and runs what it was sent: the lock is taken for the request that gave up.
      own.resume();

      // lockWait (1 s) is a tenth of lockTtl (10 s): only a lock given back can be taken in time.
      const next = await manager.start(request(first.id));
      assert.equal(next.id, first.id);
      assert.equal(next.get('user'), 'ada');
      next.set('user', 'bob');
      await manager.commit(next);
      const last = await manager.start(request(first.id));
      assert.equal(last.get('user'), 'bob');
      await manager.commit(last);
    } finally {
      own.resume();
      await manager.shutdown();
    }
  });
});
