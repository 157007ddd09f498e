import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../src/clock.js';
import type { SessionConfig } from '../src/config.js';
import {
  SessionClosedError,
  SessionConfigError,
  SessionHeadersSentError,
  SessionLockTimeoutError,
  SessionStoreError,
  SessionValueError,
} from '../src/errors.js';
import type { SessionLogger } from '../src/log.js';
import { normalizeIp, type RequestInfo, SessionManager } from '../src/manager.js';
import type { Session } from '../src/session.js';
import { RecordingDriver } from './helpers/recording-driver.js';

interface Harness {
  manager: SessionManager;
  handler: RecordingDriver;
  clock: FakeClock;
  logs: string[];
}

function harness(options: SessionConfig = {}): Harness {
  const handler = new RecordingDriver();
  const clock = new FakeClock();
  const logs: string[] = [];
  const logger: SessionLogger = {
    debug: (message) => logs.push(`debug ${message}`),
    warn: (message) => logs.push(`warn ${message}`),
    error: (message) => logs.push(`error ${message}`),
  };
  const manager = new SessionManager({
    driver: handler.driver,
    clock: clock.now,
    logger,
    gcProbability: 0,
    ...options,
  });
  return { manager, handler, clock, logs };
}

function request(cookie?: string, extra: Partial<RequestInfo> = {}): RequestInfo {
  return {
    cookieHeader: cookie === undefined ? undefined : `ci_session=${cookie}`,
    ip: '127.0.0.1',
    ajax: false,
    ...extra,
  };
}

/** Runs one whole request: start, `work`, cookies, commit; returns the session and its cookies. */
async function visit(
  manager: SessionManager,
  info: RequestInfo,
  work: (session: Session) => void | Promise<void> = () => {},
): Promise<{ session: Session; cookies: string[] }> {
  const session = await manager.start(info);
  await work(session);
  const cookies = manager.setCookies(session);
  await manager.commit(session);
  return { session, cookies };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('SessionManager: IDs and cookies', () => {
  it('issues a fresh ID and a cookie to a request without one that stores something', async () => {
    const { manager } = harness();
    const { session, cookies } = await visit(manager, request(), (s) => s.set('a', 1));
    assert.match(session.id, /^[0-9a-f]{32}$/);
    assert.equal(cookies.length, 1);
    assert.ok(cookies[0]?.startsWith(`ci_session=${session.id};`));
  });

  it('a request without a cookie that stores nothing gets no cookie and costs no store call', async () => {
    const { manager, handler } = harness({ timeToUpdate: 300 });
    await manager.ready();
    for (let visitor = 0; visitor < 100; visitor += 1) {
      const { session, cookies } = await visit(manager, request(), (s) => {
        s.get('user');
        s.setFlashdata('gone', null);
        s.remove('gone');
      });
      assert.match(session.id, /^[0-9a-f]{32}$/);
      assert.deepEqual(cookies, []);
    }
    assert.deepEqual(handler.store.calls, [], 'the store was never asked anything');
  });

  it('createEmptySessions stores and cookies an empty new session, as CodeIgniter does', async () => {
    const { manager, handler } = harness({ createEmptySessions: true });
    const { session, cookies } = await visit(manager, request());
    assert.ok(cookies[0]?.startsWith(`ci_session=${session.id};`));
    assert.match(
      (await handler.store.peek({ id: session.id, ip: null })) ?? '',
      /__ci_last_regenerate/,
    );
  });

  it('a new session keeps its ID through regenerate() before anything is stored, and is stored under the final one', async () => {
    const { manager, handler } = harness();
    const session = await manager.start(request());
    const first = session.id;
    await session.regenerate(true);
    assert.notEqual(session.id, first);
    session.set('a', 1);
    const cookies = manager.setCookies(session);
    await manager.commit(session);
    assert.ok(cookies[0]?.startsWith(`ci_session=${session.id};`));
    assert.equal(await handler.store.peek({ id: first, ip: null }), null);
    assert.match((await handler.store.peek({ id: session.id, ip: null })) ?? '', /"a":1/);
  });

  it('data set on a new session after its headers went out is not stored, with a warning', async () => {
    const { manager, handler, logs } = harness();
    const session = await manager.start(request());
    assert.deepEqual(manager.setCookies(session), []);
    session.set('late', true);
    await manager.commit(session);
    assert.equal(await handler.store.peek({ id: session.id, ip: null }), null);
    assert.ok(
      logs.some((line) => line.startsWith('warn') && line.includes('after the response headers')),
    );
  });

  it('sends no cookie while the ID is unchanged', async () => {
    const { manager } = harness();
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    const again = await visit(manager, request(session.id));
    assert.equal(again.session.id, session.id);
    assert.deepEqual(again.cookies, []);
  });

  it('refreshes the cookie on every request when timeToUpdate is 0', async () => {
    const { manager } = harness({ timeToUpdate: 0 });
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    const again = await visit(manager, request(session.id));
    assert.equal(again.cookies.length, 1);
    assert.ok(again.cookies[0]?.startsWith(`ci_session=${session.id};`));
  });

  it('makes a browser-session cookie when expiration is 0, and the store keeps it gcMaxLifetime', async () => {
    const { manager, clock } = harness({ expiration: 0, gcMaxLifetime: 100 });
    const { session, cookies } = await visit(manager, request(), (s) => s.set('a', 1));
    assert.doesNotMatch(cookies[0] ?? '', /Max-Age|Expires/);
    clock.advance(99);
    assert.equal((await visit(manager, request(session.id))).session.get('a'), 1);
    clock.advance(101);
    assert.equal((await visit(manager, request(session.id))).session.get('a'), null);
  });

  it('never passes a malformed ID to the driver, and never adopts an unknown one', async () => {
    const { manager, handler } = harness();
    const unknown = 'b'.repeat(32);
    for (const cookie of ['../../etc/passwd', 'B'.repeat(32), 'b'.repeat(31), unknown]) {
      const { session } = await visit(manager, request(cookie));
      assert.notEqual(session.id, cookie);
    }
    for (const key of handler.keysSeen()) assert.match(key.id, /^[0-9a-f]{32}$/);
    assert.ok(handler.keysSeen().some((key) => key.id === unknown));
  });
});

describe('SessionManager: writes and touches', () => {
  it('writes changed data and only touches unchanged data, once touchAfter of its lifetime passed', async () => {
    const { manager, handler, clock } = harness({ timeToUpdate: 0 });
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    assert.equal(handler.count('writeAndUnlock'), 1);
    const read = (s: Session) => {
      s.get('a');
    };
    await visit(manager, request(session.id), read);
    assert.equal(handler.count('writeAndUnlock'), 1);
    assert.equal(handler.count('touchAndUnlock'), 0, 'written just now: no touch');
    clock.advance(7200 * 0.1 + 1);
    await visit(manager, request(session.id), read);
    assert.equal(handler.count('writeAndUnlock'), 1);
    assert.equal(handler.count('touchAndUnlock'), 1, 'a tenth of the lifetime later: one touch');
    await visit(manager, request(session.id), (s) => s.set('a', 2));
    assert.equal(handler.count('writeAndUnlock'), 2);
  });

  it('commit is idempotent', async () => {
    const { manager, handler } = harness();
    const session = await manager.start(request());
    session.set('a', 1);
    await manager.commit(session);
    await manager.commit(session);
    assert.equal(handler.count('writeAndUnlock'), 1);
  });

  it('a corrupt stored payload starts an empty session and logs a warning', async () => {
    const { manager, handler, logs } = harness();
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    const key = { id: session.id, ip: null };
    const attempt = await handler.store.lockAndRead(key, 'test');
    assert.ok(attempt.locked);
    await handler.store.writeAndUnlock(key, 'test', '{"a":1', 60);
    const again = await visit(manager, request(session.id));
    assert.equal(again.session.get('a'), null);
    assert.ok(logs.some((line) => line.startsWith('warn') && line.includes('corrupt')));
  });
});

describe('SessionManager: locking', () => {
  it('serialises requests on one session in arrival order', async () => {
    const { manager } = harness();
    const { session } = await visit(manager, request(), (s) => s.set('log', []));
    const order: number[] = [];
    await Promise.all(
      [0, 1, 2, 3, 4].map((index) =>
        visit(manager, request(session.id), async (s) => {
          order.push(index);
          await pause(5 - index);
          s.push('log', [index]);
        }),
      ),
    );
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
    const final = await visit(manager, request(session.id));
    assert.deepEqual(final.session.get('log'), [0, 1, 2, 3, 4]);
  });

  it('a request that waits longer than lockWait fails with a 503 lock timeout', async () => {
    const { manager } = harness({ lockWait: 30 });
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    const holder = await manager.start(request(session.id));
    await assert.rejects(manager.start(request(session.id)), (error: unknown) => {
      assert.ok(error instanceof SessionLockTimeoutError);
      assert.equal(error.status, 503);
      assert.equal(error.code, 'KEEPSAKE_LOCK_TIMEOUT');
      assert.match(error.message, /lockWait/);
      return true;
    });
    await manager.commit(holder);
    assert.equal((await visit(manager, request(session.id))).session.get('a'), 1);
  });

  it('close() saves and releases the lock early; later changes throw', async () => {
    const { manager } = harness();
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    const first = await manager.start(request(session.id));
    first.set('a', 2);
    await first.close();
    assert.throws(() => first.set('a', 3), SessionClosedError);
    const second = await visit(manager, request(session.id));
    assert.equal(second.session.get('a'), 2);
    await manager.commit(first);
  });

  it('read-only requests take no lock, do not wait, and refuse writes', async () => {
    const { manager, handler } = harness();
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    const holder = await manager.start(request(session.id));
    const readsBefore = handler.count('lockAndRead');
    const readOnly = await manager.start(request(session.id, { readOnly: true }));
    assert.equal(readOnly.get('a'), 1);
    assert.throws(() => readOnly.set('a', 2), SessionClosedError);
    assert.equal(handler.count('lockAndRead'), readsBefore);
    assert.deepEqual(manager.setCookies(readOnly), []);
    await manager.commit(readOnly);
    await manager.commit(holder);
    assert.equal(handler.count('writeAndUnlock'), 1);
  });

  it('a store failure is a 503 SessionStoreError and leaves no lock behind', async () => {
    const { manager, handler } = harness({ lockWait: 50 });
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    handler.failReads = new Error('connection refused');
    await assert.rejects(manager.start(request(session.id)), (error: unknown) => {
      assert.ok(error instanceof SessionStoreError);
      assert.equal(error.status, 503);
      assert.match(error.message, /"array" session store failed during lock and read/);
      assert.match(String((error.cause as Error).message), /connection refused/);
      return true;
    });
    handler.failReads = undefined;
    assert.equal((await visit(manager, request(session.id))).session.get('a'), 1);
  });
});

describe('SessionManager: destroy', () => {
  it('deletes the data and sends a deletion cookie', async () => {
    const { manager, handler } = harness();
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    const { cookies } = await visit(manager, request(session.id), (s) => s.destroy());
    assert.match(cookies[0] ?? '', /^ci_session=; Max-Age=0;/);
    assert.equal(await handler.store.peek({ id: session.id, ip: null }), null);
  });

  it('a request waiting on the lock can never resurrect a destroyed session', async () => {
    const { manager, handler } = harness();
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    const destroyer = await manager.start(request(session.id));
    const waiting = visit(manager, request(session.id), (s) => s.set('b', 2));
    await pause(5);
    await destroyer.destroy();
    await manager.commit(destroyer);
    const { session: late } = await waiting;
    assert.notEqual(late.id, session.id);
    assert.equal(late.get('a'), null);
    assert.equal(await handler.store.peek({ id: session.id, ip: null }), null);
  });

  it('changes after destroy() throw, and so does a second destroy()', async () => {
    const { manager } = harness();
    const session = await manager.start(request());
    await session.destroy();
    assert.throws(() => session.set('a', 1), SessionClosedError);
    await assert.rejects(session.destroy(), SessionClosedError);
  });
});

describe('SessionManager: regeneration', () => {
  it('regenerates automatically after timeToUpdate, keeping the data', async () => {
    const { manager, clock, logs } = harness({ timeToUpdate: 300 });
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    clock.advance(300);
    assert.equal((await visit(manager, request(session.id))).session.id, session.id);
    clock.advance(1);
    const rotated = await visit(manager, request(session.id));
    assert.notEqual(rotated.session.id, session.id);
    assert.equal(rotated.session.get('a'), 1);
    assert.ok(rotated.cookies[0]?.startsWith(`ci_session=${rotated.session.id};`));
    assert.ok(logs.some((line) => line.includes('regenerat')));
  });

  it('the old ID leads to the new session during the grace window, then nowhere', async () => {
    const { manager, clock } = harness({ regenerateGrace: 30 });
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    const { session: moved } = await visit(manager, request(session.id), (s) => s.regenerate());
    const late = await visit(manager, request(session.id));
    assert.equal(late.session.id, moved.id);
    assert.equal(late.session.get('a'), 1);
    assert.ok(late.cookies[0]?.startsWith(`ci_session=${moved.id};`));
    clock.advance(31);
    const tooLate = await visit(manager, request(session.id));
    assert.notEqual(tooLate.session.id, moved.id);
    assert.equal(tooLate.session.get('a'), null);
  });

  it('regenerate(true) deletes the old ID at once (no grace)', async () => {
    const { manager, handler } = harness();
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    const { session: moved } = await visit(manager, request(session.id), (s) => s.regenerate(true));
    assert.equal(await handler.store.peek({ id: session.id, ip: null }), null);
    const stale = await visit(manager, request(session.id));
    assert.notEqual(stale.session.id, moved.id);
    assert.equal(stale.session.get('a'), null);
  });

  it('never regenerates on AJAX requests', async () => {
    const { manager, clock } = harness({ timeToUpdate: 300 });
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    clock.advance(1000);
    const ajax = await visit(manager, request(session.id, { ajax: true }));
    assert.equal(ajax.session.id, session.id);
    assert.equal(ajax.cookies.length, 1);
  });

  it('regenerate() after the headers went out throws instead of losing the new cookie', async () => {
    const { manager } = harness();
    const session = await manager.start(request());
    manager.setCookies(session);
    await assert.rejects(session.regenerate(), SessionHeadersSentError);
    await manager.commit(session);
  });
});

describe('SessionManager: matchIP', () => {
  it('a session is found only from the IP that made it (IPv4-mapped IPv6 counts as IPv4)', async () => {
    const { manager } = harness({ matchIP: true });
    const { session } = await visit(manager, request(), (s) => s.set('a', 1));
    const mapped = await visit(manager, request(session.id, { ip: '::ffff:127.0.0.1' }));
    assert.equal(mapped.session.get('a'), 1);
    const other = await visit(manager, request(session.id, { ip: '::1' }));
    assert.equal(other.session.get('a'), null);
    assert.notEqual(other.session.id, session.id);
  });

  it('normalizeIp lowercases and unmaps IPv4-mapped addresses', () => {
    assert.equal(normalizeIp('::FFFF:10.0.0.1'), '10.0.0.1');
    assert.equal(normalizeIp('FE80::1'), 'fe80::1');
  });
});

describe('SessionManager: flash and temp bookkeeping across requests', () => {
  it('flashdata lives one more request; tempdata until its time', async () => {
    const { manager, clock } = harness({ timeToUpdate: 0 });
    const { session } = await visit(manager, request(), (s) => {
      s.setFlashdata('notice', 'hi');
      s.setTempdata('coupon', 'X', 10);
    });
    const second = await visit(manager, request(session.id));
    assert.equal(second.session.getFlashdata('notice'), 'hi');
    clock.advance(10);
    const third = await visit(manager, request(session.id));
    assert.equal(third.session.getFlashdata('notice'), null);
    assert.equal(third.session.getTempdata('coupon'), 'X');
    clock.advance(1);
    assert.equal((await visit(manager, request(session.id))).session.getTempdata('coupon'), null);
  });
});

describe('SessionManager: garbage collection', () => {
  it('the lottery runs GC off the request path', async () => {
    const { manager, handler, logs } = harness({ gcProbability: 1, gcDivisor: 1 });
    await visit(manager, request());
    assert.equal(handler.count('gc'), 0);
    for (let waited = 0; waited < 2_000 && handler.count('gc') === 0; waited += 10) await pause(10);
    assert.equal(handler.count('gc'), 1);
    assert.ok(logs.some((line) => line.includes('GC removed')));
  });

  it('gcProbability 0 never collects', async () => {
    const { manager, handler } = harness({ gcProbability: 0 });
    for (let index = 0; index < 20; index += 1) await visit(manager, request());
    await pause(10);
    assert.equal(handler.count('gc'), 0);
  });
});

describe('configuration errors', () => {
  const invalid: [SessionConfig, RegExp][] = [
    [{ sessionDriver: 'file' } as SessionConfig, /unknown option/],
    [{ driver: 'mongo' as 'file' }, /unknown driver "mongo"/],
    [{ cookieName: 'a b' }, /cookieName/],
    [{ cookieName: '123' }, /cookieName/],
    [{ expiration: -1 }, /expiration.*whole number/],
    [
      { cookie: { sameSite: 'sometimes' } },
      /The SameSite value must be None, Lax, Strict or a blank string, sometimes given\./,
    ],
    [{ cookie: { sameSite: 'None' } }, /requires setting the "Secure" attribute/],
    [
      { driver: { open() {} } as never },
      /a driver object with a name and an open\(context\) method/,
    ],
    [{ maxSessions: 5 } as SessionConfig, /an option of the array driver now/],
    [{ cookie: { maxAge: 60 } } as SessionConfig, /cookie\.maxAge.*keepsake's expiration option/],
    [{ cookie: { httpOnly: false } } as SessionConfig, /cookie\.httpOnly.*always HttpOnly/],
    [
      { cookie: { sameSIte: 'Lax' } } as SessionConfig,
      /cookie\.sameSIte.*the cookie options are path, domain, secure, sameSite/,
    ],
    [{ driver: 'file', savePath: 'relative/dir' }, /absolute directory/],
    [{ driver: 'redis', savePath: 'localhost' }, /Invalid Redis save path/],
    [{ driver: 'memcached', savePath: 'nowhere' }, /host:port/],
    [{ driver: 'database', savePath: 'sessions' }, /database driver needs/],
    [{ driver: 'file', connection: 'x' }, /the file driver takes no connection/],
    [{ gcProbability: 5, gcDivisor: 2 }, /gcDivisor/],
    [{ absoluteLifetime: -1 }, /absoluteLifetime.*whole number/],
    [{ encryption: { keys: [] } }, /encryption\.keys.*at least one key/],
    [
      { encryption: { keys: ['c2hvcnQ='] } },
      /encryption\.keys\[0\].*decodes to 5 bytes.*32 random bytes/,
    ],
    [{ encryption: { keys: [Buffer.alloc(16)] } }, /encryption\.keys\[0\].*it is 16 bytes/],
    [{ encryption: 'key' as never }, /encryption.*expected \{ keys/],
    [{ hashIds: { secret: 'short' } }, /hashIds\.secret.*at least 32 bytes.*got 5/],
    [{ hashIds: {} as never }, /hashIds.*expected \{ secret \}/],
  ];
  for (const [options, message] of invalid) {
    it(`rejects ${JSON.stringify(options)}`, () => {
      assert.throws(
        () => new SessionManager(options),
        (error: unknown) => error instanceof SessionConfigError && message.test(error.message),
      );
    });
  }
});

describe('SessionManager: values changed after set()', () => {
  it('a stored object later given an unstorable value fails the save with SessionValueError and keeps the old data', async () => {
    const { manager, handler } = harness();
    const profile: Record<string, unknown> = { name: 'ada' };
    const { session } = await visit(manager, request(), (s) => s.set('profile', profile));
    const next = await manager.start(request(session.id));
    const stored = next.get('profile') as Record<string, unknown>;
    stored.size = 10n;
    await assert.rejects(manager.commit(next), SessionValueError);
    assert.equal(handler.count('writeAndUnlock'), 1);
    const after = await visit(manager, request(session.id));
    assert.deepEqual(after.session.get('profile'), { name: 'ada' });
  });
});
