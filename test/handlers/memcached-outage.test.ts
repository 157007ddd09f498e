import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SessionStoreError } from '../../src/errors.js';
import { MemcachedHandler } from '../../src/handlers/memcached.js';
import { createSessionId } from '../../src/id.js';
import { openHarness } from '../../src/testing/conformance.js';
import { assertOutageAndRecovery } from '../helpers/outage.js';
import { type ChildServer, startCounterServer } from '../helpers/processes.js';
import { memcachedBinarySkip, type OwnMemcached, startMemcached } from './memcached/servers.js';

// This file starts its own memcached (it kills it on purpose), so it needs only the binary.
const skip = await memcachedBinarySkip();
const PORT = 11421;
const IO_TIMEOUT_MS = 500;

let memcached: OwnMemcached | undefined;
const children: ChildServer[] = [];

before(async () => {
  if (skip === false) memcached = await startMemcached(PORT);
});

after(async () => {
  for (const child of children) await child.kill('SIGKILL');
  memcached?.resume();
  await memcached?.stop();
});

function requireMemcached(): OwnMemcached {
  if (memcached === undefined) throw new Error('the private memcached did not start');
  return memcached;
}

/** Settles with the outcome, or 'hung' when `promise` has not settled within `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<unknown> {
  return Promise.race([
    promise.then(
      () => 'resolved',
      (error: unknown) => error,
    ),
    sleep(ms).then(() => 'hung'),
  ]);
}

describe('memcached outage on a private server', { skip }, () => {
  it('answers 503 while memcached is down, stays up, and recovers by itself on the same port', async () => {
    const server = await startCounterServer({
      driver: 'memcached',
      savePath: `127.0.0.1:${PORT}`,
      ioTimeout: IO_TIMEOUT_MS,
      lockWait: 2_000,
      timeToUpdate: 0,
      gcProbability: 0,
    });
    children.push(server);
    await assertOutageAndRecovery({
      server,
      storeName: 'memcached',
      boundMs: IO_TIMEOUT_MS + 3_000,
      stopStore: () => requireMemcached().stop(),
      restartStore: () => requireMemcached().restart(),
    });
  });

  it('fails a call to a server that stops answering with SessionStoreError, then reconnects', async () => {
    const own = requireMemcached();
    const { handler } = await openHarness(
      {
        createHandler: () => new MemcachedHandler(),
        savePath: own.address,
        expiry: 'store',
      },
      { ioTimeoutMs: IO_TIMEOUT_MS },
    );
    try {
      const key = { id: createSessionId(), ip: null };
      const { lock } = await handler.read(key, 1_000);
      await handler.write(key, lock, '{"before":1}');

      await own.pause();
      // Unbounded, the call would wait for the paused server forever; the bound is generous.
      const stalled = await within(handler.peek(key), IO_TIMEOUT_MS + 2_000);
      assert.ok(stalled instanceof SessionStoreError, `peek ended with ${String(stalled)}`);
      const queued = await within(handler.validateId(key), IO_TIMEOUT_MS + 2_000);
      assert.ok(queued instanceof SessionStoreError, `validateId ended with ${String(queued)}`);

      own.resume();
      assert.equal(await handler.peek(key), '{"before":1}', 'the next call reconnected');
    } finally {
      own.resume();
      await handler.shutdown();
    }
  });
});
