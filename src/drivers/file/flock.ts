import type { Stats } from 'node:fs';
import { constants } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { SessionLockTimeoutError } from '../../errors.js';
import { errorCode, ignoringMissing, withinIoTimeout } from './io-timeout.js';
import {
  FIRST_POLL_MS,
  type FileLockMechanism,
  LONGEST_POLL_MS,
  type LockedSessionFile,
} from './lock.js';

/** The part of the optional native `fs-ext` addon this driver uses. */
interface FsExt {
  flockSync(fd: number, flags: number): unknown;
  constants: { LOCK_EX: number; LOCK_NB: number; LOCK_UN: number };
}

/** Loads `fs-ext` (an optional dependency with a native build); null when it is not installed or did not build. */
export async function loadFsExt(): Promise<FsExt | null> {
  // A variable specifier keeps TypeScript from requiring type declarations for the addon.
  const specifier = 'fs-ext';
  try {
    const loaded = (await import(specifier)) as { default?: unknown };
    const addon = (loaded.default ?? loaded) as Partial<FsExt>;
    return typeof addon.flockSync === 'function' && typeof addon.constants === 'object'
      ? (addon as FsExt)
      : null;
  } catch {
    return null;
  }
}

const OPEN_FOR_LOCK = constants.O_RDWR | constants.O_CREAT;

/**
 * flock(2) on the session file itself, via fs-ext. The kernel drops the lock the instant its holder
 * dies, so a crashed process never blocks a session. Only LOCK_NB is used, polled with backoff: a
 * blocking flock would park a libuv pool thread, and four of them stall every file operation.
 *
 * Writes replace the file by rename, so the inode we lock is never modified in place and is only
 * ever swapped out (write) or unlinked (destroy, close of a new session, GC) by its lock holder, as
 * the last step before unlocking. A waiter that then wins the lock on the old inode sees that the
 * path now names another inode (or none) and starts over on the current one. So the lock on
 * whatever inode is at the path is the session lock, and the data in a locked inode never changes.
 */
export class FlockMechanism implements FileLockMechanism {
  readonly kind = 'flock' as const;
  readonly #addon: FsExt;
  readonly #ioTimeoutMs: number;
  readonly #held = new Set<LockedSessionFile>();

  constructor(addon: FsExt, ioTimeoutMs: number) {
    this.#addon = addon;
    this.#ioTimeoutMs = ioTimeoutMs;
  }

  async acquire(path: string, waitMs: number): Promise<LockedSessionFile> {
    const deadline = performance.now() + waitMs;
    let pauseMs = FIRST_POLL_MS;
    let handle = await this.#open(path, OPEN_FOR_LOCK);
    for (;;) {
      let locked: boolean;
      try {
        locked = this.#tryLock(handle);
      } catch (error) {
        await handle.close().catch(() => {});
        throw error;
      }
      if (locked) {
        const verified = await this.#verify(path, handle).catch(async (error: unknown) => {
          await handle.close().catch(() => {});
          throw error;
        });
        if (verified !== null) return this.#remember({ path, handle, stats: verified });
        // We locked a file that destroy, GC or a write had already replaced: start over.
        await handle.close();
        if (performance.now() >= deadline) throw new SessionLockTimeoutError(waitMs, 'file');
        handle = await this.#open(path, OPEN_FOR_LOCK);
        continue;
      }
      const remainingMs = deadline - performance.now();
      if (remainingMs <= 0) {
        await handle.close().catch(() => {});
        throw new SessionLockTimeoutError(waitMs, 'file');
      }
      await sleep(Math.min(pauseMs, remainingMs));
      pauseMs = Math.min(pauseMs * 2, LONGEST_POLL_MS);
    }
  }

  async tryAcquire(path: string): Promise<LockedSessionFile | null> {
    let handle: FileHandle;
    try {
      handle = await this.#open(path, constants.O_RDWR);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return null;
      throw error;
    }
    try {
      if (!this.#tryLock(handle)) {
        await handle.close();
        return null;
      }
      const verified = await this.#verify(path, handle);
      if (verified === null) {
        await handle.close();
        return null;
      }
      return this.#remember({ path, handle, stats: verified });
    } catch (error) {
      await handle.close().catch(() => {});
      throw error;
    }
  }

  async release(locked: LockedSessionFile): Promise<void> {
    if (!this.#held.delete(locked) || locked.handle === null) return;
    try {
      // Unlock at once: close() goes through the thread pool and may wait behind other file I/O.
      this.#addon.flockSync(locked.handle.fd, this.#addon.constants.LOCK_UN);
    } finally {
      await locked.handle.close();
    }
  }

  async removeLeftover(): Promise<boolean> {
    return false;
  }

  async shutdown(): Promise<void> {
    for (const locked of [...this.#held]) await this.release(locked).catch(() => {});
  }

  #remember(locked: LockedSessionFile): LockedSessionFile {
    this.#held.add(locked);
    return locked;
  }

  #open(path: string, flags: number): Promise<FileHandle> {
    return withinIoTimeout(
      open(path, flags, 0o600),
      this.#ioTimeoutMs,
      'opening a session file',
      (late) => late.close(),
    );
  }

  /** True when this call took the lock; false when another open file holds it. */
  #tryLock(handle: FileHandle): boolean {
    const { LOCK_EX, LOCK_NB } = this.#addon.constants;
    try {
      this.#addon.flockSync(handle.fd, LOCK_EX | LOCK_NB);
      return true;
    } catch (error) {
      const code = errorCode(error);
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return false;
      throw error;
    }
  }

  /** The locked file's stat if it is still the file at `path`; null if it was replaced or removed. */
  async #verify(path: string, handle: FileHandle): Promise<Stats | null> {
    const [own, current] = await withinIoTimeout(
      Promise.all([handle.stat(), ignoringMissing(stat(path))]),
      this.#ioTimeoutMs,
      'checking a locked session file',
    );
    if (current === undefined || current.ino !== own.ino || current.dev !== own.dev) return null;
    return own;
  }
}
