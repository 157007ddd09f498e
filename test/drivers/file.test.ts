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
import {
  SessionConfigError,
  SessionLockTimeoutError,
  SessionStoreError,
} from '../../src/errors.js';
import { sessionFilePath } from '../../src/handlers/file/names.js';
import { defaultSavePath, FileHandler } from '../../src/handlers/file.js';
import { createSessionId } from '../../src/id.js';
import type { SessionLogger } from '../../src/log.js';
import { SessionManager } from '../../src/manager.js';
import {
  type ConformanceTarget,
  openHarness,
  runConformanceSuite,
} from '../../src/testing/conformance.js';

const root = await mkdtemp(join(tmpdir(), 'keepsake-file-test-'));
after(() => rm(root, { recursive: true, force: true }));

let directoryCounter = 0;
/** A fresh, not yet existing directory under this file's temp root. */
function freshDirectory(label: string): string {
  directoryCounter += 1;
  return join(root, `${label}-${directoryCounter}`);
}

const LOCKS = ['flock', 'mkdir'] as const;

for (const lock of LOCKS) {
  const savePath = join(root, `conformance-${lock}`);
  runConformanceSuite(`file (${lock})`, {
    createHandler: () => new FileHandler({ lock }),
    savePath,
    expiry: 'settings',
    cleanup: () => rm(savePath, { recursive: true, force: true }),
  });
}

function target(lock: 'flock' | 'mkdir', savePath: string): ConformanceTarget {
  return { createHandler: () => new FileHandler({ lock }), savePath, expiry: 'settings' };
}

function recordingLogger(): { logger: SessionLogger; lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    logger: {
      debug: () => {},
      warn: (message) => lines.push(`warn ${message}`),
      error: (message) => lines.push(`error ${message}`),
    },
  };
}

describe('file driver: save path', () => {
  it('uses flock when the fs-ext addon is installed, and mkdir when asked to', async () => {
    const { handler: withFlock } = await openHarness(target('flock', freshDirectory('kind')));
    assert.equal((withFlock as FileHandler).lockKind, 'flock');
    const { handler: auto } = await openHarness({
      ...target('flock', freshDirectory('kind')),
      createHandler: () => new FileHandler(),
    });
    assert.equal((auto as FileHandler).lockKind, 'flock');
    const { handler: withMkdir } = await openHarness(target('mkdir', freshDirectory('kind')));
    assert.equal((withMkdir as FileHandler).lockKind, 'mkdir');
    for (const handler of [withFlock, auto, withMkdir]) await handler.shutdown();
  });

  it('creates the directory 0700 (with parents) and session files 0600, named cookieName[md5(ip)]id', async () => {
    const savePath = join(freshDirectory('perm'), 'nested', 'sessions');
    const { handler } = await openHarness(target('flock', `${savePath}/`), {
      cookieName: 'app_sess',
      matchIP: true,
    });
    assert.equal((await stat(savePath)).mode & 0o777, 0o700);
    const key = { id: createSessionId(), ip: '203.0.113.9' };
    const { lock } = await handler.read(key, 1_000);
    await handler.write(key, lock, '{"a":1}');
    const expectedName = `app_sess${createHash('md5').update('203.0.113.9').digest('hex')}${key.id}`;
    assert.deepEqual(await readdir(savePath), [expectedName]);
    assert.equal((await stat(join(savePath, expectedName))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(savePath, expectedName), 'utf8'), '{"a":1}');
    await handler.shutdown();
  });

  it('defaults to keepsake-sessions under the OS temp directory', async () => {
    assert.equal(defaultSavePath(), join(tmpdir(), 'keepsake-sessions'));
    const handler = new FileHandler();
    await openHarness({ createHandler: () => handler, savePath: '', expiry: 'settings' });
    assert.equal(handler.directory, defaultSavePath());
    assert.equal((await stat(defaultSavePath())).isDirectory(), true);
    await handler.shutdown();
  });

  it('fails when the manager opens a path that cannot be a directory, with the seed message', async () => {
    const file = join(freshDirectory('plain'), 'a-file');
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, 'not a directory');
    for (const savePath of [file, join(file, 'below')]) {
      const manager = new SessionManager({ driver: 'file', savePath });
      await assert.rejects(manager.ready(), (error: unknown) => {
        assert.ok(error instanceof SessionConfigError);
        assert.equal(error.option, 'savePath');
        assert.match(
          error.message,
          /Configured save path ".*" is not a directory, does not exist or cannot be created\./,
        );
        return true;
      });
    }
  });

  it('rejects a relative savePath', async () => {
    const manager = new SessionManager({ driver: 'file', savePath: 'sessions' });
    await assert.rejects(manager.ready(), /needs an absolute directory/);
  });

  it('fails with the seed message when the directory is not writable', async () => {
    const savePath = freshDirectory('readonly');
    await mkdir(savePath, { mode: 0o700 });
    const uid = process.getuid?.();
    if (uid === 0) {
      // root may write anywhere, so the check runs as an unprivileged user on a root-owned 0700
      // directory (the temp root made traversable, not listable, so the user can reach it).
      await chmod(root, 0o711);
      const script = fileURLToPath(new URL('./file/open-save-path.ts', import.meta.url));
      const child = spawnSync(process.execPath, ['--import', 'tsx', script, savePath], {
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
      await chmod(savePath, 0o500);
      const manager = new SessionManager({ driver: 'file', savePath });
      await assert.rejects(manager.ready(), /is not writable by the Node process\./);
      await chmod(savePath, 0o700);
    }
  });

  it('warns when other users can read the directory', async () => {
    const savePath = freshDirectory('open');
    await mkdir(savePath, { mode: 0o755 });
    await chmod(savePath, 0o755);
    const { logger, lines } = recordingLogger();
    const { handler } = await openHarness(target('flock', savePath), { logger });
    assert.ok(
      lines.some((line) => line.includes('chmod 0700')),
      lines.join('\n'),
    );
    await handler.shutdown();
  });
});

describe('file driver: files and locks', () => {
  for (const lock of LOCKS) {
    it(`${lock}: a waiter on a session destroyed by the holder gets an empty session`, async () => {
      const savePath = freshDirectory(`destroyed-${lock}`);
      const first = await openHarness(target(lock, savePath));
      const second = await openHarness(target(lock, savePath));
      const key = { id: createSessionId(), ip: null };
      let held = await first.handler.read(key, 1_000);
      await first.handler.write(key, held.lock, '{"v":1}');
      held = await first.handler.read(key, 1_000);
      const waiting = second.handler.read(key, 3_000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await first.handler.destroy(key, held.lock);
      const granted = await waiting;
      assert.equal(granted.data, null);
      await second.handler.close(key, granted.lock);
      assert.deepEqual(await readdir(savePath), [], 'nothing is left for a session never written');
      await first.handler.shutdown();
      await second.handler.shutdown();
    });
  }

  it('updateTimestamp only touches an unchanged file (same inode, new mtime)', async () => {
    const savePath = freshDirectory('touch');
    const { handler, clock } = await openHarness(target('flock', savePath));
    const key = { id: createSessionId(), ip: null };
    let held = await handler.read(key, 1_000);
    await handler.write(key, held.lock, '{"t":1}');
    const path = sessionFilePath(savePath, 'ci_session', key);
    const before = await stat(path);
    clock.advance(30);
    held = await handler.read(key, 1_000);
    await handler.updateTimestamp(key, held.lock, '{"t":1}');
    const after = await stat(path);
    assert.equal(after.ino, before.ino);
    assert.equal(Math.round(after.mtimeMs - before.mtimeMs), 30_000);
    await handler.shutdown();
  });

  it('mkdir: takes over a lock whose holder stopped renewing it, and warns', async () => {
    const savePath = freshDirectory('stale');
    const { logger, lines } = recordingLogger();
    const { handler } = await openHarness(target('mkdir', savePath), { lockTtlMs: 500, logger });
    const key = { id: createSessionId(), ip: null };
    const lockPath = `${sessionFilePath(savePath, 'ci_session', key)}.lock`;
    await mkdir(lockPath);
    await assert.rejects(handler.read(key, 200), SessionLockTimeoutError);
    const past = new Date(Date.now() - 5_000);
    await utimes(lockPath, past, past);
    const { data, lock } = await handler.read(key, 1_000);
    assert.equal(data, null);
    assert.ok(
      lines.some((line) => line.includes('took over the session lock')),
      lines.join('\n'),
    );
    await handler.close(key, lock);
    assert.deepEqual(await readdir(savePath), []);
    await handler.shutdown();
  });
});

describe('file driver: GC', () => {
  for (const lock of LOCKS) {
    it(`${lock}: skips an expired session whose lock is held, and removes it once released`, async () => {
      const savePath = freshDirectory(`gc-held-${lock}`);
      const { handler, clock } = await openHarness(target(lock, savePath), {
        lifetimeSeconds: 600,
      });
      const key = { id: createSessionId(), ip: null };
      let held = await handler.read(key, 1_000);
      await handler.write(key, held.lock, '{"g":1}');
      held = await handler.read(key, 1_000);
      clock.advance(700);
      assert.equal(await handler.gc(600), 0);
      await handler.close(key, held.lock);
      assert.equal(await handler.gc(600), 1);
      assert.deepEqual(await readdir(savePath), []);
      await handler.shutdown();
    });
  }

  it('removes leftovers of crashed processes and never touches other files', async () => {
    const savePath = freshDirectory('gc-leftovers');
    const { handler } = await openHarness(target('mkdir', savePath), { lockTtlMs: 500 });
    const id = createSessionId();
    const old = new Date(Date.now() - 3_600_000);
    const names = {
      temporary: `ci_session${id}.0123456789abcdef.tmp`,
      freshTemporary: `ci_session${createSessionId()}.0123456789abcdef.tmp`,
      staleLock: `ci_session${createSessionId()}.lock`,
      otherCookie: `other_cookie${createSessionId()}`,
      unrelated: 'notes.txt',
      withIp: `ci_session${createSessionId()}${id}`,
    };
    for (const [label, name] of Object.entries(names)) {
      const path = join(savePath, name);
      if (label === 'staleLock') await mkdir(path);
      else await writeFile(path, '{"x":1}');
      if (label !== 'freshTemporary') await utimes(path, old, old);
    }
    const removed = await handler.gc(60);
    assert.equal(removed, 1, 'only the expired session file counts');
    assert.deepEqual(
      (await readdir(savePath)).sort(),
      [names.freshTemporary, names.otherCookie, names.unrelated].sort(),
    );
    await handler.shutdown();
  });
});

describe('file driver: a hung file system', () => {
  it('a file operation that hangs fails within ioTimeout as a SessionStoreError', async () => {
    const savePath = freshDirectory('hung');
    const manager = new SessionManager({
      driver: 'file',
      savePath,
      ioTimeout: 300,
      gcProbability: 0,
    });
    await manager.ready();
    const id = createSessionId();
    const path = sessionFilePath(savePath, 'ci_session', { id, ip: null });
    // Opening a FIFO for reading blocks until a writer appears: a real hung open(), no mock.
    const made = spawnSync('mkfifo', [path]);
    assert.equal(made.status, 0, String(made.stderr));
    try {
      await assert.rejects(
        manager.start({
          cookieHeader: `ci_session=${id}`,
          ip: '127.0.0.1',
          ajax: false,
          readOnly: true,
        }),
        (error: unknown) => {
          assert.ok(error instanceof SessionStoreError, String(error));
          assert.match(error.message, /ioTimeout \(300 ms\)/);
          return true;
        },
      );
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
  it('a corrupt or truncated file gives an empty session and a warning, not a crash', async () => {
    const savePath = freshDirectory('corrupt');
    const { logger, lines } = recordingLogger();
    const manager = new SessionManager({ driver: 'file', savePath, logger, gcProbability: 0 });
    const request = (id?: string) => ({
      cookieHeader: id === undefined ? undefined : `ci_session=${id}`,
      ip: '127.0.0.1',
      ajax: false,
    });
    const first = await manager.start(request());
    first.set('user', { name: 'Ada', roles: ['admin'] });
    await manager.commit(first);
    const path = sessionFilePath(savePath, 'ci_session', { id: first.id, ip: null });
    const stored = await readFile(path, 'utf8');
    for (const damaged of [
      stored.slice(0, Math.floor(stored.length / 2)),
      '\u0000\u0001garbage{',
    ]) {
      await writeFile(path, damaged);
      const again = await manager.start(request(first.id));
      assert.equal(again.get('user'), null);
      await manager.commit(again);
    }
    assert.equal(lines.filter((line) => line.includes('is corrupt')).length, 2, lines.join('\n'));
    await manager.shutdown();
  });

  it('no cookie value or client IP can make a file outside savePath', async () => {
    const sandbox = freshDirectory('fuzz');
    const savePath = join(sandbox, 'sessions');
    const clock = new FakeClock(Date.now());
    const manager = new SessionManager({
      driver: 'file',
      savePath,
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
    assert.throws(() => sessionFilePath(savePath, 'ci_session', { id: '../x', ip: null }));
    assert.equal(
      relative(
        savePath,
        sessionFilePath(savePath, 'ci_session', { id: createSessionId(), ip: '../../x' }),
      ).includes('/'),
      false,
    );
    await manager.shutdown();
  });
});
