import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmod,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { FakeClock } from '../../src/clock.js';
import type { DriverContext, SessionKey } from '../../src/drivers/contract.js';
import { sessionFilePath } from '../../src/drivers/file/names.js';
import { defaultSavePath, file } from '../../src/drivers/file.js';
import {
  SessionConfigError,
  SessionLockLostError,
  SessionLockTimeoutError,
  SessionStoreError,
} from '../../src/errors.js';
import { createSessionId } from '../../src/id.js';
import { SessionManager } from '../../src/manager.js';
import {
  type ConformanceTarget,
  openStore,
  runConformanceSuite,
  type StoreHarness,
} from '../../src/testing/conformance.js';
import {
  delay,
  isUnlocked,
  lock,
  newKey,
  newToken,
  protocolFor,
  put,
} from '../../src/testing/conformance-store.js';
import { requestFor } from '../../src/testing/request-for.js';

const root = await mkdtemp(join(tmpdir(), 'keepsake-file-test-'));
after(() => rm(root, { recursive: true, force: true }));

let directoryCounter = 0;
/** A fresh, not yet existing directory under this file's temp root. */
function freshDirectory(label: string): string {
  directoryCounter += 1;
  return join(root, `${label}-${directoryCounter}`);
}

const MECHANISMS = ['flock', 'mkdir'] as const;
type Mechanism = (typeof MECHANISMS)[number];

for (const mechanism of MECHANISMS) {
  const directory = join(root, `conformance-${mechanism}`);
  runConformanceSuite(`file (${mechanism})`, {
    driver: () => file({ directory, lock: mechanism }),
    expiry: 'clock',
    cleanup: () => rm(directory, { recursive: true, force: true }),
  });
}

function target(mechanism: Mechanism | 'auto', directory: string): ConformanceTarget {
  return { driver: () => file({ directory, lock: mechanism }), expiry: 'clock' };
}

/** Opens a store on `directory` and closes it (releasing its locks) after `body`, whatever happened. */
async function withStore(
  mechanism: Mechanism | 'auto',
  directory: string,
  overrides: Partial<DriverContext>,
  body: (harness: StoreHarness) => Promise<void>,
): Promise<void> {
  const harness = await openStore(target(mechanism, directory), overrides);
  try {
    await body(harness);
  } finally {
    await harness.store.close();
  }
}

function pathOf(directory: string, key: SessionKey): string {
  return sessionFilePath(directory, 'ci_session', key);
}

/** Sets a file's or directory's times `ms` into the past (a crashed or stalled holder, an old file). */
async function backdate(path: string, ms: number): Promise<void> {
  const past = new Date(Date.now() - ms);
  await utimes(path, past, past);
}

const request = (id?: string) => requestFor(id);

describe('file driver: options and the directory', () => {
  it('locks with flock when the fs-ext addon is installed (also by default), and with mkdir when asked to', async () => {
    for (const mechanism of ['flock', 'auto', 'mkdir'] as const) {
      const directory = freshDirectory(`kind-${mechanism}`);
      await withStore(mechanism, directory, {}, async ({ store }) => {
        const key = newKey();
        const held = await lock(store, key);
        const name = `ci_session${key.id}`;
        if (mechanism === 'mkdir') {
          // A lock directory beside the (absent) file, renewed through the core.
          assert.deepEqual(await readdir(directory), [`${name}.lock`]);
          assert.equal(typeof store.renewLock, 'function');
        } else {
          // flock on the file itself, created empty as a placeholder; a flock never expires.
          assert.deepEqual(await readdir(directory), [name]);
          assert.equal(store.renewLock, undefined);
        }
        await store.unlock(key, held.token, true);
        assert.deepEqual(await readdir(directory), []);
      });
    }
  });

  it('chooses the lock by the lock option only: KEEPSAKE_FILE_LOCK is not read any more', async () => {
    const previous = process.env.KEEPSAKE_FILE_LOCK;
    try {
      for (const value of ['mkdir', 'not-a-mechanism']) {
        process.env.KEEPSAKE_FILE_LOCK = value;
        const directory = freshDirectory('environment');
        await withStore('auto', directory, {}, async ({ store }) => {
          const key = newKey();
          const held = await lock(store, key);
          assert.deepEqual(await readdir(directory), [`ci_session${key.id}`], 'flock, not mkdir');
          await store.unlock(key, held.token, true);
        });
      }
    } finally {
      if (previous === undefined) delete process.env.KEEPSAKE_FILE_LOCK;
      else process.env.KEEPSAKE_FILE_LOCK = previous;
    }
  });

  it("without fs-ext: lock 'flock' fails when the driver opens, 'auto' falls back to mkdir with one warning", () => {
    const script = fileURLToPath(new URL('./file/without-fs-ext.ts', import.meta.url));
    const run = (choice: string) => {
      const directory = freshDirectory(`no-addon-${choice}`);
      const child = spawnSync(process.execPath, ['--import', 'tsx', script, directory, choice], {
        cwd: process.cwd(),
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(child.status, 0, child.stderr);
      return JSON.parse(child.stdout) as {
        error?: string;
        warnings?: string[];
        entries?: string[];
        renews?: boolean;
      };
    };
    const forced = run('flock');
    assert.match(forced.error ?? '', /^SessionConfigError: .*invalid option "lock".*"fs-ext"/);
    const fallback = run('auto');
    assert.equal(fallback.error, undefined);
    assert.equal(fallback.warnings?.length, 1, JSON.stringify(fallback.warnings));
    assert.match(fallback.warnings?.[0] ?? '', /"fs-ext" addon is not available.*locks with mkdir/);
    assert.equal(fallback.entries?.length, 1);
    assert.match(fallback.entries?.[0] ?? '', /^ci_session[0-9a-f]{32}\.lock$/);
    assert.equal(fallback.renews, true);
  });

  it('creates the directory 0700 (with parents) and session files 0600, named cookieName[md5(ip)]id', async () => {
    const directory = join(freshDirectory('perm'), 'nested', 'sessions');
    await withStore(
      'flock',
      `${directory}/`,
      { cookieName: 'app_sess', matchIP: true },
      async (harness) => {
        assert.equal((await stat(directory)).mode & 0o777, 0o700);
        const key = { id: createSessionId(), ip: '203.0.113.9' };
        await put(harness, key, '{"a":1}');
        const expectedName = `app_sess${createHash('md5').update('203.0.113.9').digest('hex')}${key.id}`;
        assert.deepEqual(await readdir(directory), [expectedName]);
        assert.equal((await stat(join(directory, expectedName))).mode & 0o777, 0o600);
        assert.equal(await readFile(join(directory, expectedName), 'utf8'), '{"a":1}');
      },
    );
  });

  it('defaults to keepsake-sessions under the OS temp directory', async () => {
    assert.equal(defaultSavePath(), join(tmpdir(), 'keepsake-sessions'));
    const harness = await openStore({ driver: () => file(), expiry: 'clock' });
    const key = newKey();
    try {
      await put(harness, key, '{"default":1}');
      assert.equal((await stat(defaultSavePath())).isDirectory(), true);
      assert.equal(
        await readFile(join(defaultSavePath(), `ci_session${key.id}`), 'utf8'),
        '{"default":1}',
      );
    } finally {
      const held = await lock(harness.store, key);
      await harness.store.destroyAndUnlock(key, held.token);
      await harness.store.close();
    }
  });

  it("fails when the driver opens a path that cannot be a directory, with CodeIgniter's message", async () => {
    const plain = join(freshDirectory('plain'), 'a-file');
    await mkdir(join(plain, '..'), { recursive: true });
    await writeFile(plain, 'not a directory');
    const expectNotADirectory = (error: unknown) => {
      assert.ok(error instanceof SessionConfigError);
      assert.equal(error.option, 'directory');
      assert.match(
        error.message,
        /Configured save path ".*" is not a directory, does not exist or cannot be created\./,
      );
      return true;
    };
    for (const directory of [plain, join(plain, 'below')]) {
      const manager = new SessionManager({ driver: 'file', savePath: directory });
      await assert.rejects(manager.ready(), expectNotADirectory);
      await assert.rejects(
        openStore({ driver: () => file({ directory }), expiry: 'clock' }),
        expectNotADirectory,
      );
    }
  });

  it('rejects a relative directory when the driver is created, before any I/O', () => {
    const expectAbsolute = (error: unknown) => {
      assert.ok(error instanceof SessionConfigError);
      assert.equal(error.option, 'directory');
      assert.match(error.message, /needs an absolute directory/);
      return true;
    };
    assert.throws(() => file({ directory: 'sessions' }), expectAbsolute);
    assert.throws(() => file({ directory: '' }), expectAbsolute);
    assert.throws(
      () => new SessionManager({ driver: 'file', savePath: 'sessions' }),
      expectAbsolute,
    );
  });

  it('rejects an unknown lock mechanism when the driver is created', () => {
    assert.throws(
      () => file({ lock: 'fcntl' as 'flock' }),
      (error: unknown) =>
        error instanceof SessionConfigError &&
        error.option === 'lock' &&
        /'flock', 'mkdir' or 'auto'/.test(error.message),
    );
  });

  it("fails with CodeIgniter's message when the directory is not writable", async () => {
    const directory = freshDirectory('readonly');
    await mkdir(directory, { mode: 0o700 });
    const uid = process.getuid?.();
    if (uid === 0) {
      // root may write anywhere, so the check runs as an unprivileged user on a root-owned 0700
      // directory (the temp root made traversable, not listable, so the user can reach it).
      await chmod(root, 0o711);
      const script = fileURLToPath(new URL('./file/open-save-path.ts', import.meta.url));
      const child = spawnSync(process.execPath, ['--import', 'tsx', script, directory], {
        uid: 65534,
        gid: 65534,
        cwd: process.cwd(),
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.match(
        child.stdout,
        /Configured save path ".*" is not writable by the Node process\./,
        child.stderr,
      );
    } else {
      await chmod(directory, 0o500);
      const manager = new SessionManager({ driver: 'file', savePath: directory });
      await assert.rejects(manager.ready(), /is not writable by the Node process\./);
      await chmod(directory, 0o700);
    }
  });

  it('warns when other users can read the directory', async () => {
    const directory = freshDirectory('open');
    await mkdir(directory, { mode: 0o755 });
    await chmod(directory, 0o755);
    await withStore('flock', directory, {}, async ({ warnings }) => {
      assert.ok(
        warnings.some((line) => line.includes('chmod 0700')),
        warnings.join('\n'),
      );
    });
  });
});

describe('file driver: files and locks', () => {
  for (const mechanism of MECHANISMS) {
    it(`${mechanism}: a waiter on a session destroyed by the holder gets an empty session`, async () => {
      const directory = freshDirectory(`destroyed-${mechanism}`);
      await withStore(mechanism, directory, {}, async (first) => {
        await withStore(mechanism, directory, {}, async (second) => {
          const key = newKey();
          await put(first, key, '{"v":1}');
          const held = await lock(first.store, key);
          const waiter = protocolFor(second);
          const waiting = waiter.acquire(key, 3_000);
          await delay(50);
          assert.equal(await first.store.destroyAndUnlock(key, held.token), true);
          const granted = await waiting;
          assert.equal(granted.payload, null);
          await waiter.release(granted.lock);
          assert.deepEqual(
            await readdir(directory),
            [],
            'nothing is left for a session never written',
          );
        });
      });
    });
  }

  it('touchAndUnlock only touches an unchanged file (same inode, new mtime)', async () => {
    const directory = freshDirectory('touch');
    await withStore('flock', directory, {}, async (harness) => {
      const { store, clock } = harness;
      const key = newKey();
      await put(harness, key, '{"t":1}');
      const path = pathOf(directory, key);
      const before = await stat(path);
      clock.advance(30);
      const held = await lock(store, key);
      assert.equal(await store.touchAndUnlock(key, held.token, 60), 'touched');
      const after = await stat(path);
      assert.equal(after.ino, before.ino);
      assert.equal(Math.round(after.mtimeMs - before.mtimeMs), 30_000);
      assert.equal(await readFile(path, 'utf8'), '{"t":1}');
    });
  });

  for (const mechanism of MECHANISMS) {
    it(`${mechanism}: a write replaces the file by rename (a new inode) and leaves no temporary file`, async () => {
      const directory = freshDirectory(`rename-${mechanism}`);
      await withStore(mechanism, directory, {}, async (harness) => {
        const key = newKey();
        await put(harness, key, '{"w":1}');
        const path = pathOf(directory, key);
        const first = await stat(path);
        await put(harness, key, '{"w":2}');
        const second = await stat(path);
        assert.notEqual(second.ino, first.ino, 'the old file was replaced, not rewritten');
        assert.equal(second.mode & 0o777, 0o600);
        assert.deepEqual(await readdir(directory), [`ci_session${key.id}`]);
        assert.equal(await readFile(path, 'utf8'), '{"w":2}');
      });
    });

    it(`${mechanism}: an empty file is a lock placeholder, and a discarding unlock removes it, or an expired file, but never a live session`, async () => {
      const directory = freshDirectory(`placeholder-${mechanism}`);
      await withStore(mechanism, directory, { lifetimeSeconds: 60 }, async (harness) => {
        const { store, clock } = harness;
        const placeholder = newKey();
        await writeFile(pathOf(directory, placeholder), '', { mode: 0o600 });
        assert.equal(await store.peek(placeholder), null);
        let held = await lock(store, placeholder);
        assert.equal(held.payload, null, 'an empty file reads as no session');
        await store.unlock(placeholder, held.token, true);
        await assert.rejects(stat(pathOf(directory, placeholder)), { code: 'ENOENT' });

        const live = newKey();
        await put(harness, live, '{"live":1}');
        held = await lock(store, live);
        await store.unlock(live, held.token, true);
        assert.equal(await store.peek(live), '{"live":1}', 'a live session survives a discard');

        const expired = newKey();
        await put(harness, expired, '{"expired":1}');
        clock.advance(61);
        held = await lock(store, expired);
        assert.equal(held.payload, null);
        await store.unlock(expired, held.token, true);
        await assert.rejects(stat(pathOf(directory, expired)), { code: 'ENOENT' });
        assert.equal(await isUnlocked(store, expired), true);
      });
    });
  }

  it('a per-call lifetime shifts the mtime by its difference from the context lifetime', async () => {
    const directory = freshDirectory('lifetime');
    await withStore('flock', directory, { lifetimeSeconds: 60 }, async (harness) => {
      const { store, clock } = harness;
      const mtimeOf = async (key: SessionKey) =>
        Math.round((await stat(pathOf(directory, key))).mtimeMs);
      const short = newKey();
      const long = newKey();
      const usual = newKey();
      await put(harness, short, '{"short":1}', 10);
      await put(harness, long, '{"long":1}', 600);
      await put(harness, usual, '{"usual":1}', 60);
      const now = clock.now();
      assert.equal(await mtimeOf(short), now - 50_000, '10 s: 50 s in the past');
      assert.equal(await mtimeOf(long), now + 540_000, '600 s: 540 s in the future');
      assert.equal(await mtimeOf(usual), now);
      const held = await lock(store, usual);
      assert.equal(await store.touchAndUnlock(usual, held.token, 3_600), 'touched');
      assert.equal(await mtimeOf(usual), now + 3_540_000);
      clock.advance(11);
      assert.equal(await store.peek(short), null);
      assert.equal(await store.gc?.(60), 1, 'GC removes the short-lived file only');
      assert.equal(await store.peek(long), '{"long":1}');
      clock.advance(600);
      assert.equal(await store.peek(long), null);
      assert.equal(await store.peek(usual), '{"usual":1}');
    });
  });

  it('a file whose bytes are not UTF-8 is unreadable, not decoded with replacement characters', async () => {
    const directory = freshDirectory('utf8');
    await withStore('flock', directory, {}, async ({ store }) => {
      const key = newKey();
      const path = pathOf(directory, key);
      await writeFile(path, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { mode: 0o600 });
      assert.equal(await store.peek(key), null);
      const token = newToken();
      assert.deepEqual(await store.lockAndRead(key, token), {
        locked: true,
        payload: null,
        unreadable: 'the session file is not valid UTF-8',
      });
      assert.equal(await store.destroyAndUnlock(key, token), true);
      assert.deepEqual(await readdir(directory), []);
    });
  });

  it('mkdir: takes over a lock whose holder stopped renewing it, and warns', async () => {
    const directory = freshDirectory('stale');
    await withStore('mkdir', directory, { lockTtlMs: 500 }, async (harness) => {
      const { store, warnings } = harness;
      const key = newKey();
      const lockPath = `${pathOf(directory, key)}.lock`;
      await mkdir(lockPath);
      await assert.rejects(protocolFor(harness).acquire(key, 200), SessionLockTimeoutError);
      await backdate(lockPath, 5_000);
      const { token, payload } = await lock(store, key);
      assert.equal(payload, null);
      assert.ok(
        warnings.some((line) => line.includes('took over the session lock')),
        warnings.join('\n'),
      );
      await store.unlock(key, token, true);
      assert.deepEqual(await readdir(directory), []);
    });
  });
});

describe('file driver: a mkdir lock that was taken over is fenced', () => {
  /** Two stores on one directory: two processes, as far as their locks go. */
  async function twoStores(
    body: (a: StoreHarness, b: StoreHarness, directory: string) => Promise<void>,
  ): Promise<void> {
    const directory = freshDirectory('fenced');
    // A long lockTtl: only the backdated lock directory expires, never the core's lease.
    await withStore('mkdir', directory, { lockTtlMs: 10_000 }, (a) =>
      withStore('mkdir', directory, { lockTtlMs: 10_000 }, (b) => body(a, b, directory)),
    );
  }

  it('a stalled holder cannot revive a session that the request which took its lock destroyed', () =>
    twoStores(async (a, b, directory) => {
      const key = newKey();
      const path = pathOf(directory, key);
      await put(a, key, '{"user":"ada"}');
      for (const ending of ['write', 'touch', 'destroy', 'unlock'] as const) {
        const stalled = await lock(a.store, key);
        // Request A stalls for longer than lockTtl: its lock directory is not renewed.
        await backdate(`${path}.lock`, 60_000);
        const other = await lock(b.store, key);
        assert.equal(other.payload, '{"user":"ada"}', 'the lock expired, so B took it');
        // Request B logs out.
        assert.equal(await b.store.destroyAndUnlock(key, other.token), true);
        // Request A resumes.
        if (ending === 'write') {
          assert.equal(
            await a.store.writeAndUnlock(key, stalled.token, '{"user":"ada"}', 60),
            false,
          );
        } else if (ending === 'touch') {
          assert.equal(await a.store.touchAndUnlock(key, stalled.token, 60), 'fenced');
        } else if (ending === 'destroy') {
          assert.equal(await a.store.destroyAndUnlock(key, stalled.token), false);
        } else {
          await a.store.unlock(key, stalled.token, true);
        }
        await assert.rejects(
          stat(path),
          { code: 'ENOENT' },
          `a late ${ending} re-created the file`,
        );
        assert.equal(await a.store.peek(key), null);
        assert.equal(await isUnlocked(a.store, key), true);
        await put(a, key, '{"user":"ada"}');
      }
    }));

  it('the same through the core: the stalled request fails with SessionLockLostError', () =>
    twoStores(async (a, b, directory) => {
      const key = newKey();
      const path = pathOf(directory, key);
      await put(a, key, '{"user":"ada"}');
      const protocol = protocolFor(a);
      const stalled = await protocol.acquire(key, 1_000);
      clearTimeout(stalled.lock.renewal);
      await backdate(`${path}.lock`, 60_000);
      const other = await lock(b.store, key);
      assert.equal(await b.store.destroyAndUnlock(key, other.token), true);
      await assert.rejects(
        protocol.write(stalled.lock, '{"user":"ada","cart":[1]}', 60),
        SessionLockLostError,
      );
      await assert.rejects(stat(path), { code: 'ENOENT' });
    }));

  it("a holder whose lock was taken over leaves the new holder's lock and data alone", () =>
    twoStores(async (a, b, directory) => {
      const key = newKey();
      const path = pathOf(directory, key);
      await put(a, key, '{"owner":"a"}');
      const stalled = await lock(a.store, key);
      await backdate(`${path}.lock`, 60_000);
      const owner = await lock(b.store, key);
      assert.equal(
        await a.store.writeAndUnlock(key, stalled.token, '{"owner":"stale"}', 60),
        false,
      );
      assert.equal(await a.store.touchAndUnlock(key, stalled.token, 60), 'fenced');
      assert.equal(await a.store.destroyAndUnlock(key, stalled.token), false);
      await a.store.unlock(key, stalled.token, true);
      assert.equal(await a.store.renewLock?.(key, stalled.token), false);
      assert.equal(await a.store.peek(key), '{"owner":"a"}');
      assert.deepEqual(
        await a.store.lockAndRead(key, newToken()),
        { locked: false },
        'B still holds it',
      );
      assert.equal(await b.store.writeAndUnlock(key, owner.token, '{"owner":"b"}', 60), true);
      assert.equal(await a.store.peek(key), '{"owner":"b"}');
    }));

  it('renewLock keeps a lock from expiring, and answers false once it was taken over', () =>
    twoStores(async (a, b, directory) => {
      const key = newKey();
      const lockPath = `${pathOf(directory, key)}.lock`;
      const held = await lock(a.store, key);
      assert.equal(await a.store.renewLock?.(key, newToken()), false, 'not for a stranger');
      await backdate(lockPath, 60_000);
      assert.equal(await a.store.renewLock?.(key, held.token), true);
      assert.deepEqual(await b.store.lockAndRead(key, newToken()), { locked: false });
      await backdate(lockPath, 60_000);
      const other = await lock(b.store, key);
      assert.equal(await a.store.renewLock?.(key, held.token), false);
      await b.store.unlock(key, other.token, true);
    }));
});

describe('file driver: GC', () => {
  for (const mechanism of MECHANISMS) {
    it(`${mechanism}: skips an expired session whose lock is held, and removes it once released`, async () => {
      const directory = freshDirectory(`gc-held-${mechanism}`);
      await withStore(mechanism, directory, { lifetimeSeconds: 600 }, async (harness) => {
        const { store, clock } = harness;
        const key = newKey();
        await put(harness, key, '{"g":1}');
        const held = await lock(store, key);
        clock.advance(700);
        assert.equal(await store.gc?.(600), 0);
        await store.unlock(key, held.token, false);
        assert.equal(await store.gc?.(600), 1);
        assert.deepEqual(await readdir(directory), []);
      });
    });
  }

  it('removes leftovers of crashed processes and never touches other files', async () => {
    const directory = freshDirectory('gc-leftovers');
    await withStore('mkdir', directory, { lockTtlMs: 500 }, async ({ store }) => {
      const id = createSessionId();
      const names = {
        temporary: `ci_session${id}.0123456789abcdef.tmp`,
        freshTemporary: `ci_session${createSessionId()}.0123456789abcdef.tmp`,
        staleLock: `ci_session${createSessionId()}.lock`,
        otherCookie: `other_cookie${createSessionId()}`,
        unrelated: 'notes.txt',
        withIp: `ci_session${createSessionId()}${id}`,
      };
      for (const [label, name] of Object.entries(names)) {
        const path = join(directory, name);
        if (label === 'staleLock') await mkdir(path);
        else await writeFile(path, '{"x":1}');
        if (label !== 'freshTemporary') await backdate(path, 3_600_000);
      }
      const removed = await store.gc?.(60);
      assert.equal(removed, 1, 'only the expired session file counts');
      assert.deepEqual(
        (await readdir(directory)).sort(),
        [names.freshTemporary, names.otherCookie, names.unrelated].sort(),
      );
    });
  });
});

describe('file driver: a hung file system', () => {
  it('a file operation that hangs fails within ioTimeout as a SessionStoreError', async () => {
    const directory = freshDirectory('hung');
    const manager = new SessionManager({
      driver: file({ directory }),
      ioTimeout: 300,
      gcProbability: 0,
    });
    await manager.ready();
    const id = createSessionId();
    const path = pathOf(directory, { id, ip: null });
    // Opening a FIFO for reading blocks until a writer appears: a real hung open(), no mock.
    const made = spawnSync('mkfifo', [path]);
    assert.equal(made.status, 0, String(made.stderr));
    try {
      await assert.rejects(manager.start({ ...request(id), readOnly: true }), (error: unknown) => {
        assert.ok(error instanceof SessionStoreError, String(error));
        // The message is safe to show a client; the timeout is in its cause, for the logs.
        assert.ok(error.cause instanceof Error);
        assert.match(error.cause.message, /ioTimeout \(300 ms\)/);
        return true;
      });
    } finally {
      // Unblock the pool thread still waiting in open(), then remove the FIFO.
      const writer = await open(path, 'w');
      await writer.close();
      await rm(path, { force: true });
      await manager.shutdown();
    }
  });
});

describe('file driver: damaged files and hostile cookies', () => {
  it('a corrupt, truncated or non-UTF-8 file gives an empty session and a warning, not a crash', async () => {
    const directory = freshDirectory('corrupt');
    const warnings: string[] = [];
    const manager = new SessionManager({
      driver: 'file',
      savePath: directory,
      logger: {
        debug: () => {},
        warn: (line) => warnings.push(line),
        error: (line) => warnings.push(line),
      },
      gcProbability: 0,
    });
    const first = await manager.start(request());
    first.set('user', { name: 'Ada', roles: ['admin'] });
    await manager.commit(first);
    const path = pathOf(directory, { id: first.id, ip: null });
    const stored = await readFile(path, 'utf8');
    for (const damaged of [
      stored.slice(0, Math.floor(stored.length / 2)),
      '\u0000\u0001garbage{',
      Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]),
    ]) {
      await writeFile(path, damaged);
      const again = await manager.start(request(first.id));
      assert.equal(again.get('user'), null);
      await manager.commit(again);
    }
    assert.equal(
      warnings.filter((line) => line.includes('is corrupt')).length,
      3,
      warnings.join('\n'),
    );
    await manager.shutdown();
  });

  it('no cookie value or client IP can make a file outside the directory', async () => {
    const sandbox = freshDirectory('fuzz');
    const directory = join(sandbox, 'sessions');
    const clock = new FakeClock(Date.now());
    const manager = new SessionManager({
      driver: 'file',
      savePath: directory,
      matchIP: true,
      clock: clock.now,
      gcProbability: 0,
    });
    const hostile = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.constantFrom(
        '../../../../tmp/pwned',
        '..%2F..%2Fpwned',
        '/tmp/pwned',
        'a/../../b',
        '..\\..\\x',
        '%00',
        '.',
        '..',
      ),
      fc.stringMatching(/^[0-9a-f]{32}$/).map((id) => `../${id}`),
      fc.stringMatching(/^[0-9a-f]{32}$/).map((id) => `${id}/../../x`),
    );
    await fc.assert(
      fc.asyncProperty(hostile, hostile, async (cookie, ip) => {
        const started = await manager.start({
          cookieHeader: `ci_session=${cookie}`,
          ip,
          ajax: false,
        });
        started.set('n', 1);
        await manager.commit(started);
      }),
      { numRuns: 300 },
    );
    const everything = await readdir(sandbox, { recursive: true });
    for (const entry of everything) {
      assert.ok(
        entry === 'sessions' || /^sessions\/ci_session[0-9a-f]{64}$/.test(entry),
        `unexpected entry ${entry}`,
      );
    }
    assert.ok(everything.length > 1);
    assert.throws(() => sessionFilePath(directory, 'ci_session', { id: '../x', ip: null }));
    assert.equal(
      relative(
        directory,
        sessionFilePath(directory, 'ci_session', { id: createSessionId(), ip: '../../x' }),
      ).includes('/'),
      false,
    );
    await manager.shutdown();
  });
});
