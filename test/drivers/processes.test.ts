/**
 * Every driver several processes share, in the same cases: no lost update across processes, a
 * SIGKILLed lock holder's session recovered, and a holder that stalled (SIGSTOP) unable to bring
 * back a session another request destroyed meanwhile: past its lock's lifetime where locks expire,
 * or holding its lock all along (the logout waits) where a lock ends only with its holder; and a
 * revocation from another process that its request in flight cannot undo.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CookieJar } from '../helpers/cookie-jar.js';
import type { DriverSpec } from '../helpers/driver-spec.js';
import {
  type ChildServer,
  concurrentIncrements,
  startCounterServer,
} from '../helpers/processes.js';
import { SHARED_TARGETS, type SharedTarget } from './targets.js';

const started: ChildServer[] = [];
afterEach(async () => {
  for (const child of started.splice(0)) await child.kill('SIGKILL');
});

async function server(
  driver: DriverSpec,
  config: Record<string, unknown>,
  delayMs = 0,
): Promise<ChildServer> {
  const child = await startCounterServer(
    { timeToUpdate: 0, gcProbability: 0, ...config },
    { delayMs, driver },
  );
  started.push(child);
  return child;
}

/** Runs `body` with the target's store set up, and tears it down whatever happens. */
async function onStore(target: SharedTarget, body: (driver: DriverSpec) => Promise<void>) {
  const driver = await target.setUp();
  try {
    await body(driver);
  } finally {
    await target.tearDown();
  }
}

for (const target of SHARED_TARGETS) {
  const skip = await target.skip();
  describe(`${target.name} across processes`, { skip }, () => {
    it('loses no update: two processes × 150 concurrent increments on one session → 301', () =>
      onStore(target, async (driver) => {
        const [first, second] = await Promise.all([
          server(driver, { lockWait: 30_000 }, 1),
          server(driver, { lockWait: 30_000 }, 1),
        ]);
        const jar = new CookieJar();
        assert.deepEqual(await (await jar.fetch(`${first.url}/inc`)).json(), { count: 1 });
        const cookie = jar.header();
        assert.ok(cookie !== undefined, 'the first increment set a session cookie');
        assert.deepEqual(
          await concurrentIncrements([first, second], cookie, 150),
          [],
          'every increment succeeded',
        );
        const counted = await fetch(`${second.url}/count`, { headers: { cookie } });
        assert.deepEqual(await counted.json(), { count: 301 });
      }));

    it(`recovers a SIGKILLed lock holder's session ${target.locksExpire ? 'once its lock TTL runs out' : 'at once'}`, () =>
      onStore(target, async (driver) => {
        // An expiring lock frees after lockTtl (1 s); one held by the dead process, at once.
        const config = target.locksExpire
          ? { lockTtl: 1_000, lockWait: 4_000 }
          : { lockTtl: 60_000, lockWait: 1_000 };
        const [holder, survivor] = await Promise.all([
          server(driver, config),
          server(driver, config),
        ]);
        const jar = new CookieJar();
        assert.deepEqual(await (await jar.fetch(`${survivor.url}/inc`)).json(), { count: 1 });
        const cookie = jar.header() ?? '';
        const held = fetch(`${holder.url}/hold?ms=60000`, { headers: { cookie } }).catch(
          (error: unknown) => error,
        );
        await holder.waitForLine('holding');
        await holder.kill('SIGKILL');
        assert.ok((await held) instanceof Error, 'the killed holder never answered');
        const after = await fetch(`${survivor.url}/inc`, { headers: { cookie } });
        assert.equal(after.status, 200);
        assert.deepEqual(await after.json(), { count: 2 });
      }));

    it(`a holder that stalls ${target.locksExpire ? 'past its lock' : 'while holding its lock'} never brings back a session destroyed meanwhile`, () =>
      onStore(target, async (driver) => {
        const config = { lockTtl: 1_000, lockWait: 8_000 };
        const [stalling, other, impatient] = await Promise.all([
          server(driver, config),
          server(driver, config),
          server(driver, { lockTtl: 1_000, lockWait: 500 }),
        ]);
        const jar = new CookieJar();
        await jar.fetch(`${other.url}/inc`);
        const cookie = jar.header() ?? '';
        const slow = fetch(`${stalling.url}/slow-inc?ms=200`, { headers: { cookie } });
        await stalling.waitForLine('holding');
        // The whole process stalls (a blocked event loop) for longer than lockTtl, and more than
        // memcached's whole-second lock lifetime.
        stalling.child.kill('SIGSTOP');
        const logout = fetch(`${other.url}/logout`, { headers: { cookie } });
        let loggedOut: Response;
        if (target.locksExpire) {
          loggedOut = await logout;
          await sleep(200);
          stalling.child.kill('SIGCONT');
        } else {
          // A lock that ends only with its holder (a file lock, a database connection's named
          // lock) is kept through the stall: a request that cannot wait that long gets a 503 at
          // its lockWait, telling nothing of the store, and the logout waits for the holder.
          const refused = await fetch(`${impatient.url}/inc`, { headers: { cookie } });
          assert.equal(refused.status, 503, 'a request waiting past lockWait');
          assert.doesNotMatch(await refused.text(), /127\.0\.0\.1|SELECT|keepsake_|\/tmp\//);
          await sleep(2_000);
          stalling.child.kill('SIGCONT');
          loggedOut = await logout;
        }
        assert.equal(loggedOut.status, 200, 'the logout went through');
        const late = await slow;
        await late.arrayBuffer();
        assert.equal(
          late.status,
          target.locksExpire ? 503 : 200,
          target.locksExpire
            ? 'the stalled holder may not save after losing its lock'
            : 'the stalled holder kept its lock, and saved before the logout',
        );
        const after = await fetch(`${other.url}/count`, { headers: { cookie } });
        assert.deepEqual(await after.json(), { count: 0 }, 'the destroyed session stays destroyed');
      }));

    it('a revocation from another process ends a session whose request is in flight: its save is refused, and a request waiting for it starts empty', () =>
      onStore(target, async (driver) => {
        const config = { lockTtl: 2_000, lockWait: 8_000 };
        const [holder, waiter, revoker] = await Promise.all([
          server(driver, config),
          server(driver, config),
          server(driver, config),
        ]);
        const jar = new CookieJar();
        await jar.fetch(`${waiter.url}/login?user=ada`);
        await jar.fetch(`${waiter.url}/inc`);
        const cookie = jar.header() ?? '';
        let inFlight = true;
        const slow = fetch(`${holder.url}/slow-inc?ms=1500`, { headers: { cookie } }).finally(
          () => {
            inFlight = false;
          },
        );
        await holder.waitForLine('holding');
        const waiting = fetch(`${waiter.url}/inc`, { headers: { cookie } });
        const revoked = await fetch(`${revoker.url}/revoke-all?user=ada`);
        assert.equal(revoked.status, 200, `revokeAll answered: ${await revoked.clone().text()}`);
        assert.deepEqual(await revoked.json(), { revoked: 1 });
        assert.equal(inFlight, true, 'revoked while its request was still running');
        const late = await slow;
        assert.equal(late.status, 503, 'the request in flight may not save the session back');
        assert.doesNotMatch(await late.text(), /127\.0\.0\.1|SELECT|keepsake_|\/tmp\//);
        const next = await waiting;
        assert.equal(
          next.status,
          200,
          `the waiting request answered: ${await next.clone().text()}`,
        );
        assert.deepEqual(await next.json(), { count: 1 }, 'the waiting request started empty');
        assert.match(next.headers.get('set-cookie') ?? '', /ci_session=/, 'with a new session');
        const after = await fetch(`${waiter.url}/count`, { headers: { cookie } });
        assert.deepEqual(await after.json(), { count: 0 }, 'the revoked session stays dead');
      }));
  });
}
