import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Memcache } from 'memcache';
import type { SessionKey, SessionStore } from '../../src/drivers/contract.js';
import { MemcachedConnection } from '../../src/drivers/memcached/connection.js';
import { routingKey, TaggedRing } from '../../src/drivers/memcached/ring.js';
import { parseMemcachedSavePath } from '../../src/drivers/memcached/save-path.js';
import { type MemcachedClient, memcached } from '../../src/drivers/memcached.js';
import { SessionConfigError, SessionLockLostError } from '../../src/errors.js';
import { createSessionId } from '../../src/id.js';
import { SessionManager } from '../../src/manager.js';
import {
  type ConformanceTarget,
  openStore,
  runConformanceSuite,
} from '../../src/testing/conformance.js';
import {
  delay,
  lock,
  newKey,
  newToken,
  protocolFor,
  put,
} from '../../src/testing/conformance-store.js';
import { requestFor } from '../../src/testing/request-for.js';
import { serviceSkip } from '../helpers/services.js';
import { countRoundTrips } from './memcached/round-trips.js';
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

/** Takes the session's lock with a new token, waiting at most `boundMs` for it to become free. */
async function lockWhenFree(
  store: SessionStore,
  key: SessionKey,
  boundMs: number,
): Promise<{ token: string; payload: string | null }> {
  const deadline = performance.now() + boundMs;
  for (;;) {
    const token = newToken();
    const attempt = await store.lockAndRead(key, token);
    if (attempt.locked) return { token, payload: attempt.payload };
    assert.ok(
      performance.now() < deadline,
      `the lock of ${key.id} was not free within ${boundMs} ms`,
    );
    await delay(50);
  }
}

const request = (cookieName: string, id?: string) => requestFor(id, { cookieName });

describe('memcached servers list', () => {
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
      assert.throws(
        () => memcached({ servers: bad }),
        (error: unknown) =>
          error instanceof SessionConfigError &&
          error.option === 'servers' &&
          /host:port\[:weight\]/.test(error.message),
      );
    });
  }

  it('is required when no client is given (the driver is not even created)', () => {
    for (const options of [{}, { servers: '' }]) {
      assert.throws(
        () => memcached(options),
        (error: unknown) => error instanceof SessionConfigError && error.option === 'servers',
      );
    }
  });

  it('is refused beside a client, which would make it unused', () => {
    assert.throws(
      () => memcached({ servers: SHARED_SERVER, client: directClient(SHARED_SERVER) }),
      (error: unknown) => error instanceof SessionConfigError && error.option === 'servers',
    );
  });

  it('is what the shorthand savePath maps onto', () => {
    assert.throws(
      () => new SessionManager({ driver: 'memcached', savePath: 'localhost' }),
      (error: unknown) =>
        error instanceof SessionConfigError && /host:port\[:weight\]/.test(error.message),
    );
  });

  it('serves payloads up to 1 000 000 bytes unless maxPayloadBytes says otherwise', () => {
    assert.equal(memcached({ servers: SHARED_SERVER }).maxPayloadBytes, 1_000_000);
    assert.equal(memcached({ client: directClient(SHARED_SERVER) }).maxPayloadBytes, 1_000_000);
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
    driver: () => memcached({ servers: SHARED_SERVER }),
    expiry: 'real',
  };
  const open = (overrides: Parameters<typeof openStore>[1] = {}) =>
    openStore(target, { cookieName, ...overrides });

  runConformanceSuite('memcached (one server)', target);

  const injected: Memcache[] = [];
  const injectedTarget: ConformanceTarget = {
    driver: () => {
      const client = new Memcache({ nodes: [SHARED_SERVER], timeout: 1_000 });
      injected.push(client);
      return memcached({ client });
    },
    expiry: 'real',
    // keepsake never closes a client it was given; the test owns these.
    cleanup: async () => {
      await Promise.all(injected.splice(0).map((client) => client.disconnect()));
    },
  };
  runConformanceSuite('memcached (injected memcache client)', injectedTarget);

  it('with a client of your own, a holder whose lock expired and was taken over cannot write, touch or destroy', async () => {
    const harness = await openStore(injectedTarget, { lockTtlMs: 300 });
    const { store } = harness;
    const protocol = protocolFor(harness);
    try {
      const key = newKey();
      await put(harness, key, '{"user":"ada"}');
      for (const ending of ['write', 'touch', 'destroy'] as const) {
        const stalled = await protocol.acquire(key, 1_000);
        clearTimeout(stalled.lock.renewal);
        // memcached expires the 2-second lock item (lockTtl rounded up, plus a second) in 1 to 2 s.
        const other = await lockWhenFree(store, key, 3_000);
        assert.equal(other.payload, '{"user":"ada"}');
        assert.equal(await store.destroyAndUnlock(key, other.token), true);
        stalled.lock.leaseUntil = Number.POSITIVE_INFINITY;
        const attempt =
          ending === 'write'
            ? protocol.write(stalled.lock, '{"user":"ada","back":1}', 60)
            : ending === 'touch'
              ? protocol.touch(stalled.lock, '{"user":"ada"}', 60)
              : protocol.destroy(stalled.lock);
        await assert.rejects(attempt, SessionLockLostError);
        assert.equal(await store.peek(key), null, `a late ${ending} did not revive the session`);
        await put(harness, key, '{"user":"ada"}');
      }
    } finally {
      await store.close();
      await injectedTarget.cleanup?.();
    }
  });

  it('stores data and lock under one hash tag, the lock for lockTtl rounded up plus a second, the data for the lifetime', async () => {
    const harness = await open({ lockTtlMs: 1_500, matchIP: true });
    const client = directClient(SHARED_SERVER);
    try {
      const key = { id: createSessionId(), ip: '10.0.0.1' };
      const dataKey = `${cookieName}:10.0.0.1:{${key.id}}`;
      const before = Date.now();
      const { token } = await lock(harness.store, key);
      const after = Date.now();
      // The lock item holds when it may be taken over (lockTtl after it was set) and whose it is.
      const [expiresAt, holder] = (await client.get(`${dataKey}:lock`))?.split(/:(.*)/s) ?? [];
      assert.equal(holder, token);
      assert.ok(
        Number(expiresAt) >= before + 1_500 && Number(expiresAt) <= after + 1_500,
        `the lock may be taken over at ${expiresAt}, ${Number(expiresAt) - before} ms after it was sent`,
      );
      const lockTtl = await remainingTtl(SHARED_HOST, SHARED_PORT, `${dataKey}:lock`);
      assert.ok(lockTtl !== null && lockTtl >= 2 && lockTtl <= 3, `lock TTL ${lockTtl} s`);
      assert.equal(await harness.store.writeAndUnlock(key, token, '{"a":1}', 600), true);
      assert.equal(await client.get(dataKey), '{"a":1}');
      assert.equal(await client.get(`${dataKey}:lock`), undefined);
      const dataTtl = await remainingTtl(SHARED_HOST, SHARED_PORT, dataKey);
      assert.ok(dataTtl !== null && dataTtl > 590 && dataTtl <= 600, `data TTL ${dataTtl} s`);
      await client.delete(dataKey);
    } finally {
      await harness.store.close();
      await client.disconnect();
    }
  });

  it('sends lifetimes over 30 days as an absolute time, so they do not expire at once', async () => {
    const fortyDays = 40 * 24 * 3600;
    const harness = await open();
    try {
      const key = { id: createSessionId(), ip: null };
      const { token } = await lock(harness.store, key);
      const sentAt = Math.floor(Date.now() / 1000);
      assert.equal(await harness.store.writeAndUnlock(key, token, '{"long":1}', fortyDays), true);
      assert.equal(await harness.store.peek(key), '{"long":1}');
      const ttl = await remainingTtl(SHARED_HOST, SHARED_PORT, `${cookieName}:{${key.id}}`);
      // The absolute time is the wall clock's; memcached counts it down on its own clock, which
      // drifts from the wall clock the longer it runs (seen: 8 s behind after 80 minutes on a VM).
      const serverNow = await serverClock(SHARED_HOST, SHARED_PORT);
      const expected = sentAt + fortyDays - serverNow;
      assert.ok(
        ttl !== null && Math.abs(ttl - expected) <= 2,
        `data TTL ${ttl} s, expected ${expected} s (40 days by the server's clock)`,
      );
      const again = await lock(harness.store, key);
      assert.equal(await harness.store.touchAndUnlock(key, again.token, fortyDays), 'touched');
      const touchedTtl = await remainingTtl(SHARED_HOST, SHARED_PORT, `${cookieName}:{${key.id}}`);
      assert.ok(
        touchedTtl !== null && Math.abs(touchedTtl - expected) <= 2,
        `touched TTL ${touchedTtl} s, expected about ${expected} s`,
      );
      const last = await lock(harness.store, key);
      assert.equal(await harness.store.destroyAndUnlock(key, last.token), true);
    } finally {
      await harness.store.close();
    }
  });

  it('touches an unchanged session instead of rewriting it', async () => {
    const harness = await open();
    const client = directClient(SHARED_SERVER);
    try {
      const key = { id: createSessionId(), ip: null };
      const dataKey = `${cookieName}:{${key.id}}`;
      await put(harness, key, '{"t":1}', 600);
      await client.set(dataKey, '{"t":"stored"}', 5);
      const { token } = await lock(harness.store, key);
      assert.equal(await harness.store.touchAndUnlock(key, token, 600), 'touched');
      assert.equal(await client.get(dataKey), '{"t":"stored"}', 'the value was not rewritten');
      const ttl = await remainingTtl(SHARED_HOST, SHARED_PORT, dataKey);
      assert.ok(ttl !== null && ttl > 590, `the touch restarted the lifetime (TTL ${ttl} s)`);
      await client.delete(dataKey);
    } finally {
      await harness.store.close();
      await client.disconnect();
    }
  });

  for (const [label, targetOf] of [
    ['keepsake’s client', () => target],
    ['a client of your own', () => injectedTarget],
  ] as const) {
    it(`${label}: a touch of an evicted session answers missing and keeps the lock; the core then writes it`, async () => {
      const harness = await openStore(targetOf(), { cookieName });
      const client = directClient(SHARED_SERVER);
      try {
        const key = newKey();
        const dataKey = `${cookieName}:{${key.id}}`;
        await put(harness, key, '{"cart":[1]}');
        const { token } = await lock(harness.store, key);
        await client.delete(dataKey); // evicted while the request ran
        assert.equal(await harness.store.touchAndUnlock(key, token, 60), 'missing');
        assert.deepEqual(await harness.store.lockAndRead(key, newToken()), { locked: false });
        assert.equal(await harness.store.writeAndUnlock(key, token, '{"cart":[1]}', 60), true);
        assert.equal(await client.get(dataKey), '{"cart":[1]}');
        // The same through the core: an unchanged session whose item is gone is written back.
        const protocol = protocolFor(harness);
        const held = await protocol.acquire(key, 1_000);
        await client.delete(dataKey);
        await protocol.touch(held.lock, '{"cart":[1]}', 60);
        assert.equal(await client.get(dataKey), '{"cart":[1]}');
        assert.equal(await harness.store.peek(key), '{"cart":[1]}');
        await client.delete(dataKey);
      } finally {
        await harness.store.close();
        await targetOf().cleanup?.();
        await client.disconnect();
      }
    });

    it(`${label}: refuses to save, touch or delete once another request took the lock and saved, and keeps their data`, async () => {
      const harness = await openStore(targetOf(), { cookieName });
      const client = directClient(SHARED_SERVER);
      try {
        const { store } = harness;
        const key = newKey();
        const dataKey = `${cookieName}:{${key.id}}`;
        await put(harness, key, '{"owner":"first"}');
        const { token } = await lock(store, key);
        // Our lock expired and another process took the session and saved it meanwhile.
        await client.set(`${dataKey}:lock`, 'someone-else', 5);
        await client.set(dataKey, '{"owner":"theirs"}', 60);
        assert.equal(await store.writeAndUnlock(key, token, '{"owner":"ours"}', 60), false);
        assert.equal(await store.touchAndUnlock(key, token, 60), 'fenced');
        assert.equal(await store.destroyAndUnlock(key, token), false);
        assert.equal(await store.peek(key), '{"owner":"theirs"}');
        await store.unlock(key, token, false);
        assert.equal(await client.get(`${dataKey}:lock`), 'someone-else');
        await client.delete(`${dataKey}:lock`);
        await client.delete(dataKey);
      } finally {
        await harness.store.close();
        await targetOf().cleanup?.();
        await client.disconnect();
      }
    });
  }

  for (const [label, targetOf] of [
    ['keepsake’s client', () => target],
    ['a client of your own', () => injectedTarget],
  ] as const) {
    it(`${label}: a revoke from another process fences the holder, with or without a session stored: it cannot write, touch or delete`, async () => {
      const harness = await openStore(targetOf(), { cookieName });
      const revoker = await openStore(targetOf(), { cookieName });
      const client = directClient(SHARED_SERVER);
      try {
        const { store } = harness;
        for (const stored of ['{"user":"ada"}', null]) {
          for (const ending of ['write', 'touch', 'destroy'] as const) {
            const key = newKey();
            const dataKey = `${cookieName}:{${key.id}}`;
            if (stored !== null) await put(harness, key, stored);
            const { token, payload } = await lock(store, key);
            assert.equal(payload, stored);
            await revoker.store.revoke?.(key);
            assert.equal(await client.get(`${dataKey}:lock`), undefined, 'the lock is released');
            if (ending === 'write')
              assert.equal(await store.writeAndUnlock(key, token, '{"user":"back"}', 60), false);
            if (ending === 'touch')
              assert.equal(await store.touchAndUnlock(key, token, 60), 'fenced');
            if (ending === 'destroy') assert.equal(await store.destroyAndUnlock(key, token), false);
            assert.equal(
              await store.peek(key),
              null,
              `${ending} over ${stored}: nothing came back`,
            );
            const next = await lock(store, key);
            assert.equal(next.payload, null);
            assert.equal(await store.writeAndUnlock(key, next.token, '{"user":"new"}', 60), true);
            assert.equal(await revoker.store.peek(key), '{"user":"new"}');
            await client.delete(dataKey);
          }
        }
      } finally {
        await harness.store.close();
        await revoker.store.close();
        await targetOf().cleanup?.();
        await client.disconnect();
      }
    });
  }

  it('keepsake’s client: a revoked session’s item holds no bytes for as long as a lock item lives, and reads as no session', async () => {
    const harness = await open({ lockTtlMs: 1_500 });
    const client = directClient(SHARED_SERVER);
    try {
      const { store } = harness;
      const key = newKey();
      const dataKey = `${cookieName}:{${key.id}}`;
      await put(harness, key, '{"user":"ada"}', 600);
      await store.revoke?.(key);
      assert.equal(await client.get(dataKey), '');
      const ttl = await remainingTtl(SHARED_HOST, SHARED_PORT, dataKey);
      assert.ok(ttl !== null && ttl >= 2 && ttl <= 3, `revoked item TTL ${ttl} s`);
      assert.equal(await store.peek(key), null);
      const { token, payload } = await lock(store, key);
      assert.equal(payload, null);
      assert.equal(await store.writeAndUnlock(key, token, '{"user":"new"}', 600), true);
      assert.equal(await client.get(dataKey), '{"user":"new"}');
      await client.delete(dataKey);
    } finally {
      await harness.store.close();
      await client.disconnect();
    }
  });

  it('a client of your own: refuses to save, touch or delete once another request took the lock, even before it saved', async () => {
    const harness = await openStore(injectedTarget, { cookieName });
    const client = directClient(SHARED_SERVER);
    try {
      const { store } = harness;
      const key = newKey();
      const lockKey = `${cookieName}:{${key.id}}:lock`;
      await put(harness, key, '{"owner":"theirs"}');
      const { token } = await lock(store, key);
      await client.set(lockKey, 'someone-else', 5);
      assert.equal(await store.writeAndUnlock(key, token, '{"owner":"ours"}', 60), false);
      assert.equal(await store.touchAndUnlock(key, token, 60), 'fenced');
      assert.equal(await store.destroyAndUnlock(key, token), false);
      assert.equal(await store.peek(key), '{"owner":"theirs"}');
      await store.unlock(key, token, false);
      assert.equal(await client.get(lockKey), 'someone-else');
      await client.delete(lockKey);
    } finally {
      await harness.store.close();
      await injectedTarget.cleanup?.();
      await client.disconnect();
    }
  });

  it('keepsake’s client: a save that lands after another process took the lock answers false, and that process’s save is then refused, so neither is lost silently', async () => {
    const harness = await open();
    const client = directClient(SHARED_SERVER);
    try {
      const { store } = harness;
      const key = newKey();
      const lockKey = `${cookieName}:{${key.id}}:lock`;
      await put(harness, key, '{"n":1}');
      const ours = await lock(store, key);
      // Our lock item is evicted; another process takes the lock and reads the session...
      await client.delete(lockKey);
      const other = await openStore(target, { cookieName });
      try {
        const theirs = await lock(other.store, key);
        assert.equal(theirs.payload, '{"n":1}');
        // ...and our save, already on its way, lands first: memcached cannot make it depend on the lock.
        assert.equal(await store.writeAndUnlock(key, ours.token, '{"n":"ours"}', 60), false);
        const theirLock = await client.get(lockKey);
        assert.equal(theirLock?.split(/:(.*)/s)[1], theirs.token, 'their lock was not released');
        // Their save is over a version that is no longer there: refused, not silently lost.
        assert.equal(
          await other.store.writeAndUnlock(key, theirs.token, '{"n":"theirs"}', 60),
          false,
        );
        assert.equal(await store.peek(key), '{"n":"ours"}');
      } finally {
        await other.store.close();
      }
      await client.delete(`${cookieName}:{${key.id}}`);
    } finally {
      await harness.store.close();
      await client.disconnect();
    }
  });

  it('never releases a lock it does not own', async () => {
    const harness = await open();
    const client = directClient(SHARED_SERVER);
    try {
      const key = { id: createSessionId(), ip: null };
      const { token } = await lock(harness.store, key);
      const lockKey = `${cookieName}:{${key.id}}:lock`;
      await client.set(lockKey, 'someone-else', 5);
      await harness.store.unlock(key, 'stale-token', false);
      assert.equal(await client.get(lockKey), 'someone-else');
      await harness.store.unlock(key, token, true);
      assert.equal(await client.get(lockKey), 'someone-else');
      await client.delete(lockKey);
    } finally {
      await harness.store.close();
      await client.disconnect();
    }
  });

  it('never deletes a lock that another request took over (CAS-checked unlock), and reports the lost lock', async () => {
    const harness = await open();
    const client = directClient(SHARED_SERVER);
    try {
      const key = { id: createSessionId(), ip: null };
      const lockKey = `${cookieName}:{${key.id}}:lock`;
      const held = await protocolFor(harness).acquire(key, 1_000);
      // As if the lock had been evicted and another process had taken the session meanwhile.
      await client.set(lockKey, 'another-process', 5);
      await assert.rejects(
        protocolFor(harness).write(held.lock, '{"v":1}', 60),
        SessionLockLostError,
      );
      assert.equal(await client.get(lockKey), 'another-process');
      await client.delete(lockKey);
      await client.delete(`${cookieName}:{${key.id}}`);
    } finally {
      await harness.store.close();
      await client.disconnect();
    }
  });

  it('still releases its lock when the CAS changed but the token is its own (a renewal whose answer was lost)', async () => {
    const harness = await open();
    const client = directClient(SHARED_SERVER);
    try {
      const { store } = harness;
      const key = newKey();
      const lockKey = `${cookieName}:{${key.id}}:lock`;
      const { token } = await lock(store, key);
      const rewrite = async () => {
        const value = (await client.get(lockKey)) ?? '';
        assert.ok(value.endsWith(`:${token}`), `the lock holds the token: ${value}`);
        await client.set(lockKey, value, 5); // the same lock, a new CAS
      };
      await rewrite();
      assert.equal(await store.renewLock?.(key, token), true);
      await rewrite();
      assert.equal(await store.writeAndUnlock(key, token, '{"r":1}', 60), true);
      assert.equal(await client.get(lockKey), undefined);
      assert.equal(await store.peek(key), '{"r":1}');
      await client.delete(`${cookieName}:{${key.id}}`);
    } finally {
      await harness.store.close();
      await client.disconnect();
    }
  });

  it('takes over a lock of its own process whose request stalled past lockTtl; the stalled request can then change nothing', async () => {
    const harness = await open({ lockTtlMs: 300 });
    try {
      const { store } = harness;
      const protocol = protocolFor(harness);
      const key = newKey();
      await put(harness, key, '{"n":1}');
      const stalled = await protocol.acquire(key, 1_000);
      clearTimeout(stalled.lock.renewal);
      assert.deepEqual(await store.lockAndRead(key, newToken()), { locked: false });
      await delay(400);
      // Far sooner than memcached expires the lock item (2 s), and before the taker writes.
      const taker = await lock(store, key);
      assert.equal(taker.payload, '{"n":1}');
      stalled.lock.leaseUntil = Number.POSITIVE_INFINITY;
      await assert.rejects(protocol.write(stalled.lock, '{"n":"stale"}', 60), SessionLockLostError);
      assert.equal(await store.peek(key), '{"n":1}', 'the stalled write did not land');
      assert.equal(await store.writeAndUnlock(key, taker.token, '{"n":2}', 60), true);
      assert.equal(await store.peek(key), '{"n":2}');
    } finally {
      await harness.store.close();
    }
  });

  it('never takes over a lock that holds no expiry time (another client or version wrote it) before memcached expires it', async () => {
    const harness = await open({ lockTtlMs: 300 });
    const client = directClient(SHARED_SERVER);
    try {
      const key = newKey();
      const lockKey = `${cookieName}:{${key.id}}:lock`;
      await client.set(lockKey, 'a-bare-token', 2);
      await delay(400);
      assert.deepEqual(await harness.store.lockAndRead(key, newToken()), { locked: false });
      assert.equal(await client.get(lockKey), 'a-bare-token');
      await client.delete(lockKey);
    } finally {
      await harness.store.close();
      await client.disconnect();
    }
  });

  it('refuses to save once a renewal found the lock gone', async () => {
    // A 4-second lock is renewed every 1.33 s.
    const harness = await open({ lockTtlMs: 4_000 });
    const client = directClient(SHARED_SERVER);
    try {
      const protocol = protocolFor(harness);
      const key = { id: createSessionId(), ip: null };
      const dataKey = `${cookieName}:{${key.id}}`;
      let held = await protocol.acquire(key, 1_000);
      await protocol.write(held.lock, '{"v":1}', 60);
      held = await protocol.acquire(key, 1_000);
      await client.delete(`${dataKey}:lock`); // evicted
      for (let waited = 0; harness.warnings.length === 0 && waited < 5_000; waited += 50) {
        await sleep(50);
      }
      assert.match(harness.warnings[0] ?? '', /expired while its request was still running/);
      await assert.rejects(protocol.write(held.lock, '{"v":"stale"}', 60), SessionLockLostError);
      assert.equal(await client.get(dataKey), '{"v":1}');
      await client.delete(dataKey);
    } finally {
      await harness.store.close();
      await client.disconnect();
    }
  });

  it('refuses to save after a stall longer than the lock could live', async () => {
    const harness = await open({ lockTtlMs: 1_000 });
    try {
      const protocol = protocolFor(harness);
      const key = { id: createSessionId(), ip: null };
      const held = await protocol.acquire(key, 1_000);
      // A blocked event loop: no renewal could run, so the lock may have expired.
      const blockedUntil = Date.now() + 1_100;
      while (Date.now() < blockedUntil) {}
      await assert.rejects(protocol.write(held.lock, '{"v":1}', 60), SessionLockLostError);
      assert.equal(await harness.store.peek(key), null);
      const again = await protocol.acquire(key, 500);
      await protocol.release(again.lock);
    } finally {
      await harness.store.close();
    }
  });

  it('with an injected client, checks the lock owner before saving', async () => {
    const injectedClient = directClient(SHARED_SERVER);
    const harness = await openStore(
      { driver: () => memcached({ client: injectedClient }), expiry: 'real' },
      { cookieName },
    );
    try {
      const protocol = protocolFor(harness);
      const key = { id: createSessionId(), ip: null };
      const dataKey = `${cookieName}:{${key.id}}`;
      let held = await protocol.acquire(key, 1_000);
      await protocol.write(held.lock, '{"v":1}', 60);
      held = await protocol.acquire(key, 1_000);
      await injectedClient.set(`${dataKey}:lock`, 'another-process', 5);
      await assert.rejects(protocol.write(held.lock, '{"v":"stale"}', 60), SessionLockLostError);
      assert.equal(await injectedClient.get(dataKey), '{"v":1}');
      await harness.store.unlock(key, held.lock.token, false);
      assert.equal(await injectedClient.get(`${dataKey}:lock`), 'another-process');
      await injectedClient.delete(`${dataKey}:lock`);
      await injectedClient.delete(dataKey);
    } finally {
      await harness.store.close();
      await injectedClient.disconnect();
    }
  });

  it('leaves an injected client open when the store closes', async () => {
    const injectedClient = directClient(SHARED_SERVER);
    try {
      const harness = await openStore(
        { driver: () => memcached({ client: injectedClient }), expiry: 'real' },
        { cookieName },
      );
      await harness.store.close();
      assert.equal(await injectedClient.set(`${cookieName}:open`, 'yes', 5), true);
      assert.equal(await injectedClient.get(`${cookieName}:open`), 'yes');
    } finally {
      await injectedClient.disconnect();
    }
  });

  it('reads an item that is not UTF-8 text as unreadable, and deletes it when the core replaces it', async () => {
    const harness = await open();
    const raw = new MemcachedConnection({ host: SHARED_HOST, port: SHARED_PORT, weight: 1 }, 2_000);
    try {
      const key = newKey();
      const dataKey = `${cookieName}:{${key.id}}`;
      const bytes = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
      const [stored] = await raw.send([
        { line: `ms ${dataKey} ${bytes.length} T60`, value: bytes },
      ]);
      assert.equal(stored?.kind === 'meta' && stored.status, 'HD');
      const token = newToken();
      assert.deepEqual(await harness.store.lockAndRead(key, token), {
        locked: true,
        payload: null,
        unreadable: 'the memcached item holds 4 bytes that are not UTF-8 text',
      });
      assert.equal(await harness.store.destroyAndUnlock(key, token), true);
      const [read] = await raw.send([{ line: `mg ${dataKey} v` }]);
      assert.equal(read?.kind === 'meta' && read.status, 'EN');
    } finally {
      await harness.store.close();
      await raw.close();
    }
  });

  it('rejects a client that is not a memcached client', () => {
    assert.throws(
      () => memcached({ client: { get() {} } as unknown as MemcachedClient }),
      (error: unknown) => error instanceof SessionConfigError && error.option === 'client',
    );
  });

  it('rejects a cookie name too long for memcached keys', async () => {
    await assert.rejects(
      openStore(target, { cookieName: 'c'.repeat(200) }),
      (error: unknown) => error instanceof SessionConfigError && error.option === 'cookieName',
    );
  });

  it('names the session of an IP that is no address text by a hash, so the text cannot reach the protocol', async () => {
    const harness = await open({ matchIP: true });
    const client = directClient(SHARED_SERVER);
    try {
      const id = createSessionId();
      const hostile = { id, ip: '1.2.3.4\r\nflush_all' };
      const plain = { id, ip: '1.2.3.4' };
      await put(harness, plain, '{"who":"plain"}');
      await put(harness, hostile, '{"who":"hostile"}');
      assert.equal(await harness.store.peek(hostile), '{"who":"hostile"}');
      assert.equal(await harness.store.peek(plain), '{"who":"plain"}');
      assert.equal(await client.get(`${cookieName}:1.2.3.4:{${id}}`), '{"who":"plain"}');
      await client.delete(`${cookieName}:1.2.3.4:{${id}}`);
    } finally {
      await harness.store.close();
      await client.disconnect();
    }
  });

  it('an uncontended request costs two round trips: lock + read, then save + unlock (or touch + unlock)', async () => {
    const counter = await countRoundTrips(SHARED_PORT);
    const manager = new SessionManager({
      driver: memcached({ servers: counter.address }),
      cookieName,
      timeToUpdate: 0,
      gcProbability: 0,
    });
    try {
      const first = await manager.start(request(cookieName));
      first.set('n', 1);
      await manager.commit(first);
      counter.reset();
      const changed = await manager.start(request(cookieName, first.id));
      changed.set('n', 2);
      await manager.commit(changed);
      assert.equal(counter.trips, 2, 'a request that changed the session');
      counter.reset();
      const unchanged = await manager.start(request(cookieName, first.id));
      assert.equal(unchanged.get('n'), 2);
      await manager.commit(unchanged);
      assert.equal(counter.trips, 2, 'a request that changed nothing');
    } finally {
      await manager.shutdown();
      await counter.close();
    }
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
    // Room for the conformance suite's 1 MB sessions and the 4000 small ones after them: with
    // less, memcached evicts small items to make room in their slab class.
    for (const port of POOL_PORTS) servers.push(await startMemcached(port, { memoryMb: 128 }));
  });
  after(async () => {
    for (const server of servers) await server.stop();
  });

  runConformanceSuite('memcached (two-server pool)', {
    driver: () =>
      memcached({ servers: `127.0.0.1:${POOL_PORTS[0]}:2, 127.0.0.1:${POOL_PORTS[1]}:1` }),
    expiry: 'real',
  });

  it('spreads 4000 sessions by weight (3:1), each with its lock on the same server', async () => {
    const { store } = await openStore(
      {
        driver: () =>
          memcached({ servers: `127.0.0.1:${POOL_PORTS[0]}:3,127.0.0.1:${POOL_PORTS[1]}:1` }),
        expiry: 'real',
      },
      { lockTtlMs: 5_000, cookieName: 'spread' },
    );
    const heavy = directClient(`127.0.0.1:${POOL_PORTS[0]}`);
    const light = directClient(`127.0.0.1:${POOL_PORTS[1]}`);
    try {
      const sessions = 4_000;
      const checked = 200;
      let onHeavy = 0;
      const storeOne = async (index: number) => {
        const key = { id: createSessionId(), ip: null };
        const [dataKey, lockKey] = [`spread:{${key.id}}`, `spread:{${key.id}}:lock`];
        const { token } = await lock(store, key);
        const holds = (value: string | undefined) => value?.split(/:(.*)/s)[1] === token;
        const lockOnHeavy = index < checked ? holds(await heavy.get(lockKey)) : null;
        if (index < checked) {
          const lockOnLight = holds(await light.get(lockKey));
          assert.notEqual(lockOnHeavy, lockOnLight, 'the lock is on exactly one server');
        }
        assert.equal(await store.writeAndUnlock(key, token, '{}', 60), true);
        const dataOnHeavy = (await heavy.get(dataKey)) === '{}';
        const dataOnLight = (await light.get(dataKey)) === '{}';
        assert.notEqual(dataOnHeavy, dataOnLight, 'the session is on exactly one server');
        if (lockOnHeavy !== null)
          assert.equal(dataOnHeavy, lockOnHeavy, 'data and lock share a server');
        if (dataOnHeavy) onHeavy += 1;
      };
      const batch = 25;
      for (let start = 0; start < sessions; start += batch) {
        await Promise.all(Array.from({ length: batch }, (_, offset) => storeOne(start + offset)));
      }
      const heavyShare = onHeavy / sessions;
      assert.ok(
        heavyShare > 0.65 && heavyShare < 0.85,
        `weights 3:1 put ${(heavyShare * 100).toFixed(1)} % on the heavy server`,
      );
    } finally {
      await store.close();
      await heavy.disconnect();
      await light.disconnect();
    }
  });
});
