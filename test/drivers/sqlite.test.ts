import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { sqlite } from '../../src/drivers/sqlite.js';
import { SessionConfigError } from '../../src/errors.js';
import { runConformanceSuite } from '../../src/testing/conformance.js';
import { lock, newKey, newToken, put } from '../../src/testing/conformance-store.js';
import { openStore } from '../../src/testing/index.js';

const root = await mkdtemp(join(tmpdir(), 'keepsake-sqlite-'));
after(() => rm(root, { recursive: true, force: true }));

let files = 0;
/** A database file of its own for one test. */
function newPath(): string {
  files += 1;
  return join(root, `sessions-${files}.db`);
}

/** Removes a database file with its WAL and shared-memory files. */
async function removeDatabase(path: string): Promise<void> {
  for (const suffix of ['', '-wal', '-shm']) await rm(`${path}${suffix}`, { force: true });
}

let conformancePath = '';
runConformanceSuite('sqlite (path)', {
  driver: () => {
    conformancePath = newPath();
    return sqlite({ path: conformancePath });
  },
  expiry: 'clock',
  cleanup: () => removeDatabase(conformancePath),
});

describe('sqlite driver with a database the app opened', () => {
  const db = new Database(join(root, 'app.db'));
  db.pragma('journal_mode = WAL');
  after(() => db.close());

  runConformanceSuite('sqlite (app database)', {
    driver: () => sqlite({ database: db, table: 'app_sessions' }),
    expiry: 'clock',
  });

  it('leaves the database open when the store closes', async () => {
    const { store } = await openStore({ driver: () => sqlite({ database: db }), expiry: 'clock' });
    await store.close();
    assert.equal(db.open, true);
    assert.equal(db.prepare('SELECT count(*) AS n FROM ci_sessions').pluck().get(), 0);
  });

  it('warns when the database is not in WAL mode, and leaves its mode alone', async () => {
    const path = newPath();
    const rollback = new Database(path);
    try {
      const { store, warnings } = await openStore({
        driver: () => sqlite({ database: rollback }),
        expiry: 'clock',
      });
      await store.close();
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? '', /delete mode/);
      assert.equal(rollback.pragma('journal_mode', { simple: true }), 'delete');
    } finally {
      rollback.close();
    }
  });
});

describe('sqlite driver', () => {
  /** Opens a store on a new file, with a second connection to look at what it stored. */
  async function open(overrides: Parameters<typeof openStore>[1] = {}) {
    const path = newPath();
    const harness = await openStore({ driver: () => sqlite({ path }), expiry: 'clock' }, overrides);
    const inspector = new Database(path);
    return { ...harness, path, inspector };
  }

  it('creates the session table and its lock table, in WAL mode', async () => {
    const { store, inspector } = await open();
    try {
      assert.equal(inspector.pragma('journal_mode', { simple: true }), 'wal');
      const columns = (table: string) =>
        inspector.prepare('SELECT name, pk FROM pragma_table_info(?) ORDER BY cid').all(table);
      assert.deepEqual(columns('ci_sessions'), [
        { name: 'id', pk: 1 },
        { name: 'ip_address', pk: 2 },
        { name: 'timestamp', pk: 0 },
        { name: 'data', pk: 0 },
      ]);
      assert.deepEqual(columns('ci_sessions_locks'), [
        { name: 'id', pk: 1 },
        { name: 'ip_address', pk: 2 },
        { name: 'lock_token', pk: 0 },
        { name: 'lock_expires', pk: 0 },
      ]);
      const indexes = inspector
        .prepare("SELECT name FROM pragma_index_list('ci_sessions') WHERE origin = 'c'")
        .pluck()
        .all();
      assert.deepEqual(indexes, ['ci_sessions_timestamp']);
    } finally {
      inspector.close();
      await store.close();
    }
  });

  it('a lock is a row of the lock table only, gone when released', async () => {
    const { store, inspector } = await open();
    const rows = (table: string) =>
      inspector.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
    try {
      const key = newKey();
      const { token } = await lock(store, key);
      assert.deepEqual([rows('ci_sessions'), rows('ci_sessions_locks')], [0, 1]);
      await store.unlock(key, token, true);
      assert.deepEqual([rows('ci_sessions'), rows('ci_sessions_locks')], [0, 0]);
      const held = await lock(store, key);
      assert.equal(await store.writeAndUnlock(key, held.token, '{"w":1}', 60), true);
      assert.deepEqual([rows('ci_sessions'), rows('ci_sessions_locks')], [1, 0]);
    } finally {
      inspector.close();
      await store.close();
    }
  });

  it('revoke deletes the session row and the lock row another connection holds; that holder can then store nothing', async () => {
    const harness = await open();
    const { store, inspector, path } = harness;
    const holder = await openStore({ driver: () => sqlite({ path }), expiry: 'clock' });
    const rows = (table: string, id: string) =>
      inspector.prepare(`SELECT count(*) FROM ${table} WHERE id = ?`).pluck().get(id) as number;
    try {
      const key = newKey();
      const other = newKey();
      await put(harness, key, '{"user":"ada"}');
      await put(harness, other, '{"user":"bob"}');
      const { token } = await lock(holder.store, key);
      await store.revoke?.(key);
      assert.deepEqual([rows('ci_sessions', key.id), rows('ci_sessions_locks', key.id)], [0, 0]);
      assert.equal(await holder.store.writeAndUnlock(key, token, '{"user":"back"}', 60), false);
      assert.equal(await holder.store.touchAndUnlock(key, token, 60), 'fenced');
      assert.equal(rows('ci_sessions', key.id), 0);
      assert.equal(await store.peek(other), '{"user":"bob"}', 'another session is untouched');
    } finally {
      inspector.close();
      await holder.store.close();
      await store.close();
    }
  });

  it('a discarding unlock removes an expired session, never a live one', async () => {
    const harness = await open();
    const { store, clock, inspector } = harness;
    try {
      const expired = newKey();
      await put(harness, expired, '{"old":1}');
      clock.advance(harness.context.lifetimeSeconds + 1);
      const held = await lock(store, expired);
      assert.equal(held.payload, null);
      await store.unlock(expired, held.token, true);
      const stored = inspector.prepare('SELECT count(*) FROM ci_sessions WHERE id = ?').pluck();
      assert.equal(stored.get(expired.id), 0);
      // Another program stores a session while the lock is held.
      const live = newKey();
      const { token } = await lock(store, live);
      inspector
        .prepare("INSERT INTO ci_sessions VALUES (?, '0.0.0.0', ?, x'7b7d')")
        .run(live.id, Math.floor(clock.now() / 1000));
      await store.unlock(live, token, true);
      assert.equal(await store.peek(live), '{}');
    } finally {
      inspector.close();
      await store.close();
    }
  });

  it('opens a table it created before, and keeps its sessions', async () => {
    const path = newPath();
    const target = { driver: () => sqlite({ path, table: 'kept' }), expiry: 'clock' } as const;
    const first = await openStore(target);
    const key = newKey();
    await put(first, key, '{"kept":1}');
    await first.store.close();
    const second = await openStore(target);
    assert.equal(await second.store.peek(key), '{"kept":1}');
    await second.store.close();
  });

  it('stores CodeIgniter-like rows: timestamp in epoch seconds, shifted by a lifetime of its own', async () => {
    const harness = await open({ matchIP: true });
    const { store, clock, context, inspector } = harness;
    try {
      const row = (key: { id: string }) =>
        inspector
          .prepare(
            'SELECT ip_address, timestamp, typeof(data) AS type FROM ci_sessions WHERE id = ?',
          )
          .get(key.id);
      const now = Math.floor(clock.now() / 1000);
      const bound = newKey('203.0.113.9');
      await put(harness, bound, '{"a":1}');
      assert.deepEqual(row(bound), { ip_address: '203.0.113.9', timestamp: now, type: 'blob' });
      const longer = newKey('203.0.113.9');
      await put(harness, longer, '{"a":2}', 600);
      assert.deepEqual(row(longer), {
        ip_address: '203.0.113.9',
        timestamp: now + 600 - context.lifetimeSeconds,
        type: 'blob',
      });
    } finally {
      inspector.close();
      await store.close();
    }
  });

  it('reads bytes that are not UTF-8 as unreadable under the lock, and as no session without it', async () => {
    const harness = await open();
    const { store, inspector } = harness;
    try {
      const key = newKey();
      await put(harness, key, '{"user":"ada"}');
      inspector
        .prepare('UPDATE ci_sessions SET data = ? WHERE id = ?')
        .run(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), key.id);
      assert.equal(await store.peek(key), null);
      const token = newToken();
      const attempt = await store.lockAndRead(key, token);
      assert.equal(attempt.locked, true);
      assert.ok(attempt.locked);
      assert.equal(attempt.payload, null);
      assert.match(attempt.unreadable ?? '', /4 bytes that are not UTF-8/);
      assert.equal(await store.destroyAndUnlock(key, token), true);
    } finally {
      inspector.close();
      await store.close();
    }
  });

  it('a session written as TEXT by another program reads back the same', async () => {
    const harness = await open();
    const { store, inspector } = harness;
    try {
      const key = newKey();
      await put(harness, key, '{"a":1}');
      inspector.prepare('UPDATE ci_sessions SET data = \'{"text":"é"}\' WHERE id = ?').run(key.id);
      assert.equal(await store.peek(key), '{"text":"é"}');
    } finally {
      inspector.close();
      await store.close();
    }
  });

  it('while another connection writes, a lock attempt answers "not now" and other calls fail as transient', async () => {
    const harness = await open();
    const { store, inspector } = harness;
    try {
      const key = newKey();
      await put(harness, key, '{"busy":1}');
      const { token } = await lock(store, key);
      inspector.exec('BEGIN IMMEDIATE');
      try {
        assert.deepEqual(await store.lockAndRead(newKey(), newToken()), { locked: false });
        const failure = await store.writeAndUnlock(key, token, '{"busy":2}', 60).then(
          () => undefined,
          (error: unknown) => error,
        );
        assert.ok(failure instanceof Error, 'the write failed');
        assert.equal(store.isTransient?.(failure), true, String(failure));
        assert.equal(store.isTransient?.(new Error('disk I/O error')), false);
      } finally {
        inspector.exec('COMMIT');
      }
      assert.equal(await store.writeAndUnlock(key, token, '{"busy":2}', 60), true);
      assert.equal(await store.peek(key), '{"busy":2}');
    } finally {
      inspector.close();
      await store.close();
    }
  });

  it('gc deletes expired sessions in batches, but not one whose lock is held, and crashed holders’ locks', async () => {
    const harness = await open({ lifetimeSeconds: 60, lockTtlMs: 60_000 });
    const { store, clock, inspector } = harness;
    try {
      const insert = inspector.prepare(
        "INSERT INTO ci_sessions (id, ip_address, timestamp, data) VALUES (?, '0.0.0.0', ?, x'7b7d')",
      );
      const old = Math.floor(clock.now() / 1000) - 3_600;
      inspector.transaction(() => {
        for (let row = 0; row < 1_234; row += 1) insert.run(`expired${row}`, old);
      })();
      inspector
        .prepare("INSERT INTO ci_sessions_locks VALUES ('crashed', '0.0.0.0', 'gone', ?)")
        .run(Date.now() - 1);
      const expired = newKey();
      const locked = newKey();
      await put(harness, expired, '{"expired":1}');
      await put(harness, locked, '{"locked":1}');
      clock.advance(120);
      const held = await lock(store, locked);
      await put(harness, newKey(), '{"fresh":1}');
      assert.equal(await store.gc?.(1_440), 1_235, 'the old rows and the expired session');
      assert.equal(inspector.prepare('SELECT count(*) FROM ci_sessions').pluck().get(), 2);
      assert.deepEqual(inspector.prepare('SELECT id FROM ci_sessions_locks').pluck().all(), [
        locked.id,
      ]);
      assert.equal(await store.writeAndUnlock(locked, held.token, '{"locked":2}', 60), true);
      assert.equal(await store.peek(locked), '{"locked":2}');
    } finally {
      inspector.close();
      await store.close();
    }
  });

  it('closes the file it opened', async () => {
    const { store, path, inspector } = await open();
    inspector.close();
    assert.ok(existsSync(`${path}-wal`));
    await store.close();
    assert.equal(existsSync(`${path}-wal`), false, 'the last connection checkpointed and closed');
  });

  it('refuses a table of another shape when it opens', async () => {
    const path = newPath();
    const other = new Database(path);
    other.exec(
      "CREATE TABLE ci_sessions (id TEXT PRIMARY KEY, ip_address TEXT, timestamp INTEGER, data BLOB DEFAULT x'')",
    );
    other.close();
    await assert.rejects(
      openStore({ driver: () => sqlite({ path }), expiry: 'clock' }),
      (error: unknown) => {
        assert.ok(error instanceof SessionConfigError);
        assert.equal(error.option, 'table');
        assert.match(error.message, /primary key \(id, ip_address\)/);
        return true;
      },
    );
  });

  it('refuses a file it cannot open when it opens', async () => {
    const path = join(root, 'missing-directory', 'sessions.db');
    await assert.rejects(
      openStore({ driver: () => sqlite({ path }), expiry: 'clock' }),
      (error: unknown) => error instanceof SessionConfigError && error.option === 'path',
    );
  });

  it('checks its options when it is created', () => {
    const closed = new Database(':memory:');
    closed.close();
    const readOnlyPath = newPath();
    new Database(readOnlyPath).close();
    const readOnly = new Database(readOnlyPath, { readonly: true });
    const cases: [string, () => unknown][] = [
      ['path', () => sqlite({})],
      ['path', () => sqlite({ path: newPath(), database: readOnly })],
      ['path', () => sqlite({ path: '' })],
      ['database', () => sqlite({ database: {} as Database.Database })],
      ['database', () => sqlite({ database: closed })],
      ['database', () => sqlite({ database: readOnly })],
      ['table', () => sqlite({ path: newPath(), table: 'sessions; DROP TABLE users' })],
      ['table', () => sqlite({ path: newPath(), table: '' })],
    ];
    try {
      for (const [option, create] of cases) {
        assert.throws(create, (error: unknown) => {
          assert.ok(error instanceof SessionConfigError, String(error));
          assert.equal(error.option, option);
          return true;
        });
      }
    } finally {
      readOnly.close();
    }
  });
});
