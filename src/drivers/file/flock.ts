import type { Stats } from 'node:fs';
import { constants } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { errorCode, ignoringMissing } from './io-timeout.js';
import type { FileLockMechanism, LockedSessionFile } from './lock.js';

/** The part of the optional native `fs-ext` addon this driver uses. */
export interface FsExt {
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

const OPEN_TO_CREATE = constants.O_RDWR | constants.O_CREAT;

/**
 * flock(2) on the session file itself, via fs-ext. The kernel drops the lock the instant its holder
 * dies, so a crashed process never blocks a session, and a lock never expires while its process
 * lives: it cannot be taken over, so it needs no renewal and no fencing beyond the store's tokens.
 * Only LOCK_NB is used — one attempt per call, the core waits between attempts — since a blocking
 * flock would park a libuv pool thread, and four of them stall every file operation.
 *
 * Writes replace the file by rename, so the inode we lock is never modified in place and is only
 * ever swapped out (write) or unlinked (destroy, a discarded placeholder, GC) by its lock holder, as
 * the last step before unlocking — or unlinked by a revocation, which fences its holder. A waiter that then wins the lock on the old inode sees that the
 * path now names another inode (or none) and tries the current one. So the lock on whatever inode
 * is at the path is the session lock, and the data in a locked inode never changes.
 */
export class FlockMechanism implements FileLockMechanism {
  readonly kind = 'flock' as const;
  readonly #addon: FsExt;

  constructor(addon: FsExt) {
    this.#addon = addon;
  }

  async tryLock(path: string, create: boolean): Promise<LockedSessionFile | null> {
    // A second try only when the first locked a file its holder had just replaced or removed: the
    // lock on the file now at the path is then likely free, and a wait would only lose it.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const outcome = await this.#tryOnce(path, create);
      if (outcome !== 'replaced') return outcome;
    }
    return null;
  }

  /**
   * A flock is never taken over, but a revocation that cannot take it unlinks the session file (see
   * FileStore.revoke): the lock then guards a file that is no longer the session's.
   */
  async stillHeld(locked: LockedSessionFile): Promise<boolean> {
    const current = await ignoringMissing(stat(locked.path));
    return (
      current !== undefined && current.ino === locked.stats?.ino && current.dev === locked.stats.dev
    );
  }

  /** A flock cannot be taken from its holder: only a free one is taken, without creating the file. */
  seize(path: string): Promise<LockedSessionFile | null> {
    return this.tryLock(path, false);
  }

  async release(locked: LockedSessionFile): Promise<void> {
    if (locked.handle === null) return;
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

  /** The lock; null when another holds it (or the file is missing and not to be created); 'replaced'. */
  async #tryOnce(path: string, create: boolean): Promise<LockedSessionFile | null | 'replaced'> {
    let handle: FileHandle;
    try {
      handle = await open(path, create ? OPEN_TO_CREATE : constants.O_RDWR, 0o600);
    } catch (error) {
      if (!create && errorCode(error) === 'ENOENT') return null;
      throw error;
    }
    try {
      if (!this.#lockNow(handle)) {
        await handle.close();
        return null;
      }
      const verified = await this.#verify(path, handle);
      if (verified === null) {
        // Closing drops the lock on the file that is no longer the session's.
        await handle.close();
        return 'replaced';
      }
      return { path, handle, stats: verified };
    } catch (error) {
      await handle.close().catch(() => {});
      throw error;
    }
  }

  /** True when this call took the lock; false when another open file holds it. */
  #lockNow(handle: FileHandle): boolean {
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
    const [own, current] = await Promise.all([handle.stat(), ignoringMissing(stat(path))]);
    if (current === undefined || current.ino !== own.ino || current.dev !== own.dev) return null;
    return own;
  }
}
