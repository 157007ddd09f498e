import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { FakeClock } from '../clock.js';
import { SessionLockTimeoutError } from '../errors.js';
import type { HandlerSettings, SessionHandler, SessionKey } from '../handlers/contract.js';
import { createSessionId } from '../id.js';
import type { SessionLogger } from '../log.js';

/** What the conformance suite needs to know about the handler under test. */
export interface ConformanceTarget {
  /** A new, unopened handler; called once per test. */
  createHandler(): SessionHandler | Promise<SessionHandler>;
  savePath?: string;
  /** A connection (client, pool or URL) for the handler; a function is called once per test. */
  connection?: unknown;
  /**
   * 'settings': expiry follows `settings.clock` (array, file, database), tested with a fake clock.
   * 'store': the store expires entries by its own real-time TTL (redis, memcached), tested by waiting.
   */
  expiry: 'settings' | 'store';
  /** Runs after each test (e.g. to remove files or rows the test made). */
  cleanup?(): Promise<void>;
}

export interface ConformanceHarness {
  handler: SessionHandler;
  clock: FakeClock;
  settings: HandlerSettings;
  warnings: string[];
}

const silentLogger = (warnings: string[]): SessionLogger => ({
  debug: () => {},
  warn: (message) => warnings.push(message),
  error: (message) => warnings.push(message),
});

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens a fresh handler of `target` with test-friendly settings. */
export async function openHarness(
  target: ConformanceTarget,
  overrides: Partial<HandlerSettings> = {},
): Promise<ConformanceHarness> {
  const handler = await target.createHandler();
  const clock = new FakeClock(Date.now());
  const warnings: string[] = [];
  const connection =
    typeof target.connection === 'function'
      ? (target.connection as () => unknown)()
      : target.connection;
  const settings: HandlerSettings = {
    savePath: target.savePath ?? '',
    cookieName: 'ci_session',
    matchIP: false,
    lifetimeSeconds: 60,
    lockWaitMs: 2_000,
    lockTtlMs: 1_000,
    ioTimeoutMs: 2_000,
    connection,
    clock: target.expiry === 'settings' ? clock.now : () => Date.now(),
    logger: silentLogger(warnings),
    ...overrides,
  };
  await handler.open(settings);
  return { handler, clock, settings, warnings };
}

function newKey(ip: string | null = null): SessionKey {
  return { id: createSessionId(), ip };
}

/** Settles to 'pending' if the promise has not settled within `ms`. */
async function stateAfter(
  promise: Promise<unknown>,
  ms: number,
): Promise<'resolved' | 'rejected' | 'pending'> {
  return Promise.race([
    promise.then(
      () => 'resolved' as const,
      () => 'rejected' as const,
    ),
    delay(ms).then(() => 'pending' as const),
  ]);
}

/**
 * The handler contract's test suite, run against every built-in driver. Call it from a node:test
 * file to check your own driver: `runConformanceSuite('my driver', { createHandler: () => new MyHandler(), expiry: 'settings' })`.
 */
export function runConformanceSuite(name: string, target: ConformanceTarget): void {
  describe(`${name}: handler conformance`, () => {
    const opened: SessionHandler[] = [];
    const open = async (overrides: Partial<HandlerSettings> = {}) => {
      const harness = await openHarness(target, overrides);
      opened.push(harness.handler);
      return harness;
    };

    afterEach(async () => {
      for (const handler of opened.splice(0)) await handler.shutdown();
      await target.cleanup?.();
    });

    it('reads an unknown session as null and leaves nothing behind after close', async () => {
      const { handler } = await open();
      const key = newKey();
      const { data, lock } = await handler.read(key, 1_000);
      assert.equal(data, null);
      await handler.close(key, lock);
      assert.equal(await handler.validateId(key), false);
      assert.equal(await handler.peek(key), null);
    });

    it('stores a payload byte for byte (unicode, quotes, control characters, 256 KiB)', async () => {
      const { handler } = await open();
      const payloads = [
        '{"a":1}',
        '{"text":"héllo wörld ✓ 日本語 🎉","quote":"\\"\'\\\\","nul":"\\u0000\\n\\t"}',
        `{"big":"${'x'.repeat(256 * 1024)}"}`,
      ];
      for (const payload of payloads) {
        const key = newKey();
        const first = await handler.read(key, 1_000);
        await handler.write(key, first.lock, payload);
        const second = await handler.read(key, 1_000);
        assert.equal(second.data, payload);
        await handler.close(key, second.lock);
        assert.equal(await handler.peek(key), payload);
      }
    });

    it('overwrites a payload on the next write', async () => {
      const { handler } = await open();
      const key = newKey();
      let locked = await handler.read(key, 1_000);
      await handler.write(key, locked.lock, '{"n":1}');
      locked = await handler.read(key, 1_000);
      await handler.write(key, locked.lock, '{"n":2}');
      locked = await handler.read(key, 1_000);
      assert.equal(locked.data, '{"n":2}');
      await handler.close(key, locked.lock);
    });

    it('validateId tells stored sessions from unknown ones', async () => {
      const { handler } = await open();
      const key = newKey();
      assert.equal(await handler.validateId(key), false);
      const { lock } = await handler.read(key, 1_000);
      await handler.write(key, lock, '{"a":1}');
      assert.equal(await handler.validateId(key), true);
      assert.equal(await handler.validateId(newKey()), false);
    });

    it('excludes a second reader of the same session until the holder releases', async () => {
      const { handler } = await open();
      const key = newKey();
      const first = await handler.read(key, 1_000);
      const second = handler.read(key, 3_000);
      assert.equal(await stateAfter(second, 150), 'pending');
      await handler.write(key, first.lock, '{"by":"first"}');
      const granted = await second;
      assert.equal(granted.data, '{"by":"first"}');
      await handler.close(key, granted.lock);
    });

    it('does not make readers of other sessions wait', async () => {
      const { handler } = await open();
      const busy = newKey();
      const held = await handler.read(busy, 1_000);
      const other = newKey();
      const otherRead = handler.read(other, 1_000);
      assert.equal(await stateAfter(otherRead, 500), 'resolved');
      await handler.close(other, (await otherRead).lock);
      await handler.close(busy, held.lock);
    });

    for (const [ending, finish] of [
      ['close', (h: SessionHandler, k: SessionKey, l: { token: string }) => h.close(k, l)],
      [
        'write',
        (h: SessionHandler, k: SessionKey, l: { token: string }) => h.write(k, l, '{"w":1}'),
      ],
      [
        'updateTimestamp',
        (h: SessionHandler, k: SessionKey, l: { token: string }) =>
          h.updateTimestamp(k, l, '{"t":1}'),
      ],
      ['destroy', (h: SessionHandler, k: SessionKey, l: { token: string }) => h.destroy(k, l)],
    ] as const) {
      it(`releases the lock on ${ending}`, async () => {
        const { handler } = await open();
        const key = newKey();
        const { lock } = await handler.read(key, 1_000);
        await finish(handler, key, lock);
        const again = handler.read(key, 1_000);
        assert.equal(await stateAfter(again, 800), 'resolved');
        await handler.close(key, (await again).lock);
      });
    }

    it('gives up with SessionLockTimeoutError after waitMs', async () => {
      const { handler } = await open();
      const key = newKey();
      const held = await handler.read(key, 1_000);
      const started = Date.now();
      await assert.rejects(handler.read(key, 300), SessionLockTimeoutError);
      const waited = Date.now() - started;
      assert.ok(waited >= 250 && waited < 2_500, `waited ${waited} ms for a 300 ms bound`);
      await handler.close(key, held.lock);
    });

    it('keeps a held lock beyond the store lock TTL (renewed while held)', async () => {
      const { handler } = await open({ lockTtlMs: 300 });
      const key = newKey();
      const held = await handler.read(key, 1_000);
      await delay(900);
      await assert.rejects(handler.read(key, 200), SessionLockTimeoutError);
      await handler.write(key, held.lock, '{"kept":true}');
      const after = await handler.read(key, 1_000);
      assert.equal(after.data, '{"kept":true}');
      await handler.close(key, after.lock);
    });

    it('peek reads without waiting for the lock', async () => {
      const { handler } = await open();
      const key = newKey();
      const first = await handler.read(key, 1_000);
      await handler.write(key, first.lock, '{"p":1}');
      const held = await handler.read(key, 1_000);
      assert.equal(await stateAfter(handler.peek(key), 500), 'resolved');
      assert.equal(await handler.peek(key), '{"p":1}');
      await handler.close(key, held.lock);
    });

    it('destroy deletes with or without the lock', async () => {
      const { handler } = await open();
      const key = newKey();
      let locked = await handler.read(key, 1_000);
      await handler.write(key, locked.lock, '{"d":1}');
      locked = await handler.read(key, 1_000);
      await handler.destroy(key, locked.lock);
      assert.equal(await handler.validateId(key), false);
      const other = newKey();
      locked = await handler.read(other, 1_000);
      await handler.write(other, locked.lock, '{"d":2}');
      await handler.destroy(other, null);
      assert.equal(await handler.peek(other), null);
    });

    it('updateTimestamp keeps the payload and writes it when the record is gone', async () => {
      const { handler } = await open();
      const key = newKey();
      let locked = await handler.read(key, 1_000);
      await handler.write(key, locked.lock, '{"u":1}');
      locked = await handler.read(key, 1_000);
      await handler.updateTimestamp(key, locked.lock, '{"u":1}');
      assert.equal(await handler.peek(key), '{"u":1}');
      const gone = newKey();
      locked = await handler.read(gone, 1_000);
      await handler.updateTimestamp(gone, locked.lock, '{"u":2}');
      assert.equal(await handler.peek(gone), '{"u":2}');
    });

    it('keeps sessions of different IPs apart under matchIP', async () => {
      const { handler } = await open({ matchIP: true });
      const id = createSessionId();
      const v4 = { id, ip: '127.0.0.1' };
      const v6 = { id, ip: '::1' };
      let locked = await handler.read(v4, 1_000);
      await handler.write(v4, locked.lock, '{"ip":"v4"}');
      assert.equal(await handler.validateId(v6), false);
      locked = await handler.read(v6, 1_000);
      assert.equal(locked.data, null);
      await handler.write(v6, locked.lock, '{"ip":"v6"}');
      assert.equal(await handler.peek(v4), '{"ip":"v4"}');
      assert.equal(await handler.peek(v6), '{"ip":"v6"}');
      await handler.destroy(v6, null);
      assert.equal(await handler.peek(v4), '{"ip":"v4"}');
    });

    if (target.expiry === 'settings') {
      it('expires a session lifetimeSeconds after its last write or touch', async () => {
        const { handler, clock } = await open({ lifetimeSeconds: 60 });
        const key = newKey();
        let locked = await handler.read(key, 1_000);
        await handler.write(key, locked.lock, '{"e":1}');
        clock.advance(50);
        locked = await handler.read(key, 1_000);
        await handler.updateTimestamp(key, locked.lock, '{"e":1}');
        clock.advance(50);
        assert.equal(await handler.validateId(key), true, 'a touch restarts the lifetime');
        clock.advance(11);
        assert.equal(await handler.validateId(key), false);
        locked = await handler.read(key, 1_000);
        assert.equal(locked.data, null);
        await handler.close(key, locked.lock);
      });

      it('gc deletes idle sessions and keeps live ones', async () => {
        const { handler, clock } = await open({ lifetimeSeconds: 600 });
        const idle = newKey();
        const live = newKey();
        let locked = await handler.read(idle, 1_000);
        await handler.write(idle, locked.lock, '{"idle":1}');
        clock.advance(100);
        locked = await handler.read(live, 1_000);
        await handler.write(live, locked.lock, '{"live":1}');
        clock.advance(30);
        const removed = await handler.gc(120);
        assert.ok(removed >= 1, `gc reported ${removed} removals`);
        assert.equal(await handler.peek(idle), null);
        assert.equal(await handler.peek(live), '{"live":1}');
      });
    } else {
      it('expires a session by the store TTL', async () => {
        const { handler } = await open({ lifetimeSeconds: 1 });
        const key = newKey();
        const locked = await handler.read(key, 1_000);
        await handler.write(key, locked.lock, '{"e":1}');
        assert.equal(await handler.validateId(key), true);
        await delay(2_200);
        assert.equal(await handler.validateId(key), false);
        assert.equal(await handler.peek(key), null);
      });

      it('gc answers 0 because the store expires sessions itself', async () => {
        const { handler } = await open();
        assert.equal(await handler.gc(1), 0);
      });
    }
  });
}
